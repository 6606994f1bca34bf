"""Noise schedules and the training loss: DDPM with zero terminal SNR, v- or x0-prediction.

- Training: ``DDPMScheduler(beta_schedule="squaredcos_cap_v2",
  prediction_type="v_prediction", rescale_betas_zero_snr=True)``; targets
  from ``add_noise`` / ``get_velocity`` (the paper's choice).
  ``prediction_type="sample"`` (x0-prediction) is the alternative for narrow
  frame-stacked backbones: with v (or epsilon) the network must cancel the
  noise of all ``3T`` input channels pixel by pixel, which a UNet whose
  full-resolution level is narrower than ``3T`` channels cannot do (its
  samples stay speckled); predicting the clean video needs no such pass-through.
- Sampling: ``DDIMScheduler`` built from the same config with
  ``timestep_spacing="trailing"`` (needed with zero terminal SNR: the first
  step starts at pure noise).
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from simlab.world_models.video_diffusion.conditioning import condition

PREDICTION_TYPES: tuple[str, ...] = ("v_prediction", "sample")


def train_scheduler(num_train_timesteps: int = 1000, prediction_type: str = "v_prediction") -> DDPMScheduler:
    """The training noise schedule (zero terminal SNR; ``v_prediction`` or ``sample``)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type=prediction_type, rescale_betas_zero_snr=True, clip_sample=False)


def sampler(ddpm: DDPMScheduler, steps: int) -> DDIMScheduler:
    """A DDIM sampler (trailing spacing, eta 0) with ``steps`` steps, from the training schedule."""
    ddim = DDIMScheduler.from_config(ddpm.config, timestep_spacing="trailing")
    ddim.set_timesteps(steps)
    return ddim


def diffusion_loss(model: torch.nn.Module, ddpm: DDPMScheduler, video: torch.Tensor, cond_frames: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared prediction error (v or x0, per ``ddpm``'s prediction type) over the generated frames.

    Args:
        model: a :class:`VideoDiffusionModel` (or its DDP wrapper).
        ddpm: the training schedule.
        video: ``(B, T, 3, H, W)`` clean videos in [-1, 1].
        cond_frames: c; frames ``c..T-1`` are scored.
        generator: CPU generator for timesteps and noise (a pure function of seed, step, rank).

    Returns:
        Scalar loss.
    """
    b = video.shape[0]
    t = torch.randint(0, ddpm.config.num_train_timesteps, (b,), generator=generator).to(video.device)
    noise = torch.randn(video.shape, generator=generator).to(video.device, video.dtype)
    noisy = ddpm.add_noise(video, noise, t)
    target = ddpm.get_velocity(video, noise, t) if ddpm.config.prediction_type == "v_prediction" else video
    cond, mask = condition(video, cond_frames)
    pred = model(noisy, cond, mask, t)
    return torch.nn.functional.mse_loss(pred[:, cond_frames:].float(), target[:, cond_frames:].float())
