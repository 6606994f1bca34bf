"""Dream speed of both world models, in one process pinned to one core.

``--world-model dropout|diffusion|both`` (default both) picks the dreams timed; one run prints
one table per world model (``--json``: one JSON object holding both results).

What is measured: the dropout dream
-----------------------------------
*dream*: :class:`simlab.world_models.dropout.DreamVecEnv` of a default-size
dropout world model (ConvVAE z=32, MDN-RNN hidden 256, 5 mixtures, 15
actions) with random weights, ``mask_mode="per_episode"`` (a new dropout mask
at every reset, Dropout's Dream Land) and temperature 1, at batch sizes 64,
256 and 1024 (``--batches``). Each ``step(actions)`` validates the actions, runs the masked
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

What is measured: the diffusion dream
-------------------------------------
*dream*: :class:`simlab.world_models.diffusion_dream.dream.DiffusionDreamVecEnv` of a
world model of the ``cpu`` preset's size (``UNet2DModel`` widths 32/32/64, ``--channels``;
one ResNet block per level; 32 x 32 frames, ``--resolution``; 4 context frames; 64 random
start contexts; random weights, speed does not depend on them, except the head's done bias,
set so that p_done ~ 0.7%, about Dodge's death rate under a random policy) with
``--num-steps`` Euler steps (default 3, DIAMOND's), at batch sizes 1, 32 and 256
(``--diffusion-batches``). One ``step(actions)`` validates the actions, runs the denoiser
``num_steps`` times on the whole batch, the reward/termination head once, samples
terminations, resets finished slots and returns uint8 frames. One env step is one dreamed
frame, so frames/s = batch x steps / wall seconds (``--diffusion-steps`` steps per run,
default about 256 frames per run and at least 2 steps; one untimed warm-up step).
Each row also gives its ratio to DIAMOND's reference figure, ~1,570 dreamed frames/s on an
RTX 4090 at batch 32, 3 steps (64 x 64 frames, its larger UNet: not like for like).

*train*: one optimizer step of the diffusion trainer (EDM loss on the denoiser plus the
head's loss, backward, two AdamW updates) at ``--train-batch`` windows (default 16), on
the CPU only (``--no-train`` skips it).

What is measured: the real envs (reference, no target)
------------------------------------------------------
simlab's batched game ``ProcgenVecEnv("dodge_v1", 64)`` (``--vec-game``; numpy, 64 envs
stepped together, rendering 64x64x3 observations; the pipeline's default env) and the
single gymnasium env ``simlab/Dodge-v0`` (with gymnasium's standard wrappers, reset on
episode end); ``--no-real`` skips them.

How
---
Every side draws uniformly random actions up front from one seeded generator
(not timed), runs untimed warm-up steps and is timed ``--repeats`` times
(default 3); the fastest run counts (all runs are in the JSON), since the
machine may be shared. This process pins itself to one CPU
(``sched_setaffinity``), sets ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before numpy
is imported and ``torch.set_num_threads(1)``, so every figure is per core.
CPU-time throughputs (``process_time``) are reported next to wall clock.

``--device cuda`` times both dreams on the GPU (the host process still pinned to
one core; the dropout peak is then a GPU float32 matmul, default sizes 4096,8192;
the diffusion trainer is not timed); without a GPU it prints "cuda not available"
and skips the dream rows.

Usage::

    python benchmarks/dream_speed.py
    python benchmarks/dream_speed.py --world-model diffusion --resolution 64 --diffusion-batches 1,32 --json
    python benchmarks/dream_speed.py --device cuda --batches 1024,4096,16384 --diffusion-batches 1,32,256
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
DIAMOND = {"frames_per_s": 1570.0, "num_envs": 32, "num_steps": 3, "resolution": 64, "device": "RTX 4090",
           "source": "DIAMOND (Alonso et al. 2024), its larger UNet"}
"""DIAMOND's reported dream speed: the diffusion dream's reference figure."""


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


# --------------------------------------------------------------------------- dropout dream

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


class TimedDream:
    """A dream vec env (``self.env``) stepped through pre-drawn actions (``self.actions``, one row
    per batched step); :meth:`segment` times one pass. Subclasses build both."""

    env: object
    actions: np.ndarray
    device: str
    ep_count: int = 0
    ep_steps: int = 0

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def segment(self) -> tuple[float, float, int]:
        """``(wall s, CPU s, episodes ended)`` of one pass over the actions."""
        self._sync()
        episodes = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for a in self.actions:
            info = self.env.step(a)[4]
            if "_episode" in info:
                episodes += int(info["_episode"].sum())
                if "episode_length" in info:
                    self.ep_steps += int(info["episode_length"].sum())
        self._sync()
        self.ep_count += episodes
        return time.perf_counter() - wall0, time.process_time() - cpu0, episodes


class DreamRow(TimedDream):
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


# --------------------------------------------------------------------------- diffusion dream

def build_diffusion_model(resolution: int, channels: list[int], seed: int, starts: int = 64):
    """A diffusion world model of the given size with random weights and ``starts`` random start
    contexts; the head's done bias is -5 (p_done ~ 0.7%: about Dodge's death rate under a
    random policy), so slots reset about as often as in a trained dream."""
    import torch

    from simlab.world_models.diffusion_dream.model import ActionFrameDenoiser, RewardDoneHead
    from simlab.world_models.diffusion_dream.world_model import DiffusionWorldModel

    torch.manual_seed(seed)
    den = ActionFrameDenoiser(n_actions=NUM_ACTIONS, resolution=resolution, context=4, channels=tuple(channels))
    head = RewardDoneHead(n_actions=NUM_ACTIONS, resolution=resolution, context=4)
    with torch.no_grad():
        head.mlp[-1].bias[1] = -5.0
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (starts, 4, resolution, resolution, 3), dtype=np.uint8)
    return DiffusionWorldModel(den, head, frames, rng.integers(0, NUM_ACTIONS, (starts, 3)),
                               env_id="simlab/Dodge-v1")


class DiffusionRow(TimedDream):
    """One diffusion dream configuration: a DiffusionDreamVecEnv stepped with pre-drawn random actions."""

    def __init__(self, model, num_envs: int, iterations: int, num_steps: int, device: str, seed: int) -> None:
        self.device, self.num_envs, self.iterations = device, num_envs, iterations
        self.steps = num_envs * iterations
        rng = np.random.default_rng(seed)
        self.actions = rng.integers(0, NUM_ACTIONS, (iterations, num_envs))
        self.env = model.as_vec_env(num_envs, num_steps=num_steps, device=device, seed=seed)
        self.env.reset(seed=seed)
        self.env.step(rng.integers(0, NUM_ACTIONS, num_envs))  # warm-up


def diffusion_row(model, num_envs: int, iterations: int, num_steps: int, device: str, seed: int,
                  repeats: int) -> dict:
    """Frames/s of one batch size (fastest of ``repeats`` runs) and its ratio to DIAMOND's figure."""
    dream = DiffusionRow(model, num_envs, iterations, num_steps, device, seed)
    row = {"num_envs": num_envs, "num_steps": num_steps, "device": device, "iterations": iterations,
           **summarize([dream.segment() for _ in range(repeats)], dream.steps)}
    row["frames_per_s"], row["frames_per_cpu_s"] = row["steps_per_s"], row["steps_per_cpu_s"]  # 1 step = 1 frame
    row["ms_per_batched_step"] = 1000 * row["wall_s"] / iterations
    row["diamond_ratio"] = row["frames_per_s"] / DIAMOND["frames_per_s"]
    return row


def diffusion_train_step(resolution: int, channels: list[int], batch: int, repeats: int, seed: int) -> dict:
    """Seconds per optimizer step of the diffusion trainer (EDM + head losses, backward, two AdamW
    updates) on 512 random windows, fastest of ``repeats`` after one untimed warm-up step."""
    import torch

    from simlab.world_models.diffusion_dream.data import Windows
    from simlab.world_models.diffusion_dream.model import edm_loss
    from simlab.world_models.diffusion_dream.train import (
        DiffusionDreamTrainConfig,
        build_networks,
        step_batch,
    )

    cfg = DiffusionDreamTrainConfig(resolution=resolution, channels=channels, batch_size=batch, seed=seed)
    rng = np.random.default_rng(seed)
    n = 512
    frames = rng.integers(0, 256, (n + 1, resolution, resolution, 3), dtype=np.uint8)
    ctx = np.clip(np.arange(n)[:, None] + np.arange(-3, 1)[None], 0, None)
    w = Windows(frames, ctx, rng.integers(0, NUM_ACTIONS, (n, 4)), np.arange(1, n + 1),
                rng.integers(0, NUM_ACTIONS, n), np.ones(n, np.float32), rng.random(n) < 0.01,
                np.zeros(n, np.int64), np.arange(n), NUM_ACTIONS, 4, resolution)
    den, head = build_networks(cfg, NUM_ACTIONS)
    opts = [torch.optim.AdamW(den.parameters(), lr=1e-4), torch.optim.AdamW(head.parameters(), lr=1e-4)]
    deaths = np.flatnonzero(w.dones)
    runs: list[tuple[float, float]] = []
    for s in range(repeats + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        bt = step_batch(w, cfg, s, deaths)
        loss = edm_loss(den, bt["next"], bt["ctx"], bt["ctx_actions"], bt["sigma"], bt["noise"])
        r, d = head(bt["h_ctx"], bt["h_action"], bt["h_next"])
        total = loss + (r - bt["h_reward"]).pow(2).mean() + torch.nn.functional.binary_cross_entropy_with_logits(
            d, bt["h_done"])
        for o in opts:
            o.zero_grad()
        total.backward()
        for o in opts:
            o.step()
        if s:  # the first step is a warm-up
            runs.append((time.perf_counter() - wall0, time.process_time() - cpu0))
    wall, cpu = min(runs)
    return {"batch": batch, "seconds": [round(r[0], 4) for r in runs], "seconds_per_step": wall,
            "cpu_seconds_per_step": cpu}


# --------------------------------------------------------------------------- the two benchmarks

def run_real(args) -> dict:
    """The real envs (reference): the batched game, then the single gymnasium env."""
    vec = RealVec(args.vec_game, args.vec_envs, args.vec_iterations, args.warmup, args.seed)
    out = {"vec": {"env": f"ProcgenVecEnv({args.vec_game!r}, {args.vec_envs})", "num_envs": args.vec_envs,
                   **summarize([vec.segment() for _ in range(args.repeats)], vec.steps)}}
    single = RealSingle(args.real_steps, args.warmup * 20, args.seed)
    out["single"] = {"env": "gymnasium.make('simlab/Dodge-v0')", "num_envs": 1,
                     **summarize([single.segment() for _ in range(args.repeats)], single.steps)}
    return out


def run_dropout(args, batches: list[int], precisions: list[str], peak_sizes: list[int], skip: bool, log) -> dict:
    """The dropout dream's rows (steps/s, GFLOP/s, fraction of the interleaved matmul peak)."""
    model = build_model(args.z_dim, args.hidden, args.mixtures, args.seed)
    flops = dream_step_flops(model.rnn)
    bias = calibrate_done_bias(model, args.episode_len, args.mask_mode, args.seed)
    rows: list[dict] = []
    peak_runs: list[dict[int, dict[str, float]]] = []
    for precision in [] if skip else precisions:
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
            log(f"[dream_speed] dropout {precision} batch {b}: {row['steps_per_s']:.0f} steps/s")
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
    return {"model": {"z_dim": args.z_dim, "hidden": args.hidden, "mixtures": args.mixtures,
                      "n_actions": NUM_ACTIONS, "weights": "random", "done_bias": bias,
                      "flops_per_dream_step": flops, "calibrated_episode_len": args.episode_len,
                      "temperature": 1.0},
            "mask_mode": args.mask_mode, "matmul_peak": peak, "dream": rows}


def run_diffusion(args, batches: list[int], channels: list[int], skip: bool, log) -> dict:
    """The diffusion dream's rows (frames/s, ratio to DIAMOND) and the trainer's seconds per step."""
    model = build_diffusion_model(args.resolution, channels, args.seed)
    rows: list[dict] = []
    for b in [] if skip else batches:
        iterations = args.diffusion_steps or max(2, 256 // b)
        rows.append(diffusion_row(model, b, iterations, args.num_steps, args.device, args.seed, args.repeats))
        log(f"[dream_speed] diffusion batch {b}: {rows[-1]['frames_per_s']:.1f} frames/s")
    train = None
    if not args.no_train and args.device == "cpu":
        train = diffusion_train_step(args.resolution, channels, args.train_batch, args.repeats, args.seed)
        log(f"[dream_speed] diffusion train: {train['seconds_per_step']:.3f} s/step")
    return {"model": {"resolution": args.resolution, "channels": channels, "context": 4, "n_actions": NUM_ACTIONS,
                      "num_steps": args.num_steps, "weights": "random",
                      "parameters": sum(p.numel() for p in model.denoiser.parameters())},
            "reference": DIAMOND, "dream": rows, "train": train}


# --------------------------------------------------------------------------- printing

def print_dropout(res: dict, args) -> None:
    flops, peak = res["model"]["flops_per_dream_step"], res["matmul_peak"]
    print(f"dropout dream (DreamVecEnv): z={args.z_dim}, hidden={args.hidden}, K={args.mixtures}, "
          f"{NUM_ACTIONS} actions, mask {args.mask_mode}, tau 1, device {args.device}")
    print(f"one dream step: {flops / 1e6:.3f} MFLOP of matmul (from the model's shapes)")
    if peak is not None:
        by_size = ", ".join(f"{n}: {g:.1f}" for n, g in peak["best_gflops_by_size"].items())
        cpu_peak = "" if peak["gflops_cpu"] is None else f"; {peak['gflops_cpu']:.1f} GFLOP per CPU-s"
        print(f"float32 matmul peak on {args.device}: {peak['gflops']:.1f} GFLOP/s (n={peak['best_size']}, best of "
              f"{peak['runs']} runs; by size {by_size}{cpu_peak})")
    if not res["dream"]:
        return
    print(f"{'what':44s} {'steps/s':>10s} {'steps/CPU-s':>12s} {'GFLOP/s':>8s} {'of peak':>8s} "
          f"{'(CPU-s)':>8s} {'ep len':>6s}")
    for row in res["dream"]:
        what = f"dropout dream {row['precision']}, batch {row['num_envs']}"
        frac_cpu = row.get("fraction_of_peak_cpu")
        mel = row["mean_episode_length"]
        print(f"{what:44s} {row['steps_per_s']:10.0f} {row['steps_per_cpu_s']:12.0f} {row['gflops']:8.1f} "
              f"{row['fraction_of_peak']:8.0%} {'-' if frac_cpu is None else f'{frac_cpu:.0%}':>8s} "
              f"{'-' if mel is None else f'{mel:.0f}':>6s}")


def print_diffusion(res: dict) -> None:
    m, ref = res["model"], res["reference"]
    print(f"diffusion dream (DiffusionDreamVecEnv): {m['resolution']}x{m['resolution']} frames, UNet widths "
          f"{m['channels']} ({m['parameters'] / 1e6:.2f}M parameters), {m['num_steps']} Euler steps")
    if res["dream"]:
        print(f"{'what':44s} {'frames/s':>10s} {'frames/CPU-s':>12s} {'ms/step':>8s} {'of DIAMOND':>10s}")
        for row in res["dream"]:
            what = f"diffusion dream, batch {row['num_envs']} ({row['device']})"
            print(f"{what:44s} {row['frames_per_s']:10.1f} {row['frames_per_cpu_s']:12.1f} "
                  f"{row['ms_per_batched_step']:8.1f} {row['diamond_ratio']:10.2%}")
        print(f"{'DIAMOND, batch 32, ' + ref['device'] + ' (reference)':44s} {ref['frames_per_s']:10.0f} "
              f"{'':12s} {'':8s} {1:10.0%}   ({ref['resolution']}x{ref['resolution']}, its larger UNet)")
    t = res["train"]
    if t is not None:
        print(f"diffusion train: {t['seconds_per_step']:.3f} s per step at batch {t['batch']} "
              f"({t['cpu_seconds_per_step']:.3f} CPU-s)")


# --------------------------------------------------------------------------- main

def _ints(text: str, name: str, ap: argparse.ArgumentParser) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        ap.error(f"{name} must be comma-separated integers")
    if not vals or min(vals) < 1:
        ap.error(f"{name} needs at least one value >= 1")
    return vals


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-model", default="both", choices=["dropout", "diffusion", "both"],
                    help="the dreams to time (default both)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per row, the fastest counts, for every side alike (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    g = ap.add_argument_group("dropout dream (DreamVecEnv)")
    g.add_argument("--batches", default="64,256,1024", help="dream batch sizes (default 64,256,1024)")
    g.add_argument("--precisions", default="float32,bfloat16",
                   help="dream matmul precisions to time (default float32,bfloat16)")
    g.add_argument("--mask-mode", default="per_episode", choices=["none", "per_episode", "per_step", "mc_mean"])
    g.add_argument("--dream-steps", type=int, default=100_000,
                   help="timed env steps per dream row (iterations = steps / batch, >= 20)")
    g.add_argument("--peak-sizes", default=None,
                   help="square float32 matmul sizes timed for the peak (default 256,512,1024; cuda 4096,8192)")
    g.add_argument("--warmup", type=int, default=10, help="untimed warm-up iterations per row (real envs too)")
    g.add_argument("--z-dim", type=int, default=32)
    g.add_argument("--hidden", type=int, default=256)
    g.add_argument("--mixtures", type=int, default=5)
    g.add_argument("--episode-len", type=float, default=200.0,
                   help="dream steps per terminated episode the done head is calibrated to (default 200)")
    g.add_argument("--max-episode-steps", type=int, default=1000)
    g = ap.add_argument_group("diffusion dream (DiffusionDreamVecEnv)")
    g.add_argument("--diffusion-batches", default="1,32,256", help="dream batch sizes (default 1,32,256)")
    g.add_argument("--diffusion-steps", type=int, default=0,
                   help="timed batched steps per run (default: ~256 frames per run, >= 2)")
    g.add_argument("--num-steps", type=int, default=3, help="Euler steps per dreamed frame (default 3)")
    g.add_argument("--resolution", type=int, default=32, help="frame size (default 32)")
    g.add_argument("--channels", default="32,32,64", help="UNet widths (default 32,32,64)")
    g.add_argument("--train-batch", type=int, default=16, help="windows per timed training step (default 16)")
    g.add_argument("--no-train", action="store_true", help="skip the training step")
    g = ap.add_argument_group("real envs (reference)")
    g.add_argument("--real-steps", type=int, default=5000, help="timed steps of the real single env")
    g.add_argument("--vec-game", default="dodge_v1", help="game of the real batched reference (default dodge_v1)")
    g.add_argument("--vec-envs", type=int, default=64, help="envs of the real batched reference")
    g.add_argument("--vec-iterations", type=int, default=300, help="timed iterations of the batched real env")
    g.add_argument("--no-real", action="store_true", help="skip the real envs")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    batches = _ints(args.batches, "--batches", ap)
    diffusion_batches = _ints(args.diffusion_batches, "--diffusion-batches", ap)
    channels = _ints(args.channels, "--channels", ap)
    peak_sizes = _ints(args.peak_sizes or ("4096,8192" if args.device == "cuda" else "256,512,1024"),
                       "--peak-sizes", ap)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or set(precisions) - {"float32", "bfloat16"}:
        ap.error("--precisions: comma-separated among float32, bfloat16")
    if min(args.dream_steps, args.real_steps, args.vec_iterations, args.repeats, args.num_steps,
           args.resolution, args.train_batch) < 1 or args.warmup < 0 or args.diffusion_steps < 0:
        ap.error("--dream-steps, --real-steps, --vec-iterations, --repeats, --num-steps, --resolution, "
                 "--train-batch must be >= 1, --warmup and --diffusion-steps >= 0")
    if args.episode_len <= 1:
        ap.error("--episode-len must be > 1")
    world_models = ["dropout", "diffusion"] if args.world_model == "both" else [args.world_model]
    if "diffusion" in world_models:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            ap.error("the diffusion dream needs diffusers (pip install 'simlab[diffusion]'); "
                     "or pass --world-model dropout")

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

    real = run_real(args) if not args.no_real else {"vec": None, "single": None}
    dropout = (run_dropout(args, batches, precisions, peak_sizes, skipped is not None, log)
               if "dropout" in world_models else None)
    diffusion = (run_diffusion(args, diffusion_batches, channels, skipped is not None, log)
                 if "diffusion" in world_models else None)
    info["loadavg_end_1_5_15"] = loadavg()
    result = {
        "world_models": world_models, "device": args.device, "repeats": args.repeats, "skipped": skipped,
        "dropout": dropout, "diffusion": diffusion, "real": real, "machine": info,
        "command": "python benchmarks/dream_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"dream speed per core (cpu {pinned}), random actions, device {args.device}, fastest of "
          f"{args.repeats} runs")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, load "
          f"{info['loadavg_1_5_15']} -> {info['loadavg_end_1_5_15']}, torch {info['torch']}")
    if skipped:
        print(f"dreams: skipped ({skipped})")
    for res, show in ((dropout, lambda r: print_dropout(r, args)), (diffusion, print_diffusion)):
        if res is not None:
            print()
            show(res)
    if real["vec"] is not None:
        print()
        print(f"{'what':44s} {'steps/s':>10s} {'steps/CPU-s':>12s}")
        for key in ("vec", "single"):
            r = real[key]
            print(f"{'real ' + r['env']:44s} {r['steps_per_s']:10.0f} {r['steps_per_cpu_s']:12.0f}  (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
