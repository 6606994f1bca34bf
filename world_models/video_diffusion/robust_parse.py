"""A ball parser robust to sampling speckle, reported next to the paper's parser (pure functions).

The paper's parser (:mod:`simlab.envs.collision2d.parse`) takes the mean of
*all* pixels passing the colour threshold; in an under-trained model's frames
isolated speckle pixels pass it too and pull the centre toward the middle of
the frame. This parser first finds each ball's peak in a box-smoothed colour
map (speckle averages out, a disc does not), then applies the paper's colour
threshold only inside a window around the peak. On clean frames whose ball
fits in the window it equals the paper's parser.
"""

from __future__ import annotations

import numpy as np

from simlab.envs.collision2d.parse import (
    color_masks,
    fill_missing,
    frame_velocity_error,
    valid_frames,
    velocity_error,
)
from simlab.envs.collision2d.physics import COND_FRAMES, WORLD_SIZE


def box_blur(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over a ``k x k`` box (``k`` odd, zero padding) of ``(..., H, W)``."""
    r = k // 2
    p = np.pad(x.astype(np.float64), [(0, 0)] * (x.ndim - 2) + [(r + 1, r), (r + 1, r)])
    c = p.cumsum(-1).cumsum(-2)
    return (c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]) / (k * k)


def colour_strength(frames: np.ndarray) -> np.ndarray:
    """How red / how blue each pixel is, in [0, 1]: ``(..., H, W, 3)`` uint8 -> ``(..., 2, H, W)``."""
    f = np.asarray(frames).astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    red = np.clip(r - np.maximum(g, b), 0, 1)
    blue = np.clip(b - np.maximum(r, g), 0, 1)
    return np.stack([red, blue], axis=-3)


def robust_centers(frames: np.ndarray, num_balls: int, world: float = WORLD_SIZE,
                   min_peak: float = 0.04) -> np.ndarray:
    """Ball centres ``(N, T, K, 2)`` in world units (x, y up), NaN where no ball is found.

    Args:
        frames: ``(N, T, H, W, 3)`` uint8.
        num_balls: 1 (red) or 2 (red, blue).
        min_peak: smallest smoothed colour strength that counts as a ball (0.04: one full pixel in the box).
    """
    frames = np.asarray(frames)
    h, w = frames.shape[2:4]
    k = max(3, 2 * round(0.06 * h) + 1)  # smoothing box: 5 px at 32 px
    half = round(0.2 * h) + 1  # window half-size: 7 px at 32 px (an OOD r=2 ball is 13 px wide)
    strength = box_blur(colour_strength(frames)[:, :, :num_balls], k)  # (N, T, K, H, W)
    masks = color_masks(frames)[:, :, :num_balls]
    flat = strength.reshape(*strength.shape[:3], -1)
    peak = flat.argmax(-1)
    py, px = np.divmod(peak, w)
    rows, cols = np.arange(h), np.arange(w)
    win = ((np.abs(rows[:, None] - py[..., None, None]) <= half)
           & (np.abs(cols[None, :] - px[..., None, None]) <= half))  # (N, T, K, H, W)
    m = masks & win
    area = m.sum(axis=(-1, -2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (m.sum(-1) @ (rows + 0.5)) / area
        cx = (m.sum(-2) @ (cols + 0.5)) / area
    cy = np.where(area > 0, cy, py + 0.5)
    cx = np.where(area > 0, cx, px + 0.5)
    found = flat.max(-1) >= min_peak
    center = np.stack([cx * (world / w), world - cy * (world / h)], axis=-1)
    return np.where(found[..., None], center, np.nan)


def evaluate_videos_robust(frames: np.ndarray, gt_pos: np.ndarray, radii: np.ndarray,
                           t_contact: np.ndarray | None, collision: bool,
                           cond_frames: int = COND_FRAMES) -> dict[str, np.ndarray]:
    """As :func:`simlab.envs.collision2d.parse.evaluate_videos`, with :func:`robust_centers`.

    Returns ``velocity_error``, ``frame_velocity_error`` and ``missing``, each ``(N,)``.
    """
    k = gt_pos.shape[2]
    center = robust_centers(frames, k)
    valid = valid_frames(gt_pos, radii, t_contact if collision else None, cond_frames)
    missing = np.isnan(center[..., 0]) & valid
    center = fill_missing(center, collision)
    vcount = valid.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        miss = np.where(vcount > 0, missing.sum(axis=(1, 2)) / vcount, np.nan)
    return {"velocity_error": velocity_error(center, gt_pos, valid),
            "frame_velocity_error": frame_velocity_error(center, gt_pos, valid), "missing": miss}
