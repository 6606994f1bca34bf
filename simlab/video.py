"""Headless video writing: mp4 through imageio-ffmpeg, grids and side-by-side comparisons.

Frames are uint8 ``(T, H, W, 3)``. Small simulator frames (64 px) are
upscaled with nearest-neighbour so pixels stay crisp and the encoder's
16-pixel macro blocks divide the size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simlab.data import atomic_path
from simlab.errors import ConfigError


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of ``(..., H, W, C)`` by an integer factor."""
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def _pad_to(frames: np.ndarray, multiple: int = 16, value: int = 255) -> np.ndarray:
    h, w = frames.shape[-3:-1]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return frames
    pad = [(0, 0)] * (frames.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    return np.pad(frames, pad, constant_values=value)


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: float = 10.0,
              min_size: int = 256) -> Path:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 to an H.264 mp4, atomically.

    Frames whose shorter side is below ``min_size`` are upscaled by an integer factor
    (nearest neighbour); sizes are padded to a multiple of 16 with white.
    """
    import imageio.v2 as imageio

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"video frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ConfigError("cannot write a video with no frames")
    factor = max(1, -(-min_size // min(frames.shape[1], frames.shape[2])))
    frames = _pad_to(upscale(frames, factor))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp_mp4 = tmp.with_suffix(".mp4")
        try:
            with imageio.get_writer(tmp_mp4, fps=fps, codec="libx264", quality=8,
                                    macro_block_size=16, ffmpeg_log_level="error") as w:
                for f in frames:
                    w.append_data(f)
            os.replace(tmp_mp4, tmp)
        finally:
            if tmp_mp4.exists():
                tmp_mp4.unlink()
    return path


def grid(videos: np.ndarray, ncols: int | None = None, pad: int = 2, value: int = 255) -> np.ndarray:
    """Tile ``(N, T, H, W, 3)`` videos into one ``(T, H', W', 3)`` video, row-major."""
    videos = np.asarray(videos)
    n, t, h, w, c = videos.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = -(-n // ncols)
    out = np.full((t, nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), value, dtype=videos.dtype)
    for i in range(n):
        r, q = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[:, y:y + h, x:x + w] = videos[i]
    return out


def error_frames(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-pixel absolute error, max over channels, as a grey-to-black uint8 video (black = large)."""
    err = np.abs(truth.astype(np.int16) - pred.astype(np.int16)).max(axis=-1)
    g = (255 - err).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def side_by_side(truth: np.ndarray, pred: np.ndarray, pad: int = 2) -> np.ndarray:
    """``ground truth | prediction | error`` for ``(T, H, W, 3)`` videos of equal shape."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ConfigError(f"side_by_side needs equal shapes, got {truth.shape} and {pred.shape}")
    return grid(np.stack([truth, pred, error_frames(truth, pred)]), ncols=3, pad=pad)
