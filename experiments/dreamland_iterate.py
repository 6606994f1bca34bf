"""One round of World Models' iterative training on a finished Dream Land run (an experiment).

    python experiments/dreamland_iterate.py runs/SRC runs/DST [--transitions 50000] [--epsilon 0.1]
    simlab train dreamland --out runs/DST --resume        # retrains MDN-RNNs, controllers, evals

Plays the SOURCE run's dream-trained controllers (every variant, every seed, one per env slot) in
the real game on the training levels, each action replaced by a uniform random one with
probability ``epsilon``, encodes those frames with the run's VAE (plus their mirror images, as
the pipeline does) and appends them to ``DST/data/latents.npz``. The MDN-RNNs, the dream start
states (so the danger starts now include where the controllers died) and the controllers are then
retrained from scratch by ``--resume``. The new data is shared by every variant, so the
comparison between them stays on equal data.

Why: within the trained controllers the dream's ranking does not match the real one
(docs/results.md, "round 4"): CMA-ES finds what the dream gets wrong where good controllers go,
and the random-repeat data rarely goes there. Data from the controllers themselves is World
Models' remedy (Ha & Schmidhuber 2018, section 5, iterative training).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from simlab.config import from_dict, load_yaml, save_yaml
from simlab.integrity import write_sealed_json
from simlab.pipelines.dreamland import UPPER, Dreamland, DreamlandConfig, encode_episode

KEEP_STAGES = ("collect", "collect_heldout", "vae", "diag_vae", "fixed")


def rollout(run: Dreamland, transitions: int, epsilon: float, seed: int, num_envs: int = 18
            ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Episodes of the run's controllers in the real game: lists of frames ``(T+1, 64, 64, 3)``
    uint8, actions ``(T,)``, rewards ``(T,)``, terminations ``(T,)`` (the last segment of each
    slot ends unfinished)."""
    from simlab.envs.procgen.base import options_for_split
    from simlab.envs.procgen.vec import ProcgenVecEnv

    agents = [run._agent(v, k) for v in run.cfg.variants() for k in range(run.cfg.seeds)]
    slot_agent = np.arange(num_envs) % len(agents)
    rng = np.random.default_rng([seed, 0x17E])
    opts = options_for_split(run.splits()["train"], rand_seed=seed, use_backgrounds=run.cfg.use_backgrounds)
    env = ProcgenVecEnv(run.game, num_envs, options=opts)
    obs, _ = env.reset()
    buf = [{"obs": [], "act": [], "rew": [], "term": []} for _ in range(num_envs)]
    eps_out: list[tuple[np.ndarray, ...]] = []
    actions_ids = np.asarray(run.actions, np.int64)
    for _t in range(-(-transitions // num_envs)):
        act = np.empty(num_envs, np.int64)
        # Each agent keeps its own recurrent state over its own slots.
        for i, ag in enumerate(agents):
            m = np.flatnonzero(slot_agent == i)
            act[m] = np.asarray(ag.act(obs[m]), np.int64)
        rand = rng.random(num_envs) < epsilon
        act[rand] = rng.choice(actions_ids, size=int(rand.sum()))
        nxt, rew, term, trunc, info = env.step(act)
        done = term | trunc
        for k in range(num_envs):
            b = buf[k]
            b["obs"].append(obs[k])
            b["act"].append(act[k])
            b["rew"].append(rew[k])
            b["term"].append(term[k])
            if done[k]:
                eps_out.append((np.stack(b["obs"] + [info["final_obs"][k]]), np.array(b["act"]),
                                np.array(b["rew"], np.float32), np.array(b["term"], bool)))
                buf[k] = {"obs": [], "act": [], "rew": [], "term": []}
        for i, ag in enumerate(agents):
            m = np.flatnonzero(slot_agent == i)
            if done[m].any():
                ag.reset(done[m])
        obs = nxt
    for k in range(num_envs):
        b = buf[k]
        if b["act"]:
            eps_out.append((np.stack(b["obs"] + [obs[k]]), np.array(b["act"]), np.array(b["rew"], np.float32),
                            np.array(b["term"], bool)))
    env.close()
    return [e[0] for e in eps_out], [e[1] for e in eps_out], [e[2] for e in eps_out], [e[3] for e in eps_out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--transitions", type=int, default=50_000)
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("overrides", nargs="*", help="key=value config overrides for the retraining")
    a = ap.parse_args()
    if a.dst.exists():
        sys.exit(f"error: {a.dst} exists")
    from dreamland_fork import overridden  # the sibling script (experiments/ is on sys.path)

    from simlab.world_models.dropout.vae import ConvVAE

    cfg_d = overridden(a.src, a.overrides)
    src_run = Dreamland(load_yaml(DreamlandConfig, a.src / "config.yaml", sealed=True), a.src, resume=True,
                        progress=False)
    frames, acts, rews, terms = rollout(src_run, a.transitions, a.epsilon, src_run.cfg.seed + 17)
    n_deaths = int(sum(t.sum() for t in terms))
    print(f"collected {sum(len(x) for x in acts)} transitions in {len(acts)} episodes, {n_deaths} deaths",
          flush=True)

    shutil.copytree(a.src, a.dst, ignore=shutil.ignore_patterns("controllers", "eval", "report.*", "plots", "videos",
                                                                "world_models"))
    for p in (a.dst / "stages").glob("*.json"):
        if not p.name.startswith(KEEP_STAGES) or p.name.startswith(f"controller_{UPPER}"):
            p.unlink()
    vae = ConvVAE.from_pretrained(a.dst / "checkpoints" / "vae", device="cpu")
    perm = src_run.mirror_map()
    with np.load(a.dst / "data" / "latents.npz") as f:
        d = {k: f[k] for k in ("z", "actions", "rewards", "dones", "lengths")}
    zs, ac, rw, dn, ln = [d["z"]], [d["actions"]], [d["rewards"]], [d["dones"]], [d["lengths"]]
    for fr, at, r, t in zip(frames, acts, rews, terms):
        for z_, a_ in encode_episode(vae, fr, at.astype(d["actions"].dtype), perm):
            zs.append(z_)
            ac.append(a_)
            rw.append(r.astype(d["rewards"].dtype))
            dn.append(t.astype(d["dones"].dtype))
            ln.append(np.array([len(a_)], d["lengths"].dtype))
    with open(a.dst / "data" / "latents.npz", "wb") as f:
        np.savez(f, z=np.concatenate(zs), actions=np.concatenate(ac), rewards=np.concatenate(rw),
                 dones=np.concatenate(dn), lengths=np.concatenate(ln))
    write_sealed_json(a.dst / "stages" / "encode.json",
                      {"stage": "encode", "iterate_from": str(a.src), "new_transitions": int(sum(map(len, acts))),
                       "new_deaths": n_deaths, "epsilon": a.epsilon})
    save_yaml(from_dict(DreamlandConfig, cfg_d), a.dst / "config.yaml")
    print(f"wrote {a.dst}; now: simlab train dreamland --out {a.dst} --resume", flush=True)


if __name__ == "__main__":
    main()
