"""Hazard recall of a Dream Land run's VAE, broken down by fireball size and height.

    python experiments/dreamland_hazard_sizes.py runs/v11

The run's own diagnostic (``diag_vae``: :func:`simlab.world_models.dropout.diagnostics.hazard_recall`
on the first 2048 held-out frames) for all fireballs, then for the fireballs of each box side
(Dodge-v1's grow from 5 px where thrown to 11 px at the agent's row) and each band of their
bottom row. Reads the run, writes nothing. Used in docs/results.md (the default at c68b12a).
"""

from __future__ import annotations

import sys

import numpy as np

from simlab.envs.procgen.dataset import TransitionDataset
from simlab.world_models.dropout.diagnostics import hazard_recall
from simlab.world_models.dropout.vae import ConvVAE, reconstruct_frames


def main(run: str) -> None:
    ds = TransitionDataset(f"{run}/data/heldout")
    d = ds.get(np.arange(min(len(ds), 2048)), ("obs", "hazard_boxes"))
    vae = ConvVAE.from_pretrained(f"{run}/checkpoints/vae")
    recon = reconstruct_frames(vae, d["obs"])
    b = d["hazard_boxes"]
    print("all", hazard_recall(d["obs"], recon, b))
    side, bottom, real = (b[..., 2] - b[..., 0]).astype(int), b[..., 3].astype(int), b[..., 0] >= 0
    for name, v, bands in (("side px", side, [(0, 6), (6, 8), (8, 10), (10, 12)]),
                           ("bottom row", bottom, [(0, 20), (20, 35), (35, 50), (50, 65)])):
        for lo, hi in bands:
            keep = real & (v >= lo) & (v < hi)
            print(f"{name} {lo}-{hi - 1}", hazard_recall(d["obs"], recon, np.where(keep[..., None], b, -1)))


if __name__ == "__main__":
    main(sys.argv[1])
