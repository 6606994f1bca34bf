"""Expose a gymnasium 1.x ``VectorEnv`` with same-step autoreset as a stable-baselines3 ``VecEnv``.

simlab's batched envs (procgen-like games, dream envs) are gymnasium 1.x
vector envs that reset finished episodes inside the same ``step`` call
(``AutoresetMode.SAME_STEP``), which is exactly SB3's convention. The adapter
only translates the bookkeeping:

=============================  ==========================================================
gymnasium (batched info dict)  SB3 (list of per-env info dicts)
=============================  ==========================================================
``terminated | truncated``     ``dones``
``info["final_obs"][i]``       ``infos[i]["terminal_observation"]``
``truncated & ~terminated``    ``infos[i]["TimeLimit.truncated"]``
``info["episode_return"]``...  ``infos[i]["episode"] = {"r", "l", "t"}`` (what SB3's
                               ``Monitor`` writes, so ``rollout/ep_rew_mean`` is logged);
                               the adapter counts returns itself when the env does not
``info["final_info"]``         merged into ``infos[i]`` (the terminal step's info wins)
=============================  ==========================================================

This module imports stable-baselines3 at import time; ``import simlab`` never
imports it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
    tile_images,
)

from simlab.errors import ConfigError

_SKIP = frozenset({"final_obs", "final_info"})


def _item(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def unbatch_info(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info dict -> ``n`` per-env dicts.

    A key ``k`` with a mask ``info["_k"]`` goes only to the envs where the
    mask is set; an array of length ``n`` without a mask is split per env;
    anything else (a scalar) is shared. Nested dicts are unbatched the same way.
    """
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for k, v in info.items():
        if k in _SKIP or (k.startswith("_") and k[1:] in info):
            continue
        mask = info.get("_" + k)
        has = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
        if isinstance(v, dict):
            sub = unbatch_info(v, n)
            for i in np.flatnonzero(has):
                if sub[i] or mask is not None:
                    out[i][k] = sub[i]
        elif isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            for i in np.flatnonzero(has):
                out[i][k] = _item(v[i])
        else:
            for i in np.flatnonzero(has):
                out[i][k] = v
    return out


class SB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` view of a gymnasium 1.x ``VectorEnv`` with same-step autoreset.

    Args:
        env: the batched env (e.g. :class:`simlab.envs.procgen.vec.ProcgenVecEnv`).
            Its ``metadata["autoreset_mode"]`` must be ``AutoresetMode.SAME_STEP``.

    Spaces are the env's single-env spaces. ``get_attr``/``set_attr``/
    ``env_method`` address the batched env as a whole: a batched env shares
    one object for all slots, so ``get_attr`` returns its attribute once per
    requested index, ``set_attr`` sets it for all (a subset of indices is an
    error) and ``env_method`` calls the method once. Vector envs that wrap
    single envs (gymnasium's ``SyncVectorEnv``) are asked per env through their
    own ``get_attr``/``set_attr``/``call``.
    """

    def __init__(self, env: VectorEnv) -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
            raise ConfigError(f"{type(env).__name__}: SB3VecEnv needs autoreset_mode SAME_STEP "
                              f"(finished envs reset in the same step), got {mode!r}")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.metadata = {**env.metadata, **self.metadata}
        self.actions: np.ndarray | None = None
        self._ret = np.zeros(self.num_envs, np.float64)
        self._len = np.zeros(self.num_envs, np.int64)
        self._t0 = time.time()

    # ---- core API ----------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset every env (with the seeds of :meth:`seed` and options of ``set_options``, once)."""
        seeds = None if all(s is None for s in self._seeds) else [int(s) for s in self._seeds]  # type: ignore[arg-type]
        options = self._options[0] if self._options and self._options[0] else None
        obs, info = self.env.reset(seed=seeds, options=options)
        self.reset_infos = unbatch_info(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        self._ret[:] = 0.0
        self._len[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """``(obs, rewards (N,) float32, dones (N,) bool, infos)``; finished envs are already reset."""
        if self.actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, rew, term, trunc, info = self.env.step(self.actions)
        self.actions = None
        rew = np.asarray(rew, np.float32).reshape(self.num_envs)
        term = np.asarray(term, bool).reshape(self.num_envs)
        trunc = np.asarray(trunc, bool).reshape(self.num_envs)
        dones = term | trunc
        self._ret += rew
        self._len += 1
        infos = unbatch_info(info, self.num_envs)
        if dones.any():
            final_obs = info.get("final_obs")
            final_info = unbatch_info(info["final_info"], self.num_envs) if "final_info" in info else None
            elapsed = round(time.time() - self._t0, 6)
            for i in np.flatnonzero(dones):
                d = infos[i]
                if final_info is not None:
                    d.update(final_info[i])  # the terminal step's own info, not the reset's
                if final_obs is None:
                    raise ConfigError(f"{type(self.env).__name__}: env {i} finished but info has no final_obs")
                d["terminal_observation"] = final_obs[i]
                d["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                ep = d.get("episode")
                if not (isinstance(ep, dict) and "r" in ep and "l" in ep):
                    if "episode_return" in d and "episode_length" in d:
                        d["episode"] = {"r": float(d["episode_return"]), "l": int(d["episode_length"]),
                                        "t": elapsed}
                    else:
                        d["episode"] = {"r": float(self._ret[i]), "l": int(self._len[i]), "t": elapsed}
            self._ret[dones] = 0.0
            self._len[dones] = 0
        return obs, rew, dones, infos

    def close(self) -> None:
        self.env.close()

    # ---- attributes and methods ----------------------------------------------------------
    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        idx = self._indices(indices)
        env = self.__dict__.get("env")
        if env is None:
            raise AttributeError(attr_name)
        if hasattr(env, attr_name):
            return [getattr(env, attr_name)] * len(idx)
        if hasattr(env, "envs") and hasattr(env, "get_attr"):  # SyncVectorEnv and friends
            values = env.get_attr(attr_name)
            return [values[i] for i in idx]
        raise AttributeError(f"{type(env).__name__} has no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        idx = self._indices(indices)
        if hasattr(self.env, "envs") and hasattr(self.env, "set_attr") and not hasattr(self.env, attr_name):
            values = list(self.env.get_attr(attr_name))
            for i in idx:
                values[i] = value
            self.env.set_attr(attr_name, values)
            return
        if sorted(idx) != list(range(self.num_envs)):
            raise ConfigError(f"{type(self.env).__name__} is one batched env: set_attr({attr_name!r}) "
                              "applies to all slots, not to a subset")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        idx = self._indices(indices)
        if hasattr(self.env, method_name):
            result = getattr(self.env, method_name)(*method_args, **method_kwargs)
            return [result] * len(idx)
        if hasattr(self.env, "call"):
            results = self.env.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in idx]
        raise AttributeError(f"{type(self.env).__name__} has no method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        idx = self._indices(indices)
        envs = getattr(self.env, "envs", None)
        if envs is None:
            return [False] * len(idx)
        from stable_baselines3.common import env_util

        return [env_util.is_wrapped(envs[i], wrapper_class) for i in idx]

    # ---- rendering ----------------------------------------------------------------------
    def get_images(self) -> Sequence[np.ndarray | None]:
        """Frames of the batched env's ``render()`` (one image, or one per env)."""
        frames = self.env.render()
        if frames is None:
            return []
        if isinstance(frames, (list, tuple)):
            return list(frames)
        frames = np.asarray(frames)
        return list(frames) if frames.ndim == 4 else [frames]

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """The env's ``rgb_array`` frame (several frames are tiled); None without a render mode."""
        if mode not in (None, "rgb_array") or self.render_mode != "rgb_array":
            warnings.warn(f"SB3VecEnv renders only render_mode='rgb_array' (env has {self.render_mode!r})")
            return None
        images = [im for im in self.get_images() if im is not None]
        if not images:
            return None
        return images[0] if len(images) == 1 else tile_images(images)
