"""Diffusion dream speed: dreamed frames per second at batch 1 / 32 / 256, and training seconds per step.

What is measured
----------------
*dream*: :class:`simlab.world_models.diffusion_dream.dream.DiffusionDreamVecEnv` of a
world model of the ``cpu`` preset's size (``UNet2DModel`` widths 32/32/64, one ResNet block
per level, 32 x 32 frames, 4 context frames; random weights, speed does not depend on them)
with ``num_steps`` Euler steps (default 3, DIAMOND's). One ``step(actions)`` validates the
actions, runs the denoiser ``num_steps`` times on the whole batch, the reward/termination
head once, samples terminations, resets finished slots and returns uint8 frames. Frames/s
= batch x steps / wall seconds (fastest of ``--repeats`` runs, after a warm-up step).
DIAMOND reports ~1,570 dreamed frames/s at batch 32, 3 steps, 64 x 64, on an RTX 4090.

*train*: one optimizer step of the trainer (EDM loss on the denoiser plus the head's loss,
backward, two AdamW updates) at ``--train-batch`` windows (default 16), fastest of the
repeats.

Threads: the process uses ``torch.set_num_threads(--threads)`` (default 1; the shared
2-core machine's rule is ``OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE``).

Usage::

    python benchmarks/diffusion_dream_speed.py
    python benchmarks/diffusion_dream_speed.py --resolution 64 --batches 1,32 --json
    python benchmarks/diffusion_dream_speed.py --device cuda --batches 1,32,256
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def build(resolution: int, channels: list[int], starts: int = 64):
    import torch

    from simlab.world_models.diffusion_dream.model import ActionFrameDenoiser, RewardDoneHead
    from simlab.world_models.diffusion_dream.world_model import DiffusionWorldModel

    torch.manual_seed(0)
    den = ActionFrameDenoiser(n_actions=15, resolution=resolution, context=4, channels=tuple(channels))
    head = RewardDoneHead(n_actions=15, resolution=resolution, context=4)
    with torch.no_grad():
        head.mlp[-1].bias[1] = -5.0  # p_done ~ 0.7%: about Dodge's death rate under a random policy
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (starts, 4, resolution, resolution, 3), dtype=np.uint8)
    return DiffusionWorldModel(den, head, frames, rng.integers(0, 15, (starts, 3)), env_id="simlab/Dodge-v1")


def time_dream(wm, batch: int, steps: int, num_steps: int, device: str, repeats: int) -> dict:
    import torch

    env = wm.as_vec_env(batch, num_steps=num_steps, device=device, seed=0)
    rng = np.random.default_rng(1)
    acts = rng.integers(0, 15, (steps + 1, batch))
    env.reset(seed=0)
    env.step(acts[0])  # warm-up
    runs = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for a in acts[1:]:
            env.step(a)
        if device == "cuda":
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - t)
    best = min(runs)
    return {"batch": batch, "steps": steps, "num_steps": num_steps, "seconds": runs,
            "frames_per_s": batch * steps / best, "ms_per_step": 1000 * best / steps}


def time_train(resolution: int, channels: list[int], batch: int, repeats: int) -> dict:
    import torch

    from simlab.world_models.diffusion_dream.data import Windows
    from simlab.world_models.diffusion_dream.model import edm_loss
    from simlab.world_models.diffusion_dream.train import (
        DiffusionDreamTrainConfig,
        build_networks,
        step_batch,
    )

    cfg = DiffusionDreamTrainConfig(resolution=resolution, channels=channels, batch_size=batch)
    rng = np.random.default_rng(0)
    n = 512
    frames = rng.integers(0, 256, (n + 1, resolution, resolution, 3), dtype=np.uint8)
    ctx = np.clip(np.arange(n)[:, None] + np.arange(-3, 1)[None], 0, None)
    w = Windows(frames, ctx, rng.integers(0, 15, (n, 4)), np.arange(1, n + 1), rng.integers(0, 15, n),
                np.ones(n, np.float32), rng.random(n) < 0.01, np.zeros(n, np.int64), np.arange(n), 15, 4, resolution)
    den, head = build_networks(cfg, 15)
    opts = [torch.optim.AdamW(den.parameters(), lr=1e-4), torch.optim.AdamW(head.parameters(), lr=1e-4)]
    deaths = np.flatnonzero(w.dones)
    runs = []
    for s in range(repeats + 1):
        t = time.perf_counter()
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
            runs.append(time.perf_counter() - t)
    return {"batch": batch, "seconds": runs, "seconds_per_step": min(runs),
            "parameters": sum(p.numel() for p in den.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--channels", default="32,32,64")
    ap.add_argument("--batches", default="1,32,256")
    ap.add_argument("--steps", type=int, default=0, help="dream steps per run (default: ~256 frames per run, >= 2)")
    ap.add_argument("--num-steps", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("cuda not available")
        return
    ch = [int(c) for c in a.channels.split(",")]
    wm = build(a.resolution, ch)
    rows = []
    for b in (int(x) for x in a.batches.split(",")):
        steps = a.steps or max(2, 256 // b)
        rows.append(time_dream(wm, b, steps, a.num_steps, a.device, a.repeats))
    res = {"device": a.device, "threads": a.threads, "resolution": a.resolution, "channels": ch, "dream": rows}
    if not a.no_train and a.device == "cpu":
        res["train"] = time_train(a.resolution, ch, a.train_batch, a.repeats)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"diffusion dream, {a.resolution}x{a.resolution}, widths {ch}, {a.num_steps} Euler steps, {a.device}, "
          f"{a.threads} thread(s)")
    for r in rows:
        print(f"  batch {r['batch']:>4}: {r['frames_per_s']:8.1f} dreamed frames/s ({r['ms_per_step']:.1f} ms per "
              "batched step)")
    if "train" in res:
        t = res["train"]
        print(f"  train: {t['seconds_per_step']:.3f} s per step at batch {t['batch']} "
              f"({t['parameters'] / 1e6:.2f}M denoiser parameters)")


if __name__ == "__main__":
    main()
