"""Maze: a random maze; reach the cheese (+10).

Description:
    A square maze (randomised depth-first search, so every free cell is
    reachable from every other) whose size depends on the level: easy mazes
    have 5-15 cells a side on a 16x16-tile board (4 px tiles), hard ones
    9-25 on a 32x32-tile board (2 px tiles). The agent starts in the top-left
    corridor cell; the cheese is on a random free cell.
Action Space:
    ``Discrete(15)``, Procgen's combos: the 8 directions move one tile when the
    target tile is free (diagonals included); the rest are no-ops.
Observation Space:
    ``(64, 64, 3)`` uint8: the whole board, walls in the level's palette,
    floors with its background pattern, agent and cheese sprites.
Rewards:
    +10 on reaching the cheese.
Episode End:
    Cheese reached (terminated) or 500 steps (truncated).
"""

from __future__ import annotations

import numpy as np

from simlab.envs.procgen.base import (
    ACTION_DX,
    ACTION_DY,
    OBS_SIZE,
    BatchedGame,
    ProcgenOptions,
    background_images,
    blit_masks,
    palette_of,
)

EASY_BOARD, HARD_BOARD = 16, 32
AGENT_COLOR = np.array([240, 240, 240], np.uint8)
CHEESE_COLOR = np.array([255, 210, 0], np.uint8)


def maze_size(seed: int, hard: bool) -> int:
    """Odd maze side (cells incl. walls) of a level."""
    rng = np.random.default_rng([seed, 0x3A2E])
    lo, hi = (9, 25) if hard else (5, 15)
    return int(rng.integers(lo // 2, hi // 2 + 1)) * 2 + 1


def generate_maze(seed: int, hard: bool = False) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """A level: ``(board (B, B) uint8 with 1 = wall, agent (row, col), cheese (row, col))``.

    Pure function of ``(seed, hard)``. Randomised DFS carves a perfect maze of
    side ``maze_size`` in the board's top-left corner; the rest is wall.
    """
    board_n = HARD_BOARD if hard else EASY_BOARD
    size = maze_size(seed, hard)
    rng = np.random.default_rng([seed, 0x3A2F])
    board = np.ones((board_n, board_n), np.uint8)
    cells = size // 2
    seen = np.zeros((cells, cells), bool)
    stack = [(0, 0)]
    seen[0, 0] = True
    board[1, 1] = 0
    while stack:  # iterative DFS: per level, not per step
        r, c = stack[-1]
        nbrs = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                if 0 <= r + dr < cells and 0 <= c + dc < cells and not seen[r + dr, c + dc]]
        if not nbrs:
            stack.pop()
            continue
        nr, nc = nbrs[int(rng.integers(len(nbrs)))]
        seen[nr, nc] = True
        board[2 * nr + 1, 2 * nc + 1] = 0
        board[r + nr + 1, c + nc + 1] = 0  # the wall between the two cells
        stack.append((nr, nc))
    free = np.argwhere(board == 0)
    agent = (1, 1)
    others = free[(free[:, 0] != 1) | (free[:, 1] != 1)]
    cheese = tuple(int(v) for v in others[int(rng.integers(len(others)))])
    return board, agent, cheese  # type: ignore[return-value]


class Maze(BatchedGame):
    """Batched Maze (see module docstring)."""

    name = "maze"
    max_steps = 500

    def __init__(self, num_envs: int, opts: ProcgenOptions) -> None:
        super().__init__(num_envs, opts)
        self.bn = HARD_BOARD if self.hard else EASY_BOARD
        self.tile = OBS_SIZE // self.bn
        self.board = np.ones((num_envs, self.bn, self.bn), np.uint8)
        self.agent = np.zeros((num_envs, 2), np.int64)
        self.cheese = np.zeros((num_envs, 2), np.int64)
        self.static = np.zeros((num_envs, OBS_SIZE, OBS_SIZE, 3), np.uint8)
        t = self.tile
        self.agent_mask = np.ones((t, t), bool)
        if t >= 4:
            self.agent_mask[[0, 0, -1, -1], [0, -1, 0, -1]] = False  # rounded corners
        self.cheese_mask = np.ones((t, t), bool)
        if t >= 4:
            self.cheese_mask[0, :] = False

    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        for i, s in zip(idx, seeds):
            b, a, c = generate_maze(int(s), self.hard)
            self.board[i], self.agent[i], self.cheese[i] = b, a, c
        # Static layer (floor pattern + walls) drawn once per level.
        bg = background_images(seeds, self.opts.use_backgrounds)
        wall = palette_of(seeds)[:, 2]
        walls_px = self.board[idx].repeat(self.tile, 1).repeat(self.tile, 2).astype(bool)
        bg[walls_px] = np.repeat(wall, walls_px.reshape(len(idx), -1).sum(1), axis=0)
        self.static[idx] = bg

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        tgt = self.agent + np.stack([ACTION_DY[actions], ACTION_DX[actions]], 1)
        tgt = np.clip(tgt, 0, self.bn - 1)
        free = self.board[np.arange(n), tgt[:, 0], tgt[:, 1]] == 0
        self.agent = np.where(free[:, None], tgt, self.agent)
        done = (self.agent == self.cheese).all(1)
        return np.where(done, 10.0, 0.0).astype(np.float32), done

    def _render(self, out: np.ndarray) -> None:
        np.copyto(out, self.static)
        t = self.tile
        blit_masks(out, self.cheese[:, 0] * t, self.cheese[:, 1] * t, self.cheese_mask, CHEESE_COLOR)
        blit_masks(out, self.agent[:, 0] * t, self.agent[:, 1] * t, self.agent_mask, AGENT_COLOR)
