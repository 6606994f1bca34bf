"""Sizes and budget of the diffusion dream: a plain dataclass, importable without diffusers or torch, so
``simlab train dreamland`` can validate its ``diffusion.*`` settings on the ``torch`` extra alone."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from simlab.errors import ConfigError


@dataclass
class DiffusionDreamTrainConfig:
    """Sizes and budget of the diffusion dream (the ``cpu`` figures are the defaults)."""

    resolution: int = 32
    """Dream frame side in pixels (real 64 x 64 frames area-downscaled; 32: ~3.3x cheaper per step)."""
    context: int = 4
    """Frames and actions conditioned on (DIAMOND: 4)."""
    channels: list[int] = dataclasses.field(default_factory=lambda: [32, 32, 64])
    """UNet2DModel block widths (DIAMOND: 4 levels of 64)."""
    layers_per_block: int = 1
    """ResNet blocks per UNet level (DIAMOND: 2)."""
    head_width: int = 16
    """First conv width of the reward/termination head."""
    steps: int = 1500
    """Optimizer steps (each: one batch for both networks)."""
    batch_size: int = 16
    """Windows per step."""
    lr: float = 3e-4
    """AdamW learning rate of the denoiser (the head's too)."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0: off)."""
    warmup_steps: int = 100
    """Linear learning-rate warmup steps."""
    sigma_loc: float = -0.4
    """Training noise levels: ``log sigma ~ N(sigma_loc, sigma_scale^2)`` (DIAMOND / EDM)."""
    sigma_scale: float = 1.2
    """See ``sigma_loc``."""
    sigma_min_train: float = 2e-3
    """Training noise levels are clipped to [sigma_min_train, sigma_max_train]."""
    sigma_max_train: float = 20.0
    """See ``sigma_min_train``."""
    cond_noise: float = 0.1
    """Max std of Gaussian noise added to the context frames in training (uniform in [0, cond_noise]
    per window; DIAMOND's noise augmentation, against drift in long dreams; 0: off)."""
    done_fraction: float = 0.125
    """Share of each head batch drawn from terminal transitions (over-sampling; corrected in the logit)."""
    done_weight: float = 1.0
    """Weight of the head's termination BCE against its reward MSE."""
    checkpoint_every: int = 250
    """Steps between checkpoints (and after the last)."""
    log_every: int = 25
    """Steps between metric records."""
    seed: int = 0
    """Seed of initialisation, batches and noise."""

    def __post_init__(self) -> None:
        for k in ("resolution", "context", "layers_per_block", "head_width", "steps", "checkpoint_every",
                  "log_every"):
            v = getattr(self, k)
            if isinstance(v, bool) or v < 1:
                raise ConfigError(f"config key {k!r} must be an integer >= 1, got {v!r}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"channels must be a non-empty list of widths >= 1, got {self.channels}")
        if self.resolution % (2 ** (len(self.channels) - 1)):
            raise ConfigError(f"resolution {self.resolution} must be divisible by 2^{len(self.channels) - 1} "
                              f"({len(self.channels)} UNet levels)")
        if 64 % self.resolution:
            raise ConfigError(f"resolution must divide the real 64-px frames (64, 32, 16...), got {self.resolution}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not (0 < self.sigma_min_train < self.sigma_max_train) or self.sigma_scale <= 0:
            raise ConfigError("need 0 < sigma_min_train < sigma_max_train and sigma_scale > 0")
        if not 0 <= self.cond_noise < 1:
            raise ConfigError(f"cond_noise must be in [0, 1), got {self.cond_noise}")
        if not 0 <= self.done_fraction < 1:
            raise ConfigError(f"done_fraction must be in [0, 1), got {self.done_fraction}")
