"""Which dream start states tell controllers apart: the spread of returns over held actions.

A CMA-ES candidate's dream fitness is its mean return over a few dozen dreams from real start
states. Most of those starts decide nothing: no fireball reaches the agent within the dream, every
controller survives, and the start only adds the dream's sampling noise to the fitness (measured on
Dodge-v1, ``experiments/dreamland_crn.py``: one generation's fitness ranked its candidates with
Spearman 0.1-0.45 against their ranking on 2048 dreams). A start is *informative* when what the
agent does there changes the return. The cheap proxy here: hold each action for the whole dream
(left, stay, right on Dodge) and take the spread (max - min) of the dream's returns; the starts
with the largest spread form the pool the fitness draws from (``DreamVecEnv.start_pool``).

Written by hand: no library scores start states of a learned simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simlab.errors import ConfigError


def held_action_returns(make_env: Callable[[int, int], Any], num_rows: int, actions: Sequence[int],
                        steps: int, seed: int, chunk: int = 8192) -> np.ndarray:
    """Dream return of every start row under every held action.

    Args:
        make_env: ``make_env(num_envs, seed)`` of a dream vector env whose ``reset`` takes
            ``options={"start_index": (N,) ints}`` (rows ``0 .. num_rows - 1``).
        num_rows: start rows to score (the env's ``num_start_states``).
        actions: the action ids held, one dream per row and action (e.g. ``[1, 4, 7]``).
        steps: dream length (the controllers' ``max_dream_steps``); a dream that ends earlier counts
            its return so far.
        seed: dream seed (every row and action share the dream's random numbers through
            ``noise_group``: the spread comes from the actions, not from the sampling).
        chunk: start rows per batched env (memory: ``chunk * len(actions)`` dreams at once).

    Returns:
        ``(num_rows, len(actions))`` float64 returns.
    """
    if num_rows < 1 or steps < 1 or chunk < 1 or not len(actions):
        raise ConfigError("held_action_returns needs num_rows, steps and chunk >= 1 and at least one action")
    acts = np.asarray(actions, np.int64)
    out = np.zeros((num_rows, len(acts)))
    for lo in range(0, num_rows, chunk):
        rows = np.arange(lo, min(num_rows, lo + chunk))
        g, n = len(rows), len(rows) * len(acts)
        env = make_env(n, seed)
        try:
            env.reset(seed=seed, options={"start_index": np.tile(rows, len(acts)), "noise_group": g})
            a = np.repeat(acts, g)
            ret, done = np.zeros(n), np.zeros(n, bool)
            for _ in range(steps):
                _, rew, term, trunc, _ = env.step(a)
                ret[~done] += np.asarray(rew, np.float64)[~done]
                done |= np.asarray(term, bool) | np.asarray(trunc, bool)
                if done.all():
                    break
        finally:
            env.close()
        out[rows] = ret.reshape(len(acts), g).T
    return out


def informative_rows(returns: np.ndarray, fraction: float) -> np.ndarray:
    """Rows whose held-action returns ``(M, A)`` spread most (max - min over actions): the top
    ``fraction`` of ``M`` (at least one), sorted ascending. Ties keep the lower row first."""
    r = np.asarray(returns, np.float64)
    if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] < 2:
        raise ConfigError(f"returns must be (M >= 1, A >= 2), got {r.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    spread = r.max(1) - r.min(1)
    k = max(1, round(fraction * len(r)))
    return np.sort(np.argsort(-spread, kind="stable")[:k])
