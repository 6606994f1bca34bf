"""The paper's frame parser and velocity-error metric (Kang et al. 2024, Sec. 3).

Parse each frame by colour thresholds (red: R>127, G<127, B<127; blue:
R<127, G<127, B>127); a ball's centre is the mean pixel coordinate of its
mask and its radius ``sqrt(area / pi)``, both scaled to world units. Frames in
which a ball is partly out of view are dropped (judged on the ground-truth
state), evaluation starts at the last conditioning frame, and for collisions
only frames after the contact count. Velocities are finite differences over
``FRAME_DT``. The paper's released evaluation code averages each ball's
velocity over its valid frames first and then takes the error,
``|mean_t v_hat - mean_t v|``, averaged over balls: that is
:func:`velocity_error` (the paper's floors 0.0099 / 0.0117 / 0.0210 are of this
kind). :func:`frame_velocity_error` is the stricter per-frame mean of
``|v_t - v_hat_t|``. Both use the Euclidean norm, which for the paper's
horizontal motions equals its ``|v_x - v_hat_x|``.

A ball missing from a generated frame is placed where the paper's code puts
it (ball 1 at the left edge for collisions, otherwise the right edge, at its
last parsed height), so erasing a ball is penalised, not skipped.
"""

from __future__ import annotations

import numpy as np

from simlab.envs.collision2d.physics import COND_FRAMES, FRAME_DT, WORLD_SIZE


def color_masks(frames: np.ndarray) -> np.ndarray:
    """Red and blue masks: ``(..., H, W, 3)`` uint8 -> ``(..., 2, H, W)`` bool."""
    f = np.asarray(frames)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    low_g = g < 127
    red = (r > 127) & low_g & (b < 127)
    blue = (r < 127) & low_g & (b > 127)
    return np.stack([red, blue], axis=-3)


def parse_balls(frames: np.ndarray, num_balls: int, world: float = WORLD_SIZE) -> dict[str, np.ndarray]:
    """Parse ball centres and radii from frames.

    Args:
        frames: ``(N, T, H, W, 3)`` uint8.
        num_balls: 1 (red) or 2 (red, blue).

    Returns:
        ``center`` ``(N, T, K, 2)`` world (x, y up; NaN where the ball is absent),
        ``radius`` ``(N, T, K)`` world units, ``area`` ``(N, T, K)`` pixels.
    """
    frames = np.asarray(frames)
    h, w = frames.shape[2:4]
    masks = color_masks(frames)[:, :, :num_balls]  # (N, T, K, H, W)
    area = masks.sum(axis=(-1, -2)).astype(np.float64)
    rows = masks.sum(axis=-1, dtype=np.float64)  # (N,T,K,H): pixels per row
    cols = masks.sum(axis=-2, dtype=np.float64)  # (N,T,K,W)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (rows @ (np.arange(h) + 0.5)) / area
        cx = (cols @ (np.arange(w) + 0.5)) / area
    s = world / w
    center = np.stack([cx * s, world - cy * (world / h)], axis=-1)
    radius = np.sqrt(area / np.pi) * s
    return {"center": center, "radius": radius, "area": area}


def valid_frames(gt_pos: np.ndarray, radii: np.ndarray, t_contact: np.ndarray | None = None,
                 cond_frames: int = COND_FRAMES, world: float = WORLD_SIZE,
                 dt: float = FRAME_DT) -> np.ndarray:
    """Frames that count, per ball: ``(N, T, K)`` bool.

    A frame counts from the last conditioning frame on, while the ball is
    fully inside the world, and (when ``t_contact`` is given and finite) only
    at or after the contact time.
    """
    gt_pos = np.asarray(gt_pos)
    t = gt_pos.shape[1]
    r = np.asarray(radii)[:, None, :]
    x, y = gt_pos[..., 0], gt_pos[..., 1]
    ok = (x - r >= 0) & (x + r <= world) & (y - r >= 0) & (y + r <= world)
    ok[:, : max(cond_frames - 1, 0)] = False
    if t_contact is not None:
        times = np.arange(t) * dt
        tc = np.asarray(t_contact, np.float64)
        after = times[None, :] >= np.where(np.isfinite(tc), tc, -np.inf)[:, None] - 1e-9
        ok &= after[:, :, None]
    return ok


def fill_missing(center: np.ndarray, collision: bool, world: float = WORLD_SIZE) -> np.ndarray:
    """Replace absent balls (NaN) the way the paper's parser does; returns a copy."""
    c = np.array(center, dtype=np.float64, copy=True)
    n, t, k, _ = c.shape
    for j in range(k):
        edge_x = 0.0 if (collision and j == 0) else world
        for i in range(t):
            miss = np.isnan(c[:, i, j, 0])
            if miss.any():
                prev_y = c[:, i - 1, j, 1] if i > 0 else np.full(n, np.nan)
                c[miss, i, j, 0] = edge_x
                c[miss, i, j, 1] = prev_y[miss]
    return c


def _fd(center: np.ndarray, gt_pos: np.ndarray, valid: np.ndarray, dt: float):
    v_hat = np.diff(center, axis=1) / dt
    v = np.diff(np.asarray(gt_pos, np.float64), axis=1) / dt
    pair = valid[:, 1:] & valid[:, :-1]  # (N, T-1, K)
    return v_hat, v, pair


def velocity_error(pred_center: np.ndarray, gt_pos: np.ndarray, valid: np.ndarray,
                   dt: float = FRAME_DT) -> np.ndarray:
    """The paper's velocity error per video, ``(N,)`` world units / s.

    For each ball, the finite-difference velocity is averaged over its valid
    frame pairs, for the prediction and for the ground truth; the error is the
    norm of the difference of those means, averaged over balls that have a
    valid pair (NaN if none has).

    Args:
        pred_center: parsed centres ``(N, T, K, 2)``.
        gt_pos: ground-truth centres ``(N, T, K, 2)``.
        valid: ``(N, T, K)`` frames that count (see :func:`valid_frames`).
    """
    v_hat, v, pair = _fd(pred_center, gt_pos, valid, dt)
    cnt = pair.sum(axis=1)  # (N, K)
    w = pair[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_hat = np.where(w, v_hat, 0.0).sum(axis=1) / cnt[..., None]
        mean_gt = np.where(w, v, 0.0).sum(axis=1) / cnt[..., None]
        per_ball = np.linalg.norm(mean_hat - mean_gt, axis=-1)  # (N, K)
        has = cnt > 0
        return np.where(has.any(-1), np.where(has, per_ball, 0.0).sum(-1) / has.sum(-1), np.nan)


def frame_velocity_error(pred_center: np.ndarray, gt_pos: np.ndarray, valid: np.ndarray,
                         dt: float = FRAME_DT) -> np.ndarray:
    """Per-frame velocity error per video: mean over balls and valid pairs of ``|v_t - v_hat_t|``, ``(N,)``."""
    v_hat, v, pair = _fd(pred_center, gt_pos, valid, dt)
    err = np.where(pair, np.linalg.norm(v_hat - v, axis=-1), 0.0)
    cnt = pair.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, err.sum(axis=(1, 2)) / cnt, np.nan)


def evaluate_videos(frames: np.ndarray, gt_pos: np.ndarray, radii: np.ndarray,
                    t_contact: np.ndarray | None, collision: bool,
                    cond_frames: int = COND_FRAMES) -> dict[str, np.ndarray]:
    """Parse frames and score them against ground truth.

    Args:
        frames: ``(N, T, H, W, 3)`` uint8 (generated or ground-truth video).
        gt_pos: ``(N, T, K, 2)`` ground-truth centres.
        radii: ``(N, K)`` ground-truth radii.
        t_contact: ``(N,)`` contact times (collisions) or None.
        collision: use post-contact frames only and the paper's fallbacks.

    Returns:
        ``velocity_error`` ``(N,)`` (the paper's), ``frame_velocity_error``
        ``(N,)``, ``radius_error`` ``(N,)`` (mean |r - r_hat|
        over valid frames), ``missing`` ``(N,)`` fraction of valid frames where
        a ball was not found.
    """
    k = gt_pos.shape[2]
    parsed = parse_balls(frames, k)
    valid = valid_frames(gt_pos, radii, t_contact if collision else None, cond_frames)
    missing = np.isnan(parsed["center"][..., 0]) & valid
    center = fill_missing(parsed["center"], collision)
    verr = velocity_error(center, gt_pos, valid)
    ferr = frame_velocity_error(center, gt_pos, valid)
    rerr = np.abs(parsed["radius"] - np.asarray(radii)[:, None, :])
    vcount = valid.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        radius_error = np.where(vcount > 0, np.where(valid, rerr, 0).sum(axis=(1, 2)) / vcount, np.nan)
        miss = np.where(vcount > 0, missing.sum(axis=(1, 2)) / vcount, np.nan)
    return {"velocity_error": verr, "frame_velocity_error": ferr,
            "radius_error": radius_error, "missing": miss}
