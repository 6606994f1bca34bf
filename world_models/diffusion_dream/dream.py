"""Dream environments of a :class:`~simlab.world_models.diffusion_dream.world_model.DiffusionWorldModel`.

Description:
    A pixel-space dream (DIAMOND): from the last ``context`` frames and actions
    the denoiser samples the next frame with a few Euler steps, and the
    reward/termination head scores the transition. :class:`DiffusionDreamVecEnv`
    steps ``num_envs`` dreams as one batch on torch tensors (CPU or CUDA) as a
    gymnasium 1.x ``VectorEnv`` with same-step autoreset (like the real
    ``ProcgenVecEnv`` and the dropout dream); :class:`DiffusionDreamEnv` is the
    same engine with one slot as a ``gymnasium.Env``.
Stochasticity knobs (the diffusion counterpart of Dream Land's dropout masks):
    ``noise_scale`` (std of the sampler's starting noise relative to ``sigma_max``;
    0: a deterministic dream), ``num_steps`` (denoising steps; DIAMOND: 3).
Action Space:
    ``Discrete(n_actions)``; out-of-range, fractional or NaN actions raise ActionError.
Observation Space:
    uint8 ``Box(0, 255, (resolution, resolution, 3))``: the newest (dreamed) frame.
Rewards:
    The head's reward prediction for the step.
Starting State:
    A real context (``context`` frames and the actions between them) drawn
    uniformly from the model's start contexts: a burn-in from real frames, so a
    dream continues a real situation.
Episode End:
    Terminated with the head's probability ``p_done`` (``done_mode="sample"``) or
    when ``p_done > 0.5`` (``"threshold"``); truncated after ``max_episode_steps``.
Arguments:
    model, num_envs (vector env only), num_steps, noise_scale, max_episode_steps,
    device, seed, done_mode, render_mode (``"rgb_array"``: slot 0's frame upscaled
    to 256 x 256).
Randomness:
    One ``torch.Generator`` on the env's device, seeded from ``seed`` (re-seeded by
    ``reset(seed=...)``), drives start contexts, sampler noise and terminations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.actions import check_discrete_actions
from simlab.errors import ConfigError, ResetNeededError
from simlab.world_models.base import resolve_device
from simlab.world_models.diffusion_dream.data import to_model, to_uint8
from simlab.world_models.diffusion_dream.world_model import (
    DiffusionWorldModel,
    karras_sigmas,
    sample_next,
)
from simlab.world_models.dropout.dream import CoreDreamEnv, check_render_mode

DONE_MODES = ("sample", "threshold")
RENDER_SIZE = 256


def _pos_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ConfigError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


class DiffusionDreamCore:
    """Batched dream state on torch tensors, shared by both env classes.

    State: ``frames`` ``(N, context, 3, H, W)`` in [-1, 1] and ``actions`` ``(N, context - 1)`` long on
    the device (the context before the next action); ``t``, ``ret``, ``start_idx`` ``(N,)`` numpy.
    """

    def __init__(self, model: DiffusionWorldModel, num_envs: int, num_steps: int = 3, noise_scale: float = 1.0,
                 max_episode_steps: int = 1000, device: str | torch.device = "cpu", seed: int = 0,
                 done_mode: str = "sample") -> None:
        if not isinstance(model, DiffusionWorldModel):
            raise ConfigError(f"a diffusion dream needs a DiffusionWorldModel, got {type(model).__name__}")
        if done_mode not in DONE_MODES:
            raise ConfigError(f"unknown done_mode {done_mode!r}; choose one of {', '.join(DONE_MODES)}")
        try:
            ns = float(noise_scale)
        except (TypeError, ValueError):
            raise ConfigError(f"noise_scale must be a number >= 0, got {noise_scale!r}") from None
        if not (np.isfinite(ns) and ns >= 0):
            raise ConfigError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        self.num_envs = _pos_int(num_envs, "num_envs")
        self.max_episode_steps = _pos_int(max_episode_steps, "max_episode_steps")
        self.sigmas = karras_sigmas(_pos_int(num_steps, "num_steps"))
        self.noise_scale, self.done_mode = ns, done_mode
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.model.denoiser.eval()
        self.model.head.eval()
        self.gen = torch.Generator(device=self.device)
        self.reseed(seed)
        n, k, r = self.num_envs, model.context, model.resolution
        self.frames = torch.zeros(n, k, 3, r, r, device=self.device)
        self.actions = torch.zeros(n, k - 1, dtype=torch.long, device=self.device)
        self.last = np.zeros((n, r, r, 3), np.uint8)
        self.t = np.zeros(n, np.int64)
        self.ret = np.zeros(n, np.float64)
        self.start_idx = np.zeros(n, np.int64)
        self.ready = False
        self.single_observation_space = spaces.Box(0, 255, (r, r, 3), np.uint8)
        self.single_action_space = spaces.Discrete(model.n_actions)

    def reseed(self, seed: Any) -> None:
        if isinstance(seed, (list, tuple, np.ndarray)):
            seed = seed[0]
        try:
            self.gen.manual_seed(int(seed))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ConfigError(f"seed must be an integer, got {seed!r} ({e})") from None

    @torch.no_grad()
    def reset_slots(self, idx: np.ndarray | None, start_index: Any = None) -> np.ndarray:
        """Start new episodes in slots ``idx`` (None: all) from real contexts; their frames ``(len, H, W, 3)``."""
        idx = np.arange(self.num_envs) if idx is None else np.asarray(idx, np.int64)
        m = len(self.model.start_frames)
        if start_index is None:
            rows = torch.randint(0, m, (len(idx),), generator=self.gen, device=self.device).cpu().numpy()
        else:
            rows = np.asarray(start_index, np.int64).reshape(-1)
            if rows.shape != (len(idx),) or rows.min() < 0 or rows.max() >= m:
                raise ConfigError(f"start_index must be {len(idx)} ints in [0, {m}), got {start_index!r}")
        sf = self.model.start_frames[rows]
        self.frames[idx] = to_model(sf).to(self.device)
        self.actions[idx] = torch.as_tensor(self.model.start_actions[rows], device=self.device)
        self.last[idx] = sf[:, -1]
        self.t[idx] = 0
        self.ret[idx] = 0.0
        self.start_idx[idx] = rows
        self.ready = True
        return self.last[idx].copy()

    def context(self, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The current context of slots ``idx``: frames ``(len, context, H, W, 3)`` uint8 and the
        actions between them ``(len, context - 1)`` (the dream's burn-in, for a feature extractor)."""
        idx = np.arange(self.num_envs) if idx is None else np.asarray(idx, np.int64)
        return to_uint8(self.frames[idx]), self.actions[idx].cpu().numpy()

    @torch.no_grad()
    def advance(self, a: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One dream step of every slot with actions ``a`` ``(N,)`` long: ``(frames (N, H, W, 3) uint8,
        rewards (N,) float32, terminated (N,) bool)``."""
        ctx_a = torch.cat([self.actions, a.view(-1, 1)], dim=1)
        nxt = sample_next(self.model.denoiser, self.frames, ctx_a, self.sigmas, self.gen, self.noise_scale)
        rew, p_done = self.model.head.predict(self.frames, a, nxt)
        if self.done_mode == "sample":
            term = torch.rand(p_done.shape, generator=self.gen, device=self.device) < p_done
        else:
            term = p_done > 0.5
        self.frames = torch.cat([self.frames[:, 1:], nxt[:, None]], dim=1)
        self.actions = ctx_a[:, 1:]
        self.last = to_uint8(nxt)
        return self.last.copy(), rew.float().cpu().numpy(), term.cpu().numpy()

    def to_tensor(self, actions: Any) -> torch.Tensor:
        a = check_discrete_actions(np.asarray(actions.cpu() if isinstance(actions, torch.Tensor) else actions),
                                   self.num_envs, self.model.n_actions)
        return torch.from_numpy(a).to(self.device)

    def frame(self) -> np.ndarray:
        """Slot 0's current frame upscaled to ``RENDER_SIZE`` (nearest neighbour), uint8."""
        from simlab.world_models.diffusion_dream.data import upscale

        f = self.last[0]
        return upscale(f, RENDER_SIZE) if RENDER_SIZE % f.shape[0] == 0 else f


class DiffusionDreamVecEnv(VectorEnv):
    """``num_envs`` diffusion dreams stepped together (same-step autoreset).

    ``step`` returns ``(frames (N, H, W, 3) uint8, rewards (N,) float32, terminated (N,) bool,
    truncated (N,) bool, info)``; finished slots restart in the same call (their last frame in
    ``info["final_obs"]``, masked by ``info["_final_obs"]``; return and length in
    ``info["episode_return"]`` / ``info["episode_length"]``, masked by ``info["_episode"]``);
    ``info["reset_mask"]`` marks the slots that restarted. ``reset(options={"start_index": (N,)})``
    picks the start contexts.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15,
                                          "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, model: DiffusionWorldModel, num_envs: int, num_steps: int = 3, noise_scale: float = 1.0,
                 max_episode_steps: int = 1000, device: str | torch.device = "cpu", seed: int = 0,
                 done_mode: str = "sample", render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.core = DiffusionDreamCore(model, num_envs, num_steps, noise_scale, max_episode_steps, device, seed,
                                       done_mode)
        self.num_envs = self.core.num_envs
        self.single_observation_space = self.core.single_observation_space
        self.single_action_space = self.core.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in every slot; ``seed`` re-seeds the dream's generator."""
        if seed is not None:
            self.core.reseed(seed)
        obs = self.core.reset_slots(None, (options or {}).get("start_index"))
        return obs, {"start_index": self.core.start_idx.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every dream; finished ones restart in the same call."""
        core = self.core
        if not core.ready:
            raise ResetNeededError("call reset() before step()")
        obs, rew, term = core.advance(core.to_tensor(actions))
        core.t += 1
        core.ret += rew
        trunc = (core.t >= core.max_episode_steps) & ~term
        done = term | trunc
        info: dict[str, Any] = {"reset_mask": done.copy()}
        if done.any():
            idx = np.flatnonzero(done)
            final = np.empty(self.num_envs, dtype=object)
            final[idx] = list(obs[idx].copy())
            info.update({"final_obs": final, "_final_obs": done.copy(),
                         "episode_return": np.where(done, core.ret, 0.0),
                         "episode_length": np.where(done, core.t, 0), "_episode": done.copy()})
            obs[idx] = core.reset_slots(idx)
        info["start_index"] = core.start_idx.copy()
        return obs, rew, term, trunc, info

    def render(self) -> np.ndarray | None:
        """Slot 0's frame upscaled to 256 x 256 (uint8) with ``render_mode="rgb_array"``; else None."""
        return self.core.frame() if self.render_mode == "rgb_array" else None


class DiffusionDreamEnv(CoreDreamEnv):
    """One diffusion dream as a ``gymnasium.Env`` (arguments as :class:`DiffusionDreamVecEnv`).

    ``step`` before ``reset`` or after the episode ended raises ``ResetNeeded``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, model: DiffusionWorldModel, num_steps: int = 3, noise_scale: float = 1.0,
                 max_episode_steps: int = 1000, device: str | torch.device = "cpu", seed: int = 0,
                 done_mode: str = "sample", render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.core = DiffusionDreamCore(model, 1, num_steps, noise_scale, max_episode_steps, device, seed, done_mode)
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self._done = True


__all__ = ["DiffusionDreamEnv", "DiffusionDreamVecEnv"]
