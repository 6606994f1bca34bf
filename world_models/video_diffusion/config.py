"""Typed config of the video diffusion world model: defaults <- named presets <- ``key=value`` overrides.

One dataclass holds the model, diffusion and training hyperparameters (one
line of doc per field, CleanRL style). Presets are plain mappings in
:data:`PRESETS`, applied in order (DreamerV3 style); the resolved config is
saved as ``config.yaml`` in the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simlab.errors import ConfigError

BACKBONES: tuple[str, ...] = ("unet", "dit", "latte", "cogvideox")
SAMPLERS: tuple[str, ...] = ("ddim", "euler")
TRANSFORMERS: tuple[str, ...] = ("dit", "latte", "cogvideox")
"""Backbones sized by the ``dit_*`` fields (transformer blocks, heads, head width, patch side)."""
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
MIXED_PRECISION: tuple[str, ...] = ("no", "bf16", "fp16")


@dataclass
class VideoDiffusionConfig:
    """Everything a ``simlab train video-diffusion`` run depends on (besides the dataset)."""

    # ---- model ----
    backbone: str = "unet"
    """unet (frame-stacked diffusers UNet2DModel, CPU default) | dit (DiTTransformer2DModel over the same stack)
    | latte (LatteTransformer3DModel, spatial + temporal blocks) | cogvideox (CogVideoXTransformer3DModel, full
    3D attention); latte and cogvideox take noisy + condition + mask per frame (7 channels) and are sized by
    the dit_* fields."""
    num_frames: int = 32
    """Frames per video; must equal the dataset's frame count."""
    cond_frames: int = 3
    """Leading frames given as the condition (the paper: 3; 1 for combinatorial scenes)."""
    resolution: int = 32
    """Frame side in pixels; must equal the dataset's resolution."""
    unet_channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """UNet block_out_channels, one per resolution level (the last level has self-attention)."""
    unet_layers_per_block: int = 1
    """ResNet layers per UNet block."""
    dit_layers: int = 6
    """Transformer blocks of dit / cogvideox; latte has this many spatial and as many temporal blocks."""
    dit_heads: int = 4
    """Transformer attention heads (dit, latte, cogvideox)."""
    dit_head_dim: int = 32
    """Transformer channels per head (hidden size = heads * head_dim)."""
    dit_patch: int = 4
    """Transformer patch side in pixels (in latent pixels with latent_vae)."""
    # ---- diffusion ----
    num_train_timesteps: int = 1000
    """DDPM timesteps (v-prediction, squaredcos_cap_v2 betas rescaled to zero terminal SNR)."""
    prediction_type: str = "v_prediction"
    """v_prediction (the paper's) | sample (x0-prediction; see diffusion.py on narrow frame-stacked UNets)."""
    sample_steps: int = 20
    """Sampler steps (trailing spacing) when sampling grids and evaluating."""
    sampler: str = "ddim"
    """ddim (DDIMScheduler, eta 0) | euler (EulerDiscreteScheduler from the same DDPM schedule, see diffusion.py)."""
    latent_vae: str = ""
    """Frame VAE directory (latent.py's train_frame_vae output, frozen): diffuse in its latent space, decode
    to pixels for samples and evaluation. Empty = pixel space."""
    # ---- training ----
    batch_size: int = 16
    """Videos per step and process (the global batch is batch_size * processes)."""
    max_steps: int = 2000
    """Optimizer steps of the run."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    lr_schedule: str = "cosine"
    """constant | cosine (both after a linear warmup), a pure function of the step."""
    warmup_steps: int = 100
    """Linear learning-rate warmup steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip (0 = off)."""
    ema_decay: float = 0.999
    """Maximum EMA decay (diffusers EMAModel with warmup); the EMA weights are the exported model."""
    seed: int = 0
    """Seed of initialisation, batches, noise and timesteps (each a pure function of seed, step and rank)."""
    mixed_precision: str = "no"
    """no | bf16 | fp16 (accelerate; GPU presets use bf16)."""
    # ---- bookkeeping ----
    log_every: int = 20
    """Steps between metrics records."""
    checkpoint_every: int = 250
    """Steps between checkpoints (and one at the end)."""
    sample_every: int = 500
    """Steps between sample grids (ground truth | prediction | error) in videos/ (0 = only at the end)."""
    sample_videos: int = 4
    """Videos in each sample grid."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.prediction_type not in ("v_prediction", "sample"):
            raise ConfigError(f"unknown prediction_type {self.prediction_type!r}; choose v_prediction or sample")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"unknown mixed_precision {self.mixed_precision!r}; "
                              f"choose one of {', '.join(MIXED_PRECISION)}")
        if not 1 <= self.cond_frames < self.num_frames:
            raise ConfigError(f"cond_frames must be in 1..num_frames-1, got {self.cond_frames} "
                              f"(num_frames {self.num_frames})")
        if self.resolution < 8:
            raise ConfigError(f"resolution must be >= 8, got {self.resolution}")
        levels = len(self.unet_channels)
        if levels < 2 or any(c < 8 or c % 8 for c in self.unet_channels):
            raise ConfigError(f"unet_channels needs >= 2 levels of multiples of 8, got {self.unet_channels}")
        for name in ("batch_size", "max_steps", "sample_steps", "num_train_timesteps", "log_every",
                     "checkpoint_every", "unet_layers_per_block", "dit_layers", "dit_heads", "dit_head_dim",
                     "dit_patch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.latent_vae:  # with a VAE the backbone works at the latent side: checked once it is loaded
            check_backbone_resolution(self, self.resolution)
        if self.sample_every < 0 or self.sample_videos < 0 or self.warmup_steps < 0:
            raise ConfigError("sample_every, sample_videos and warmup_steps must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("lr must be > 0, weight_decay and grad_clip >= 0")


def check_backbone_resolution(cfg: VideoDiffusionConfig, side: int, what: str = "resolution") -> None:
    """ConfigError (one line) unless the backbone can work on ``side`` x ``side`` frames (pixels, or latent
    pixels with a frame VAE: ``what="latent side"``): UNet levels halve it, transformer patches tile it."""
    levels = len(cfg.unet_channels)
    if cfg.backbone == "unet" and side % (2 ** (levels - 1)):
        raise ConfigError(f"{what} {side} is not divisible by 2**{levels - 1} ({levels} UNet levels)")
    if cfg.backbone in TRANSFORMERS and side % cfg.dit_patch:
        raise ConfigError(f"{what} {side} is not divisible by dit_patch {cfg.dit_patch}")


PRESETS: dict[str, dict[str, Any]] = {
    # Tests: a few steps of a tiny model at 16 px.
    "debug": {"resolution": 16, "unet_channels": [8, 16], "dit_layers": 1, "dit_heads": 2, "dit_head_dim": 8,
              "batch_size": 2, "max_steps": 4, "warmup_steps": 1, "sample_steps": 2, "log_every": 1,
              "checkpoint_every": 2, "sample_every": 0, "sample_videos": 1},
    # The CPU preset: uniform motion at 32 px, one process, ~20 minutes on 2 cores. x0-prediction: the
    # 32-channel full-resolution level of this UNet cannot cancel the noise of 96 v-predicted channels.
    "cpu-small": {"max_steps": 1800, "prediction_type": "sample"},
    # GPU presets (not run on these machines yet): larger models, bf16.
    "gpu-s": {"resolution": 64, "backbone": "dit", "dit_layers": 12, "dit_heads": 6, "dit_head_dim": 64,
              "dit_patch": 4, "batch_size": 32, "max_steps": 50_000, "lr": 1e-4, "warmup_steps": 1000,
              "mixed_precision": "bf16", "checkpoint_every": 2000, "sample_every": 5000, "sample_steps": 50},
    "gpu-b": {"resolution": 128, "backbone": "dit", "dit_layers": 12, "dit_heads": 12, "dit_head_dim": 64,
              "dit_patch": 8, "batch_size": 32, "max_steps": 100_000, "lr": 1e-4, "warmup_steps": 1000,
              "mixed_precision": "bf16", "checkpoint_every": 2000, "sample_every": 5000, "sample_steps": 50},
    # The spatio-temporal transformer on GPUs: gpu-s with Latte blocks (12 spatial + 12 temporal).
    "gpu-latte": {"resolution": 64, "backbone": "latte", "dit_layers": 12, "dit_heads": 6, "dit_head_dim": 64,
                  "dit_patch": 4, "batch_size": 32, "max_steps": 50_000, "lr": 1e-4, "warmup_steps": 1000,
                  "mixed_precision": "bf16", "checkpoint_every": 2000, "sample_every": 5000, "sample_steps": 50},
    # The paper's setting: 128 px through a frozen frame VAE (add latent_vae=DIR; 4 x 16 x 16 latents for a
    # VAE with 4 levels), Latte blocks with patch 2 over the latents.
    "gpu-latent": {"resolution": 128, "backbone": "latte", "dit_layers": 12, "dit_heads": 6, "dit_head_dim": 64,
                   "dit_patch": 2, "batch_size": 32, "max_steps": 100_000, "lr": 1e-4, "warmup_steps": 1000,
                   "mixed_precision": "bf16", "checkpoint_every": 2000, "sample_every": 5000,
                   "sample_steps": 50},
}


def video_diffusion_config(presets: list[str] | tuple[str, ...] = (),
                           overrides: list[str] | tuple[str, ...] = ()) -> VideoDiffusionConfig:
    """Defaults <- each preset of :data:`PRESETS` in order <- each ``key=value`` override."""
    from simlab.config import from_dict, parse_override, to_dict

    data = to_dict(VideoDiffusionConfig())
    for name in presets:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        data.update(PRESETS[name])
    for ov in overrides:
        path, value = parse_override(ov)
        if len(path) != 1 or path[0] not in data:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(data))}")
        data[path[0]] = value
    return from_dict(VideoDiffusionConfig, data)
