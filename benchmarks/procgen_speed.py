"""Steps per second of simlab's batched procgen-like games against OpenAI Procgen, per core.

What is compared
----------------
*simlab*: ``ProcgenVecEnv(game, num_envs=64, num_levels=0, start_level=0,
distribution_mode="easy")`` (``simlab.envs.procgen.vec``), run in this process.
All 64 envs live in numpy arrays and step together; each ``step(actions)``
advances every env, auto-resets finished ones in the same call and renders a
``(64, 64, 64, 3)`` uint8 observation batch, which it returns as a fresh copy
along with rewards, terminated/truncated flags and an info dict.

*procgen* (the peer): OpenAI Procgen's C++ games, through the batched gym3
interface of the ``procgen2`` wheel (``procgen.ProcgenGym3Env(num=64,
env_name=..., num_levels=0, start_level=0, distribution_mode="easy")``), one
``env.act(actions)`` plus one ``env.observe()`` per step. ``observe`` returns
fresh copies of the rewards, the ``{"rgb": (64, 64, 64, 3) uint8}`` observation
batch and the episode-start flags; Procgen resets finished episodes inside
``act``. This is the leanest batched path Procgen offers: ``procgen.ProcgenEnv``
(the baselines-style vec env) wraps the same calls and adds a per-env Python
info list on every step.

Procgen needs the old ``gym`` API and ``numpy<2``, so it cannot be imported
next to simlab (numpy 2, gymnasium). The script therefore creates, once, its
own virtual environment (``runs/bench-venvs/procgen2``, git-ignored, with
``python -m venv`` on the interpreter running this script and
``pip install procgen2 "numpy<2"``) and times procgen in a subprocess running
in that environment. If the install fails, simlab's figures are still reported
and the peer is marked unavailable.

Games: simlab's ``maze``, ``coinrun`` and ``bigfish`` against Procgen's games of
the same names; simlab's ``dodge`` (a TakeCover-like fireball-dodging game)
against Procgen's ``dodgeball``. That pairing is the closest match, not the same
game, so the output marks it. A simlab game whose module does not exist yet is
skipped with a note.

Why the comparison is fair
--------------------------
- Same work per step: both sides step all 64 envs and render a 64x64x3 uint8
  observation for every env on every step (backgrounds on, easy mode,
  unlimited levels), auto-reset finished episodes, and hand the caller a copy of
  the observation batch. Throughput counts env steps: 64 envs x iterations.
- Same inputs: uniformly random actions in ``[0, 15)``, drawn up front from the
  same seeded generator for both sides (action generation is not timed), the
  same number of warm-up iterations (not timed) and then the same number of
  timed iterations.
- Same hardware budget: this process pins itself to one CPU
  (``sched_setaffinity``) and sets ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before
  numpy is imported. The procgen subprocess inherits the pinning and sets it
  again, so all its threads share that one CPU. Procgen steps its envs on a
  pool of C++ threads (``num_threads``, default 4); ``num_threads=0`` steps
  them in the calling thread instead. Both settings are timed by default
  (``--peer-threads 0,4``) and procgen's figure is the faster of the two, so
  the ratio never depends on a threading setting that is bad for procgen.
- Games are timed one after the other, simlab then procgen for each game, so
  that changes in machine load hit both sides of a row alike. CPU-time
  throughputs (``process_time``, all threads of the process) are reported next
  to the wall-clock figures.

Target: at least 1x procgen's steps/s per core (PASS/FAIL); the aim is 3x.

Usage::

    python benchmarks/procgen_speed.py --games maze,coinrun
    python benchmarks/procgen_speed.py --games maze,coinrun,bigfish,dodge --json
    python benchmarks/procgen_speed.py --no-peer --steps 20 --games maze --json
"""

from __future__ import annotations

import os

# Must happen before numpy is imported: one thread per process for a per-core figure.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _machine import loadavg, machine_info, pin_one_core  # sibling module

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PEER_VENV = REPO / "runs" / "bench-venvs" / "procgen2"
PEER_REQUIREMENTS = ("procgen2", "numpy<2")
READY_MARKER = ".simlab-bench-ready"
"""Written into the peer venv once procgen installed and imported there."""

TARGET_RATIO = 1.0
"""simlab must step at least as many env steps/s per core as procgen."""
AIM_RATIO = 3.0
"""What simlab aims for."""

SIMLAB_GAMES = ("maze", "coinrun", "bigfish", "dodge")
PEER_GAME = {"maze": "maze", "coinrun": "coinrun", "bigfish": "bigfish", "dodge": "dodgeball"}
PEER_NOTE = {
    "dodge": "procgen has no dodge; its dodgeball is the closest match, not the same game",
}

# Runs inside the procgen venv (numpy<2, gym, gym3, procgen2). Reads one JSON
# config from argv[1], prints one JSON object on stdout.
PEER_SCRIPT = r'''
import json, os, sys, time
cfg = json.loads(sys.argv[1])
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
if cfg["cpu"] is not None and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {cfg["cpu"]})
import warnings
warnings.filterwarnings("ignore")
import platform
import numpy as np
import procgen
from procgen import ProcgenGym3Env
try:
    from importlib.metadata import version
    gym3_version = version("gym3")
except Exception:
    gym3_version = None

n, iters, warm = cfg["num_envs"], cfg["iterations"], cfg["warmup"]
rng = np.random.default_rng(cfg["seed"])
warm_actions = rng.integers(0, 15, (warm, n)).astype(np.int32)
actions = rng.integers(0, 15, (iters, n)).astype(np.int32)
runs = []
for threads in cfg["threads"]:
    env = ProcgenGym3Env(num=n, env_name=cfg["game"], num_levels=0, start_level=0,
                         distribution_mode="easy", num_threads=threads, rand_seed=cfg["seed"])
    rew, ob, first = env.observe()
    assert ob["rgb"].shape == (n, 64, 64, 3) and ob["rgb"].dtype == np.uint8, ob["rgb"].shape
    for a in warm_actions:
        env.act(a)
        env.observe()
    episodes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for a in actions:
        env.act(a)
        rew, ob, first = env.observe()
        episodes += int(first.sum())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    del env
    steps = n * iters
    runs.append({"num_threads": threads, "env_steps": steps, "wall_s": wall, "cpu_s": cpu,
                 "steps_per_s": steps / wall, "steps_per_cpu_s": steps / cpu,
                 "episodes_started": episodes})
best = max(runs, key=lambda r: r["steps_per_s"])
print(json.dumps({
    "game": cfg["game"], "api": "procgen.ProcgenGym3Env act()+observe()",
    "runs": runs, "best": best,
    "pinned_cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    "python": platform.python_version(), "numpy": np.__version__,
    "procgen": procgen.__version__.strip(), "gym3": gym3_version,
}))
'''


# --------------------------------------------------------------------------- machine

# --------------------------------------------------------------------------- peer venv

def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_peer_venv(venv: Path, log) -> tuple[Path | None, str]:
    """The python of a venv with procgen2 installed (created once); (None, why) on failure."""
    py = _venv_python(venv)
    if (venv / READY_MARKER).exists() and py.exists():
        return py, f"cached venv {venv}"
    log(f"[procgen_speed] setting up the procgen venv at {venv} (once; pip install "
        f"{' '.join(repr(r) for r in PEER_REQUIREMENTS)}) ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    install_log = venv.parent / (venv.name + "-install.log")
    try:
        with open(install_log, "w") as out:
            if not py.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], stdout=out,
                               stderr=subprocess.STDOUT, check=True, timeout=600)
            subprocess.run([str(py), "-m", "pip", "install", *PEER_REQUIREMENTS], stdout=out,
                           stderr=subprocess.STDOUT, check=True, timeout=1200)
            check_import = ("import warnings; warnings.filterwarnings('ignore'); "
                            "from procgen import ProcgenGym3Env")
            subprocess.run([str(py), "-c", check_import], stdout=out,
                           stderr=subprocess.STDOUT, check=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return None, (f"could not install procgen2 into {venv} ({exc}); see {install_log}. "
                      "Procgen is marked unavailable.")
    (venv / READY_MARKER).write_text("procgen2 installed\n")
    return py, f"created venv {venv} (install log: {install_log})"


def time_peer(py: Path, game: str, num_envs: int, iterations: int, warmup: int, seed: int,
              cpu: int | None, threads: list[int]) -> dict:
    cfg = {"game": game, "num_envs": num_envs, "iterations": iterations, "warmup": warmup,
           "seed": seed, "cpu": cpu, "threads": threads}
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(py), "-c", PEER_SCRIPT, json.dumps(cfg)], capture_output=True,
                          text=True, timeout=3600, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"procgen subprocess failed (rc {proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- simlab

def simlab_missing(game: str) -> str | None:
    """Why a simlab game cannot be run (module missing), or None."""
    from simlab.envs.procgen.vec import GAMES
    if game not in GAMES:
        return f"simlab has no game {game!r}"
    module = GAMES[game].split(":")[0]
    if importlib.util.find_spec(module) is None:
        return f"{module} does not exist yet"
    return None


def time_simlab(game: str, num_envs: int, iterations: int, warmup: int, seed: int) -> dict:
    from simlab.envs.procgen.vec import ProcgenVecEnv

    rng = np.random.default_rng(seed)
    warm_actions = rng.integers(0, 15, (warmup, num_envs))
    actions = rng.integers(0, 15, (iterations, num_envs))
    env = ProcgenVecEnv(game, num_envs=num_envs, num_levels=0, start_level=0,
                        distribution_mode="easy")
    obs, _ = env.reset(seed=seed)
    assert obs.shape == (num_envs, 64, 64, 3) and obs.dtype == np.uint8, obs.shape
    for a in warm_actions:
        env.step(a)
    episodes = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for a in actions:
        _obs, _rew, term, trunc, _info = env.step(a)
        episodes += int(np.count_nonzero(term | trunc))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    steps = num_envs * iterations
    return {"env_steps": steps, "wall_s": wall, "cpu_s": cpu, "steps_per_s": steps / wall,
            "steps_per_cpu_s": steps / cpu, "episodes_finished": episodes}


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", default="maze,coinrun",
                    help=f"comma-separated simlab games among {', '.join(SIMLAB_GAMES)} "
                         "(default: maze,coinrun)")
    ap.add_argument("--num-envs", type=int, default=64, help="envs stepped together (default 64)")
    ap.add_argument("--steps", type=int, default=2000,
                    help="timed iterations; each steps every env (default 2000)")
    ap.add_argument("--warmup", type=int, default=100,
                    help="untimed warm-up iterations (default 100, at most --steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    ap.add_argument("--no-peer", action="store_true", help="skip procgen (no venv, no subprocess)")
    ap.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV,
                    help=f"venv holding procgen2 (default: {DEFAULT_PEER_VENV.relative_to(REPO)})")
    ap.add_argument("--peer-threads", default="0,4",
                    help="procgen num_threads settings to time; the fastest counts (default 0,4)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)

    games = [g.strip() for g in args.games.split(",") if g.strip()]
    unknown = [g for g in games if g not in SIMLAB_GAMES]
    if not games or unknown:
        ap.error(f"unknown game(s) {', '.join(unknown) or '(none given)'}; "
                 f"choose among {', '.join(SIMLAB_GAMES)}")
    if args.num_envs < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--num-envs and --steps must be >= 1, --warmup >= 0")
    try:
        peer_threads = [int(t) for t in args.peer_threads.split(",") if t.strip()]
    except ValueError:
        ap.error("--peer-threads must be comma-separated integers")
    if not peer_threads or min(peer_threads) < 0:
        ap.error("--peer-threads needs at least one setting >= 0")
    warmup = min(args.warmup, args.steps)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    pinned = pin_one_core(args.cpu)
    info = machine_info(pinned)

    peer: dict = {"available": False, "api": "procgen.ProcgenGym3Env act()+observe() (gym3)",
                  "venv": None, "message": "skipped (--no-peer)"}
    peer_py = None
    if not args.no_peer:
        peer_py, msg = ensure_peer_venv(args.peer_venv.resolve(), log)
        peer.update(available=peer_py is not None, venv=str(args.peer_venv), message=msg)
        if peer_py is None:
            log(f"[procgen_speed] WARNING: {msg}")

    rows: dict[str, dict] = {}
    for game in games:
        row: dict = {"peer_game": PEER_GAME[game], "peer_note": PEER_NOTE.get(game)}
        rows[game] = row
        missing = simlab_missing(game)
        if missing:
            row["skipped"] = missing
            log(f"[procgen_speed] skipping {game}: {missing}")
            continue
        try:
            row["simlab"] = time_simlab(game, args.num_envs, args.steps, warmup, args.seed)
        except Exception as exc:  # noqa: BLE001 - a game in progress may fail
            row["skipped"] = f"simlab {game} failed: {type(exc).__name__}: {exc}"
            log(f"[procgen_speed] skipping {game}: {row['skipped']}")
            continue
        row["peer"] = None
        if peer_py is not None:
            try:
                out = time_peer(peer_py, PEER_GAME[game], args.num_envs, args.steps, warmup,
                                args.seed, pinned, peer_threads)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                row["peer_error"] = str(exc)
                log(f"[procgen_speed] procgen {PEER_GAME[game]} failed: {exc}")
            else:
                row["peer"] = out["best"] | {"all_threads": out["runs"]}
                for key in ("python", "numpy", "procgen", "gym3", "api", "pinned_cpus"):
                    peer[key] = out[key]
        sim, ref = row["simlab"], row["peer"]
        if ref is not None:
            row["ratio"] = sim["steps_per_s"] / ref["steps_per_s"]
            row["ratio_cpu_time"] = sim["steps_per_cpu_s"] / ref["steps_per_cpu_s"]
            row["pass"] = bool(row["ratio"] >= TARGET_RATIO)
            row["aim_met"] = bool(row["ratio"] >= AIM_RATIO)
        else:
            row["ratio"] = row["ratio_cpu_time"] = row["pass"] = row["aim_met"] = None

    info["loadavg_end_1_5_15"] = loadavg()
    result = {
        "num_envs": args.num_envs, "iterations": args.steps, "warmup": warmup,
        "env_steps_per_side": args.num_envs * args.steps, "seed": args.seed,
        "observation": "64x64x3 uint8 for every env on every step",
        "distribution_mode": "easy", "num_levels": 0, "start_level": 0,
        "games": rows, "peer": peer,
        "target_ratio": TARGET_RATIO, "aim_ratio": AIM_RATIO, "machine": info,
        "command": "python benchmarks/procgen_speed.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"procgen-like games: {args.num_envs} envs x {args.steps} iterations "
          f"({args.num_envs * args.steps} env steps per side, {warmup} warm-up iterations), "
          f"random actions, easy, 64x64x3 uint8 obs (one core: cpu {pinned})")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, load "
          f"{info['loadavg_1_5_15']} -> {info['loadavg_end_1_5_15']}, python {info['python']}, "
          f"numpy {info['numpy']}")
    if peer["available"]:
        print(f"procgen: {peer.get('procgen', '?')} (procgen2 wheel) via {peer['api']}, python "
              f"{peer.get('python', '?')}, numpy {peer.get('numpy', '?')}; {peer['message']}")
    else:
        print(f"procgen: unavailable ({peer['message']})")
    for game, row in rows.items():
        if "skipped" in row:
            print(f"{game:8s}: skipped ({row['skipped']})")
            continue
        sim, ref = row["simlab"], row["peer"]
        print(f"{game:8s}: simlab  {sim['steps_per_s']:10.0f} steps/s ({sim['wall_s']:.2f} s, "
              f"{sim['steps_per_cpu_s']:.0f} steps/CPU-s)")
        if ref is None:
            why = row.get("peer_error", "procgen unavailable")
            print(f"{'':8s}  procgen {PEER_GAME[game]}: n/a ({why})")
            continue
        threads = ", ".join(f"num_threads={r['num_threads']}: {r['steps_per_s']:.0f}"
                            for r in ref["all_threads"])
        print(f"{'':8s}  procgen {ref['steps_per_s']:10.0f} steps/s ({ref['wall_s']:.2f} s, "
              f"{ref['steps_per_cpu_s']:.0f} steps/CPU-s; {PEER_GAME[game]}; {threads})")
        if row["peer_note"]:
            print(f"{'':8s}  note: {row['peer_note']}")
        print(f"{'':8s}  ratio {row['ratio']:.2f}x (CPU-time ratio {row['ratio_cpu_time']:.2f}x), "
              f"target >= {TARGET_RATIO:g}x: {'PASS' if row['pass'] else 'FAIL'} "
              f"(aim {AIM_RATIO:g}x: {'met' if row['aim_met'] else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
