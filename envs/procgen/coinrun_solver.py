"""A search that solves CoinRun levels, used to prove every level solvable (tests) and to replay plans.

Written by hand: it searches over the game's own batched dynamics (:func:`advance`), which no
planning library knows about.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simlab.envs.procgen.base import ProcgenOptions
from simlab.envs.procgen.coinrun import (
    COIN,
    NONE,
    CoinRun,
    LevelBatch,
    Params,
    advance,
    generate_level,
)

RIGHT_UP, RIGHT, UP, NOOP, LEFT = 8, 7, 5, 4, 1
"""Procgen combo indices of the solver's moves."""
SOLVER_ACTIONS = np.array([RIGHT_UP, RIGHT, UP, NOOP, LEFT])
"""The moves the search tries at every step."""


def solve(seeds: Sequence[int], hard: bool, p: Params | None = None, beam: int = 40,
          max_steps: int = 1000) -> list[list[int] | None]:
    """Action sequences reaching the coin, found by a breadth-first search over the game's own
    dynamics (:func:`advance`), all levels at once.

    Layer t holds states ``(level, x, y, vy)`` reachable in exactly t steps (enemies move with
    time, so the search is layered by time), deduplicated; each layer is cut to the ``beam``
    rightmost states of each level (ties broken by a hash of the state). ``None``: not found.
    ``p``: the levels' generation parameters (default: CoinRun-v0's, ``params(hard)``).
    """
    levels = [generate_level(int(s), hard, p) for s in seeds]
    batch = LevelBatch.of(levels, hard, p)
    n_act = len(SOLVER_ACTIONS)
    lvl = np.arange(len(levels))
    x = np.array([lv.start[0] for lv in levels], np.int64)
    y = np.array([lv.start[1] for lv in levels], np.int64)
    vy = np.zeros(len(levels), np.int64)
    history: list[tuple[np.ndarray, np.ndarray]] = []  # per layer: parent index, action
    found: list[list[int] | None] = [None] * len(levels)
    for t in range(max_steps):
        if len(lvl) == 0:
            break
        parent = np.repeat(np.arange(len(lvl)), n_act)
        act = np.tile(SOLVER_ACTIONS, len(lvl))
        cl = lvl[parent]
        nx, ny, nvy, out = advance(batch, x[parent], y[parent], vy[parent], np.full(len(parent), t + 1), act,
                                   lvl=cl)
        history.append((parent, act))
        solved = set()
        for j in np.flatnonzero(out == COIN):
            if int(cl[j]) in solved:
                continue
            solved.add(int(cl[j]))
            seq, k = [], j
            for par, a in reversed(history):
                seq.append(int(a[k]))
                k = int(par[k])
            found[int(cl[j])] = seq[::-1]
        keep = np.flatnonzero((out == NONE) & ~np.isin(cl, list(solved)))
        key = ((cl[keep] * 4096 + nx[keep]) * 256 + ny[keep] + 64) * 32 + nvy[keep] + 16
        keep = keep[np.unique(key, return_index=True)[1]]
        tie = (ny[keep] * 7919 + nvy[keep] * 104729 + nx[keep] * 31) % 1009
        keep = keep[np.lexsort((tie, -nx[keep], cl[keep]))]
        c = cl[keep]
        first = np.r_[True, c[1:] != c[:-1]]
        rank = np.arange(len(c)) - np.flatnonzero(first)[np.cumsum(first) - 1]
        keep = keep[rank < beam]
        history[-1] = (parent[keep], act[keep])
        lvl, x, y, vy = cl[keep], nx[keep], ny[keep], nvy[keep]
    return found


def replay(seeds: Sequence[int], hard: bool, plans: list[list[int]], game_cls: type[CoinRun] = CoinRun
           ) -> tuple[np.ndarray, np.ndarray]:
    """Play each plan in its level on a batched engine of ``game_cls`` (CoinRun or a subclass): ``(total reward, step of the first
    termination (-1: none))`` per level."""
    n = len(seeds)
    game = game_cls(n, ProcgenOptions(distribution_mode="hard" if hard else "easy"))
    game.load(np.arange(n), np.asarray(seeds))
    total, end = np.zeros(n), np.full(n, -1)
    acts = np.full((max(map(len, plans)), n), NOOP)
    for i, p in enumerate(plans):
        acts[:len(p), i] = p
    for t, a in enumerate(acts):
        r, d = game.step(a)
        live = end < 0
        total[live] += r[live]
        end[live & d] = t
    return total, end
