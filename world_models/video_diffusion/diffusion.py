"""Noise schedules and the training loss: DDPM with zero terminal SNR, v- or x0-prediction.

- Training: ``DDPMScheduler(beta_schedule="squaredcos_cap_v2",
  prediction_type="v_prediction", rescale_betas_zero_snr=True)``; targets
  from ``add_noise`` / ``get_velocity`` (the paper's choice).
  ``prediction_type="sample"`` (x0-prediction) is the alternative for narrow
  frame-stacked backbones: with v (or epsilon) the network must cancel the
  noise of all ``3T`` input channels pixel by pixel, which a UNet whose
  full-resolution level is narrower than ``3T`` channels cannot do (its
  samples stay speckled); predicting the clean video needs no such pass-through.
- Sampling (``sampler``), both built from the training config with
  ``timestep_spacing="trailing"`` (needed with zero terminal SNR: the first
  step starts at pure noise):

  - ``ddim``: ``DDIMScheduler`` (eta 0), the default.
  - ``euler``: ``EulerDiscreteScheduler``, the Euler ODE solver of EDM /
    k-diffusion over the *same* discrete schedule. It integrates in
    ``x = x0 + sigma * eps`` with ``sigma_t = sqrt((1 - abar_t) / abar_t)``,
    hands the model ``scale_model_input(x) = x / sqrt(sigma^2 + 1)``, which is
    exactly the DDPM ``x_t`` the model was trained on, and the integer DDPM
    timestep ``t`` (trailing spacing gives integers; no Karras sigmas, which
    would need fractional ones), and reads v or x0 back as the denoised video.
    With zero terminal SNR it clips ``abar_T`` to 2**-24, so it starts at
    ``sigma_max`` = 4096 (``init_noise_sigma`` = sqrt(sigma_max^2 + 1)).
    ``EDMEulerScheduler`` is not used: it feeds the network EDM's float noise
    level ``0.25 * log(sigma)`` instead of the DDPM timestep (a model trained
    on DDPM timesteps would see inputs it never saw), its Karras sigmas fall
    between the trained ones, and it has no x0 (``sample``) prediction.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

from simlab.errors import ConfigError
from simlab.world_models.video_diffusion.conditioning import condition
from simlab.world_models.video_diffusion.config import SAMPLERS

PREDICTION_TYPES: tuple[str, ...] = ("v_prediction", "sample")


def train_scheduler(num_train_timesteps: int = 1000, prediction_type: str = "v_prediction") -> DDPMScheduler:
    """The training noise schedule (zero terminal SNR; ``v_prediction`` or ``sample``)."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         prediction_type=prediction_type, rescale_betas_zero_snr=True, clip_sample=False)


def sampler(ddpm: DDPMScheduler, steps: int, kind: str = "ddim") -> DDIMScheduler | EulerDiscreteScheduler:
    """A sampler with ``steps`` steps (trailing spacing) from the training schedule ``ddpm``.

    Args:
        ddpm: the training schedule (its betas, zero-SNR rescaling and prediction type carry over).
        steps: number of model evaluations.
        kind: ``ddim`` (DDIMScheduler, eta 0) or ``euler`` (EulerDiscreteScheduler; see the module docstring).

    Returns:
        A scheduler with ``timesteps`` set; a fresh one per generation (Euler keeps a step index).
    """
    if kind == "ddim":
        ddim = DDIMScheduler.from_config(ddpm.config, timestep_spacing="trailing")
        ddim.set_timesteps(steps)
        return ddim
    if kind == "euler":
        euler = EulerDiscreteScheduler.from_config(ddpm.config, timestep_spacing="trailing",
                                                   interpolation_type="linear", use_karras_sigmas=False,
                                                   final_sigmas_type="zero")
        euler.set_timesteps(steps)
        return euler
    raise ConfigError(f"unknown sampler {kind!r}; choose one of {', '.join(SAMPLERS)}")


def diffusion_loss(model: torch.nn.Module, ddpm: DDPMScheduler, video: torch.Tensor, cond_frames: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared prediction error (v or x0, per ``ddpm``'s prediction type) over the generated frames.

    Args:
        model: a :class:`VideoDiffusionModel` (or its DDP wrapper).
        ddpm: the training schedule.
        video: ``(B, T, C, h, w)`` clean videos in model space (pixels in [-1, 1], or scaled VAE latents).
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
