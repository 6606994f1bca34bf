"""Dodge: a TakeCover-like survival game; dodge the fireballs (+1 per step).

Description:
    The agent (a white tank on the floor line) moves left and right along the
    bottom of the screen. Enemies appear one after another in a row at the top
    (the first at the start, the next ones every 150-250 steps in easy mode,
    like the monsters piling up in VizDoom's TakeCover) and throw fireballs
    downwards. An enemy about to throw glows in the fireball colour for the
    last ``WINDUP`` (4) steps before its fireball appears below it, so every
    upcoming shot is visible in a single frame. Fireballs fly in straight lines
    at constant velocity (two frames give their velocity) and vanish on the
    floor or off the sides.

    Shot schedule: the *times* of the shots are a pure function of (level
    seed, step) through :func:`hash_uniform`, independent of the agent. Each
    enemy's time is cut into windows of ``period`` steps (shifted by a
    per-enemy phase); in each window the enemy throws at most once, with
    probability ``p_fire``, at a hashed offset, and only from ``ARRIVE`` steps
    after it appeared. The *direction* is hashed from (level seed, step,
    enemy) too: with probability ``aim_frac`` the shot is aimed at the agent's
    centre at the moment it is thrown (plus up to +-``AIM_NOISE`` px of hashed
    noise), otherwise at a uniformly random x. Every fireball reaches the
    agent's row after the same number of steps (its vertical speed is the
    level's ``shot_vy``). So the only agent-dependent part of the game is
    where aimed shots go: standing still is deadly, moving away in time saves
    the agent.

    Levels (pure function of the seed and the distribution mode): number of
    enemies, their columns and arrival times, window length, fire
    probability, fireball speed, aim fraction, palette and background. Easy:
    3-5 enemies arriving every 150-250 steps, windows of 60-90 steps with
    fire probability 0.6-0.9, slow fireballs (0.9-1.25 px/step), 15-40 %
    aimed; hard (out-of-distribution dynamics): 4-6 enemies arriving every
    60-120 steps, windows of 24-36 steps with fire probability 0.75-0.95,
    faster fireballs (1.5-2.0 px/step), 40-70 % aimed. Each env has ``max_shots(hard)`` projectile
    slots, an upper bound on the fireballs in flight, so no shot is dropped.
Action Space:
    ``Discrete(15)``, Procgen's combos: those with LEFT (0, 1, 2) move the
    agent 2 px left, those with RIGHT (6, 7, 8) 2 px right, the rest stay.
Observation Space:
    ``(64, 64, 3)`` uint8: the level's background, the floor line and the
    enemies (palette wall colour, glowing in the hazard colour while winding
    up), the agent (white, 8x5 px) and the fireballs (4x4 px, hazard colour
    with a bright core).
Rewards:
    +1 for every step the agent survives; 0 on the step it is hit.
Episode End:
    A fireball's 4x4 box overlaps the agent's 8x5 box (terminated) or 1000
    steps (truncated).
"""

from __future__ import annotations

import math

import numpy as np

from simlab.envs.procgen.base import (
    ACTION_DX,
    OBS_SIZE,
    BatchedGame,
    ProcgenOptions,
    background_images,
    hash_uniform,
    palette_of,
)

AGENT_W, AGENT_H = 8, 5
AGENT_Y = 57
"""Top row of the agent (rows 57-61)."""
AGENT_SPEED = 2
AGENT_X0 = (OBS_SIZE - AGENT_W) // 2
FLOOR_Y = 62
"""First floor row (rows 62-63); fireballs touching it vanish."""
ENEMY_W, ENEMY_H = 7, 6
ENEMY_Y = 1
ENEMY_COLUMNS = 8
"""Enemies stand in distinct 8 px columns."""
MAX_ENEMIES = 6
SHOT = 4
"""Fireball side (px)."""
SPAWN_Y = ENEMY_Y + ENEMY_H
WINDUP = 4
"""Steps an enemy glows before its fireball appears."""
ARRIVE = 20
"""An enemy throws nothing in its first ``ARRIVE`` steps on screen."""
AIM_NOISE = 5.0
MIN_GAP = 3
"""Shots of one enemy are at least this many steps apart."""
NEVER = 1 << 40
"""Arrival step of the unused enemy slots (and "no next shot")."""

# Level parameter ranges: {hard: (low, high)}.
ENEMIES = {False: (3, 5), True: (4, 6)}
WAKE_GAP = {False: (150, 250), True: (60, 120)}
"""Steps between the arrivals of successive enemies (the first one is there from the start)."""
PERIOD = {False: (60, 90), True: (24, 36)}
P_FIRE = {False: (0.6, 0.9), True: (0.75, 0.95)}
SHOT_VY = {False: (0.9, 1.25), True: (1.5, 2.0)}
AIM_FRAC = {False: (0.15, 0.4), True: (0.4, 0.7)}

AGENT_COLOR = np.array([240, 240, 240], np.uint8)
CORE_COLOR = np.array([255, 255, 210], np.uint8)

# hash_uniform streams
_S_LEVEL, _S_COLUMN, _S_PHASE, _S_WAKE = 0xD0D6E0, 0xD0D6E1, 0xD0D6E2, 0xD0D6E3
_S_SHOT, _S_AIM, _S_TARGET = 0xD0D6E4, 0xD0D6E5, 0xD0D6E6


def _mask(rows: list[str]) -> np.ndarray:
    return np.array([list(r) for r in rows]) != "."


AGENT_MASK = _mask([
    "...##...",
    ".######.",
    "########",
    "########",
    ".##..##.",
])
ENEMY_MASK = _mask([
    "#.....#",
    "##...##",
    "#######",
    "#.#.#.#",
    "#######",
    ".#.#.#.",
])
SHOT_MASK = np.ones((SHOT, SHOT), bool)
_SHOT_CORE = _mask(["....", ".oo.", ".oo.", "...."]).ravel()  # core pixels of SHOT_MASK, row-major


def max_shots(hard: bool) -> int:
    """Projectile slots per env: an upper bound on the fireballs in flight (no shot is ever dropped).

    A fireball lives at most ``lifetime`` steps and an enemy throws at most once per window.
    """
    lifetime = math.ceil((FLOOR_Y - SPAWN_Y) / SHOT_VY[hard][0]) + 1
    return ENEMIES[hard][1] * (math.ceil(lifetime / PERIOD[hard][0]) + 1)


def level_params(seeds: np.ndarray | int, hard: bool = False) -> dict[str, np.ndarray]:
    """Parameters of levels (pure function of ``(seeds, hard)``), vectorised over seeds.

    Returns arrays with a leading level axis: ``n_enemies``; per enemy slot
    (``MAX_ENEMIES``): ``enemy_x`` (left column), ``wake`` (arrival step;
    ``NEVER`` beyond the first ``n_enemies``) and ``phase``; ``period``
    (window length); ``p_fire``; ``shot_vy`` (px/step); ``aim_frac``.
    """
    s = np.atleast_1d(np.asarray(seeds, np.int64))
    u = hash_uniform(s[:, None], np.arange(8), _S_LEVEL + int(hard))  # (n, 8)

    def between(k: int, lo_hi: tuple[float, float]) -> np.ndarray:
        return lo_hi[0] + u[:, k] * (lo_hi[1] - lo_hi[0])

    def integer(v: np.ndarray, lo_hi: tuple[int, int]) -> np.ndarray:
        return lo_hi[0] + (v * (lo_hi[1] - lo_hi[0] + 1)).astype(np.int64)

    n_enemies = integer(u[:, 0], ENEMIES[hard])
    period = integer(u[:, 1], PERIOD[hard])
    e = np.arange(MAX_ENEMIES)
    cols = np.argsort(hash_uniform(s[:, None], np.arange(ENEMY_COLUMNS), _S_COLUMN), axis=1)[:, :MAX_ENEMIES]
    jitter = (hash_uniform(s[:, None], e + 16, _S_COLUMN) * 2).astype(np.int64)
    gaps = integer(hash_uniform(s[:, None], e, _S_WAKE), WAKE_GAP[hard])
    gaps[:, 0] = 0
    wake = np.cumsum(gaps, 1)
    return {
        "n_enemies": n_enemies,
        "enemy_x": cols * ENEMY_COLUMNS + jitter,
        "wake": np.where(e[None, :] < n_enemies[:, None], wake, NEVER),
        "phase": (hash_uniform(s[:, None], e, _S_PHASE) * period[:, None]).astype(np.int64),
        "period": period,
        "p_fire": between(2, P_FIRE[hard]),
        "shot_vy": between(3, SHOT_VY[hard]),
        "aim_frac": between(4, AIM_FRAC[hard]),
    }


def window_shot(seed: np.ndarray, enemy: np.ndarray, window: np.ndarray, period: np.ndarray,
                phase: np.ndarray, p_fire: np.ndarray) -> np.ndarray:
    """Step of an enemy's shot in a window, or -1 when it does not throw in it (broadcasts).

    Window ``w`` covers steps ``[w * period - phase, (w + 1) * period - phase)``; the shot
    (probability ``p_fire``) comes at a hashed offset in ``[0, period - MIN_GAP]``.
    """
    u = hash_uniform(seed, window * 16 + enemy, _S_SHOT)
    off = np.minimum(u / p_fire * (period - MIN_GAP + 1), period - MIN_GAP).astype(np.int64)
    return np.where(u < p_fire, window * period - phase + off, -1)


def next_shots(seed: np.ndarray, enemy: np.ndarray, after: np.ndarray, wake: np.ndarray, period: np.ndarray,
               phase: np.ndarray, p_fire: np.ndarray) -> np.ndarray:
    """First shot step ``> after`` of each enemy (1-D arrays); ``NEVER`` for unused enemies.

    The shots of an enemy are its window shots at steps ``>= wake + ARRIVE``. The search
    loops over windows (vectorised over the entries; ``p_fire >= 0.6`` keeps it short; an
    enemy silent for ``4096`` windows is treated as never throwing again).
    """
    out = np.full(len(seed), NEVER, np.int64)
    todo = np.flatnonzero(wake < NEVER)
    start = np.maximum(after + 1, wake + ARRIVE)
    window = (start + phase) // period
    for _ in range(4096):
        if not todo.size:
            break
        t = window_shot(seed[todo], enemy[todo], window[todo], period[todo], phase[todo], p_fire[todo])
        ok = t >= start[todo]
        out[todo[ok]] = t[ok]
        todo = todo[~ok]
        window[todo] += 1
    return out


def _sprite(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.nonzero(mask)
    return dy, dx


_AGENT_PX, _ENEMY_PX, _SHOT_PX = _sprite(AGENT_MASK), _sprite(ENEMY_MASK), _sprite(SHOT_MASK)


def _blit(frames: np.ndarray, f: np.ndarray, y: np.ndarray, x: np.ndarray, pixels: tuple[np.ndarray, np.ndarray],
          color: np.ndarray, clip: bool = True) -> None:
    """Paint one sprite per entry of the 1-D arrays ``f`` (frame), ``y``, ``x`` (top-left pixel).

    ``pixels`` are the sprite's ``(dy, dx)`` offsets; ``color`` broadcasts to
    ``(len(f), len(dy), 3)``; ``clip=False`` skips the frame-boundary test for
    sprites known to lie inside the frame. ``frames`` must be C-contiguous.
    """
    if not frames.flags.c_contiguous:
        raise ValueError("frames must be C-contiguous")
    _, hgt, wid, _ = frames.shape
    dy, dx = pixels
    yy = y[:, None] + dy
    xx = x[:, None] + dx
    flat = (f[:, None] * hgt + yy) * wid + xx
    col = np.asarray(color, np.uint8)
    if clip:
        ok = (yy >= 0) & (yy < hgt) & (xx >= 0) & (xx < wid)
        flat = flat[ok]
        if col.ndim > 1:
            col = np.broadcast_to(col, ok.shape + (3,))[ok]
    frames.reshape(-1, 3)[flat] = col


class Dodge(BatchedGame):
    """Batched Dodge (see module docstring)."""

    name = "dodge"
    max_steps = 1000
    episode_state = ("t", "agent_x", "agent_vx", "px", "py", "vx", "vy", "alive", "next_shot")
    """Attributes holding the in-episode state (everything else is fixed by the level)."""
    agent_speed = AGENT_SPEED
    """Pixels the agent moves per LEFT/RIGHT step."""
    mirror_actions = (6, 7, 8, 3, 4, 5, 0, 1, 2, 9, 10, 11, 12, 13, 14)
    """Left-right symmetric rules (an arena symmetric about its centre, shots that fall or aim at
    the agent, Dodge-v1's view centred on the agent): LEFT combos <-> RIGHT combos."""

    def __init__(self, num_envs: int, opts: ProcgenOptions) -> None:
        super().__init__(num_envs, opts)
        n, k, e = num_envs, max_shots(self.hard), MAX_ENEMIES
        self.agent_x = np.full(n, AGENT_X0, np.int64)
        self.agent_vx = np.zeros(n, np.int64)
        """The agent's last move (px/step)."""
        self.px = np.zeros((n, k))
        self.py = np.zeros((n, k))
        self.vx = np.zeros((n, k))
        self.vy = np.zeros((n, k))
        self.alive = np.zeros((n, k), bool)
        self.next_shot = np.full((n, e), NEVER, np.int64)
        """Step of each enemy's next shot (derived from the schedule, cached)."""
        self.enemy_x = np.zeros((n, e), np.int64)
        self.wake = np.full((n, e), NEVER, np.int64)
        self.phase = np.zeros((n, e), np.int64)
        self.period = np.full(n, 10, np.int64)
        self.p_fire = np.ones(n)
        self.shot_vy = np.ones(n)
        self.aim_frac = np.zeros(n)
        self.hazard = np.zeros((n, 3), np.uint8)
        self.enemy_color = np.zeros((n, 3), np.uint8)
        self.static = np.zeros((n, OBS_SIZE, OBS_SIZE, 3), np.uint8)

    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        p = level_params(seeds, self.hard)
        for key in ("enemy_x", "wake", "phase", "period", "p_fire", "shot_vy", "aim_frac"):
            getattr(self, key)[idx] = p[key]
        self.agent_x[idx] = AGENT_X0
        self.agent_vx[idx] = 0
        self.alive[idx] = False
        self.px[idx] = self.py[idx] = self.vx[idx] = self.vy[idx] = 0.0
        f = idx.repeat(MAX_ENEMIES)
        self._schedule(f, np.tile(np.arange(MAX_ENEMIES), len(idx)), self.t[f])
        # Static layer (background, floor) drawn once per level.
        pal = palette_of(seeds)
        self.enemy_color[idx], self.hazard[idx] = pal[:, 2], pal[:, 3]
        bg = background_images(seeds, self.opts.use_backgrounds)
        bg[:, FLOOR_Y:] = pal[:, 2][:, None, None, :]
        self.static[idx] = bg

    def _schedule(self, f: np.ndarray, e: np.ndarray, after: np.ndarray) -> None:
        """Set the next shot (after step ``after``) of enemies ``e`` of envs ``f``."""
        self.next_shot[f, e] = next_shots(self.level_seed[f], e, after, self.wake[f, e], self.period[f],
                                          self.phase[f, e], self.p_fire[f])

    def _aim(self, i: np.ndarray, code: np.ndarray, v: np.ndarray, travel: np.ndarray) -> np.ndarray:
        """Target x (px, world) of new shots of envs ``i``: aimed at the agent's centre now (plus
        hashed noise) with probability ``aim_frac``, else ``v * OBS_SIZE`` (uniform)."""
        aimed = hash_uniform(self.level_seed[i], code, _S_AIM) < self.aim_frac[i]
        return np.where(aimed, self.agent_x[i] + AGENT_W / 2 + (2 * v - 1) * AIM_NOISE, v * OBS_SIZE)

    def shot_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fireball boxes in world pixels ``(x0, y0, side)``, each ``(N, max_shots)`` int64
        (meaningful where ``self.alive``): Dodge-v0's fireballs are 4x4 squares at the rounded
        position ``(px, py)``."""
        return (np.floor(self.px + 0.5).astype(np.int64), np.floor(self.py + 0.5).astype(np.int64),
                np.full(self.px.shape, SHOT, np.int64))

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.t + 1  # the step being entered
        new_x = np.clip(self.agent_x + ACTION_DX[actions] * self.agent_speed, 0, OBS_SIZE - AGENT_W)
        self.agent_vx = new_x - self.agent_x
        self.agent_x = new_x
        self.px += self.vx
        self.py += self.vy
        # New shots: times from the schedule; aimed ones go where the agent is now.
        fire = self.next_shot == k[:, None]
        if fire.any():
            rank = np.cumsum(fire, 1) - 1
            free = np.argsort(self.alive, axis=1, kind="stable")  # free slots first
            i, e = np.nonzero(fire)
            slot = free[i, rank[i, e]]  # max_shots bounds the fireballs in flight: always free
            code = k[i] * 16 + e
            v = hash_uniform(self.level_seed[i], code, _S_TARGET)
            travel = (AGENT_Y + AGENT_H / 2 - SPAWN_Y - SHOT / 2) / self.shot_vy[i]
            target = self._aim(i, code, v, travel)
            muzzle = self.enemy_x[i, e] + ENEMY_W / 2
            self.px[i, slot] = muzzle - SHOT / 2
            self.py[i, slot] = SPAWN_Y
            self.vx[i, slot] = (target - muzzle) / travel
            self.vy[i, slot] = self.shot_vy[i]
            self.alive[i, slot] = True
            self._schedule(i, e, k[i])
        ix, iy, side = self.shot_boxes()
        ax = self.agent_x[:, None]
        hit = self.alive & (iy + side > AGENT_Y) & (iy < AGENT_Y + AGENT_H) & (ix + side > ax) & (ix < ax + AGENT_W)
        gone = (iy + side > FLOOR_Y) | (ix + side <= 0) | (ix >= OBS_SIZE)
        self.alive &= ~gone | hit  # the fireball that hits stays visible in the last frame
        done = hit.any(1)
        return np.where(done, 0.0, 1.0).astype(np.float32), done

    def charging(self) -> np.ndarray:
        """Enemies winding up (their shot comes within ``WINDUP`` steps) ``(N, MAX_ENEMIES)``."""
        dt = self.next_shot - self.t[:, None]
        return (dt > 0) & (dt <= WINDUP)

    def view_x0(self) -> np.ndarray:
        """World x of each observation's left column ``(N,)``: 0 (Dodge-v0 shows the whole arena)."""
        return np.zeros(self.n, np.int64)

    def hazard_boxes(self) -> np.ndarray:
        """Where the fireballs are in the current observations: ``(N, max_shots, 4)`` int16 boxes
        ``[x0, y0, x1, y1)`` in observation pixels, clipped to the frame; ``-1`` rows for empty
        slots and fireballs out of view. Recorded in datasets for the hazard-recall diagnostic."""
        ix, iy, side = self.shot_boxes()
        x0 = ix - self.view_x0()[:, None]
        box = np.stack([np.clip(x0, 0, OBS_SIZE), np.clip(iy, 0, OBS_SIZE),
                        np.clip(x0 + side, 0, OBS_SIZE), np.clip(iy + side, 0, OBS_SIZE)], -1)
        seen = self.alive & (box[..., 2] > box[..., 0]) & (box[..., 3] > box[..., 1])
        return np.where(seen[..., None], box, -1).astype(np.int16)

    def _render(self, out: np.ndarray) -> None:
        np.copyto(out, self.static)
        f, e = np.nonzero(self.wake <= self.t[:, None])
        color = np.where(self.charging()[f, e, None], self.hazard[f], self.enemy_color[f])
        _blit(out, f, np.full_like(f, ENEMY_Y), self.enemy_x[f, e], _ENEMY_PX, color[:, None], clip=False)
        f = np.arange(self.n)
        _blit(out, f, np.full_like(f, AGENT_Y), self.agent_x, _AGENT_PX, AGENT_COLOR, clip=False)
        f, m = np.nonzero(self.alive)
        if f.size:
            ix = np.floor(self.px[f, m] + 0.5).astype(np.int64)
            iy = np.floor(self.py[f, m] + 0.5).astype(np.int64)
            color = np.where(_SHOT_CORE[None, :, None], CORE_COLOR, self.hazard[f][:, None])
            _blit(out, f, iy, ix, _SHOT_PX, color)
