"""ConvVAE of World Models (Ha & Schmidhuber 2018): 64x64 RGB frames <-> latent z.

Architecture (as in World Models and Dropout's Dream Land):

- encoder: conv 32, 64, 128, 256 (kernel 4, stride 2, ReLU): 64 -> 31 -> 14 -> 6 -> 2,
  flattened to 1024 -> ``mu``, ``logvar`` (Linear, ``z_dim`` each);
- decoder: Linear ``z_dim`` -> 1024 (a 1x1 map) -> deconv 128, 64, 32 (kernels 5, 5, 6,
  stride 2, ReLU) -> deconv ``channels`` (kernel 6, stride 2) -> sigmoid: 1 -> 5 -> 13 -> 30 -> 64.

Loss (per frame, averaged over the batch): squared error summed over pixels
(values in [0, 1]) plus the KL divergence to N(0, I) summed over ``z_dim``
and floored at ``kl_tolerance * z_dim`` (free bits, as in World Models).
Frames are channels-last ``(B, 64, 64, 3)``; uint8 frames are scaled by 1/255.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from simlab.errors import ConfigError
from simlab.training import check_loss, check_weights
from simlab.world_models.base import resolve_device
from simlab.world_models.modeling import SimlabModelMixin, make_config

LogFn = Callable[[int, dict[str, float]], None]
"""``log(step, metrics)``: called with the gradient-step count and namespaced metrics."""


@dataclass
class ConvVAEConfig:
    """Constructor arguments of :class:`ConvVAE`."""

    z_dim: int = 32
    """Latent size (World Models: 32 for CarRacing, 64 for Doom)."""
    image_size: int = 64
    """Frame side in pixels; the World Models architecture needs 64."""
    channels: int = 3
    """Colour channels of a frame."""
    kl_tolerance: float = 0.5
    """KL floor per latent dimension (free bits); the KL term is max(KL, kl_tolerance * z_dim)."""
    width: int = 32
    """Channels of the first conv layer; the encoder has ``width * (1, 2, 4, 8)`` and the decoder
    mirrors it (32: World Models' ConvVAE; 16 costs about a quarter of the FLOPs per frame)."""
    fg_weight: float = 0.0
    """Extra weight of foreground pixels in the reconstruction loss: a pixel whose colour differs
    (by > 0.1 in any channel) from its frame's background (the per-channel median) counts
    ``1 + fg_weight`` times. 0 is World Models' plain squared error; small sprites on a plain
    background (Dodge's fireballs) need it, or the VAE learns the background first and the sprites
    never."""
    fg_density_power: float = 0.0
    """Divide a foreground pixel's extra weight by the fraction of foreground pixels in its
    :data:`DENSITY_WINDOW`-px square neighbourhood raised to this power (:func:`foreground_weight`;
    0: every foreground pixel weighs ``fg_weight``). A sprite's total weight grows with its area,
    so a just-thrown 5-px fireball weighs little beside an enemy; 0.5 gives its pixels 1.8x
    the weight of an enemy's interior."""

    def __post_init__(self) -> None:
        if int(self.z_dim) != self.z_dim or self.z_dim < 1:
            raise ConfigError(f"ConvVAEConfig.z_dim must be a positive integer, got {self.z_dim!r}")
        if self.image_size != 64:
            raise ConfigError(f"ConvVAEConfig.image_size: the World Models ConvVAE takes 64x64 frames, "
                              f"got {self.image_size!r}")
        if int(self.channels) != self.channels or self.channels < 1:
            raise ConfigError(f"ConvVAEConfig.channels must be a positive integer, got {self.channels!r}")
        if not (math.isfinite(float(self.kl_tolerance)) and self.kl_tolerance >= 0):
            raise ConfigError(f"ConvVAEConfig.kl_tolerance must be >= 0, got {self.kl_tolerance!r}")
        self.z_dim, self.channels = int(self.z_dim), int(self.channels)
        self.kl_tolerance = float(self.kl_tolerance)
        if int(self.width) != self.width or self.width < 1:
            raise ConfigError(f"ConvVAEConfig.width must be a positive integer, got {self.width!r}")
        self.width = int(self.width)
        if not (math.isfinite(float(self.fg_weight)) and self.fg_weight >= 0):
            raise ConfigError(f"ConvVAEConfig.fg_weight must be >= 0, got {self.fg_weight!r}")
        self.fg_weight = float(self.fg_weight)
        if not (math.isfinite(float(self.fg_density_power)) and self.fg_density_power >= 0):
            raise ConfigError(f"ConvVAEConfig.fg_density_power must be >= 0, got {self.fg_density_power!r}")
        self.fg_density_power = float(self.fg_density_power)


class ConvVAE(SimlabModelMixin):
    """World Models ConvVAE: ``(B, 64, 64, C)`` frames -> ``z`` ``(B, z_dim)`` -> frames.

    A diffusers ``ModelMixin`` + ``ConfigMixin`` (:class:`~simlab.world_models.modeling.SimlabModelMixin`):
    ``save_pretrained(dir)`` writes ``config.json`` (the :class:`ConvVAEConfig` fields) +
    ``diffusion_pytorch_model.safetensors``; ``ConvVAE.from_pretrained(dir)`` reads it back.

    Args:
        config: a :class:`ConvVAEConfig`, or its fields as keyword arguments
            (``ConvVAE(z_dim=8)``; a field left None takes the config's default).
    """

    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig | None = None, *, z_dim: int | None = None,
                 image_size: int | None = None, channels: int | None = None, kl_tolerance: float | None = None,
                 width: int | None = None, fg_weight: float | None = None, **kwargs: Any) -> None:
        super().__init__()
        self._set_config(make_config(ConvVAEConfig, config, {
            "z_dim": z_dim, "image_size": image_size, "channels": channels, "kl_tolerance": kl_tolerance,
            "width": width, "fg_weight": fg_weight, **kwargs}))
        c, z, w = self.config.channels, self.config.z_dim, self.config.width
        flat = 32 * w  # 8w channels x 2 x 2 (1024 for World Models' width 32)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, w, 4, 2), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, 2), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2), nn.ReLU(),
            nn.Conv2d(4 * w, 8 * w, 4, 2), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(flat, z)
        self.fc_logvar = nn.Linear(flat, z)
        self.fc_dec = nn.Linear(z, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(flat, 4 * w, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 6, 2), nn.ReLU(),
            nn.ConvTranspose2d(w, c, 6, 2), nn.Sigmoid(),
        )

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def device(self) -> torch.device:
        return self.fc_mu.weight.device

    def _frames(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``(B, 64, 64, C)`` uint8 (0-255) or float (0-1) -> float ``(B, C, 64, 64)`` on the device."""
        t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"frames must be a numpy array or torch tensor, got {type(x).__name__}")
        s, c = self.config.image_size, self.config.channels
        if t.ndim != 4 or tuple(t.shape[1:]) != (s, s, c):
            raise ConfigError(f"frames must have shape (B, {s}, {s}, {c}), got {tuple(t.shape)}")
        t = t.to(self.device)
        if t.dtype == torch.uint8:
            t = t.float().div_(255.0)
        elif not t.is_floating_point():
            raise ConfigError(f"frames must be uint8 (0-255) or float (0-1), got {t.dtype}")
        return t.permute(0, 3, 1, 2).float()

    def encode(self, x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames ``(B, 64, 64, C)`` uint8 -> ``(mu, logvar)``, each ``(B, z_dim)`` float32."""
        return self._encode(self._frames(x))

    def _encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(frames)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(B, z_dim)`` -> frames ``(B, 64, 64, C)`` float in [0, 1]."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ConfigError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = self.fc_dec(z)  # (B, 32 * width)
        # The first transposed conv sees a 1x1 input, so it is a matrix product with its weight
        # (in, out, k, k) flattened to (in, out * k * k): the same map and parameters, computed as
        # one matmul. torch's CPU transposed conv takes a slow path here (measured at width 16,
        # batch 32, one thread: 26 ms of a ~100 ms VAE training step; the product ~1 ms).
        first = self.decoder[0]
        y = (h @ first.weight.flatten(1)).view(-1, first.out_channels, *first.kernel_size)
        return self.decoder[1:](y + first.bias[:, None, None]).permute(0, 2, 3, 1)

    @torch.no_grad()
    def decode_uint8(self, z: torch.Tensor) -> np.ndarray:
        """``z`` ``(B, z_dim)`` -> frames ``(B, 64, 64, C)`` np.uint8."""
        return (self.decode(z) * 255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """``mu + exp(logvar / 2) * eps``, eps ~ N(0, I) drawn from ``generator``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: np.ndarray | torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frames -> ``(reconstruction (B, 64, 64, C) in [0, 1], mu, logvar)`` with a sampled z."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    def loss(self, x: np.ndarray | torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, recon, kl)`` scalars, each averaged over the batch.

        ``recon``: squared error summed over the pixels of a frame (values in [0, 1]), foreground
        pixels weighted ``1 + fg_weight`` (``fg_density_power`` > 0: ``1 + fg_weight * w``,
        :func:`foreground_weight`);
        ``kl``: KL(q(z|x) || N(0, I)) summed over z, floored at ``kl_tolerance * z_dim``.
        """
        frames = self._frames(x)
        target = frames.permute(0, 2, 3, 1)
        mu, logvar = self._encode(frames)
        recon_x = self.decode(self.reparameterize(mu, logvar, generator))
        err = (recon_x - target).pow(2)
        if self.config.fg_weight > 0:
            w = foreground_weight(target, self.config.fg_density_power)
            err = err * (1.0 + self.config.fg_weight * w[..., None])
        recon = err.sum(dim=(1, 2, 3)).mean()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
        kl = kl.clamp(min=self.config.kl_tolerance * self.z_dim).mean()
        return recon + kl, recon, kl


def foreground_mask(frames: torch.Tensor, threshold: float = 0.1) -> torch.Tensor:
    """Pixels that differ from their frame's background: ``(B, H, W, C)`` floats in [0, 1] ->
    ``(B, H, W)`` float 0/1, where the background is the per-channel median colour of the frame
    (taken over every 8th row and column: a full median costs as much as the VAE's encoder) and
    "differs" means by more than ``threshold`` in some channel."""
    bg = frames[:, ::8, ::8].flatten(1, 2).median(dim=1).values  # (B, C)
    return ((frames - bg[:, None, None, :]).abs().amax(dim=-1) > threshold).to(frames.dtype)


DENSITY_WINDOW = 9
"""Side (px) of the neighbourhood whose foreground fraction divides a pixel's weight: wider than a
Dodge fireball (5-11 px), narrower than the frame's sprite rows."""


def foreground_weight(frames: torch.Tensor, power: float = 0.0) -> torch.Tensor:
    """Relative extra weight of each pixel: ``(B, H, W, C)`` floats in [0, 1] -> ``(B, H, W)``.

    0 off the foreground (:func:`foreground_mask`); on it ``d ** -power``, ``d`` the fraction of
    foreground pixels in the pixel's :data:`DENSITY_WINDOW` square (floored at one pixel), so
    with ``power`` 0 every sprite pixel weighs 1 and with ``power`` > 0 the pixels of small or
    thin sprites weigh more than a large sprite's interior (which has ``d`` = 1, weight 1).
    Hand-written: no library weighs a reconstruction loss by sprite size.
    """
    m = foreground_mask(frames)
    if power == 0:
        return m
    k = DENSITY_WINDOW
    d = torch.nn.functional.avg_pool2d(m[:, None], k, stride=1, padding=k // 2, count_include_pad=True)[:, 0]
    return m * d.clamp(min=1.0 / (k * k)).pow(-power)


@dataclass
class VAETrainConfig:
    """Hyperparameters of :func:`train_vae` (World Models defaults)."""

    z_dim: int = 32
    """Latent size of the ConvVAE."""
    kl_tolerance: float = 0.5
    """KL floor per latent dimension (free bits)."""
    width: int = 32
    """First conv layer's channels (see :class:`ConvVAEConfig`)."""
    fg_weight: float = 0.0
    """Extra reconstruction weight of foreground pixels (see :class:`ConvVAEConfig`)."""
    fg_density_power: float = 0.0
    """Small sprites weigh more (see :class:`ConvVAEConfig`)."""
    epochs: int = 10
    """Passes over the frames."""
    batch_size: int = 100
    """Frames per gradient step."""
    lr: float = 1e-4
    """Adam learning rate."""
    lr_schedule: str = "constant"
    """``constant`` (World Models), or ``cosine``: the rate decays from ``lr`` to 0 over the run's
    gradient steps (torch's ``CosineAnnealingLR``), so the last epochs settle instead of leaving
    the weights where the last noisy steps put them."""
    max_steps: int | None = None
    """Stop after this many gradient steps (None: run every epoch)."""
    log_every: int = 0
    """Also call ``log`` every this many gradient steps (0: once per epoch only)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"VAETrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"VAETrainConfig.lr must be > 0, got {self.lr!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"VAETrainConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"VAETrainConfig.max_steps must be >= 1 or None, got {self.max_steps!r}")
        if self.log_every < 0:
            raise ConfigError(f"VAETrainConfig.log_every must be >= 0, got {self.log_every!r}")


def _check_frames(frames: Any) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[1:3] != (64, 64):
        desc = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ConfigError(f"frames must be a uint8 array (N, 64, 64, C), got {desc}")
    if len(frames) == 0:
        raise ConfigError("frames is empty")
    return frames


def train_vae(frames: np.ndarray, cfg: VAETrainConfig | None = None, device: str | torch.device = "cpu",
              progress: bool = False, seed: int = 0, log: LogFn | None = None,
              model: ConvVAE | None = None) -> ConvVAE:
    """Train a :class:`ConvVAE` on ``frames`` with Adam; returns it in eval mode.

    Args:
        frames: uint8 ``(N, 64, 64, C)``.
        cfg: hyperparameters (default :class:`VAETrainConfig`).
        device: where to train.
        progress: show a tqdm bar over gradient steps.
        seed: seeds the initial weights, the batch order and the reparameterisation
            noise; on CPU two runs with the same seed give identical weights.
        log: ``log(step, {"vae/loss", "vae/recon", "vae/kl", "vae/epoch", "vae/lr"})`` with means
            since the last call: after every epoch (and every ``cfg.log_every`` steps).
        model: continue training this VAE instead of a new one (its config must match
            ``cfg.z_dim``).
    """
    from tqdm.auto import tqdm

    cfg = cfg or VAETrainConfig()
    frames = _check_frames(frames)
    dev = resolve_device(device)
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ConvVAE(ConvVAEConfig(z_dim=cfg.z_dim, channels=frames.shape[3],
                                          kl_tolerance=cfg.kl_tolerance, width=cfg.width,
                                          fg_weight=cfg.fg_weight, fg_density_power=cfg.fg_density_power))
    elif model.z_dim != cfg.z_dim or model.config.channels != frames.shape[3]:
        raise ConfigError(f"model has z_dim {model.z_dim} and {model.config.channels} channels; "
                          f"cfg/frames ask for {cfg.z_dim} and {frames.shape[3]}")
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    n = len(frames)
    per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if cfg.lr_schedule == "cosine" else None
    sums = torch.zeros(3, dtype=torch.float64, device=dev)
    count, step = 0, 0

    def flush(epoch: float) -> None:
        nonlocal count
        if count == 0:
            return
        m = (sums / count).tolist()
        if log is not None:
            log(step, {"vae/loss": m[0], "vae/recon": m[1], "vae/kl": m[2], "vae/epoch": epoch,
                       "vae/lr": float(opt.param_groups[0]["lr"])})
        bar.set_postfix(loss=f"{m[0]:.2f}")
        sums.zero_()
        count = 0

    with tqdm(total=total, disable=not progress, desc="vae", unit="step") as bar:
        for epoch in range(cfg.epochs):
            perm = rng.permutation(n)
            for lo in range(0, n, cfg.batch_size):
                if step >= total:
                    break
                idx = np.sort(perm[lo:lo + cfg.batch_size])
                x = torch.from_numpy(frames[idx]).to(dev)
                loss, recon, kl = model.loss(x, generator=gen)
                check_loss(loss, step, "vae")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                sums += torch.stack([loss.detach(), recon.detach(), kl.detach()]).double()
                count += 1
                step += 1
                bar.update(1)
                if cfg.log_every and step % cfg.log_every == 0:
                    flush(epoch + (lo + cfg.batch_size) / n)
            flush(float(epoch + 1))
            if step >= total:
                break
    check_weights(model, "vae")
    return model.eval()


@torch.no_grad()
def encode_frames(vae: ConvVAE, frames: np.ndarray, batch_size: int = 256, sample: bool = False,
                  generator: torch.Generator | None = None) -> np.ndarray:
    """Encode uint8 frames ``(N, 64, 64, C)`` -> float32 ``(N, z_dim)``: ``mu``, or a sample of q(z|x)."""
    frames = _check_frames(frames)
    out = np.empty((len(frames), vae.z_dim), np.float32)
    for lo in range(0, len(frames), batch_size):
        mu, logvar = vae.encode(frames[lo:lo + batch_size])
        z = vae.reparameterize(mu, logvar, generator) if sample else mu
        out[lo:lo + len(z)] = z.cpu().numpy()
    return out


@torch.no_grad()
def reconstruct_frames(vae: ConvVAE, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The VAE's reconstruction of uint8 frames ``(N, 64, 64, C)`` -> uint8 ``(N, 64, 64, C)``:
    each frame decoded from its ``mu`` (what the diagnostics and the reconstruction grid show)."""
    return vae.decode_uint8(torch.as_tensor(encode_frames(vae, frames, batch_size), device=vae.device))
