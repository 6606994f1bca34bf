"""Steps per second of the batched dream (DreamVecEnv) against the real Dodge env, per core.

What is compared
----------------
*dream*: :class:`simlab.world_models.dropout.DreamVecEnv` of a default-size
dropout world model (ConvVAE z=32, MDN-RNN hidden 256, 5 mixtures, 15
actions) with random weights, ``mask_mode="per_episode"`` (a new dropout mask
at every reset, Dropout's Dream Land) and temperature 1, at batch sizes 64,
256 and 1024. Each ``step(actions)`` validates the actions, runs the masked
LSTM transition and the MDN/reward/done heads for every slot, samples the next
z, resets finished slots in the same call (new start latent, new mask) and
returns a fresh ``(N, 288)`` float32 observation array plus rewards, flags and
the info dict. Speed does not depend on the weights' values, with one
exception handled here: the done head decides how often slots reset, so its
bias is calibrated so that about 1 step in ``--episode-len`` (default 200, a
random policy's Dodge episode length) terminates.
The matmuls run in float32 (the default, exact) and, as a second row, in
bfloat16 (``precision="bfloat16"``: ~2x faster matmuls on CPUs with AVX512-BF16
or AMX; state, sampling and everything else stay float32).

*real*: the simulator the dream replaces, ``gymnasium.make("simlab/Dodge-v0")``
as one single env (with gymnasium's standard wrappers, reset on episode end),
which is what a World Models controller would otherwise be evaluated in; and,
for reference, simlab's batched ``ProcgenVecEnv("dodge", 64)`` (numpy, 64 envs
stepped together, rendering 64x64x3 observations).

Fairness: both sides draw uniformly random actions up front from one seeded
generator (not timed) and run untimed warm-up steps. Each dream row is then
timed ``--repeats`` times (default 3) interleaved with as many runs of the real
single env (real, dream, real, dream, ...), so that changes in machine load hit
both sides of a ratio alike; each side counts its fastest run (all runs are in
the JSON). ``real.single`` in the JSON is the fastest of all its runs.
This process pins itself to one CPU (``sched_setaffinity``), sets
``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before numpy is imported and
``torch.set_num_threads(1)``, so every figure is steps per second on one core.
CPU-time throughputs (``process_time``) are reported next to wall clock.

Target: the dream at least 10x the real single env's steps/s on CPU (PASS/FAIL per row).

``--device cuda`` times the dream on the GPU (the host process still pinned to
one core; prints "cuda not available" and skips the dream rows otherwise).

Usage::

    python benchmarks/dream_speed.py
    python benchmarks/dream_speed.py --batches 64,256,1024 --json
    python benchmarks/dream_speed.py --device cuda --batches 1024,4096,16384
"""

from __future__ import annotations

import os

# Must happen before numpy/torch are imported: one thread per process for a per-core figure.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import math
import sys
import time

import numpy as np
from _machine import loadavg, pin_one_core  # sibling module
from _machine import machine_info as _machine_info

TARGET_RATIO = 10.0
"""The batched dream must step at least 10x as many env steps/s as the real single env."""
NUM_ACTIONS = 15


# --------------------------------------------------------------------------- machine

def machine_info(pinned: int | None) -> dict:
    import torch

    return _machine_info(pinned, torch=torch.__version__, torch_threads=torch.get_num_threads(),
                         cuda_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


# --------------------------------------------------------------------------- real envs

def summarize(runs: list[tuple[float, float, int]], env_steps: int) -> dict:
    """Figures of the fastest of ``runs`` ``(wall_s, cpu_s, episodes)`` (all runs listed too).

    The machine may be shared: the fastest of a few equal runs is the least disturbed one.
    Every side of the comparison is timed the same way.
    """
    wall, cpu, episodes = min(runs, key=lambda r: r[0])
    return {"env_steps": env_steps, "wall_s": wall, "cpu_s": cpu, "steps_per_s": env_steps / wall,
            "steps_per_cpu_s": env_steps / cpu, "episodes_finished": episodes, "repeats": len(runs),
            "all_steps_per_s": [round(env_steps / r[0], 1) for r in runs]}


class RealSingle:
    """``gymnasium.make("simlab/Dodge-v0")``, random actions, reset at episode end."""

    def __init__(self, steps: int, warmup: int, seed: int) -> None:
        import gymnasium

        import simlab  # noqa: F401  (registers the envs)

        rng = np.random.default_rng(seed)
        self.steps = steps
        self.actions = [int(a) for a in rng.integers(0, NUM_ACTIONS, steps)]
        self.env = gymnasium.make("simlab/Dodge-v0")
        self.env.reset(seed=seed)
        for a in rng.integers(0, NUM_ACTIONS, warmup):
            _, _, term, trunc, _ = self.env.step(int(a))
            if term or trunc:
                self.env.reset()

    def segment(self) -> tuple[float, float, int]:
        env, episodes = self.env, 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for a in self.actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
                episodes += 1
        return time.perf_counter() - wall0, time.process_time() - cpu0, episodes


class RealVec:
    """simlab's batched ``ProcgenVecEnv("dodge", num_envs)`` (numpy, same-step autoreset)."""

    def __init__(self, num_envs: int, iterations: int, warmup: int, seed: int) -> None:
        from simlab.envs.procgen.vec import ProcgenVecEnv

        rng = np.random.default_rng(seed)
        self.num_envs, self.steps = num_envs, num_envs * iterations
        self.actions = rng.integers(0, NUM_ACTIONS, (iterations, num_envs))
        self.env = ProcgenVecEnv("dodge", num_envs=num_envs)
        self.env.reset(seed=seed)
        for a in rng.integers(0, NUM_ACTIONS, (warmup, num_envs)):
            self.env.step(a)

    def segment(self) -> tuple[float, float, int]:
        episodes = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for a in self.actions:
            _, _, term, trunc, _ = self.env.step(a)
            episodes += int(np.count_nonzero(term | trunc))
        return time.perf_counter() - wall0, time.process_time() - cpu0, episodes


def build_model(z_dim: int, hidden: int, mixtures: int, seed: int):
    """A default-size dropout world model with random weights (start_z: 64 random latents)."""
    import torch

    from simlab.world_models.dropout import MDNRNN, ConvVAE, DropoutWorldModel, MDNRNNConfig

    torch.manual_seed(seed)
    vae = ConvVAE(z_dim=z_dim)
    rnn = MDNRNN(MDNRNNConfig(z_dim=z_dim, n_actions=NUM_ACTIONS, hidden=hidden, mixtures=mixtures,
                              dropout=0.05))
    return DropoutWorldModel(vae, rnn, torch.randn(64, z_dim), env_id="simlab/Dodge-v0").eval()


def calibrate_done_bias(model, episode_len: float, mask_mode: str, seed: int) -> float:
    """Set the done head's bias so that about 1 step in ``episode_len`` terminates; returns it.

    The dream samples termination (``done_mode="sample"``: Bernoulli(sigmoid(logit))), so the
    bias is the one whose MEAN termination probability over sampled dream states is
    ``1 / episode_len`` (bisection; by hand because it is a one-line monotone root find)."""
    import torch

    from simlab.world_models.dropout import DreamVecEnv

    rnn = model.rnn
    with torch.no_grad():
        rnn.done_fc.bias.fill_(-1e4)  # no terminations while sampling the logits
    env = DreamVecEnv(model, 256, mask_mode=mask_mode, max_episode_steps=10**9, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    logits = []
    with torch.no_grad():
        for _ in range(60):
            obs = env.step(rng.integers(0, NUM_ACTIONS, 256))[0]
            h = torch.from_numpy(obs[:, model.z_dim:])
            logits.append((h @ rnn.done_fc.weight[0]).numpy())
    lg = np.concatenate(logits).astype(np.float64)
    lo, hi = -60.0, 60.0
    for _ in range(100):
        mid = (lo + hi) / 2
        p = float(np.mean(1.0 / (1.0 + np.exp(-(lg + mid)))))
        lo, hi = (mid, hi) if p < 1.0 / episode_len else (lo, mid)
    bias = (lo + hi) / 2
    with torch.no_grad():
        rnn.done_fc.bias.fill_(bias)
    return bias


class DreamRow:
    """One dream configuration: a DreamVecEnv stepped with pre-drawn random actions."""

    def __init__(self, model, num_envs: int, steps: int, warmup: int, seed: int, mask_mode: str,
                 precision: str, device: str, max_episode_steps: int) -> None:
        from simlab.world_models.dropout import DreamVecEnv

        self.device = device
        self.num_envs = num_envs
        self.iterations = max(20, math.ceil(steps / num_envs))
        self.steps = num_envs * self.iterations
        rng = np.random.default_rng(seed)
        self.actions = rng.integers(0, NUM_ACTIONS, (self.iterations, num_envs))
        self.env = DreamVecEnv(model, num_envs, mask_mode=mask_mode, device=device, seed=seed,
                               max_episode_steps=max_episode_steps, precision=precision)
        self.env.reset()
        for a in rng.integers(0, NUM_ACTIONS, (warmup, num_envs)):
            self.env.step(a)
        self.ep_count, self.ep_steps = 0, 0

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def segment(self) -> tuple[float, float, int]:
        self._sync()
        episodes = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for a in self.actions:
            info = self.env.step(a)[4]
            if "_episode" in info:
                episodes += int(info["_episode"].sum())
                self.ep_steps += int(info["episode_length"].sum())
        self._sync()
        self.ep_count += episodes
        return time.perf_counter() - wall0, time.process_time() - cpu0, episodes


# --------------------------------------------------------------------------- main

def _ints(text: str, name: str, ap: argparse.ArgumentParser) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ap.error(f"{name} must be comma-separated integers")
    if not vals or min(vals) < 1:
        ap.error(f"{name} needs at least one value >= 1")
    return vals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="64,256,1024", help="dream batch sizes (default 64,256,1024)")
    ap.add_argument("--precisions", default="float32,bfloat16",
                    help="dream matmul precisions to time (default float32,bfloat16)")
    ap.add_argument("--mask-mode", default="per_episode",
                    choices=["none", "per_episode", "per_step", "mc_mean"])
    ap.add_argument("--dream-steps", type=int, default=100_000,
                    help="timed env steps per dream row (iterations = steps / batch, >= 20)")
    ap.add_argument("--real-steps", type=int, default=5000, help="timed steps of the real single env")
    ap.add_argument("--vec-envs", type=int, default=64, help="envs of the real batched reference")
    ap.add_argument("--vec-iterations", type=int, default=300, help="timed iterations of the batched real env")
    ap.add_argument("--warmup", type=int, default=10, help="untimed warm-up iterations per row")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per row, the fastest counts, for every side alike (default 3)")
    ap.add_argument("--z-dim", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--mixtures", type=int, default=5)
    ap.add_argument("--episode-len", type=float, default=200.0,
                    help="dream steps per terminated episode the done head is calibrated to (default 200)")
    ap.add_argument("--max-episode-steps", type=int, default=1000)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    ap.add_argument("--no-real", action="store_true", help="skip the real envs (no ratios)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)

    batches = _ints(args.batches, "--batches", ap)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or set(precisions) - {"float32", "bfloat16"}:
        ap.error("--precisions: comma-separated among float32, bfloat16")
    if min(args.dream_steps, args.real_steps, args.vec_iterations, args.repeats) < 1 or args.warmup < 0:
        ap.error("--dream-steps, --real-steps, --vec-iterations, --repeats must be >= 1, --warmup >= 0")
    if args.episode_len <= 1:
        ap.error("--episode-len must be > 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    pinned = pin_one_core(args.cpu)
    import torch

    torch.set_num_threads(1)
    info = machine_info(pinned)
    cuda_ok = torch.cuda.is_available()
    if args.device == "cuda" and not cuda_ok:
        log("cuda not available")

    real_single = None if args.no_real else RealSingle(args.real_steps, args.warmup * 20, args.seed)
    real: dict = {"single": None, "vec": None}
    if not args.no_real:
        vec = RealVec(args.vec_envs, args.vec_iterations, args.warmup, args.seed)
        real["vec"] = {"env": f"ProcgenVecEnv('dodge', {args.vec_envs})", "num_envs": args.vec_envs,
                       **summarize([vec.segment() for _ in range(args.repeats)], vec.steps)}

    model = build_model(args.z_dim, args.hidden, args.mixtures, args.seed)
    h4, n_in = 4 * args.hidden, args.z_dim + NUM_ACTIONS + args.hidden
    flops = 2 * (h4 * n_in + args.hidden * (3 * args.mixtures * args.z_dim + 2))  # LSTM + MDN/reward/done heads
    bias = calibrate_done_bias(model, args.episode_len, args.mask_mode, args.seed)
    rows: list[dict] = []
    single_runs: list[tuple[float, float, int]] = []
    skipped = None
    if args.device == "cuda" and not cuda_ok:
        skipped = "cuda not available"
    else:
        for precision in precisions:
            for b in batches:
                dream = DreamRow(model, b, args.dream_steps, args.warmup, args.seed, args.mask_mode, precision,
                                 args.device, args.max_episode_steps)
                d_runs, s_runs = [], []
                for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
                    if real_single is not None:
                        s_runs.append(real_single.segment())
                    d_runs.append(dream.segment())
                single_runs += s_runs
                row = {"num_envs": b, "mask_mode": args.mask_mode, "precision": precision, "device": args.device,
                       "iterations": dream.iterations, **summarize(d_runs, dream.steps),
                       "mean_episode_length": dream.ep_steps / dream.ep_count if dream.ep_count else None}
                single = summarize(s_runs, real_single.steps) if real_single is not None else None
                row["real_single_steps_per_s"] = single["steps_per_s"] if single else None
                row["ratio_vs_real_single"] = row["steps_per_s"] / single["steps_per_s"] if single else None
                row["ratio_cpu_time_vs_real_single"] = (row["steps_per_cpu_s"] / single["steps_per_cpu_s"]
                                                        if single else None)
                row["ratio_vs_real_vec"] = row["steps_per_s"] / real["vec"]["steps_per_s"] if real["vec"] else None
                row["pass"] = (bool(row["ratio_vs_real_single"] >= TARGET_RATIO)
                               if row["ratio_vs_real_single"] is not None else None)
                rows.append(row)
                log(f"[dream_speed] {precision} batch {b}: {row['steps_per_s']:.0f} steps/s")
    if real_single is not None:
        if not single_runs:
            single_runs = [real_single.segment() for _ in range(args.repeats)]
        real["single"] = {"env": "gymnasium.make('simlab/Dodge-v0')", "num_envs": 1,
                          **summarize(single_runs, real_single.steps)}

    info["loadavg_end_1_5_15"] = loadavg()
    result = {
        "model": {"z_dim": args.z_dim, "hidden": args.hidden, "mixtures": args.mixtures,
                  "n_actions": NUM_ACTIONS, "weights": "random", "done_bias": bias,
                  "matmul_flops_per_env_step": flops,
                  "calibrated_episode_len": args.episode_len, "temperature": 1.0},
        "device": args.device, "mask_mode": args.mask_mode, "repeats": args.repeats, "real": real, "dream": rows,
        "skipped": skipped, "target_ratio": TARGET_RATIO, "machine": info,
        "command": "python benchmarks/dream_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"dream vs real Dodge, one core (cpu {pinned}), random actions; dream: z={args.z_dim}, "
          f"hidden={args.hidden}, K={args.mixtures}, mask {args.mask_mode}, tau 1, device {args.device} "
          f"({flops / 1e6:.2f} MFLOP of matmuls per dream env step)")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, load "
          f"{info['loadavg_1_5_15']} -> {info['loadavg_end_1_5_15']}, torch {info['torch']}")
    for key in ("single", "vec"):
        r = real[key]
        if r is not None:
            print(f"real  {r['env']:36s} {r['steps_per_s']:10.0f} steps/s ({r['wall_s']:.2f} s, "
                  f"{r['steps_per_cpu_s']:.0f} steps/CPU-s, {r['episodes_finished']} episodes)")
    if skipped:
        print(f"dream: skipped ({skipped})")
    for row in rows:
        ratio = row["ratio_vs_real_single"]
        verdict = "" if ratio is None else (
            f"\n{'':6s}{ratio:5.1f}x real single ({row['real_single_steps_per_s']:.0f} steps/s timed alongside; "
            f"CPU-time ratio {row['ratio_cpu_time_vs_real_single']:.1f}x; "
            f"target >= {TARGET_RATIO:g}x: {'PASS' if row['pass'] else 'FAIL'}), "
            f"{row['ratio_vs_real_vec']:.2f}x real vec{args.vec_envs}")
        mel = row["mean_episode_length"]
        print(f"dream {row['precision']:8s} batch {row['num_envs']:5d}          {row['steps_per_s']:10.0f} steps/s "
              f"({row['wall_s']:.2f} s, {row['steps_per_cpu_s']:.0f} steps/CPU-s, {row['episodes_finished']} "
              f"episodes{'' if mel is None else f', mean length {mel:.0f}'}){verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
