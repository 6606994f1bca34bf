"""Fixed policies: the trivial baselines every learned controller is shown beside.

They ignore the observation (or use only the step count), so a learned policy
that does not beat all of them has learned nothing about the game. Each is an
``Actor`` (``act(obs (B, ...)) -> actions (B,)``) for
:func:`simlab.policies.evaluate.evaluate`; the ones with per-episode state take
the evaluator's ``reset(mask)`` hook. Actions are Procgen's 15 combos: 1 is
LEFT, 4 no-op, 7 RIGHT.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUM_ACTIONS = 15
LEFT, STAY, RIGHT = 1, 4, 7


class StandStill:
    """Always the no-op."""

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.full(len(obs), STAY, np.int64)


class UniformRandom:
    """Uniform over the 15 actions, every step."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng([seed, 0xF1])

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.rng.integers(0, NUM_ACTIONS, size=len(obs), dtype=np.int64)


class RandomHeld:
    """Uniform random actions each held for 1-10 steps (World Models' data policy; the same
    sampler as the ``random_repeat`` collector)."""

    def __init__(self, seed: int = 0) -> None:
        from simlab.envs.procgen.dataset import RepeatRandom

        self.inner = RepeatRandom(np.random.default_rng([seed, 0xF2]))

    def reset(self, mask: Any = None) -> None:
        if mask is None:
            self.inner.action = None
        elif self.inner.left is not None:
            self.inner.left[np.asarray(mask, bool)] = 0  # draw a fresh action for new episodes

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.inner(obs, None)


class Sweep:
    """Walk wall to wall: RIGHT until the wall, then alternately LEFT and RIGHT across the arena.

    Dodge's agent starts mid-arena, 28 px from either wall, and crosses the 56 px arena at
    ``speed`` px/step: ``ceil(28 / speed)`` steps RIGHT first, then ``ceil(56 / speed)`` steps
    each way.
    """

    def __init__(self, speed: int = 2) -> None:
        self.first, self.span = -(-28 // speed), -(-56 // speed)
        self.t: np.ndarray | None = None

    def reset(self, mask: Any = None) -> None:
        if mask is None or self.t is None:
            self.t = None
        else:
            self.t[np.asarray(mask, bool)] = 0

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.t is None or len(self.t) != len(obs):
            self.t = np.zeros(len(obs), np.int64)
        phase = (self.t - self.first) // self.span
        right = (self.t < self.first) | (phase % 2 == 1)
        self.t += 1
        return np.where(right, RIGHT, LEFT).astype(np.int64)


class GymRandom:
    """Uniform samples of a gymnasium action space (image gymnasium envs such as CarRacing)."""

    def __init__(self, space: Any, seed: int = 0) -> None:
        self.space = space
        self.space.seed(int(np.random.SeedSequence([seed, 0xF3]).generate_state(1)[0]))

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.stack([self.space.sample() for _ in range(len(obs))])


FIXED_POLICIES: dict[str, Any] = {
    "stand still": lambda seed, speed: StandStill(),
    "uniform random": lambda seed, speed: UniformRandom(seed),
    "random held 1-10": lambda seed, speed: RandomHeld(seed),
    "sweep wall to wall": lambda seed, speed: Sweep(speed),
}
"""Name -> ``factory(seed, speed)`` of every fixed policy the reports show (``speed``: the
game's agent speed in px/step, which sets the sweep's timing)."""

__all__ = ["FIXED_POLICIES", "GymRandom", "RandomHeld", "StandStill", "Sweep", "UniformRandom"]
