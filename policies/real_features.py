"""The REAL batched game seen through a world model's features: a VecEnv of ``[z, h]``.

The upper bound of Dream Land trains the same controller class (a linear
controller on ``[z, h]``) with the same CMA-ES, but in the real game instead of
the dream: every real frame is encoded by the world model's VAE (``z``) and the
MDN-RNN is stepped on the real ``(z, a)`` (``h``), exactly as
:class:`simlab.policies.cmaes.WorldModelAgent` does when a dream-trained
controller plays the real game. So "upper bound minus dream-trained" is what the
dream costs, and "upper bound minus fixed policies" is what the controller
class can do with these features at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.policies.cmaes import WorldModelAgent


class _NoController:
    def act(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:  # never called
        raise NotImplementedError


class RealFeatureVecEnv(VectorEnv):
    """``env`` (a real batched VectorEnv of frames, same-step autoreset) whose observations are the
    world model's features ``[z, h]`` ``(N, z_dim + hidden)`` float32.

    Args:
        env: the real VectorEnv (e.g. ``ProcgenVecEnv``); its actions pass through unchanged.
        view: a world-model view for :class:`WorldModelAgent` (``DropoutWorldModelView``: VAE mean,
            MDN-RNN without dropout).
        feature_dim: ``z_dim + hidden``.
    """

    def __init__(self, env: VectorEnv, view: Any, feature_dim: int) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.agent = WorldModelAgent(view, _NoController())
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (feature_dim,), np.float32)
        self.single_action_space = env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = env.action_space
        self.metadata = dict(getattr(env, "metadata", {}))
        self._z: Any = None

    def _features(self, frames: np.ndarray) -> np.ndarray:
        self._z, x = self.agent.features(frames)
        return x

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        frames, info = self.env.reset(seed=seed, options=options)
        self.agent.reset(None)
        return self._features(frames), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        import torch

        a = np.asarray(actions)
        with torch.no_grad():
            self.agent.state = self.agent.world_model.rnn_step(self._z, a, self.agent.state)
        frames, rew, term, trunc, info = self.env.step(a)
        done = np.asarray(term) | np.asarray(trunc)
        if done.any():
            self.agent.reset(done)  # finished slots show a new episode's first frame
        return self._features(frames), rew, term, trunc, info

    def close(self, **kwargs: Any) -> None:
        self.env.close()


__all__ = ["RealFeatureVecEnv"]
