"""Generate videos from their condition frames: DDIM over the whole video, condition pasted back."""

from __future__ import annotations

import numpy as np
import torch

from simlab.errors import ConfigError
from simlab.world_models.video_diffusion.conditioning import condition, to_model_space, to_pixels
from simlab.world_models.video_diffusion.diffusion import sampler, train_scheduler


@torch.no_grad()
def generate(model, cond_video: np.ndarray, steps: int, seed: int = 0, scheduler=None) -> np.ndarray:
    """Videos continuing their condition frames.

    Args:
        model: a :class:`VideoDiffusionModel` (eval mode; EMA weights for best results).
        cond_video: uint8 ``(B, c', H, W, 3)`` with ``c' >= cond_frames`` (extra frames are ignored).
        steps: DDIM steps.
        seed: noise seed.
        scheduler: the training ``DDPMScheduler`` (default: :func:`train_scheduler` of the model's
            ``num_train_timesteps`` = 1000).

    Returns:
        uint8 ``(B, T, H, W, 3)``; the first ``cond_frames`` frames are the given ones.
    """
    cfg = model.config
    c, t, res = cfg.cond_frames, cfg.num_frames, cfg.resolution
    cond_video = np.asarray(cond_video)
    if cond_video.ndim != 5 or cond_video.shape[1] < c or cond_video.shape[2:] != (res, res, 3):
        raise ConfigError(f"condition frames must be (B, >={c}, {res}, {res}, 3), got {cond_video.shape}")
    device, dtype = model.device, model.dtype
    b = cond_video.shape[0]
    given = to_model_space(cond_video[:, :c]).to(device, dtype)
    full = torch.zeros(b, t, 3, res, res, device=device, dtype=dtype)
    full[:, :c] = given
    cond, mask = condition(full, c)
    ddim = sampler(scheduler or train_scheduler(), steps)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(full.shape, generator=gen).to(device, dtype) * ddim.init_noise_sigma
    for ts in ddim.timesteps:
        tt = torch.full((b,), int(ts), device=device, dtype=torch.long)
        v = model(x, cond, mask, tt)
        x = ddim.step(v, ts, x).prev_sample
    x[:, :c] = given
    return to_pixels(x)
