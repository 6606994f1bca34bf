"""A frozen frame VAE for latent video diffusion: diffusers ``AutoencoderKL`` trained here on collision2d frames.

The paper diffuses at 128 px in the latent space of a frame VAE. This module
trains a small ``AutoencoderKL`` on single frames of a collision2d dataset
and gives the encode/decode helpers the video model uses when its config sets
``latent_vae=DIR``.

Training (:func:`train_frame_vae`): frames are rendered from the dataset's
exact states as the video model's training does (:class:`.data.TrainStream`,
``frames_per_video`` frames drawn from each of ``batch_size`` videos per step);
loss = mean squared reconstruction error + ``kl_weight`` * KL(q(z|x) || N(0, I))
(mean over latent elements). Batch, frame picks and posterior noise of step
``s`` are pure functions of ``(seed, s)`` and the learning rate of ``s``, so a
resumed run continues exactly as an unbroken one.

Latent scaling: after training, the latent means (posterior mode) of
``scale_videos`` videos give ``shift_factor`` (their mean) and
``scaling_factor`` (1 / their std), saved in the VAE's own ``config.json``;
the diffusion model sees ``(z - shift_factor) * scaling_factor``, unit
variance as its noise schedule assumes.

Directory written by :func:`train_frame_vae`::

    OUT/config.yaml                 resolved FrameVAEConfig
    OUT/metrics.jsonl               train/loss, train/recon, train/kl per log_every steps
    OUT/checkpoints/latest/         vae/ (save_pretrained), optimizer.safetensors (AdamW moments),
                                    trainer_state.json, files.sha256.json (written last)
    OUT/vae/                        the frozen VAE: config.json (+ measured scaling) and
                                    diffusion_pytorch_model.safetensors, files.sha256.json

:func:`load_frame_vae` reads ``OUT`` or ``OUT/vae`` (or the ``vae/`` copy a
latent video model keeps next to its weights); any missing or corrupt file is a
one-line :class:`simlab.errors.CheckpointError`.

Run: ``simlab train frame-vae --data DIR --out DIR [--resume] [key=value ...]`` (or ``python -m simlab.world_models.video_diffusion.latent``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlab.errors import CheckpointError, ConfigError, SimlabError

TRAINER_STATE = "trainer_state.json"
OPTIMIZER = "optimizer.safetensors"


@dataclass
class FrameVAEConfig:
    """Hyperparameters of :func:`train_frame_vae`."""

    resolution: int = 32
    """Frame side in pixels; must equal the dataset's resolution."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    """AutoencoderKL block_out_channels (>= 2 levels); the latent side is resolution / 2**(levels - 1)."""
    layers_per_block: int = 1
    """ResNet layers per encoder/decoder block."""
    latent_channels: int = 4
    """Channels of the latent (the video model's per-frame channels)."""
    batch_size: int = 8
    """Videos per step (frames_per_video frames drawn from each)."""
    frames_per_video: int = 4
    """Frames drawn from each video of a batch."""
    max_steps: int = 2000
    """Optimizer steps."""
    lr: float = 1e-3
    """AdamW learning rate (after a linear warmup)."""
    warmup_steps: int = 50
    """Linear learning-rate warmup steps."""
    kl_weight: float = 1e-6
    """Weight of the KL term (per latent element) beside the per-pixel MSE."""
    seed: int = 0
    """Seed of initialisation, batches and posterior noise."""
    log_every: int = 20
    """Steps between metrics records."""
    checkpoint_every: int = 250
    """Steps between checkpoints (and one at the end)."""
    scale_videos: int = 32
    """Videos whose latents measure shift_factor and scaling_factor."""

    def __post_init__(self) -> None:
        if len(self.channels) < 2 or any(c < 8 or c % 8 for c in self.channels):
            raise ConfigError(f"channels needs >= 2 levels (the latent must be smaller than the frame) of "
                              f"multiples of 8, got {self.channels}")
        if self.resolution % (2 ** (len(self.channels) - 1)):
            raise ConfigError(f"resolution {self.resolution} is not divisible by 2**{len(self.channels) - 1} "
                              f"({len(self.channels)} VAE levels)")
        for name in ("layers_per_block", "latent_channels", "frames_per_video", "max_steps", "log_every",
                     "checkpoint_every", "scale_videos"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")


def frame_vae_config(overrides: list[str] | tuple[str, ...] = (), **values: Any) -> FrameVAEConfig:
    """Defaults <- ``values`` <- each ``key=value`` override (ConfigError, one line, on a bad key or value)."""
    from simlab.config import from_dict, parse_override, to_dict

    data = to_dict(FrameVAEConfig())
    for k, v in values.items():
        if k not in data:
            raise ConfigError(f"unknown frame VAE config key {k!r}; valid keys: {', '.join(sorted(data))}")
        data[k] = v
    for ov in overrides:
        path, value = parse_override(ov)
        if len(path) != 1 or path[0] not in data:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(data))}")
        data[path[0]] = value
    return from_dict(FrameVAEConfig, data)


def build_frame_vae(cfg: FrameVAEConfig):
    """A fresh ``AutoencoderKL`` (RGB in and out, ``latent_channels`` latents, no mid-block attention)."""
    from diffusers import AutoencoderKL

    n = len(cfg.channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg.channels),
                         layers_per_block=cfg.layers_per_block, latent_channels=cfg.latent_channels,
                         norm_num_groups=min(32, cfg.channels[0]), sample_size=cfg.resolution,
                         scaling_factor=1.0, shift_factor=0.0, mid_block_add_attention=False,
                         force_upcast=False)


# ---- encode / decode ------------------------------------------------------------------------------
def latent_geometry(vae, resolution: int) -> tuple[int, int]:
    """``(latent_channels, downsampling factor)`` of a frame VAE for ``resolution``-px frames.

    Raises ConfigError (one line) when the VAE was trained at another resolution.
    """
    res = int(vae.config.sample_size)
    if res != resolution:
        raise ConfigError(f"the frame VAE was trained on {res}px frames, but the config works at {resolution}px")
    return int(vae.config.latent_channels), 2 ** (len(vae.config.block_out_channels) - 1)


def _frames_call(fn, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Apply ``fn`` to ``(B, T, ...)`` frames as one batch of ``B*T`` frames, ``chunk`` at a time."""
    b, t = x.shape[:2]
    flat = x.reshape(b * t, *x.shape[2:])
    out = torch.cat([fn(flat[i:i + chunk]) for i in range(0, len(flat), chunk)])
    return out.reshape(b, t, *out.shape[1:])


@torch.no_grad()
def encode_frames(vae, video: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Pixels ``(B, T, 3, H, W)`` in [-1, 1] -> scaled latents ``(B, T, C, H/f, W/f)`` (posterior mode).

    Scaled: ``(z - shift_factor) * scaling_factor`` (the VAE config's measured values).
    """
    shift = float(vae.config.shift_factor or 0.0)
    scale = float(vae.config.scaling_factor)
    p = next(vae.parameters())

    def enc(x: torch.Tensor) -> torch.Tensor:
        return (vae.encode(x.to(p.device, p.dtype)).latent_dist.mode() - shift) * scale

    return _frames_call(enc, video, chunk)


@torch.no_grad()
def decode_frames(vae, latents: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Scaled latents ``(B, T, C, h, w)`` -> pixels ``(B, T, 3, h*f, w*f)`` (about [-1, 1], unclamped)."""
    shift = float(vae.config.shift_factor or 0.0)
    scale = float(vae.config.scaling_factor)
    p = next(vae.parameters())

    def dec(z: torch.Tensor) -> torch.Tensor:
        return vae.decode(z.to(p.device, p.dtype) / scale + shift).sample

    return _frames_call(dec, latents, chunk)


# ---- load ---------------------------------------------------------------------------------------
def load_frame_vae(path: str | Path):
    """The frozen frame VAE (eval mode, no gradients) saved by :func:`train_frame_vae`.

    Args:
        path: the training directory ``OUT``, its ``OUT/vae``, or a latent video model's ``vae/``.

    Raises :class:`CheckpointError` (one line) when it is missing or corrupt; its digest record
    (``files.sha256.json``), where present, is checked first.
    """
    from simlab.integrity import DIGEST_RECORD, verify_dir_digests

    p = Path(path)
    if (p / "vae" / "config.json").exists():
        p = p / "vae"
    if not (p / "config.json").exists():
        raise CheckpointError(f"{path}: no saved frame VAE (config.json) found")
    if (p / DIGEST_RECORD).exists():
        try:
            verify_dir_digests(p, CheckpointError, "frame VAE")
        except CheckpointError as e:
            raise CheckpointError(f"cannot load the frame VAE: {e}") from None
    try:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(p, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - diffusers/safetensors raise many types for bad files
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{p}: cannot load the frame VAE ({msg})") from None
    vae.requires_grad_(False)
    return vae.eval()


# ---- training ---------------------------------------------------------------------------------------
def lr_at(step: int, cfg: FrameVAEConfig) -> float:
    """Learning rate of step ``step``: linear warmup, then constant."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def frame_batch(stream, step: int, cfg: FrameVAEConfig) -> torch.Tensor:
    """Frames of step ``step``: ``(batch_size * frames_per_video, 3, H, W)`` in [-1, 1]."""
    from simlab.world_models.video_diffusion.conditioning import to_model_space

    video = stream.batch(step)  # (B, T, H, W, 3) uint8
    rng = np.random.default_rng([cfg.seed, step, 0xFAE])
    pick = rng.integers(0, video.shape[1], (video.shape[0], cfg.frames_per_video))
    frames = np.take_along_axis(video, pick[:, :, None, None, None], axis=1)
    x = to_model_space(frames)
    return x.reshape(-1, *x.shape[2:])


def vae_loss(vae, x: torch.Tensor, kl_weight: float, generator: torch.Generator) -> tuple[torch.Tensor, float, float]:
    """``(loss, recon, kl)`` of frames ``x`` ``(N, 3, H, W)``: MSE + kl_weight * mean KL per latent element."""
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator).to(x.device, x.dtype)
    recon = torch.nn.functional.mse_loss(vae.decode(z).sample, x)
    kl = 0.5 * (post.mean.square() + post.var - 1.0 - post.logvar).mean()
    return recon + kl_weight * kl, float(recon.detach()), float(kl.detach())


def _save_optimizer(opt: torch.optim.Optimizer, names: dict[int, str], path: Path) -> None:
    """AdamW moments and step counts as plain tensors (safetensors, no pickle)."""
    from safetensors.torch import save_file

    flat = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            flat[f"{names[idx]}/{k}"] = torch.as_tensor(v).detach().clone().contiguous()
    save_file(flat, str(path))


def _load_optimizer(opt: torch.optim.Optimizer, names: dict[int, str], path: Path) -> None:
    from safetensors.torch import load_file

    flat = load_file(str(path))
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for idx, name in names.items():
        keys = {k.rsplit("/", 1)[1]: v for k, v in flat.items() if k.rsplit("/", 1)[0] == name}
        if keys:
            state[idx] = keys
    sd["state"] = state
    opt.load_state_dict(sd)


def measure_scaling(vae, stream, cfg: FrameVAEConfig) -> tuple[float, float]:
    """``(shift_factor, scaling_factor)``: mean and 1/std of the latent means of ``scale_videos`` videos."""
    from simlab.world_models.video_diffusion.conditioning import to_model_space

    n = min(cfg.scale_videos, len(stream.ds))
    video = to_model_space(stream.frames(np.arange(n)))
    x = video.reshape(-1, *video.shape[2:])
    with torch.no_grad():
        z = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mode() for i in range(0, len(x), 256)])
    std = float(z.std())
    return float(z.mean()), 1.0 / max(std, 1e-6)


def train_frame_vae(cfg: FrameVAEConfig, data: str | Path, out: str | Path, resume: bool = False,
                    stop_at: int | None = None) -> dict[str, Any]:
    """Train the frame VAE on the collision2d dataset ``data``; writes ``out`` (see the module docstring).

    Args:
        cfg: resolved config (its resolution must equal the dataset's).
        data: a collected collision2d dataset.
        out: output directory (created; with ``resume``, continued from ``checkpoints/latest``).
        resume: continue a killed run.
        stop_at: stop after this many steps without finishing (simulates a kill; tests).

    Returns:
        Summary: out, steps, final loss and reconstruction MSE, shift/scaling factors, seconds.
    """
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.integrity import verify_dir_digests, write_dir_digests
    from simlab.runs import RunDir
    from simlab.world_models.video_diffusion.data import TrainStream, check_compatible

    out = Path(out)
    ds = VideoDataset(data)
    check_compatible(ds, int(ds.manifest.get("frames", -1)), cfg.resolution, "the frame VAE config")
    run = RunDir.create(out, cfg, resume=resume)
    torch.manual_seed(cfg.seed)
    vae = build_frame_vae(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    names = dict(enumerate(n for n, _ in vae.named_parameters()))
    stream = TrainStream(ds, cfg.batch_size, cfg.seed)
    ckpt = run.checkpoint("latest")
    step = 0
    old = ckpt.with_name("latest.old")
    if resume and not ckpt.exists() and old.is_dir():  # killed between the renames of checkpoint()
        old.rename(ckpt)
    if resume and ckpt.is_dir():
        try:
            verify_dir_digests(ckpt, CheckpointError, "frame VAE checkpoint")
            from safetensors.torch import load_file

            vae.load_state_dict(load_file(str(ckpt / "vae" / "diffusion_pytorch_model.safetensors")))
            _load_optimizer(opt, names, ckpt / OPTIMIZER)
            step = int(json.loads((ckpt / TRAINER_STATE).read_text())["step"])
        except CheckpointError as e:
            raise CheckpointError(f"cannot resume the frame VAE: {e}") from None
        except Exception as e:  # noqa: BLE001 - any failure to read the state is a bad checkpoint
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{ckpt}: cannot resume the frame VAE ({msg})") from None
    if resume:
        run.truncate_metrics(step)

    def checkpoint() -> None:
        tmp = ckpt.with_name(f"tmp-{step}")
        if tmp.exists():
            shutil.rmtree(tmp)
        vae.save_pretrained(tmp / "vae")
        _save_optimizer(opt, names, tmp / OPTIMIZER)
        (tmp / TRAINER_STATE).write_text(json.dumps({"step": step}))
        write_dir_digests(tmp)
        old = ckpt.with_name("latest.old")
        if old.exists():
            shutil.rmtree(old)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        if old.exists():
            shutil.rmtree(old)

    t0 = time.perf_counter()
    vae.train()
    window: list[tuple[float, float, float]] = []
    last = (float("nan"), float("nan"), float("nan"))
    while step < cfg.max_steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        x = frame_batch(stream, step, cfg)
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, step, 11]).generate_state(1)[0]))
        loss, recon, kl = vae_loss(vae, x, cfg.kl_weight, gen)
        if not math.isfinite(float(loss.detach())):
            raise SimlabError(f"step {step}: frame VAE loss is {float(loss.detach())} (diverged); "
                                  f"the last checkpoint is kept in {ckpt}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        last = (float(loss.detach()), recon, kl)
        window.append(last)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            w = np.asarray(window)
            run.log(step, {"train/loss": float(w[:, 0].mean()), "train/recon": float(w[:, 1].mean()),
                           "train/kl": float(w[:, 2].mean()), "train/lr": lr_at(step - 1, cfg)})
            window = []
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            checkpoint()
        if stop_at is not None and step >= stop_at and step < cfg.max_steps:
            return {"out": str(out), "steps": step, "stopped_early": True}
    vae.eval()
    shift, scale = measure_scaling(vae, stream, cfg)
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    tmp = out / "vae.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    vae.save_pretrained(tmp)
    write_dir_digests(tmp)
    if (out / "vae").exists():
        shutil.rmtree(out / "vae")
    tmp.rename(out / "vae")
    side = cfg.resolution // 2 ** (len(cfg.channels) - 1)
    info = {"out": str(out), "steps": step, "final_loss": last[0], "final_recon_mse": last[1],
            "shift_factor": shift, "scaling_factor": scale, "seconds": time.perf_counter() - t0,
            "parameters": sum(p.numel() for p in vae.parameters()),
            "latent_shape": [cfg.latent_channels, side, side]}
    (out / "train_info.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m simlab.world_models.video_diffusion.latent --data DIR --out DIR [--resume] [key=value ...]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Train the frame VAE (AutoencoderKL) for latent video diffusion.")
    ap.add_argument("--data", required=True, help="a collected collision2d dataset")
    ap.add_argument("--out", required=True, help="output directory (its vae/ is what latent_vae= points at)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("overrides", nargs="*", help="FrameVAEConfig key=value")
    args = ap.parse_args(argv)
    try:
        from simlab.envs.collision2d.dataset import VideoDataset

        cfg = frame_vae_config(args.overrides, resolution=VideoDataset(args.data).config.resolution)
        info = train_frame_vae(cfg, args.data, args.out, resume=args.resume)
    except SimlabError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
