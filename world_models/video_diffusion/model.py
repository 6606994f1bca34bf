"""The conditional video denoiser: diffusers backbones over (noisy video, condition video, mask).

Input per video (Kang et al. 2024): the noisy video, the condition video
(the first ``cond_frames`` frames, zero elsewhere) and a binary per-frame
mask. Per frame that is ``C + C + 1`` channels of ``h x w``, where ``C = 3``
and ``h = w = resolution`` in pixel space, or the frame VAE's latent
channels and side (``resolution // latent_factor``) in latent space (see
:mod:`.latent`). The backbone predicts the target (v or x0) of every frame.

Backbones (diffusers' own, chosen by ``backbone``):

- ``unet``: ``UNet2DModel`` over frames stacked on channels (``T*(2C+1)`` in,
  ``T*C`` out), self-attention at the lowest level (the CPU default).
- ``dit``: ``DiTTransformer2DModel`` over the same stack. Its AdaLN-Zero
  needs a class label; a single constant label is used and the label
  dropout diffusers hard-codes for classifier-free guidance
  (``class_dropout_prob=0.1``) is switched off, so the timestep embedding is
  never perturbed.
- ``latte``: ``LatteTransformer3DModel`` (spatial and temporal transformer
  blocks alternating), fed ``(B, 2C+1, T, h, w)``: the channels are per frame,
  the frames are its video axis. Its spatial blocks cross-attend to a caption
  it requires; it is given one constant all-zero caption token
  (``caption_channels`` = :data:`CAPTION_CHANNELS`), which its caption
  projection turns into one learned constant key/value. Nothing in Latte
  drops or perturbs that input in training mode (its ``dropout`` is 0).
- ``cogvideox``: ``CogVideoXTransformer3DModel`` (full 3D attention over all
  patches of all frames, ``temporal_compression_ratio=1``), fed
  ``(B, T, 2C+1, h, w)`` and one constant all-zero text token
  (``max_text_seq_length=1``), which becomes one learned constant token in
  its joint attention; no dropout in training mode either.

Every parameter of every backbone receives a gradient (so DDP needs no
``find_unused_parameters``). The class is a diffusers ``ModelMixin`` +
``ConfigMixin`` with ``@register_to_config``: ``save_pretrained(dir)`` writes
``config.json`` and ``diffusion_pytorch_model.safetensors``; :func:`load_model`
reads them back and turns any failure into a one-line
:class:`simlab.errors.CheckpointError`.
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
CAPTION_CHANNELS = 8
"""Width of the constant zero caption (latte) / text token (cogvideox) the transformers require."""
BACKBONES: tuple[str, ...] = ("unet", "dit", "latte", "cogvideox")


def _unet(num_frames: int, resolution: int, channels: list[int], layers_per_block: int,
          frame_channels: int = CHANNELS) -> nn.Module:
    from diffusers import UNet2DModel

    n = len(channels)
    return UNet2DModel(
        sample_size=resolution,
        in_channels=num_frames * (2 * frame_channels + 1),
        out_channels=num_frames * frame_channels,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * (n - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        norm_num_groups=min(32, channels[0]),
        attention_head_dim=min(32, channels[-1]),
    )


def _dit(num_frames: int, resolution: int, layers: int, heads: int, head_dim: int, patch: int,
         frame_channels: int = CHANNELS) -> nn.Module:
    from diffusers import DiTTransformer2DModel
    from diffusers.models.embeddings import LabelEmbedding

    dit = DiTTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=num_frames * (2 * frame_channels + 1),
        out_channels=num_frames * frame_channels,
        num_layers=layers,
        sample_size=resolution,
        patch_size=patch,
        num_embeds_ada_norm=1,
    )
    for m in dit.modules():  # no classifier-free-guidance label dropout (see module docstring)
        if isinstance(m, LabelEmbedding):
            m.dropout_prob = 0.0
    return dit


def _latte(num_frames: int, side: int, layers: int, heads: int, head_dim: int, patch: int,
           frame_channels: int) -> nn.Module:
    from diffusers import LatteTransformer3DModel

    return LatteTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=2 * frame_channels + 1,
        out_channels=frame_channels,
        num_layers=layers,
        cross_attention_dim=heads * head_dim,
        sample_size=side,
        patch_size=patch,
        activation_fn="gelu-approximate",
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        caption_channels=CAPTION_CHANNELS,
        video_length=num_frames,
    )


def _cogvideox(num_frames: int, side: int, layers: int, heads: int, head_dim: int, patch: int,
               frame_channels: int) -> nn.Module:
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel(
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=2 * frame_channels + 1,
        out_channels=frame_channels,
        time_embed_dim=heads * head_dim,
        text_embed_dim=CAPTION_CHANNELS,
        num_layers=layers,
        sample_width=side,
        sample_height=side,
        sample_frames=num_frames,
        patch_size=patch,
        temporal_compression_ratio=1,
        max_text_seq_length=1,
    )


class VideoDiffusionModel(ModelMixin, ConfigMixin):
    """Predicts the v- or x0-target of a whole video from (noisy video, condition video, mask, timestep).

    Args:
        backbone: ``unet``, ``dit``, ``latte`` or ``cogvideox``.
        num_frames: T, frames per video.
        cond_frames: c, leading frames given as the condition.
        resolution: frame side H = W in pixels (of the videos, also in latent space).
        unet_channels, unet_layers_per_block: UNet2DModel widths and depth.
        dit_layers, dit_heads, dit_head_dim, dit_patch: transformer size (dit, latte, cogvideox).
        channels: C, channels per frame the model diffuses: 3 (RGB) or the frame VAE's latent channels.
        latent_factor: 1 in pixel space, else the frame VAE's downsampling factor (the backbone works on
            ``resolution // latent_factor`` sides; the VAE is saved in the model directory's ``vae/``).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, backbone: str = "unet", num_frames: int = 32, cond_frames: int = 3, resolution: int = 32,
                 unet_channels: tuple[int, ...] = (32, 64, 128), unet_layers_per_block: int = 1,
                 dit_layers: int = 6, dit_heads: int = 4, dit_head_dim: int = 32, dit_patch: int = 4,
                 channels: int = CHANNELS, latent_factor: int = 1) -> None:
        super().__init__()
        side = resolution // latent_factor
        if backbone == "unet":
            self.net = _unet(num_frames, side, list(unet_channels), unet_layers_per_block, channels)
        elif backbone == "dit":
            self.net = _dit(num_frames, side, dit_layers, dit_heads, dit_head_dim, dit_patch, channels)
        elif backbone == "latte":
            self.net = _latte(num_frames, side, dit_layers, dit_heads, dit_head_dim, dit_patch, channels)
        elif backbone == "cogvideox":
            self.net = _cogvideox(num_frames, side, dit_layers, dit_heads, dit_head_dim, dit_patch, channels)
        else:
            raise CheckpointError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")

    @property
    def latent(self) -> bool:
        """True when the model diffuses in a frame VAE's latent space (see :mod:`.latent`)."""
        return int(self.config.latent_factor) > 1

    def forward(self, noisy: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
                timesteps: torch.Tensor) -> torch.Tensor:
        """v- or x0-prediction (the training schedule's ``prediction_type``).

        Args:
            noisy: ``(B, T, C, h, w)`` noisy video (model space: pixels in [-1, 1] or scaled VAE latents).
            cond: ``(B, T, C, h, w)`` condition frames, zero where not given.
            mask: ``(B, T, 1, h, w)`` 1 for condition frames, 0 elsewhere.
            timesteps: ``(B,)`` DDPM timesteps (integers in 0..num_train_timesteps-1).

        Returns:
            ``(B, T, C, h, w)`` the prediction.
        """
        b, t, c, h, w = noisy.shape
        if self.config.backbone in ("latte", "cogvideox"):
            x = torch.cat([noisy, cond, mask.to(noisy.dtype)], dim=2)  # (B, T, 2C+1, h, w)
            const = torch.zeros(b, 1, CAPTION_CHANNELS, device=x.device, dtype=x.dtype)
            if self.config.backbone == "latte":  # Latte reads (B, channels, frames, h, w)
                out = self.net(x.permute(0, 2, 1, 3, 4), timestep=timesteps, encoder_hidden_states=const).sample
                return out.permute(0, 2, 1, 3, 4)
            return self.net(x, encoder_hidden_states=const, timestep=timesteps).sample
        x = torch.cat([noisy.reshape(b, t * c, h, w), cond.reshape(b, t * c, h, w),
                       mask.reshape(b, t, h, w).to(noisy.dtype)], dim=1)
        if self.config.backbone == "dit":
            labels = torch.zeros(b, dtype=torch.long, device=x.device)
            out = self.net(x, timestep=timesteps, class_labels=labels).sample
        else:
            out = self.net(x, timesteps).sample
        return out.reshape(b, t, c, h, w)


def model_kwargs(cfg, channels: int = CHANNELS, latent_factor: int = 1) -> dict:  # cfg: VideoDiffusionConfig
    """The constructor arguments of :class:`VideoDiffusionModel` taken from a training config (and, for
    latent diffusion, the frame VAE's latent channels and downsampling factor, :func:`.latent.latent_geometry`)."""
    return {"backbone": cfg.backbone, "num_frames": cfg.num_frames, "cond_frames": cfg.cond_frames,
            "resolution": cfg.resolution, "unet_channels": tuple(cfg.unet_channels),
            "unet_layers_per_block": cfg.unet_layers_per_block, "dit_layers": cfg.dit_layers,
            "dit_heads": cfg.dit_heads, "dit_head_dim": cfg.dit_head_dim, "dit_patch": cfg.dit_patch,
            "channels": channels, "latent_factor": latent_factor}


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
