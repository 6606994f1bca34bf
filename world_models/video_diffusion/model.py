"""The conditional video denoiser: a diffusers 2D backbone over frames stacked on channels.

Input per video (Kang et al. 2024): the noisy video, the condition video
(the first ``cond_frames`` frames, zero elsewhere) and a binary per-frame
mask, concatenated on channels: ``T*3 + T*3 + T`` channels of ``H x W``.
The backbone predicts the v-target of every frame, ``T*3`` channels.

Backbones (diffusers' own, chosen by ``backbone``):

- ``unet``: ``UNet2DModel`` with self-attention at the lowest level (the CPU default).
- ``dit``: ``DiTTransformer2DModel`` over the same stack. Its AdaLN-Zero
  needs a class label; a single constant label is used and the label
  dropout diffusers hard-codes for classifier-free guidance
  (``class_dropout_prob=0.1``) is switched off, so the timestep embedding is
  never perturbed.

The class is a diffusers ``ModelMixin`` + ``ConfigMixin`` with
``@register_to_config``: ``save_pretrained(dir)`` writes ``config.json`` and
``diffusion_pytorch_model.safetensors``; :func:`load_model` reads them back
and turns any failure into a one-line :class:`simlab.errors.CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from simlab.errors import CheckpointError

CHANNELS = 3
"""RGB."""


def _unet(num_frames: int, resolution: int, channels: list[int], layers_per_block: int) -> nn.Module:
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=resolution,
        in_channels=num_frames * (2 * CHANNELS + 1),
        out_channels=num_frames * CHANNELS,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        norm_num_groups=min(32, channels[0]),
        attention_head_dim=min(32, channels[-1]),
    )


def _dit(num_frames: int, resolution: int, layers: int, heads: int, head_dim: int, patch: int) -> nn.Module:
    from diffusers import DiTTransformer2DModel
    from diffusers.models.embeddings import LabelEmbedding

    dit = DiTTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=num_frames * (2 * CHANNELS + 1),
        out_channels=num_frames * CHANNELS,
        num_layers=layers,
        sample_size=resolution,
        patch_size=patch,
        num_embeds_ada_norm=1,
    )
    for m in dit.modules():  # no classifier-free-guidance label dropout (see module docstring)
        if isinstance(m, LabelEmbedding):
            m.dropout_prob = 0.0
    return dit


class VideoDiffusionModel(ModelMixin, ConfigMixin):
    """Predicts the v-target of a whole video from (noisy video, condition video, mask, timestep).

    Args:
        backbone: ``unet`` or ``dit``.
        num_frames: T, frames per video.
        cond_frames: c, leading frames given as the condition.
        resolution: frame side H = W in pixels.
        unet_channels, unet_layers_per_block: UNet2DModel widths and depth.
        dit_layers, dit_heads, dit_head_dim, dit_patch: DiT size.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, backbone: str = "unet", num_frames: int = 32, cond_frames: int = 3, resolution: int = 32,
                 unet_channels: tuple[int, ...] = (32, 64, 128), unet_layers_per_block: int = 1,
                 dit_layers: int = 6, dit_heads: int = 4, dit_head_dim: int = 32, dit_patch: int = 4) -> None:
        super().__init__()
        if backbone == "unet":
            self.net = _unet(num_frames, resolution, list(unet_channels), unet_layers_per_block)
        elif backbone == "dit":
            self.net = _dit(num_frames, resolution, dit_layers, dit_heads, dit_head_dim, dit_patch)
        else:
            raise CheckpointError(f"unknown backbone {backbone!r}; choose one of unet, dit")

    def forward(self, noisy: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """v-prediction.

        Args:
            noisy: ``(B, T, 3, H, W)`` noisy video (model space).
            cond: ``(B, T, 3, H, W)`` condition frames in [-1, 1], zero where not given.
            mask: ``(B, T, 1, H, W)`` 1 for condition frames, 0 elsewhere.
            timesteps: ``(B,)`` DDPM timesteps.

        Returns:
            ``(B, T, 3, H, W)`` predicted v.
        """
        b, t, c, h, w = noisy.shape
        x = torch.cat([noisy.reshape(b, t * c, h, w), cond.reshape(b, t * c, h, w),
                       mask.reshape(b, t, h, w).to(noisy.dtype)], dim=1)
        if self.config.backbone == "dit":
            labels = torch.zeros(b, dtype=torch.long, device=x.device)
            out = self.net(x, timestep=timesteps, class_labels=labels).sample
        else:
            out = self.net(x, timesteps).sample
        return out.reshape(b, t, c, h, w)


def model_kwargs(cfg) -> dict:  # cfg: VideoDiffusionConfig
    """The constructor arguments of :class:`VideoDiffusionModel` taken from a training config."""
    return {"backbone": cfg.backbone, "num_frames": cfg.num_frames, "cond_frames": cfg.cond_frames,
            "resolution": cfg.resolution, "unet_channels": tuple(cfg.unet_channels),
            "unet_layers_per_block": cfg.unet_layers_per_block, "dit_layers": cfg.dit_layers,
            "dit_heads": cfg.dit_heads, "dit_head_dim": cfg.dit_head_dim, "dit_patch": cfg.dit_patch}


def load_model(path: str | Path) -> VideoDiffusionModel:
    """Load a saved model: a run directory (its ``model/``) or a ``save_pretrained`` directory.

    Raises :class:`CheckpointError` (one line) when files are missing or corrupt. A model written by
    training carries ``files.sha256.json`` (size and SHA-256 of every file); it is checked first, so
    a flipped byte in the weights is caught even where safetensors would load it. (A bare
    ``save_pretrained`` directory has no record and is read as diffusers reads it.)
    """
    from simlab.integrity import DIGEST_RECORD, verify_dir_digests

    p = Path(path)
    if (p / "model" / "config.json").exists():
        p = p / "model"
    if not (p / "config.json").exists():
        raise CheckpointError(f"{path}: no saved video diffusion model (config.json) found")
    if (p / DIGEST_RECORD).exists():
        try:
            verify_dir_digests(p, CheckpointError, "video diffusion model")
        except CheckpointError as e:
            raise CheckpointError(f"cannot load the video diffusion model: {e}") from None
    try:
        model = VideoDiffusionModel.from_pretrained(p, local_files_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - diffusers/safetensors raise many types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p}: cannot load the video diffusion model ({msg})") from None
    return model.eval()
