"""Dream steps per second per core, and the fraction of the core's float32 matmul peak they reach.

What is measured
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

*FLOPs of one dream step*: counted from the model's shapes (2 FLOP per
multiply-add of the two matmuls ``DreamVecEnv`` runs per env step: the LSTM's
``[z, onehot(a), h] @ [W_ih, W_hh]^T`` and the fused MDN + reward + done head);
about 0.87 MFLOP at the default size. Elementwise work (gates, sampling) is not
counted, so the fraction below is that of useful matmul work.

*peak*: the core's float32 matmul throughput, measured here: a single-thread
``torch.mm`` of square float32 matrices (``--peak-sizes``, default
256,512,1024), best of all its runs. Its runs are interleaved with the dream
runs (peak, dream, peak, dream, ...), so both see the same machine load.
Each dream row reports ``steps/s x FLOPs per step / peak``; bfloat16 rows are
divided by the same float32 peak (so they can exceed it).

*real* (reference, no target): simlab's batched game ``ProcgenVecEnv("dodge_v1",
64)`` (``--vec-game``; numpy, 64 envs stepped together, rendering 64x64x3
observations; the pipeline's default env) and the single gymnasium env
``simlab/Dodge-v0`` (with gymnasium's standard wrappers, reset on episode end).

Every side draws uniformly random actions up front from one seeded generator
(not timed), runs untimed warm-up steps and is timed ``--repeats`` times
(default 3); the fastest run counts (all runs are in the JSON), since the
machine may be shared. This process pins itself to one CPU
(``sched_setaffinity``), sets ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before numpy
is imported and ``torch.set_num_threads(1)``, so every figure is per core.
CPU-time throughputs (``process_time``) are reported next to wall clock.

``--device cuda`` times the dream on the GPU (the host process still pinned to
one core; the peak is then a GPU float32 matmul, default sizes 4096,8192);
without a GPU it prints "cuda not available" and skips the dream rows.

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
    """simlab's batched ``ProcgenVecEnv(game, num_envs)`` (numpy, same-step autoreset)."""

    def __init__(self, game: str, num_envs: int, iterations: int, warmup: int, seed: int) -> None:
        from simlab.envs.procgen.vec import ProcgenVecEnv

        rng = np.random.default_rng(seed)
        self.num_envs, self.steps = num_envs, num_envs * iterations
        self.actions = rng.integers(0, NUM_ACTIONS, (iterations, num_envs))
        self.env = ProcgenVecEnv(game, num_envs=num_envs)
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


def dream_step_flops(rnn) -> int:
    """Matmul FLOPs of one dream env step, from the model's shapes (2 per multiply-add).

    ``DreamVecEnv`` runs two matmuls per env step (``FusedStep``): the LSTM's
    ``[z, onehot(a), h] @ [W_ih, W_hh]^T`` and one head matmul whose output rows are the MDN's
    plus one reward row and one done row (zero rows stand in for an absent head)."""
    w_ih, w_hh = rnn.cell.weight_ih, rnn.cell.weight_hh          # (4H, z + A), (4H, H)
    lstm = w_ih.shape[0] * (w_ih.shape[1] + w_hh.shape[1])
    heads = (rnn.mdn.weight.shape[0] + 2) * rnn.mdn.weight.shape[1]  # (3 K z + 2) x H
    return 2 * (lstm + heads)


def matmul_peak(device: str, sizes: list[int], min_time: float = 0.05) -> dict[int, dict[str, float]]:
    """Float32 ``torch.mm`` throughput of ``n x n`` matrices for each ``n`` (this thread only).

    Per size: one untimed warm-up product, then as many products as fill ``min_time`` seconds.
    Returns ``{n: {"gflops": wall-clock GFLOP/s, "gflops_cpu": per CPU-second}}``."""
    import torch

    out: dict[int, dict[str, float]] = {}
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(device)
        b = torch.randn(n, n, generator=gen).to(device)
        c = torch.empty(n, n, device=device)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        torch.mm(a, b, out=c)
        sync()
        reps, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
        while True:
            torch.mm(a, b, out=c)
            reps += 1
            if reps % 4 == 0 or device != "cuda":
                sync()
                if time.perf_counter() - wall0 >= min_time:
                    break
        sync()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        flop = 2.0 * n ** 3 * reps
        out[n] = {"gflops": flop / wall / 1e9,  # host CPU time means nothing for a GPU matmul
                  "gflops_cpu": flop / max(cpu, 1e-9) / 1e9 if device == "cpu" else None}
    return out


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
    ap.add_argument("--peak-sizes", default=None,
                    help="square float32 matmul sizes timed for the peak (default 256,512,1024; cuda 4096,8192)")
    ap.add_argument("--real-steps", type=int, default=5000, help="timed steps of the real single env")
    ap.add_argument("--vec-game", default="dodge_v1", help="game of the real batched reference (default dodge_v1)")
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
    ap.add_argument("--no-real", action="store_true", help="skip the real envs")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)

    batches = _ints(args.batches, "--batches", ap)
    peak_sizes = _ints(args.peak_sizes or ("4096,8192" if args.device == "cuda" else "256,512,1024"),
                       "--peak-sizes", ap)
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
    skipped = None
    if args.device == "cuda" and not torch.cuda.is_available():
        skipped = "cuda not available"
        log(skipped)

    real: dict = {"vec": None, "single": None}
    if not args.no_real:
        vec = RealVec(args.vec_game, args.vec_envs, args.vec_iterations, args.warmup, args.seed)
        real["vec"] = {"env": f"ProcgenVecEnv({args.vec_game!r}, {args.vec_envs})", "num_envs": args.vec_envs,
                       **summarize([vec.segment() for _ in range(args.repeats)], vec.steps)}
        single = RealSingle(args.real_steps, args.warmup * 20, args.seed)
        real["single"] = {"env": "gymnasium.make('simlab/Dodge-v0')", "num_envs": 1,
                          **summarize([single.segment() for _ in range(args.repeats)], single.steps)}

    model = build_model(args.z_dim, args.hidden, args.mixtures, args.seed)
    flops = dream_step_flops(model.rnn)
    bias = calibrate_done_bias(model, args.episode_len, args.mask_mode, args.seed)
    rows: list[dict] = []
    peak_runs: list[dict[int, dict[str, float]]] = []
    if skipped is None:
        for precision in precisions:
            for b in batches:
                dream = DreamRow(model, b, args.dream_steps, args.warmup, args.seed, args.mask_mode, precision,
                                 args.device, args.max_episode_steps)
                d_runs = []
                for _ in range(args.repeats):  # interleaved, so load changes hit the peak and the dream alike
                    peak_runs.append(matmul_peak(args.device, peak_sizes))
                    d_runs.append(dream.segment())
                row = {"num_envs": b, "mask_mode": args.mask_mode, "precision": precision, "device": args.device,
                       "iterations": dream.iterations, **summarize(d_runs, dream.steps),
                       "mean_episode_length": dream.ep_steps / dream.ep_count if dream.ep_count else None}
                row["gflops"] = row["steps_per_s"] * flops / 1e9
                row["gflops_cpu"] = row["steps_per_cpu_s"] * flops / 1e9
                rows.append(row)
                log(f"[dream_speed] {precision} batch {b}: {row['steps_per_s']:.0f} steps/s")

    peak = None
    if peak_runs:
        best = {n: max(r[n]["gflops"] for r in peak_runs) for n in peak_sizes}
        size = max(best, key=best.get)
        cpu_vals = [r[n]["gflops_cpu"] for r in peak_runs for n in peak_sizes if r[n]["gflops_cpu"] is not None]
        peak = {"dtype": "float32", "device": args.device, "sizes": peak_sizes, "gflops": best[size],
                "best_size": size, "gflops_cpu": max(cpu_vals) if cpu_vals else None,
                "best_gflops_by_size": {str(n): round(g, 2) for n, g in best.items()}, "runs": len(peak_runs)}
        for row in rows:
            row["fraction_of_peak"] = row["gflops"] / peak["gflops"]
            row["fraction_of_peak_cpu"] = (row["gflops_cpu"] / peak["gflops_cpu"]
                                           if peak["gflops_cpu"] and args.device == "cpu" else None)

    info["loadavg_end_1_5_15"] = loadavg()
    result = {
        "model": {"z_dim": args.z_dim, "hidden": args.hidden, "mixtures": args.mixtures,
                  "n_actions": NUM_ACTIONS, "weights": "random", "done_bias": bias,
                  "flops_per_dream_step": flops,
                  "calibrated_episode_len": args.episode_len, "temperature": 1.0},
        "device": args.device, "mask_mode": args.mask_mode, "repeats": args.repeats,
        "matmul_peak": peak, "dream": rows, "real": real, "skipped": skipped, "machine": info,
        "command": "python benchmarks/dream_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"dream steps/s per core (cpu {pinned}), random actions; dream: z={args.z_dim}, hidden={args.hidden}, "
          f"K={args.mixtures}, {NUM_ACTIONS} actions, mask {args.mask_mode}, tau 1, device {args.device}")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, load "
          f"{info['loadavg_1_5_15']} -> {info['loadavg_end_1_5_15']}, torch {info['torch']}")
    print(f"one dream step: {flops / 1e6:.3f} MFLOP of matmul (from the model's shapes)")
    if peak is not None:
        by_size = ", ".join(f"{n}: {g:.1f}" for n, g in peak["best_gflops_by_size"].items())
        cpu_peak = "" if peak["gflops_cpu"] is None else f"; {peak['gflops_cpu']:.1f} GFLOP per CPU-s"
        print(f"float32 matmul peak on {args.device}: {peak['gflops']:.1f} GFLOP/s (n={peak['best_size']}, best of "
              f"{peak['runs']} runs; by size {by_size}{cpu_peak})")
    if skipped:
        print(f"dream: skipped ({skipped})")
    else:
        print()
        print(f"{'what':44s} {'steps/s':>10s} {'steps/CPU-s':>12s} {'GFLOP/s':>8s} {'of peak':>8s} "
              f"{'(CPU-s)':>8s} {'ep len':>6s}")
        for row in rows:
            what = f"dream {row['precision']}, batch {row['num_envs']}"
            frac_cpu = row.get("fraction_of_peak_cpu")
            mel = row["mean_episode_length"]
            print(f"{what:44s} {row['steps_per_s']:10.0f} {row['steps_per_cpu_s']:12.0f} {row['gflops']:8.1f} "
                  f"{row['fraction_of_peak']:8.0%} {'-' if frac_cpu is None else f'{frac_cpu:.0%}':>8s} "
                  f"{'-' if mel is None else f'{mel:.0f}':>6s}")
    for key in ("vec", "single"):
        r = real[key]
        if r is not None:
            print(f"{'real ' + r['env']:44s} {r['steps_per_s']:10.0f} {r['steps_per_cpu_s']:12.0f} "
                  f"{'':8s} {'':8s} {'':8s} {'':6s}  (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
