"""Dream fidelity of a finished Dream Land run, measured with more real episodes and longer dreams.

    python experiments/dreamland_fidelity.py runs/v5 [--real 16,32] [--dream 30x256,100x256,300x128,300x256]
        [--random N]

For each variant: the real returns of the run's fidelity panel (fresh actors, seed 777, episodes
capped at the run's ``fidelity_max_steps``) with each number of real episodes, and their split-half
noise ceiling; then for each dream setting (steps x episodes, common starts) the Spearman of the
dream means against each real side, over the whole panel and within its trained and untrained
controllers (``fidelity_subsets``). ``--random N`` sets the panel's random linear controllers
(default: the run's ``fidelity_random``). Reads the run, writes nothing. Used for the table "Dream
fidelity measured more precisely" in docs/results.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from simlab.config import load_yaml
from simlab.pipelines.dreamland import Dreamland, DreamlandConfig, fidelity_subsets
from simlab.policies.panel import rollout_actors, spearman, split_half_ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--real", default="16,32", help="real episodes per controller, comma-separated")
    ap.add_argument("--dream", default="30x256,100x256,300x128,300x256", help="dream steps x episodes, comma-separated")
    ap.add_argument("--random", type=int, default=None, help="random linear controllers in the panel")
    args = ap.parse_args()
    cfg = load_yaml(DreamlandConfig, args.run / "config.yaml", sealed=True)
    run = Dreamland(cfg, args.run, resume=True, progress=False)
    if args.random is not None:
        run.cfg = dataclasses.replace(cfg, fidelity_random=args.random)
    for v in cfg.variants():
        real = {}
        for eps in (int(x) for x in args.real.split(",")):
            t = time.time()
            _, actors = run._panel(v)
            real[eps] = rollout_actors(run._real_feature_env(v), actors, eps, 777, cfg.fidelity_max_steps)
            print(f"{v}: real {eps} episodes, noise ceiling {split_half_ceiling(real[eps]):.3f} "
                  f"({time.time() - t:.1f} s)", flush=True)
        for setting in args.dream.split(","):
            steps, eps = (int(x) for x in setting.split("x"))
            t = time.time()
            _, actors = run._panel(v)
            dream = rollout_actors(run._dream_env(v, steps), actors, eps, 777, steps, common_starts=True).mean(1)
            names, _ = run._panel(v)
            rho = "  ".join(f"vs {e} real: {spearman(dream, r.mean(1)):.3f} (trained {sub['spearman_trained']:.3f}, "
                            f"untrained {sub['spearman_untrained']:.3f})"
                            for e, r in real.items() for sub in [fidelity_subsets(dream, r.mean(1), names)])
            print(f"{v}: dream {steps} steps x {eps}: {rho} ({time.time() - t:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
