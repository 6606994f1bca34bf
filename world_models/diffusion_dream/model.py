"""The diffusion dream's networks: a DIAMOND-style next-frame denoiser and a reward/termination head.

:class:`ActionFrameDenoiser` (diffusers ``ModelMixin`` + ``ConfigMixin``) wraps a
``UNet2DModel`` whose input stacks, on channels, the noisy next frame and the
last ``context`` frames: ``3 * (context + 1)`` channels of ``H x W``. Actions
(the last ``context`` ones, the newest being the action taken now) are embedded
(one table per position, summed) into a ``(B, 4 * channels[0])`` vector fed as
``class_labels`` with ``class_embed_type="identity"``: it is added to the noise
embedding and every ResNet block applies adaptive group norm from it
(``resnet_time_scale_shift="scale_shift"``), as DIAMOND does.

EDM preconditioning (Karras et al. 2022, DIAMOND; ``sigma_data = 0.5``), frames in
``[-1, 1]``::

    c_in   = 1 / sqrt(sigma^2 + sigma_data^2)
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out  = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_noise = log(sigma) / 4                        (times ``NOISE_SCALE`` for the positional embedding)
    D(x; sigma) = c_skip * x + c_out * F(c_in * x, c_noise)

:class:`RewardDoneHead` is a separate small CNN trained on the same transitions:
from the context frames, the action and the next frame it predicts the reward
and the termination logit.

Both save with diffusers' own ``save_pretrained`` (``config.json`` +
``diffusion_pytorch_model.safetensors``, no pickles); :func:`load_module` turns
any loading failure into a one-line :class:`simlab.errors.CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from simlab.errors import CheckpointError, ConfigError

SIGMA_DATA = 0.5
"""EDM's data standard deviation (DIAMOND: 0.5 for frames in [-1, 1])."""
NOISE_SCALE = 250.0
"""``c_noise = log(sigma) / 4`` is multiplied by this before diffusers' sinusoidal (positional)
timestep embedding, whose frequencies are laid out for DDPM timesteps 0..1000
(``time_embedding_type="fourier"`` takes ``log()`` of its input, which does not suit EDM)."""


def edm_precondition(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM coefficients ``(c_in, c_skip, c_out, c_noise)`` of noise levels ``sigma`` ``(B,)`` (> 0),
    each ``(B,)`` (see the module docstring)."""
    s2 = sigma * sigma
    d2 = sigma_data * sigma_data
    root = torch.sqrt(s2 + d2)
    return 1.0 / root, d2 / (s2 + d2), sigma * sigma_data / root, torch.log(sigma) / 4.0


def _bc(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` -> ``(B, 1, 1, 1)`` for broadcasting over frames."""
    return x.view(-1, 1, 1, 1)


class ActionFrameDenoiser(ModelMixin, ConfigMixin):
    """``D(x; sigma, context frames, context actions)``: the denoised next frame.

    Args:
        n_actions: size of the discrete action space (Procgen: 15). Index ``n_actions`` is the
            padding action of context slots before an episode's first step.
        resolution: frame side H = W in pixels (the dream's frames).
        context: frames (and actions) conditioned on (DIAMOND: 4).
        channels: ``UNet2DModel`` block widths, one per resolution level.
        layers_per_block: ResNet blocks per level.
        sigma_data: EDM's data std.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, n_actions: int = 15, resolution: int = 32, context: int = 4,
                 channels: tuple[int, ...] = (32, 32, 64), layers_per_block: int = 1,
                 sigma_data: float = SIGMA_DATA) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        ch = [int(c) for c in channels]
        if n_actions < 1 or context < 1 or not ch or min(ch) < 1:
            raise ConfigError(f"bad denoiser size: n_actions={n_actions}, context={context}, channels={ch}")
        if resolution % (2 ** (len(ch) - 1)):
            raise ConfigError(f"resolution {resolution} is not divisible by 2^{len(ch) - 1} "
                              f"(the UNet has {len(ch)} levels)")
        n = len(ch)
        self.emb_dim = 4 * ch[0]
        self.unet = UNet2DModel(
            sample_size=resolution, in_channels=3 * (context + 1), out_channels=3,
            block_out_channels=tuple(ch), layers_per_block=layers_per_block,
            down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n, add_attention=False,
            resnet_time_scale_shift="scale_shift", class_embed_type="identity",
            norm_num_groups=min(32, ch[0]))
        # One embedding table per context position (position-aware action history), summed.
        self.action_emb = nn.Embedding(context * (n_actions + 1), self.emb_dim)
        nn.init.normal_(self.action_emb.weight, std=0.02)

    def embed_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """``(B, context)`` long action ids (``n_actions`` = padding) -> ``(B, 4 * channels[0])``."""
        k, na = self.config.context, self.config.n_actions + 1
        offs = torch.arange(k, device=actions.device) * na
        return self.action_emb(actions.long() + offs).sum(dim=1)

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor, ctx_frames: torch.Tensor,
                ctx_actions: torch.Tensor) -> torch.Tensor:
        """The preconditioned denoiser.

        Args:
            noisy: ``(B, 3, H, W)`` the next frame plus Gaussian noise of std ``sigma``.
            sigma: ``(B,)`` noise levels (> 0).
            ctx_frames: ``(B, context, 3, H, W)`` the last frames in [-1, 1], oldest first.
            ctx_actions: ``(B, context)`` long, the actions after each context frame (the last is
                the action taken now).

        Returns:
            ``(B, 3, H, W)`` the denoised next frame ``D(noisy; sigma)`` in model space.
        """
        b = noisy.shape[0]
        c_in, c_skip, c_out, c_noise = edm_precondition(sigma.to(noisy.dtype), self.config.sigma_data)
        x = torch.cat([_bc(c_in) * noisy, ctx_frames.reshape(b, -1, *noisy.shape[-2:])], dim=1)
        f = self.unet(x, c_noise * NOISE_SCALE, class_labels=self.embed_actions(ctx_actions)).sample
        return _bc(c_skip) * noisy + _bc(c_out) * f

    def raw_output(self, noisy: torch.Tensor, sigma: torch.Tensor, ctx_frames: torch.Tensor,
                   ctx_actions: torch.Tensor) -> torch.Tensor:
        """The UNet's own output ``F`` (what the EDM loss regresses), ``(B, 3, H, W)``."""
        b = noisy.shape[0]
        c_in, _, _, c_noise = edm_precondition(sigma.to(noisy.dtype), self.config.sigma_data)
        x = torch.cat([_bc(c_in) * noisy, ctx_frames.reshape(b, -1, *noisy.shape[-2:])], dim=1)
        return self.unet(x, c_noise * NOISE_SCALE, class_labels=self.embed_actions(ctx_actions)).sample


def edm_loss(model: ActionFrameDenoiser, target: torch.Tensor, ctx_frames: torch.Tensor,
             ctx_actions: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """EDM training loss: mean squared error of ``F`` against ``(x0 - c_skip * x) / c_out``
    (equal to ``lambda(sigma) * |D - x0|^2`` with EDM's weighting ``lambda = 1 / c_out^2``).

    Args:
        target: ``(B, 3, H, W)`` clean next frames ``x0`` in [-1, 1].
        sigma: ``(B,)`` noise levels; ``noise``: ``(B, 3, H, W)`` standard normal.
    """
    _, c_skip, c_out, _ = edm_precondition(sigma, model.config.sigma_data)
    noisy = target + _bc(sigma) * noise
    f = model.raw_output(noisy, sigma, ctx_frames, ctx_actions)
    return (f - (target - _bc(c_skip) * noisy) / _bc(c_out)).pow(2).mean()


class RewardDoneHead(ModelMixin, ConfigMixin):
    """Reward and termination of a transition from ``(context frames, action, next frame)``.

    A small strided CNN over the ``context + 1`` frames stacked on channels, its features
    concatenated with an embedding of the action, then an MLP to ``(reward, done_logit)``.

    Args:
        n_actions: action space size; resolution: frame side; context: context frames.
        width: channels of the first conv (doubled at each of the 3 strided convs).
        done_logit_offset: added to the done logit at prediction time: ``log(prior odds) -
            log(training odds)`` when terminal transitions were over-sampled in training (Bayes
            correction, so ``p_done`` is calibrated to the data); set by the trainer.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, n_actions: int = 15, resolution: int = 32, context: int = 4, width: int = 16,
                 done_logit_offset: float = 0.0) -> None:
        super().__init__()
        w = int(width)
        self.conv = nn.Sequential(
            nn.Conv2d(3 * (context + 1), w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.act = nn.Embedding(n_actions + 1, 32)
        self.mlp = nn.Sequential(nn.Linear(16 * w + 32, 128), nn.SiLU(), nn.Linear(128, 2))

    def forward(self, ctx_frames: torch.Tensor, action: torch.Tensor, next_frame: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reward (B,), done_logit (B,))`` (the logit WITHOUT ``done_logit_offset``).

        Args:
            ctx_frames: ``(B, context, 3, H, W)`` in [-1, 1]; action: ``(B,)`` long;
            next_frame: ``(B, 3, H, W)`` in [-1, 1].
        """
        b = next_frame.shape[0]
        x = torch.cat([ctx_frames.reshape(b, -1, *next_frame.shape[-2:]), next_frame], dim=1)
        out = self.mlp(torch.cat([self.conv(x), self.act(action.long())], dim=1))
        return out[:, 0], out[:, 1]

    def predict(self, ctx_frames: torch.Tensor, action: torch.Tensor, next_frame: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reward (B,), p_done (B,))`` with the calibration offset applied."""
        r, logit = self(ctx_frames, action, next_frame)
        return r, torch.sigmoid(logit + float(self.config.done_logit_offset))


def load_module(cls: type, path: str | Path) -> Any:
    """``cls.from_pretrained(path)`` (local files only, eval mode); CheckpointError (one line) on failure."""
    p = Path(path)
    if not (p / "config.json").exists():
        raise CheckpointError(f"{p}: no saved {cls.__name__} (config.json missing)")
    try:
        m = cls.from_pretrained(p, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - diffusers/safetensors raise many types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p}: cannot load the {cls.__name__} ({msg})") from None
    if not isinstance(m, cls):
        raise CheckpointError(f"{p}: holds a {type(m).__name__}, expected {cls.__name__}")
    return m.eval()


def count_params(m: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in m.parameters())


__all__ = ["NOISE_SCALE", "SIGMA_DATA", "ActionFrameDenoiser", "RewardDoneHead", "count_params", "edm_loss",
           "edm_precondition", "load_module"]
