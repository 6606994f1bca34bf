"""Procgen-like engine (shared parts) and Maze: level protocol, solvability, batching, errors."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen.base import (
    LevelSampler,
    ProcgenOptions,
    hash_uniform,
    options_for_split,
    standard_splits,
)
from simlab.envs.procgen.maze import generate_maze
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv
from simlab.errors import ActionError, ConfigError


def bfs_path_len(board: np.ndarray, start, goal) -> int | None:
    """Shortest 4-connected path length (a search-based solver independent of the engine)."""
    q = deque([(tuple(start), 0)])
    seen = {tuple(start)}
    while q:
        (r, c), d = q.popleft()
        if (r, c) == tuple(goal):
            return d
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nr, nc = r + dr, c + dc
            if board[nr, nc] == 0 and (nr, nc) not in seen:
                seen.add((nr, nc))
                q.append(((nr, nc), d + 1))
    return None


@pytest.mark.parametrize("hard", [False, True])
def test_every_maze_is_solvable_and_perfect(hard: bool) -> None:
    for seed in range(300):
        board, agent, cheese = generate_maze(seed, hard)
        assert board[agent] == 0 and board[cheese] == 0 and agent != cheese
        assert bfs_path_len(board, agent, cheese) is not None, seed
        free = np.argwhere(board == 0)
        assert all(bfs_path_len(board, agent, f) is not None for f in free[:: max(1, len(free) // 8)])


def test_level_is_pure_function_of_seed() -> None:
    a, b = generate_maze(1234), generate_maze(1234)
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    sizes = {int((generate_maze(s)[0][1] == 0).sum()) for s in range(40)}
    assert len(sizes) > 5, "maze layouts/sizes must vary with the level"


def test_solver_plays_the_env_to_the_cheese() -> None:
    env = ProcgenEnv("maze")
    for s in range(5):
        env.reset(options={"level_seed": s})
        board, agent, cheese = generate_maze(s)
        # greedy walk along a BFS path, translated to Procgen actions
        prev = {tuple(agent): None}
        q = deque([tuple(agent)])
        while q:
            cur = q.popleft()
            for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                nxt = (cur[0] + dr, cur[1] + dc)
                if board[nxt] == 0 and nxt not in prev:
                    prev[nxt] = cur
                    q.append(nxt)
        path = [tuple(cheese)]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])
        path.reverse()
        act = {(0, 1): 7, (0, -1): 1, (1, 0): 3, (-1, 0): 5}  # RIGHT, LEFT, DOWN (row+1), UP
        total, term = 0.0, False
        for a, b in itertools.pairwise(path):
            _, r, term, _, _ = env.step(act[(b[0] - a[0], b[1] - a[1])])
            total += r
        assert term and total == 10.0


def test_level_protocol_and_splits() -> None:
    opts = options_for_split("train")
    s = LevelSampler(opts, 1)
    seeds = [s.draw(0) for _ in range(2000)]
    assert min(seeds) >= 0 and max(seeds) < 200 and len(set(seeds)) > 190
    test = LevelSampler(options_for_split("test"), 1)
    assert min(test.draw(0) for _ in range(500)) >= 250
    vt = LevelSampler(options_for_split("vis_train"), 1)
    vs = LevelSampler(options_for_split("vis_test"), 1)
    sp = standard_splits()
    from simlab.envs.procgen.base import BACKGROUND_FAMILIES, PALETTES, visual_factors

    def combos(sampler):
        b, p = visual_factors(np.array([sampler.draw(0) for _ in range(400)]))
        return {(BACKGROUND_FAMILIES[i], PALETTES[j]) for i, j in zip(b, p)}

    train_c, test_c = combos(vt), combos(vs)
    assert train_c and test_c and not (train_c & test_c)
    assert test_c <= set(sp["vis_test"].include_combos)
    assert {b for b, _ in train_c} == set(BACKGROUND_FAMILIES) and {p for _, p in train_c} == set(PALETTES)


def test_hash_uniform_is_pure_and_uniform() -> None:
    u = hash_uniform(np.arange(100000), 7, 1)
    assert np.array_equal(u, hash_uniform(np.arange(100000), 7, 1))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


@pytest.mark.parametrize("kw, exc, needle", [
    ({"num_levels": -1}, ConfigError, "num_levels"),
    ({"distribution_mode": "medium"}, ConfigError, "distribution_mode"),
    ({"start_level": -5}, ConfigError, "start_level"),
])
def test_bad_options(kw, exc, needle) -> None:
    with pytest.raises(exc, match=needle):
        ProcgenOptions(**kw)


def test_bad_game_and_actions() -> None:
    with pytest.raises(ConfigError, match="unknown game"):
        ProcgenVecEnv("pong", 2)
    v = ProcgenVecEnv("maze", 2)
    v.reset(seed=0)
    for bad in ([0, 15], [-1, 0], [0.5, 1], [0]):
        with pytest.raises(ActionError):
            v.step(np.array(bad))
