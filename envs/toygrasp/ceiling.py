"""The scripted expert's success rate per split and engine: the ceiling printed beside every policy.

``python -m simlab.envs.toygrasp.ceiling --backend pybullet --split toys-test --episodes 100``

Episode ``i`` resets with ``seed=i``; on ``toys-train`` / ``toys-test`` the
env draws the toy from the split, on ``objects`` every object of the split is
grasped once (episode ``i`` = object ``i``, ``--episodes`` is ignored).
Success as in the env: lifted >= 10 cm and held 1 s within 50 steps. The
95% interval is Wilson's score interval.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from simlab.envs.toygrasp.splits import split_objects
from simlab.stats import wilson

MAX_STEPS = 50


def expert_success(backend: str, split: str, episodes: int = 100, resolution: int = 96) -> dict[str, Any]:
    """Run the scripted expert; returns the rate, its 95% interval and one record per episode."""
    from simlab.envs.toygrasp.env import ToyGraspEnv
    from simlab.envs.toygrasp.expert import ScriptedExpert

    env = ToyGraspEnv(backend, split=split, resolution=resolution)
    expert = ScriptedExpert(env)
    names = list(split_objects(split)) if split == "objects" else [None] * episodes
    per_episode = []
    try:
        for i, name in enumerate(names):
            obs, info = env.reset(seed=i, options=None if name is None else {"object": name})
            for t in range(MAX_STEPS):
                obs, _, term, _, info = env.step(expert.act(obs))
                if term:
                    break
            per_episode.append({"seed": i, "object": info["object"], "success": info["is_success"],
                                "steps": t + 1, "grasp_width": expert.grasp.width})
    finally:
        env.close()
    k, n = sum(e["success"] for e in per_episode), len(per_episode)
    lo, hi = wilson(k, n)
    return {"backend": backend, "split": split, "episodes": n, "successes": k, "success_rate": k / n,
            "ci95": [lo, hi], "per_episode": per_episode}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="pybullet", help="pybullet | mujoco")
    ap.add_argument("--split", default="toys-test", help="toys-train | toys-test | objects")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--json", action="store_true", help="Print the whole result (with every episode) as JSON.")
    args = ap.parse_args(argv)
    res = expert_success(args.backend, args.split, args.episodes)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        lo, hi = res["ci95"]
        print(f"expert {args.backend} {args.split}: {res['successes']}/{res['episodes']} = "
              f"{res['success_rate']:.2f} (95% CI {lo:.2f}-{hi:.2f})")


if __name__ == "__main__":
    main()
