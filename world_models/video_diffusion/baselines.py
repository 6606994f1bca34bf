"""Trivial predictors a world model must beat (pure functions, pixel space).

Both keep the condition frames and fill the rest:

- :func:`repeat_last`: the last condition frame, repeated (the ball stands still).
- :func:`constant_velocity`: balls parsed from the condition frames with the
  paper's colour parser, moved on at the least-squares velocity of their
  condition-frame centres and re-rendered with the testbed's renderer; for
  uniform motion this is the exact law, up to parsing error.
"""

from __future__ import annotations

import numpy as np

from simlab.envs.collision2d.parse import parse_balls
from simlab.envs.collision2d.render import render_balls


def repeat_last(frames: np.ndarray, cond_frames: int) -> np.ndarray:
    """``(N, T, H, W, 3)`` uint8 -> the same shape, frames ``c..T-1`` equal to frame ``c-1``."""
    out = np.array(frames, copy=True)
    out[:, cond_frames:] = out[:, cond_frames - 1:cond_frames]
    return out


def fit_constant_velocity(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through per-frame centres.

    Args:
        centers: ``(N, c, K, 2)`` world units (NaN where a ball was not found).

    Returns:
        ``p_last`` ``(N, K, 2)`` fitted position at the last condition frame and
        ``v`` ``(N, K, 2)`` velocity in world units per frame (0 where fewer than
        2 frames were parsed; ``p_last`` is then the mean parsed centre, or NaN).
    """
    c = centers.shape[1]
    t = np.arange(c, dtype=np.float64)[None, :, None, None]
    ok = np.isfinite(centers)
    cnt = ok.sum(axis=1)  # (N, K, 2)
    x = np.where(ok, centers, 0.0)
    tw = np.where(ok, t, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = tw.sum(1) / cnt
        xm = x.sum(1) / cnt
        dt = np.where(ok, t - tm[:, None], 0.0)
        v = (dt * (x - np.where(ok, xm[:, None], 0.0))).sum(1) / (dt ** 2).sum(1)
    v = np.where(cnt >= 2, v, 0.0)
    p_last = xm + v * (c - 1 - tm)
    return p_last, v


def constant_velocity(frames: np.ndarray, cond_frames: int, num_balls: int) -> np.ndarray:
    """Extrapolate the parsed condition frames at constant velocity; ``(N, T, H, W, 3)`` uint8.

    A ball not found in any condition frame is not drawn.
    """
    frames = np.asarray(frames)
    t, res = frames.shape[1], frames.shape[2]
    parsed = parse_balls(frames[:, :cond_frames], num_balls)
    p_last, v = fit_constant_velocity(parsed["center"])
    with np.errstate(invalid="ignore"):
        radii = np.nanmean(parsed["radius"], axis=1)  # (N, K)
    steps = (np.arange(t) - (cond_frames - 1)).astype(np.float64)
    pos = p_last[:, None] + steps[None, :, None, None] * v[:, None]  # (N, T, K, 2)
    lost = ~np.isfinite(pos).all(-1) | ~np.isfinite(radii)[:, None, :]
    pos = np.where(lost[..., None], -100.0, np.nan_to_num(pos))  # far outside the frame: not drawn
    out = render_balls(pos, np.nan_to_num(radii, nan=0.1), res)
    out[:, :cond_frames] = frames[:, :cond_frames]
    return out
