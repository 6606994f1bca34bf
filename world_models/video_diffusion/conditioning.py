"""Pixel <-> model space and the paper's conditioning input (pure functions).

Model space: float ``(B, T, 3, H, W)`` in [-1, 1]. Pixel space: uint8
``(B, T, H, W, 3)`` as stored in collision2d datasets.
"""

from __future__ import annotations

import numpy as np
import torch


def to_model_space(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, T, H, W, 3)`` -> float32 ``(B, T, 3, H, W)`` in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    return x.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """float ``(B, T, 3, H, W)`` in [-1, 1] -> uint8 ``(B, T, H, W, 3)`` (clamped, rounded)."""
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return y.permute(0, 1, 3, 4, 2).cpu().numpy()


def frame_mask(num_frames: int, cond_frames: int, batch: int, height: int, width: int,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Binary mask ``(B, T, 1, H, W)``: 1 on the first ``cond_frames`` frames, 0 elsewhere."""
    m = torch.zeros(batch, num_frames, 1, height, width, device=device, dtype=dtype)
    m[:, :cond_frames] = 1
    return m


def condition(video: torch.Tensor, cond_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition video (first frames kept, zero-padded to full length) and its mask.

    Args:
        video: ``(B, T, 3, H, W)`` in model space (only the first ``cond_frames`` frames are read).
        cond_frames: c.

    Returns:
        ``cond`` ``(B, T, 3, H, W)`` and ``mask`` ``(B, T, 1, H, W)``.
    """
    b, t, _, h, w = video.shape
    cond = torch.zeros_like(video)
    cond[:, :cond_frames] = video[:, :cond_frames]
    return cond, frame_mask(t, cond_frames, b, h, w, video.device, video.dtype)
