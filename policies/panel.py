"""Many policies side by side in ONE batched env, and how well a dream ranks them.

Dream fidelity (Dream Land's diagnostic): a dream is useful for training a
controller only if it ranks controllers the way reality does. A panel of
policies (fixed policies, random linear controllers, CMA-ES means from several
generations, final controllers) is played in the dream and in the real game;
the Spearman rank correlation of the two return vectors is the figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simlab.errors import ConfigError


def common_start_rows(env: Any, rng: np.random.Generator, episodes: int) -> np.ndarray:
    """``episodes`` start rows of a dream env for common starts: uniform over its
    ``num_start_states`` rows, or over ``env.start_pool`` (an int array of rows, e.g. the informative
    starts of :mod:`simlab.world_models.dropout.starts`) when the env sets one."""
    m = getattr(env, "num_start_states", None)
    if not isinstance(m, int) or m < 1:
        raise ConfigError(f"{type(env).__name__}: common_starts needs an env with num_start_states (a dream env)")
    pool = getattr(env, "start_pool", None)
    if pool is None:
        return rng.integers(0, m, episodes)
    pool = np.asarray(pool)
    if pool.ndim != 1 or not len(pool) or pool.dtype.kind not in "iu" or pool.min() < 0 or pool.max() >= m:
        raise ConfigError(f"{type(env).__name__}.start_pool must be a non-empty 1-D array of rows in [0, {m})")
    return pool[rng.integers(0, len(pool), episodes)]


def rollout_actors(make_env: Callable[[int, int], Any], actors: Sequence[Any], episodes: int, seed: int,
                   max_steps: int, common_starts: bool = False) -> np.ndarray:
    """Mean return of each actor over its first ``episodes`` episodes, all in one batched env.

    Args:
        make_env: ``make_env(num_envs, seed) -> VectorEnv`` (same-step autoreset); called once
            with ``num_envs = len(actors) * episodes``; actor ``i`` owns slots
            ``[i * episodes, (i + 1) * episodes)``.
        actors: objects with ``act(obs (B, ...)) -> actions (B,)``; an optional ``reset(mask)``
            hook is told when its slots start new episodes.
        episodes: episodes per actor.
        seed: env seed.
        max_steps: step limit; episodes still running then count their partial return.
        common_starts: dream envs only (they expose ``num_start_states`` and take
            ``reset(options={"start_index": ...})``): every actor's ``j``-th episode starts from the
            same start state (common random numbers), so the actors' means differ by their play,
            not by the situations they were dealt.

    Returns:
        ``(len(actors), episodes)`` float64 returns.
    """
    if not actors or episodes < 1 or max_steps < 1:
        raise ConfigError("rollout_actors needs >= 1 actor, episodes >= 1 and max_steps >= 1")
    p, n = len(actors), len(actors) * episodes
    env = make_env(n, seed)
    ret = np.zeros(n)
    done = np.zeros(n, bool)
    try:
        options = None
        if common_starts:
            rows = common_start_rows(env, np.random.default_rng([seed, 0xC0DE]), episodes)
            options = {"start_index": np.tile(rows, p)}
        obs, _ = env.reset(seed=seed, options=options)
        for a in actors:
            if callable(getattr(a, "reset", None)):
                a.reset(None)
        for _ in range(max_steps):
            x = np.asarray(obs.cpu() if hasattr(obs, "cpu") else obs)
            act = np.concatenate([np.asarray(a.act(x[i * episodes:(i + 1) * episodes])).reshape(episodes)
                                  for i, a in enumerate(actors)])
            obs, rew, term, trunc, _ = env.step(act)
            ret[~done] += np.asarray(rew, np.float64).reshape(n)[~done]
            fin = (np.asarray(term) | np.asarray(trunc)).reshape(n)
            done |= fin
            if done.all():
                break
            if fin.any():
                for i, a in enumerate(actors):
                    if callable(getattr(a, "reset", None)):
                        a.reset(fin[i * episodes:(i + 1) * episodes])
    finally:
        env.close()
    return ret.reshape(p, episodes)


def split_half_ceiling(returns: np.ndarray) -> float:
    """The highest Spearman a perfect ranking can expect against these noisy per-actor means.

    ``returns``: ``(actors, episodes)`` returns (``episodes >= 2``). The Spearman between the
    means of the even and the odd episodes is the split-half reliability ``r`` of half the data;
    Spearman-Brown gives the full data's ``R = 2r / (1 + r)``, and a noise-free ranking correlates
    with a measurement of reliability ``R`` at about ``sqrt(R)`` (the attenuation bound). Returns
    nan when the halves are constant, 0 when they do not agree at all (``r <= 0``).
    """
    x = np.asarray(returns, np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ConfigError(f"split_half_ceiling needs (actors, episodes >= 2) returns, got shape {x.shape}")
    r = spearman(x[:, 0::2].mean(1), x[:, 1::2].mean(1))
    if np.isnan(r):
        return float("nan")
    return float(np.sqrt(2 * r / (1 + r))) if r > 0 else 0.0


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given their average rank (scipy's ``rankdata``; written
    here so the core install needs no scipy)."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length vectors (nan if either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ConfigError(f"spearman needs two 1-D vectors of equal length >= 2, got {a.shape} and {b.shape}")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


__all__ = ["rankdata", "rollout_actors", "spearman", "split_half_ceiling"]
