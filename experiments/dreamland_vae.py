"""Hazard recall of the Dream Land VAE under other training settings, on a finished run's data.

    python experiments/dreamland_vae.py runs/v6 fg_weight=30,epochs=6,frames=10000,seed=0 [more settings...]

Each setting (comma-separated ``key=value``: ``fg_weight``, ``epochs``, ``frames``, ``seed``,
``lr``, ``batch``, ``z``, ``sched``, ``density``) trains a fresh ConvVAE on a seeded subsample of the run's real frames
(the pipeline's own subsampling, ``train_vae`` stage) and prints the hazard recall on the run's
held-out frames (the ``diag_vae`` stage's measurement) and the training seconds. Reads the run,
writes nothing. Used for the VAE table of docs/results.md ("Hazard recall").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from simlab.config import load_yaml
from simlab.pipelines.dreamland import Dreamland, DreamlandConfig
from simlab.world_models.dropout.diagnostics import hazard_recall
from simlab.world_models.dropout.vae import VAETrainConfig, reconstruct_frames, train_vae

KEYS = {"fg_weight": float, "epochs": int, "frames": int, "seed": int, "lr": float, "batch": int, "z": int, "sched": str, "density": float}


def parse(setting: str) -> dict[str, float | int]:
    """``"fg_weight=30,epochs=6"`` -> ``{"fg_weight": 30.0, "epochs": 6}`` (unknown keys: SystemExit)."""
    out: dict[str, float | int] = {}
    for item in filter(None, setting.split(",")):
        k, _, v = item.partition("=")
        if k not in KEYS:
            raise SystemExit(f"unknown key {k!r} in {setting!r}; known: {', '.join(KEYS)}")
        out[k] = KEYS[k](v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("settings", nargs="+")
    args = ap.parse_args()
    cfg = load_yaml(DreamlandConfig, args.run / "config.yaml", sealed=True)
    run = Dreamland(cfg, args.run, resume=True, progress=False)
    ds = run._real()
    held = run._real("heldout")
    hidx = np.arange(min(len(held), 2048))
    hd = held.get(hidx, ("obs", "hazard_boxes"))
    for setting in args.settings:
        s = {"fg_weight": cfg.vae_fg_weight, "epochs": cfg.vae_epochs, "frames": cfg.vae_max_frames,
             "seed": cfg.seed, "lr": cfg.vae_lr, "batch": cfg.vae_batch_size, "z": cfg.z_dim,
             "sched": cfg.vae_lr_schedule, "density": cfg.vae_fg_density, **parse(setting)}
        rng = np.random.default_rng([int(s["seed"]), 0xAE])
        n = len(ds)
        idx = np.sort(rng.choice(n, size=min(n, int(s["frames"])), replace=False))
        frames = ds.get(idx, ["obs"])["obs"]
        vcfg = VAETrainConfig(z_dim=int(s["z"]), epochs=int(s["epochs"]), batch_size=int(s["batch"]),
                              lr=float(s["lr"]), lr_schedule=str(s["sched"]), width=cfg.vae_width, fg_weight=float(s["fg_weight"]),
                              fg_density_power=float(s["density"]))
        t = time.time()
        vae = train_vae(frames, vcfg, device="cpu", progress=False, seed=int(s["seed"]))
        secs = time.time() - t
        r = hazard_recall(hd["obs"], reconstruct_frames(vae, hd["obs"]), hd["hazard_boxes"])
        print(f"{setting}: hazard recall {100 * r['recall']:.1f}% ({r['visible']}/{r['hazards']}), "
              f"train {secs:.0f} s", flush=True)


if __name__ == "__main__":
    main()
