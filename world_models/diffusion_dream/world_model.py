"""The diffusion world model: denoiser + reward/termination head + real start contexts.

Saved layout (no pickles)::

    DIR/world_model.json   sealed: class, format_version, simlab_version, env_id, n_actions,
                           resolution, frame_size, context, starts, starts_sha256
    DIR/denoiser/          ActionFrameDenoiser.save_pretrained (config.json + safetensors)
    DIR/head/              RewardDoneHead.save_pretrained
    DIR/starts.safetensors start_frames (M, context, H, W, 3) uint8, start_actions (M, context - 1) int64

``world_model.json`` is written last, so its presence means a complete save.
Sampling (:func:`sample_next`) is DIAMOND's: Euler steps of the probability-flow
ODE over EDM's Karras noise levels (taken from diffusers' ``EDMEulerScheduler``),
3 steps by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlab.errors import CheckpointError, ConfigError
from simlab.world_models.base import resolve_device
from simlab.world_models.diffusion_dream.model import (
    ActionFrameDenoiser,
    RewardDoneHead,
    load_module,
)

FORMAT_VERSION = 1
DOC_NAME = "world_model.json"
SIGMA_MIN = 2e-3
"""Lowest noise level of the sampler (DIAMOND)."""
SIGMA_MAX = 5.0
"""Highest noise level of the sampler, the std of the starting noise (DIAMOND)."""
RHO = 7.0
"""Karras schedule exponent."""


def karras_sigmas(num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> torch.Tensor:
    """``num_steps + 1`` noise levels ``sigma_max ... sigma_min, 0`` (diffusers' ``EDMEulerScheduler``
    with ``sigma_schedule="karras"``; 3 steps: ``[5.0, 0.283, 0.002, 0]``)."""
    from diffusers import EDMEulerScheduler

    if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
        raise ConfigError(f"num_steps must be a positive integer, got {num_steps!r}")
    s = EDMEulerScheduler(sigma_min=sigma_min, sigma_max=sigma_max, sigma_data=0.5, sigma_schedule="karras",
                          rho=rho)
    s.set_timesteps(int(num_steps))
    return s.sigmas.detach().to(torch.float32).cpu()


@torch.no_grad()
def sample_next(denoiser: ActionFrameDenoiser, ctx_frames: torch.Tensor, ctx_actions: torch.Tensor,
                sigmas: torch.Tensor, generator: torch.Generator | None = None, noise_scale: float = 1.0
                ) -> torch.Tensor:
    """The next frames by Euler steps over ``sigmas`` (DIAMOND's sampler, no churn).

    Args:
        denoiser: the model (any device; inputs are on its device).
        ctx_frames: ``(B, context, 3, H, W)`` in [-1, 1]; ctx_actions: ``(B, context)`` long.
        sigmas: ``(S + 1,)`` decreasing noise levels ending in 0 (:func:`karras_sigmas`).
        generator: torch generator of the starting noise (on the inputs' device).
        noise_scale: std of the starting noise relative to ``sigmas[0]`` (1: the sampler as trained;
            0: start from the last frame itself, a deterministic dream).

    Returns:
        ``(B, 3, H, W)`` next frames in [-1, 1] (clamped).
    """
    b = ctx_frames.shape[0]
    shape = (b, *ctx_frames.shape[2:])
    eps = torch.randn(shape, generator=generator, device=ctx_frames.device, dtype=ctx_frames.dtype)
    x = ctx_frames[:, -1] + float(sigmas[0]) * float(noise_scale) * eps
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        den = denoiser(x, torch.full((b,), s, device=x.device, dtype=x.dtype), ctx_frames, ctx_actions)
        if s_next == 0.0:
            x = den
        else:
            x = x + (x - den) / s * (s_next - s)
    return x.clamp(-1.0, 1.0)


class DiffusionWorldModel:
    """What a diffusion dream needs: the denoiser, the reward/termination head and real starts.

    Args:
        denoiser: :class:`ActionFrameDenoiser`; head: :class:`RewardDoneHead` (same sizes).
        start_frames: ``(M, context, H, W, 3)`` uint8 real context frames dreams start from.
        start_actions: ``(M, context - 1)`` int64 the actions between those frames.
        env_id: the real env the data came from (checked when the dream stands in for it).
        frame_size: side of the real env's frames (the dream's are ``resolution``).
    """

    def __init__(self, denoiser: ActionFrameDenoiser, head: RewardDoneHead, start_frames: np.ndarray,
                 start_actions: np.ndarray, env_id: str = "", frame_size: int = 64) -> None:
        c = denoiser.config
        if (head.config.n_actions, head.config.resolution, head.config.context) != \
                (c.n_actions, c.resolution, c.context):
            raise ConfigError("denoiser and head disagree on n_actions / resolution / context")
        sf = np.asarray(start_frames)
        sa = np.asarray(start_actions)
        if sf.dtype != np.uint8 or sf.ndim != 5 or sf.shape[1:] != (c.context, c.resolution, c.resolution, 3) \
                or len(sf) < 1:
            raise ConfigError(f"start_frames must be uint8 (M>=1, {c.context}, {c.resolution}, {c.resolution}, 3), "
                              f"got {sf.dtype} {sf.shape}")
        if sa.shape != (len(sf), c.context - 1) or (sa.size and (sa.min() < 0 or sa.max() > c.n_actions)):
            raise ConfigError(f"start_actions must be ({len(sf)}, {c.context - 1}) ids in [0, {c.n_actions}], "
                              f"got {sa.shape}")
        self.denoiser, self.head = denoiser, head
        self.start_frames, self.start_actions = sf, sa.astype(np.int64)
        self.env_id, self.frame_size = str(env_id), int(frame_size)

    # -- properties ----------------------------------------------------------------------------
    @property
    def n_actions(self) -> int:
        return int(self.denoiser.config.n_actions)

    @property
    def resolution(self) -> int:
        return int(self.denoiser.config.resolution)

    @property
    def context(self) -> int:
        return int(self.denoiser.config.context)

    def to(self, device: str | torch.device) -> DiffusionWorldModel:
        """Move both networks to ``device`` (in place); returns self."""
        dev = resolve_device(device)
        self.denoiser.to(dev)
        self.head.to(dev)
        return self

    def check_compatible(self, env_id: str, n_actions: int, frame_size: int) -> None:
        """ConfigError (one line) when this model cannot stand in for the env ``env_id`` with
        ``Discrete(n_actions)`` actions and ``frame_size`` x ``frame_size`` frames."""
        if n_actions != self.n_actions:
            raise ConfigError(f"the diffusion world model was trained on {self.n_actions} actions; "
                              f"{env_id} has {n_actions}")
        if frame_size != self.frame_size:
            raise ConfigError(f"the diffusion world model was trained on {self.frame_size}x{self.frame_size} "
                              f"frames; {env_id} has {frame_size}x{frame_size}")
        if self.env_id and env_id != self.env_id:
            raise ConfigError(f"the diffusion world model was trained on {self.env_id}, not {env_id}")

    # -- dreams ---------------------------------------------------------------------------------
    def as_env(self, **kw: Any):
        """One dream as a ``gymnasium.Env`` (:class:`~.dream.DiffusionDreamEnv`; arguments there)."""
        from simlab.world_models.diffusion_dream.dream import DiffusionDreamEnv

        return DiffusionDreamEnv(self, **kw)

    def as_vec_env(self, num_envs: int, **kw: Any):
        """``num_envs`` dreams as a gymnasium ``VectorEnv`` (:class:`~.dream.DiffusionDreamVecEnv`)."""
        from simlab.world_models.diffusion_dream.dream import DiffusionDreamVecEnv

        return DiffusionDreamVecEnv(self, num_envs, **kw)

    # -- save / load ----------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write the layout of the module docstring into directory ``path``; returns it."""
        from safetensors.numpy import save_file

        import simlab
        from simlab.data import atomic_path, sha256_file
        from simlab.integrity import write_sealed_json

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.denoiser.save_pretrained(path / "denoiser")
        self.head.save_pretrained(path / "head")
        with atomic_path(path / "starts.safetensors") as tmp:
            save_file({"start_frames": np.ascontiguousarray(self.start_frames),
                       "start_actions": np.ascontiguousarray(self.start_actions)}, str(tmp))
        write_sealed_json(path / DOC_NAME, {
            "class": type(self).__name__, "format_version": FORMAT_VERSION, "simlab_version": simlab.__version__,
            "env_id": self.env_id, "n_actions": self.n_actions, "resolution": self.resolution,
            "frame_size": self.frame_size, "context": self.context, "starts": len(self.start_frames),
            "starts_sha256": sha256_file(path / "starts.safetensors")})
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> DiffusionWorldModel:
        """Load a saved model onto ``device`` (eval mode); CheckpointError (one line) naming the bad file."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from simlab.data import sha256_file
        from simlab.integrity import read_sealed_json

        dev = resolve_device(device)
        path = Path(path)
        doc_path = path / DOC_NAME
        if not doc_path.exists():
            raise CheckpointError(f"{doc_path}: missing (not a saved diffusion world model, or saving was "
                                  "interrupted)")
        doc = read_sealed_json(doc_path, CheckpointError, "diffusion world model description")
        if doc.get("class") != cls.__name__:
            raise CheckpointError(f"{doc_path}: holds a {doc.get('class')!r}, expected {cls.__name__!r}")
        if not isinstance(doc.get("format_version"), int) or doc["format_version"] > FORMAT_VERSION:
            raise CheckpointError(f"{doc_path}: format version {doc.get('format_version')!r} is not one this "
                                  f"simlab reads ({FORMAT_VERSION}); upgrade simlab")
        sp = path / "starts.safetensors"
        if not sp.exists() or sha256_file(sp) != doc.get("starts_sha256"):
            raise CheckpointError(f"{sp}: missing, or its checksum differs from the one in {DOC_NAME}")
        try:
            st = load_file(str(sp))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{sp}: not a readable safetensors file ({e})") from None
        den = load_module(ActionFrameDenoiser, path / "denoiser")
        head = load_module(RewardDoneHead, path / "head")
        if (den.config.n_actions, den.config.resolution, den.config.context) != \
                (doc["n_actions"], doc["resolution"], doc["context"]):
            raise CheckpointError(f"{path / 'denoiser'}: sizes differ from {doc_path}")
        try:
            wm = cls(den, head, st["start_frames"], st["start_actions"], env_id=doc.get("env_id", ""),
                     frame_size=int(doc.get("frame_size", 64)))
        except (ConfigError, KeyError) as e:
            raise CheckpointError(f"{sp}: bad start contexts ({e})") from None
        return wm.to(dev)

    def __repr__(self) -> str:
        return (f"DiffusionWorldModel(env={self.env_id!r}, {self.resolution}x{self.resolution}, context="
                f"{self.context}, n_actions={self.n_actions}, starts={len(self.start_frames)})")


__all__ = ["DiffusionWorldModel", "karras_sigmas", "sample_next"]
