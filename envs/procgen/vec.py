"""Gymnasium wrappers of the batched games: a 1.x ``VectorEnv`` and a single ``Env``.

``ProcgenVecEnv`` steps all N envs in numpy and resets finished ones in the
same step (``AutoresetMode.SAME_STEP``: the last observation of a finished
episode is in ``info["final_obs"]``, masked by ``info["_final_obs"]``).
``ProcgenEnv`` is the same engine with one slot; slot 0 of a batch and a
single env reset with the same seed play the same levels and, given the same
actions, produce identical trajectories.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.envs.procgen.base import (
    NUM_ACTIONS,
    OBS_SIZE,
    BatchedGame,
    LevelSampler,
    ProcgenOptions,
    check_actions,
    standard_splits,
)
from simlab.errors import ConfigError

GAMES: dict[str, str] = {
    "maze": "simlab.envs.procgen.maze:Maze",
    "coinrun": "simlab.envs.procgen.coinrun:CoinRun",
    "bigfish": "simlab.envs.procgen.bigfish:BigFish",
    "dodge": "simlab.envs.procgen.dodge:Dodge",
    "dodge_v1": "simlab.envs.procgen.dodge_v1:DodgeV1",
}


def game_class(game: str) -> type[BatchedGame]:
    """The engine class of a game name; ConfigError for unknown games."""
    if game not in GAMES:
        raise ConfigError(f"unknown game {game!r}; choose one of {', '.join(GAMES)}")
    mod, cls = GAMES[game].split(":")
    return getattr(importlib.import_module(mod), cls)


def _options(opts: ProcgenOptions | None, kw: dict[str, Any]) -> ProcgenOptions:
    if opts is not None and kw:
        raise ConfigError("pass either options= or individual procgen options, not both")
    fields = set(ProcgenOptions.__dataclass_fields__)
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ConfigError(f"unknown procgen option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return opts if opts is not None else ProcgenOptions(**kw)


class ProcgenVecEnv(VectorEnv):
    """N envs of one game stepped together (gymnasium 1.x VectorEnv, same-step autoreset).

    Args:
        game: maze | coinrun | bigfish | dodge | dodge_v1.
        num_envs: batch size N.
        options: a :class:`ProcgenOptions`, or its fields as keyword arguments
            (num_levels, start_level, distribution_mode, use_backgrounds, rand_seed).
        render_mode: ``"rgb_array"`` renders slot 0 at 512x512.
        max_episode_steps: truncation limit (default: the game's).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"], "render_fps": 15, "autoreset_mode": AutoresetMode.SAME_STEP}
    splits = standard_splits()

    def __init__(self, game: str = "maze", num_envs: int = 1, options: ProcgenOptions | None = None,
                 render_mode: str | None = None, max_episode_steps: int | None = None, **kw: Any) -> None:
        self.game_name = game
        self.opts = _options(options, kw)
        self.game = game_class(game)(num_envs, self.opts)
        if max_episode_steps is not None:
            if max_episode_steps < 1:
                raise ConfigError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
            self.game.max_steps = int(max_episode_steps)  # instance override of the game's limit
        self.num_envs = num_envs
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.single_observation_space = spaces.Box(0, 255, (OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._obs = np.empty((num_envs, OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self._ret = np.zeros(num_envs, np.float64)
        self.sampler = LevelSampler(self.opts, num_envs)

    def _new_levels(self, idx: np.ndarray) -> None:
        seeds = np.array([self.sampler.draw(int(i)) for i in idx], np.int64)
        self.game.load(idx, seeds)
        self._ret[idx] = 0.0

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in every slot. ``seed`` re-seeds the level streams (rand_seed)."""
        if seed is not None:
            s = seed if isinstance(seed, int) else int(seed[0])
            self.opts = ProcgenOptions(**{**self.opts.__dict__, "rand_seed": s})
            self.sampler = LevelSampler(self.opts, self.num_envs)
        idx = np.arange(self.num_envs)
        if options and "level_seeds" in options:
            seeds = np.asarray(options["level_seeds"], np.int64)
            if seeds.shape != (self.num_envs,):
                raise ConfigError(f"options['level_seeds'] must have shape ({self.num_envs},)")
            self.game.load(idx, seeds)
            self._ret[:] = 0.0
        else:
            self._new_levels(idx)
        self.game.render(self._obs)
        return self._obs.copy(), {"level_seed": self.game.level_seed.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every env; finished ones restart on a new level in the same call."""
        a = check_actions(actions, self.num_envs)
        rew, term = self.game.step(a)
        trunc = (self.game.t >= self.game.max_steps) & ~term
        self._ret += rew
        self.game.render(self._obs)
        info: dict[str, Any] = {"level_seed": self.game.level_seed.copy()}
        done = term | trunc
        if done.any():
            idx = np.flatnonzero(done)
            final = np.empty(self.num_envs, dtype=object)
            final[idx] = list(self._obs[idx].copy())
            info["final_obs"] = final
            info["_final_obs"] = done.copy()
            info["episode_return"] = np.where(done, self._ret, 0.0)
            info["episode_length"] = np.where(done, self.game.t, 0)
            info["_episode"] = done.copy()
            self._new_levels(idx)
            self.game.render(self._obs)  # fresh first frames of the new episodes
            info["level_seed"] = self.game.level_seed.copy()
        return self._obs.copy(), rew.astype(np.float32), term.copy(), trunc, info

    def render(self) -> np.ndarray | None:
        """Slot 0 at 512x512 when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self.game.render_large(0)


class ProcgenEnv(gymnasium.Env):
    """A single env of a batched game (a batch of one). Time limits come from the registration."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}
    splits = standard_splits()

    def __init__(self, game: str = "maze", options: ProcgenOptions | None = None,
                 render_mode: str | None = None, **kw: Any) -> None:
        self.game_name = game
        self.opts = _options(options, kw)
        self.game = game_class(game)(1, self.opts)
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._obs = np.empty((1, OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self.sampler = LevelSampler(self.opts, 1)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode; ``seed`` re-seeds the level stream, ``options={"level_seed": s}`` plays level s."""
        super().reset(seed=seed)
        if seed is not None:
            self.opts = ProcgenOptions(**{**self.opts.__dict__, "rand_seed": int(seed)})
            self.sampler = LevelSampler(self.opts, 1)
        if options and "level_seed" in options:
            s = int(options["level_seed"])
        else:
            s = self.sampler.draw(0)
        self.game.load(np.array([0]), np.array([s]))
        self.game.render(self._obs)
        return self._obs[0].copy(), {"level_seed": s}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step; raises ActionError for an action outside [0, 15)."""
        a = check_actions(action, 1)
        rew, term = self.game.step(a)
        self.game.render(self._obs)
        trunc = bool(self.game.t[0] >= self.game.max_steps) and not bool(term[0])
        return self._obs[0].copy(), float(rew[0]), bool(term[0]), trunc, {"level_seed": int(self.game.level_seed[0])}

    def render(self) -> np.ndarray | None:
        """A 512x512 frame when ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self.game.render_large(0)
