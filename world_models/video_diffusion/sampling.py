"""Generate videos from their condition frames: DDIM or Euler over the whole video, condition pasted back.

In latent space (a model trained with ``latent_vae``) the condition frames
are encoded by the frozen frame VAE, the sampler runs on the scaled latents,
and the result is decoded to pixels; the given condition frames are pasted
back as pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from simlab.errors import ConfigError
from simlab.world_models.video_diffusion.conditioning import condition, to_model_space, to_pixels
from simlab.world_models.video_diffusion.diffusion import sampler, train_scheduler


@torch.no_grad()
def generate(model, cond_video: np.ndarray, steps: int, seed: int = 0, scheduler=None, sampler_kind: str = "ddim",
             vae=None) -> np.ndarray:
    """Videos continuing their condition frames.

    Args:
        model: a :class:`VideoDiffusionModel` (eval mode; EMA weights for best results).
        cond_video: uint8 ``(B, c', H, W, 3)`` with ``c' >= cond_frames`` (extra frames are ignored).
        steps: sampler steps (model evaluations).
        seed: noise seed.
        scheduler: the training ``DDPMScheduler`` (default: :func:`train_scheduler` of the model's
            ``num_train_timesteps`` = 1000).
        sampler_kind: ``ddim`` or ``euler`` (:func:`.diffusion.sampler`).
        vae: the frozen frame VAE (``AutoencoderKL``, :func:`.latent.load_frame_vae`); required, and only
            accepted, for a model trained in latent space.

    Returns:
        uint8 ``(B, T, H, W, 3)``; the first ``cond_frames`` frames are the given ones.
    """
    cfg = model.config
    c, t, res = cfg.cond_frames, cfg.num_frames, cfg.resolution
    cond_video = np.asarray(cond_video)
    if cond_video.ndim != 5 or cond_video.shape[1] < c or cond_video.shape[2:] != (res, res, 3):
        raise ConfigError(f"condition frames must be (B, >={c}, {res}, {res}, 3), got {cond_video.shape}")
    if model.latent != (vae is not None):
        raise ConfigError("this model diffuses in a frame VAE's latent space: pass its vae" if model.latent
                          else "this model diffuses in pixel space: it takes no vae")
    device, dtype = model.device, model.dtype
    b = cond_video.shape[0]
    given_px = to_model_space(cond_video[:, :c]).to(device, dtype)
    if vae is not None:
        from simlab.world_models.video_diffusion.latent import encode_frames

        given = encode_frames(vae, given_px).to(device, dtype)
    else:
        given = given_px
    side = res // int(cfg.latent_factor)
    full = torch.zeros(b, t, int(cfg.channels), side, side, device=device, dtype=dtype)
    full[:, :c] = given
    cond, mask = condition(full, c)
    sched = sampler(scheduler or train_scheduler(), steps, sampler_kind)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(full.shape, generator=gen).to(device, dtype) * sched.init_noise_sigma
    for ts in sched.timesteps:
        tt = torch.full((b,), int(ts), device=device, dtype=torch.long)  # trailing spacing: integer timesteps
        out = model(sched.scale_model_input(x, ts), cond, mask, tt)  # DDIM: identity; Euler: x / sqrt(s^2+1)
        x = sched.step(out, ts, x).prev_sample
    x[:, :c] = given
    if vae is not None:
        from simlab.world_models.video_diffusion.latent import decode_frames

        x = decode_frames(vae, x).to(device, dtype)
        x[:, :c] = given_px
    return to_pixels(x)
