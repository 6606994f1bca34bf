"""How well does one CMA-ES generation's fitness rank its candidates, with and without common noise?

    python experiments/dreamland_crn.py runs/v11 [--candidates 32] [--sigma 0.1] [--repeats 8]
        [--reference 2048] [--real 0] [--focus 0.25]

For each variant of a finished Dream Land run: ``--candidates`` controllers drawn around the final
controller of seed 0 (``mean + sigma * N(0, I)``, as CMA-ES samples a generation), each scored the
way a generation scores it (``episodes_per_candidate`` dreams from common starts, ``max_dream_steps``
long) under ``--repeats`` generation seeds, once with independent dream noise per slot (the default)
and once with common noise (``common_noise``: episode ``j`` of every candidate shares the dream's
random numbers). Printed: the Spearman of each generation's fitness against a reference ranking
(``--reference`` dreams per candidate from other starts, common noise), mean and range over the
repeats; with ``--real N`` also against the candidates' real returns (N episodes each on the
training levels). ``--focus F``: also score each generation on the informative starts only (the
top fraction F of start rows by the spread of their held-action returns,
:mod:`simlab.world_models.dropout.starts`), with common noise. Reads the run, writes nothing. Used in docs/results.md ("Common random numbers").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from simlab.config import load_yaml
from simlab.pipelines.dreamland import Dreamland, DreamlandConfig
from simlab.policies.cmaes import LinearController, generation_seed, rollout_controllers
from simlab.policies.panel import rollout_actors, spearman
from simlab.world_models.dropout.starts import held_action_returns, informative_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--candidates", type=int, default=32)
    ap.add_argument("--sigma", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--reference", type=int, default=2048)
    ap.add_argument("--real", type=int, default=0)
    ap.add_argument("--focus", type=float, default=0.0)
    args = ap.parse_args()
    cfg = load_yaml(DreamlandConfig, args.run / "config.yaml", sealed=True)
    run = Dreamland(cfg, args.run, resume=True, progress=False)
    steps, eps = cfg.max_dream_steps, cfg.episodes_per_candidate
    for v in cfg.variants():
        mean = LinearController.load(args.run / "controllers" / v / "seed0" / "controller")
        in_dim = run.world_model(v).obs_dim
        rng = np.random.default_rng(12345)
        params = mean.get_params()[None] + args.sigma * rng.standard_normal((args.candidates, mean.num_params))
        make = run._dream_env(v, steps, focused=False)
        t = time.time()
        ref = rollout_controllers(make, params, in_dim, run.actions, args.reference, 999_999, steps,
                                  common_starts=True, common_noise=True)["returns"].mean(1)
        line = f"{v}: reference {args.reference} dreams/candidate, spread {ref.min():.3f}-{ref.max():.3f} " \
               f"({time.time() - t:.0f} s)"
        print(line, flush=True)
        settings = [("independent noise", make, False), ("common noise", make, True)]
        if args.focus:
            t = time.time()
            held = held_action_returns(make, run.world_model(v).start_z.shape[0], run.actions, steps, 4242)
            pool = informative_rows(held, args.focus)
            spread = held.max(1) - held.min(1)
            print(f"{v}: held-action spread of {len(held)} start rows: median {np.median(spread):.3f}, "
                  f"top {args.focus:.0%} from {spread[pool].min():.3f} ({time.time() - t:.0f} s)", flush=True)

            def focused(n: int, s: int, pool: np.ndarray = pool, make=make):
                env = make(n, s)
                env.start_pool = pool
                return env
            settings.append((f"common noise, top {args.focus:.0%} starts", focused, True))
            ref_focus = rollout_controllers(focused, params, in_dim, run.actions, args.reference, 999_999, steps,
                                            common_starts=True, common_noise=True)["returns"].mean(1)
            print(f"{v}: reference on the top {args.focus:.0%} starts: spread {ref_focus.min():.3f}-"
                  f"{ref_focus.max():.3f}, Spearman vs the uniform reference {spearman(ref_focus, ref):.3f}", flush=True)
        real = None
        if args.real:
            t = time.time()
            actors = [LinearController(in_dim, run.actions, p) for p in params]
            real = rollout_actors(run._real_feature_env(v), actors, args.real, 777, cfg.fidelity_max_steps).mean(1)
            print(f"{v}: real returns ({args.real} episodes each, spread {real.min():.0f}-{real.max():.0f}); "
                  f"reference dream vs real: Spearman {spearman(ref, real):.3f}"
                  + (f", focused reference vs real {spearman(ref_focus, real):.3f}" if args.focus else "")
                  + f" ({time.time() - t:.0f} s)", flush=True)
        for label, mk, noise in settings:
            rhos, rhos_real = [], []
            for r in range(1, args.repeats + 1):
                fit = rollout_controllers(mk, params, in_dim, run.actions, eps, generation_seed(7, r), steps,
                                          common_starts=True, common_noise=noise)["returns"].mean(1)
                rhos.append(spearman(fit, ref))
                if real is not None:
                    rhos_real.append(spearman(fit, real))
            vs_real = f"; vs real {np.mean(rhos_real):.3f}" if rhos_real else ""
            print(f"{v}: {label}: Spearman of one generation's fitness vs reference "
                  f"{np.mean(rhos):.3f} (range {min(rhos):.3f} to {max(rhos):.3f}, {args.repeats} seeds){vs_real}",
                  flush=True)


if __name__ == "__main__":
    main()
