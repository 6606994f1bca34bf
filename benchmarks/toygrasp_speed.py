"""Env steps per second of toy grasping in pybullet against MuJoCo, with rendering, on one core.

What is compared
----------------
The same task in two engines: ``ToyGraspEnv(backend="pybullet")``
(``simlab/ToyGrasp-v0``: pybullet DIRECT, TinyRenderer) and
``ToyGraspEnv(backend="mujoco")`` (``simlab/ToyGraspMJ-v0``: MuJoCo with EGL
software rendering, shadows and MSAA off). Both load the same robot file
(pybullet_data's Panda, collision meshes as visuals), the same table, camera
and toys, and every ``env.step`` does the same work: numpy IK for the
commanded TCP pose, 24 physics steps of 1/240 s (10 Hz control), and a
96 x 96 RGB frame plus the target's segmentation mask.

Why the comparison is fair
--------------------------
- One process, one core: the script pins itself to one CPU
  (``sched_setaffinity``) and sets ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before
  numpy is imported; both engines run in it.
- Same inputs: the same seeded uniform random actions in ``[-1, 1]^5`` and
  the same reset seeds (hence the same toys and poses) for both engines;
  episodes are cut every 50 steps like the registered ``TimeLimit``.
- Interleaved: the engines are timed in alternating rounds (pybullet, MuJoCo,
  pybullet, ...), so changes in machine load hit both alike; the figure of an
  engine is its total steps over its total time. CPU time (``process_time``)
  is reported next to wall time.
- ``steps_per_s`` counts ``env.step`` only; ``with_resets_steps_per_s``
  also counts the resets (object build, 1 s of settling physics; MuJoCo
  compiles a model per new object).

Breakdown: per engine, the median wall ms of the 24 physics steps and of the
render (RGB + mask), timed interleaved on the live env after the rounds.

Target (issue 10): >= 100 env steps/s per core in each engine
(KukaDiverseObjectEnv: 4.4). Usage::

    OMP_NUM_THREADS=1 python benchmarks/toygrasp_speed.py [--steps 300] [--rounds 3] [--json]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _machine import machine_info, pin_one_core

ENGINES = ("pybullet", "mujoco")
TARGET = 100.0
KUKA_DIVERSE = 4.4


def run_round(env, actions: np.ndarray, seeds: list[int], episode: int) -> dict[str, float]:
    """Step ``env`` through ``actions`` (resetting every ``episode`` steps); times with and without resets."""
    step_wall = step_cpu = reset_wall = 0.0
    k = 0
    for i, a in enumerate(actions):
        if i % episode == 0:
            t = time.perf_counter()
            env.reset(seed=seeds[k % len(seeds)])
            reset_wall += time.perf_counter() - t
            k += 1
        t, c = time.perf_counter(), time.process_time()
        env.step(a)
        step_wall += time.perf_counter() - t
        step_cpu += time.process_time() - c
    return {"steps": len(actions), "step_wall": step_wall, "step_cpu": step_cpu, "reset_wall": reset_wall,
            "resets": k}


def breakdown(env, reps: int = 60) -> dict[str, float]:
    """Median wall ms of the physics (24 substeps) and of the render (RGB + mask), interleaved as in a step."""
    from simlab.envs.toygrasp import scene

    sim = env.sim
    phys, rend = [], []
    for _ in range(reps):
        t = time.perf_counter()
        sim.step(scene.SUBSTEPS)
        t1 = time.perf_counter()
        sim.render()
        phys.append(t1 - t)
        rend.append(time.perf_counter() - t1)
    return {"physics_ms": round(float(np.median(phys)) * 1e3, 3), "render_ms": round(float(np.median(rend)) * 1e3, 3)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="Timed env steps per engine per round.")
    ap.add_argument("--rounds", type=int, default=3, help="Alternating rounds per engine.")
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the first allowed).")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = ap.parse_args(argv)
    pinned = pin_one_core(args.cpu)

    from simlab.envs.toygrasp.env import ToyGraspEnv

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (args.steps, 5)).astype(np.float32)
    seeds = list(range(100))
    envs = {e: ToyGraspEnv(e, resolution=args.resolution) for e in ENGINES}
    for e, env in envs.items():  # warm-up: first model compile, caches, first frames (not timed)
        env.reset(seed=0)
        for a in actions[:10]:
            env.step(a)
    totals = {e: {"steps": 0, "step_wall": 0.0, "step_cpu": 0.0, "reset_wall": 0.0, "resets": 0} for e in ENGINES}
    for _ in range(args.rounds):
        for e in ENGINES:
            r = run_round(envs[e], actions, seeds, 50)
            for k, v in r.items():
                totals[e][k] += v
    out: dict = {"steps_per_engine": args.steps * args.rounds, "rounds": args.rounds,
                 "resolution": args.resolution, "engines": {}}
    for e in ENGINES:
        t = totals[e]
        out["engines"][e] = {
            "steps_per_s": round(t["steps"] / t["step_wall"], 1),
            "steps_per_cpu_s": round(t["steps"] / t["step_cpu"], 1),
            "with_resets_steps_per_s": round(t["steps"] / (t["step_wall"] + t["reset_wall"]), 1),
            "reset_ms": round(1e3 * t["reset_wall"] / max(1, t["resets"]), 1),
            **breakdown(envs[e]),
            "pass": t["steps"] / t["step_wall"] >= TARGET,
        }
        envs[e].close()
    pb, mj = out["engines"]["pybullet"], out["engines"]["mujoco"]
    out["ratio_mujoco_over_pybullet"] = round(mj["steps_per_s"] / pb["steps_per_s"], 2)
    out["target_steps_per_s"] = TARGET
    out["kuka_diverse_object_env_steps_per_s"] = KUKA_DIVERSE
    import mujoco
    import pybullet

    out["machine"] = machine_info(pinned, mujoco=mujoco.__version__, pybullet=pybullet.getAPIVersion(),
                                  mujoco_gl=os.environ.get("MUJOCO_GL"))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"toy grasping, {args.resolution}x{args.resolution} RGB + mask, 10 Hz control (24 x 1/240 s), "
              f"one core (cpu {pinned}), load {out['machine']['loadavg_1_5_15']}")
        for e in ENGINES:
            r = out["engines"][e]
            print(f"  {e:<9} {r['steps_per_s']:>7.1f} steps/s ({r['steps_per_cpu_s']:.1f} per CPU s), "
                  f"with resets {r['with_resets_steps_per_s']:.1f}; reset {r['reset_ms']:.1f} ms, "
                  f"physics {r['physics_ms']:.2f} ms + render {r['render_ms']:.2f} ms per step; "
                  f"{'PASS' if r['pass'] else 'FAIL'} (>= {TARGET:.0f})")
        print(f"  ratio MuJoCo / pybullet: {out['ratio_mujoco_over_pybullet']:.2f}x "
              f"(KukaDiverseObjectEnv: {KUKA_DIVERSE} steps/s)")
    return out


if __name__ == "__main__":
    main()
