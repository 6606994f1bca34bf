"""Dodge-v1: Dodge with the danger made visible the way VizDoom TakeCover shows it.

Description:
    The same game as :mod:`simlab.envs.procgen.dodge` (Dodge-v0: enemies in a
    row at the top throw fireballs at an agent that moves left and right on
    the floor; +1 per step survived, a hit ends the episode), with three
    changes that make the hazard what a world model must see and a reactive
    controller can act on:

    - **Egocentric view.** The 64-px-wide observation is centred on the agent
      (TakeCover is first-person): the agent is always at columns 28-35 and
      the arena scrolls; outside the arena is drawn in a flat grey. "A
      fireball left of me" is then a fixed image region, whatever the
      agent's position.
    - **Fireballs that grow as they approach** (perspective, as TakeCover's):
      side ``SHOT_MIN`` (5) px where they are thrown, ``SHOT_MAX`` (11) px at
      the agent's row; one fixed colour on every level (orange with a yellow
      core, never used by walls or enemies), so the danger looks the same on
      held-out levels.
    - **Three kinds of shot**: aimed at the agent's centre now (probability
      ``aim_frac``), *leading* the agent (aimed where it will be when the
      fireball arrives if it keeps its last move, bouncing off the walls;
      probability ``lead_frac``), or at a uniform x. Lead shots make fixed
      movement patterns (sweeping wall to wall) as deadly as standing still:
      only a policy that watches the fireballs survives.

    Shot times, enemies and level parameters are Dodge-v0's (pure functions
    of the level seed, :func:`simlab.envs.procgen.dodge.level_params`);
    ``aim_frac`` / ``lead_frac`` are drawn from their own hash stream.
    ``simlab/Dodge-v0`` stays registered and unchanged.
Action Space:
    ``Discrete(15)``, Procgen's combos: LEFT ones (0, 1, 2) move 2 px left,
    RIGHT ones (6, 7, 8) 2 px right, the rest stay.
Observation Space:
    ``(64, 64, 3)`` uint8, centred on the agent (white, 8x5 px, columns 28-35).
Rewards:
    +1 for every step survived; 0 on the step the agent is hit.
Episode End:
    A fireball's box overlaps the agent's box (terminated) or 1000 steps
    (truncated).
"""

from __future__ import annotations

import numpy as np

from simlab.envs.procgen.base import OBS_SIZE, hash_uniform
from simlab.envs.procgen.dodge import (
    _AGENT_PX,
    _ENEMY_PX,
    _S_AIM,
    AGENT_COLOR,
    AGENT_W,
    AGENT_Y,
    AIM_NOISE,
    ENEMY_Y,
    SHOT,
    SPAWN_Y,
    Dodge,
    _blit,
)

SHOT_MIN, SHOT_MAX = 5, 10
"""Fireball side (px) where it is thrown and at the agent's row."""
HAZARD_COLOR = np.array([255, 110, 0], np.uint8)
"""Fireball and wind-up colour on every level."""
HAZARD_CORE = np.array([255, 235, 90], np.uint8)
OUT_OF_ARENA = np.array([96, 96, 96], np.uint8)
"""Colour of the view beyond the arena's walls."""
VIEW_PAD = OBS_SIZE // 2
"""Columns of out-of-arena canvas on each side (the view never reaches further)."""
AGENT_COL = OBS_SIZE // 2 - AGENT_W // 2
"""First view column of the agent (28)."""
ARENA_W = OBS_SIZE - AGENT_W
"""Range of the agent's left edge, ``[0, ARENA_W]``."""

AIM_FRAC_V1 = {False: (0.3, 0.45), True: (0.35, 0.5)}
LEAD_FRAC = {False: (0.35, 0.5), True: (0.4, 0.55)}
_S_V1 = 0xD0D6F0


def aim_params(seeds: np.ndarray, hard: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(aim_frac, lead_frac)`` of levels ``(n,)`` each: pure functions of ``(seeds, hard)``."""
    u = hash_uniform(np.asarray(seeds, np.int64)[:, None], np.arange(2), _S_V1 + int(hard))
    lo, hi = AIM_FRAC_V1[hard]
    lo2, hi2 = LEAD_FRAC[hard]
    return lo + u[:, 0] * (hi - lo), lo2 + u[:, 1] * (hi2 - lo2)


def shot_side(py: np.ndarray) -> np.ndarray:
    """Fireball side (px, int64) at nominal top ``py``: ``SHOT_MIN`` at the spawn row growing
    linearly to ``SHOT_MAX`` at the agent's row (and no further)."""
    f = np.clip((py - SPAWN_Y) / (AGENT_Y - SPAWN_Y), 0.0, 1.0)
    return np.rint(SHOT_MIN + f * (SHOT_MAX - SHOT_MIN)).astype(np.int64)


def reflect(x: np.ndarray, width: float) -> np.ndarray:
    """Positions ``x`` folded into ``[0, width]`` by bouncing off both walls (a triangle wave)."""
    p = np.mod(x, 2 * width)
    return np.where(p > width, 2 * width - p, p)


def _square(side: int) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Pixel offsets ``(dy, dx)`` of a ``side`` x ``side`` fireball and its core mask."""
    dy, dx = np.mgrid[0:side, 0:side]
    m = max(1, side // 4)
    core = (dy >= m) & (dy < side - m) & (dx >= m) & (dx < side - m)
    return (dy.ravel(), dx.ravel()), core.ravel()


_SQUARES = {s: _square(s) for s in range(SHOT_MIN, SHOT_MAX + 1)}


class DodgeV1(Dodge):
    """Batched Dodge-v1 (see module docstring)."""

    name = "dodge_v1"
    agent_speed = 3

    def __init__(self, num_envs: int, opts) -> None:
        super().__init__(num_envs, opts)
        self.lead_frac = np.zeros(num_envs)
        self.static_wide = np.zeros((num_envs, OBS_SIZE, OBS_SIZE + 2 * VIEW_PAD, 3), np.uint8)
        """The static layer padded with ``VIEW_PAD`` out-of-arena columns on each side."""

    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        super()._load_levels(idx, seeds)
        self.aim_frac[idx], self.lead_frac[idx] = aim_params(seeds, self.hard)
        self.hazard[idx] = HAZARD_COLOR
        self.static_wide[idx] = OUT_OF_ARENA
        self.static_wide[idx, :, VIEW_PAD:VIEW_PAD + OBS_SIZE] = self.static[idx]

    def _aim(self, i: np.ndarray, code: np.ndarray, v: np.ndarray, travel: np.ndarray) -> np.ndarray:
        u = hash_uniform(self.level_seed[i], code, _S_AIM)
        noise = (2 * v - 1) * AIM_NOISE
        now = self.agent_x[i] + AGENT_W / 2 + noise
        ahead = reflect(self.agent_x[i] + self.agent_vx[i] * travel, ARENA_W) + AGENT_W / 2 + noise
        return np.where(u < self.aim_frac[i], now,
                        np.where(u < self.aim_frac[i] + self.lead_frac[i], ahead, v * OBS_SIZE))

    def shot_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fireball boxes in world pixels ``(x0, y0, side)``: squares of :func:`shot_side` centred
        on the flight path's centre ``(px + 2, py + 2)``."""
        side = shot_side(self.py)
        half = side / 2
        c = SHOT / 2 + 0.5
        return (np.floor(self.px + c - half).astype(np.int64), np.floor(self.py + c - half).astype(np.int64),
                side)

    def view_x0(self) -> np.ndarray:
        """World x of the view's left column: the view is centred on the agent."""
        return self.agent_x - AGENT_COL

    def _render(self, out: np.ndarray) -> None:
        # The static layer (background, floor, out-of-arena grey) is padded once per level; each
        # frame copies the agent's window of it (a loop of N contiguous slice copies, cheaper than a
        # fancy-index gather) and blits the sprites at view coordinates.
        x0 = self.view_x0()
        for i, c in enumerate(x0 + VIEW_PAD):
            out[i] = self.static_wide[i, :, c:c + OBS_SIZE]
        f, e = np.nonzero(self.wake <= self.t[:, None])
        color = np.where(self.charging()[f, e, None], self.hazard[f], self.enemy_color[f])
        _blit(out, f, np.full_like(f, ENEMY_Y), self.enemy_x[f, e] - x0[f], _ENEMY_PX, color[:, None])
        f = np.arange(self.n)
        _blit(out, f, np.full_like(f, AGENT_Y), np.full_like(f, AGENT_COL), _AGENT_PX, AGENT_COLOR, clip=False)
        ix, iy, side = self.shot_boxes()
        for s, (pixels, core) in _SQUARES.items():
            f, m = np.nonzero(self.alive & (side == s))
            if f.size:
                col = np.where(core[None, :, None], HAZARD_CORE, HAZARD_COLOR)
                _blit(out, f, iy[f, m], ix[f, m] - x0[f], pixels, np.broadcast_to(col, (len(f), *col.shape[1:])))


__all__ = ["DodgeV1", "aim_params", "reflect", "shot_side"]
