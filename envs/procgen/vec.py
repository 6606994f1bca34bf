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
    LEVEL_SEED_LIMIT,
    MAX_NUM_ENVS,
    NUM_ACTIONS,
    OBS_SIZE,
    BatchedGame,
    LevelSampler,
    ProcgenOptions,
    check_actions,
    standard_splits,
)
from simlab.errors import ConfigError, ResetNeededError
from simlab.registry import RenderModes
from simlab.validate import check_choice, check_int, check_options, check_seed, describe

GAMES: dict[str, str] = {
    "maze": "simlab.envs.procgen.maze:Maze",
    "coinrun": "simlab.envs.procgen.coinrun:CoinRun",
    "coinrun_v1": "simlab.envs.procgen.coinrun_v1:CoinRunV1",
    "bigfish": "simlab.envs.procgen.bigfish:BigFish",
    "dodge": "simlab.envs.procgen.dodge:Dodge",
    "dodge_v1": "simlab.envs.procgen.dodge_v1:DodgeV1",
}


def game_class(game: str) -> type[BatchedGame]:
    """The engine class of a game name; ConfigError for unknown games."""
    game = check_choice("game", game, GAMES)
    mod, cls = GAMES[game].split(":")
    return getattr(importlib.import_module(mod), cls)


MAX_EPISODE_STEPS = 2**62
"""Largest accepted ``max_episode_steps`` (effectively unlimited)."""


def _options(opts: ProcgenOptions | None, kw: dict[str, Any]) -> ProcgenOptions:
    if opts is not None and not isinstance(opts, ProcgenOptions):
        raise ConfigError(f"options must be a ProcgenOptions or None, got {describe(opts)}")
    if opts is not None and kw:
        raise ConfigError("pass either options= or individual procgen options, not both")
    fields = set(ProcgenOptions.__dataclass_fields__)
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ConfigError(f"unknown procgen option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    return opts if opts is not None else ProcgenOptions(**kw)


def _check_render_mode(render_mode: Any) -> str | None:
    return check_choice("render_mode", render_mode, ["rgb_array"], allow_none=True)


def _check_level_seed(name: str, value: Any) -> int:
    """A level seed in ``[0, LEVEL_SEED_LIMIT)`` (Python or numpy integer)."""
    return check_int(name, value, 0, LEVEL_SEED_LIMIT - 1)  # type: ignore[return-value]


def _check_level_seeds(value: Any, n: int) -> np.ndarray:
    """``options["level_seeds"]``: ``n`` integer level seeds -> int64 ``(n,)``."""
    name = "options['level_seeds']"
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.shape != (n,):
        raise ConfigError(f"{name} must be {n} integer level seeds, shape ({n},), got {describe(value)}")
    bad = (arr < 0) | (arr > LEVEL_SEED_LIMIT - 1)
    if bad.any():
        raise ConfigError(f"{name} must lie in [0, {LEVEL_SEED_LIMIT - 1}], got {int(arr[bad][0])}")
    return arr.astype(np.int64)


def _check_vec_seed(seed: Any, n: int) -> int | None:
    """``reset(seed=...)`` of a batch: None, one seed, or a sequence of ``n`` seeds (None entries allowed);
    returns the seed of the level streams (the first one; the streams of the slots differ anyway)."""
    if seed is None or not isinstance(seed, (list, tuple, np.ndarray)):
        return check_seed("seed", seed)
    seeds = list(np.asarray(seed, dtype=object).reshape(-1)) if isinstance(seed, np.ndarray) else list(seed)
    if len(seeds) != n or (isinstance(seed, np.ndarray) and seed.ndim != 1):
        raise ConfigError(f"seed must be an integer or a list of {n} seeds (one per env), got {describe(seed)}")
    for i, s in enumerate(seeds):
        check_seed(f"seed[{i}]", s)
    return check_seed("seed[0]", seeds[0])


class ProcgenVecEnv(VectorEnv):
    """N envs of one game stepped together (gymnasium 1.x VectorEnv, same-step autoreset).

    Args:
        game: maze | coinrun | coinrun_v1 | bigfish | dodge | dodge_v1.
        num_envs: batch size N, an integer in ``[1, 16384]`` (about 190 KB of memory per env).
        options: a :class:`ProcgenOptions`, or its fields as keyword arguments
            (num_levels, start_level, distribution_mode, use_backgrounds, rand_seed).
        render_mode: ``"rgb_array"`` renders slot 0 at 512x512.
        max_episode_steps: truncation limit (default: the game's), an integer >= 1.

    Every argument is type- and range-checked (numpy integers and bools are accepted;
    strings, floats for integers, non-bools for bools are not): a one-line
    :class:`~simlab.errors.ConfigError` names the argument and the bad value.
    :meth:`step` and :meth:`render` before the first :meth:`reset` raise
    :class:`~simlab.errors.ResetNeededError`.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": RenderModes(["rgb_array"]), "render_fps": 15, "autoreset_mode": AutoresetMode.SAME_STEP}
    splits = standard_splits()

    def __init__(self, game: str = "maze", num_envs: int = 1, options: ProcgenOptions | None = None,
                 render_mode: str | None = None, max_episode_steps: int | None = None, **kw: Any) -> None:
        game = check_choice("game", game, GAMES)
        num_envs = check_int("num_envs", num_envs, 1, MAX_NUM_ENVS)  # type: ignore[assignment]
        max_episode_steps = check_int("max_episode_steps", max_episode_steps, 1, MAX_EPISODE_STEPS,
                                      allow_none=True)
        render_mode = _check_render_mode(render_mode)
        self.game_name = game
        self.opts = _options(options, kw)
        self.game = game_class(game)(num_envs, self.opts)
        if max_episode_steps is not None:
            self.game.max_steps = int(max_episode_steps)  # instance override of the game's limit
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._needs_reset = True
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
        """Start new episodes in every slot. ``seed`` re-seeds the level streams (rand_seed).

        ``seed``: None, a seed (Python or numpy integer >= 0), or a list of ``num_envs`` seeds (the
        first one seeds the streams). ``options={"level_seeds": (num_envs,) ints}`` plays those levels.
        ConfigError (one line) for a negative or non-integer seed, an unknown option or a bad value.
        """
        s = _check_vec_seed(seed, self.num_envs)
        opts = check_options("options", options, ("level_seeds",))
        level_seeds = _check_level_seeds(opts["level_seeds"], self.num_envs) if "level_seeds" in opts else None
        if s is not None:
            self.opts = ProcgenOptions(**{**self.opts.__dict__, "rand_seed": s})
            self.sampler = LevelSampler(self.opts, self.num_envs)
        idx = np.arange(self.num_envs)
        if level_seeds is not None:
            self.game.load(idx, level_seeds)
            self._ret[:] = 0.0
        else:
            self._new_levels(idx)
        self._needs_reset = False
        self.game.render(self._obs)
        return self._obs.copy(), {"level_seed": self.game.level_seed.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every env; finished ones restart on a new level in the same call.

        Raises:
            ResetNeededError: before the first :meth:`reset`.
            ActionError: actions not ``num_envs`` integers in ``[0, 15)``.
        """
        if self._needs_reset:
            raise ResetNeededError("call reset() before step() (the envs have no level yet)")
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
            self.game.render(self._obs, idx)  # fresh first frames of the new episodes
            info["level_seed"] = self.game.level_seed.copy()
        return self._obs.copy(), rew.astype(np.float32), term.copy(), trunc, info

    def render(self) -> np.ndarray | None:
        """Slot 0 at 512x512 when ``render_mode="rgb_array"``; ResetNeededError before :meth:`reset`."""
        if self.render_mode != "rgb_array":
            return None
        if self._needs_reset:
            raise ResetNeededError("call reset() before render() (the envs have no level yet)")
        return self.game.render_large(0)


class ProcgenEnv(gymnasium.Env):
    """A single env of a batched game (a batch of one). Time limits come from the registration."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RenderModes(["rgb_array"]), "render_fps": 15}
    splits = standard_splits()

    def __init__(self, game: str = "maze", options: ProcgenOptions | None = None,
                 render_mode: str | None = None, **kw: Any) -> None:
        game = check_choice("game", game, GAMES)
        render_mode = _check_render_mode(render_mode)
        self.game_name = game
        self.opts = _options(options, kw)
        self.game = game_class(game)(1, self.opts)
        self.render_mode = render_mode
        self._needs_reset = True
        self.observation_space = spaces.Box(0, 255, (OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._obs = np.empty((1, OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self.sampler = LevelSampler(self.opts, 1)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode; ``seed`` re-seeds the level stream, ``options={"level_seed": s}`` plays level s.

        ConfigError (one line) for a negative or non-integer seed (numpy integers are fine), an
        unknown option key, or a level seed outside ``[0, 2**31 - 2]``.
        """
        seed = check_seed("seed", seed)
        opts = check_options("options", options, ("level_seed",))
        level = _check_level_seed("options['level_seed']", opts["level_seed"]) if "level_seed" in opts else None
        super().reset(seed=seed)
        if seed is not None:
            self.opts = ProcgenOptions(**{**self.opts.__dict__, "rand_seed": seed})
            self.sampler = LevelSampler(self.opts, 1)
        s = level if level is not None else self.sampler.draw(0)
        self._needs_reset = False
        self.game.load(np.array([0]), np.array([s]))
        self.game.render(self._obs)
        return self._obs[0].copy(), {"level_seed": s}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step; ActionError for an action outside [0, 15), ResetNeededError before :meth:`reset`."""
        if self._needs_reset:
            raise ResetNeededError("call reset() before step() (the env has no level yet)")
        a = check_actions(action, 1)
        rew, term = self.game.step(a)
        self.game.render(self._obs)
        trunc = bool(self.game.t[0] >= self.game.max_steps) and not bool(term[0])
        return self._obs[0].copy(), float(rew[0]), bool(term[0]), trunc, {"level_seed": int(self.game.level_seed[0])}

    def render(self) -> np.ndarray | None:
        """A 512x512 frame when ``render_mode="rgb_array"``; ResetNeededError before :meth:`reset`."""
        if self.render_mode != "rgb_array":
            return None
        if self._needs_reset:
            raise ResetNeededError("call reset() before render() (the env has no level yet)")
        return self.game.render_large(0)
