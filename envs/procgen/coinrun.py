"""CoinRun: a side-scrolling platformer; run and jump to the coin at the end of the level (+10).

Description:
    A level is a strip of ground segments (3-8 tiles long, surfaces at 7
    heights) separated by gaps and steps, 12 tiles high (5 px tiles) and
    30-58 tiles long on easy, 60-107 on hard. The agent starts on a safe
    segment at the left end; the coin sits on a safe segment before the wall
    at the right end. On the way: gaps (2-3 tiles wide on easy, 2-4 on hard;
    always within a jump, and never landing higher over 4 tiles), steps up (at
    most 2 tiles) and down, saws (static hazards on the ground, alone or, on
    hard, in pairs), enemies patrolling a whole segment left and right (1
    px/step on easy, 2 on hard) and floating platforms. Hard levels are
    longer, with wider gaps, about twice as many hazards per tile and faster
    enemies. Every level is a pure function of its seed and the distribution
    mode (layout, hazards, palette, background).
Action Space:
    ``Discrete(15)``, Procgen's combos: LEFT/RIGHT move 2 px per step (also in
    the air); a combo with UP (indices 2, 5, 8) jumps when standing on ground.
    The rest are no-ops.
Observation Space:
    ``(64, 64, 3)`` uint8: a 64 px wide window of the level following the
    agent horizontally (the whole level height is always visible, with a 4 px
    band of sky above it). Terrain in the level's palette over its background
    (which scrolls with the level), grey saws, enemies in the palette's hazard
    colour, a gold coin and a white agent.
Rewards:
    +10 on touching the coin; 0 otherwise.
Episode End:
    Coin touched (+10), or touching a saw or an enemy, or falling below the
    level through a gap (0; all terminated); 1000 steps (truncated).

Physics (exactly deterministic, integer pixels): the agent is a 5x5 px box.
Each step it moves ``2 * dx`` px horizontally (``dx`` from the action) and
stops flush against solid tiles; then its vertical speed becomes ``-5`` if it
stands on ground and the action includes UP, else ``min(vy + 1, 5)``, and it
moves ``vy`` px, landing (or bumping its head) flush against tiles. A jump
rises 15 px (3 tiles) and, running, carries 22 px (4.4 tiles) before it is
back at its take-off height. Enemies follow a triangular patrol that is a pure
function of the level and the time step. Collisions with a saw or an enemy use
its 3x3 px core (a 1 px forgiving margin); the coin uses its whole 5x5 box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simlab.envs.procgen.base import (
    ACTION_DX,
    ACTION_DY,
    OBS_SIZE,
    BatchedGame,
    ProcgenOptions,
    background_images,
    palette_of,
    visual_factors,
)

TILE = 5
"""Tile side and agent/sprite box side in pixels (1 physics unit = 1 px)."""
ROWS = 12
"""Level height in tiles (60 px)."""
GRID_ROWS = ROWS + 2
"""Tile rows stored: two rows below the level bottom (continuing the ground) catch falls."""
TOP = OBS_SIZE - ROWS * TILE
"""Sky band (px) drawn above level row 0."""
MASK_ROWS = (GRID_ROWS - 1) * TILE + 1
"""Rows of the per-pixel collision masks (agent top-left y in [0, MASK_ROWS))."""
SPEED, GRAVITY, JUMP, VMAX = 2, 1, 5, 5
"""Horizontal speed (CoinRun-v0's; :attr:`Params.speed`), gravity, jump speed and fall speed cap (px/step);
all <= TILE (no tunnelling)."""
FALL_Y = ROWS * TILE
"""An agent whose top reaches this y has fallen out of the level."""
CAMERA_LEAD = 24
"""The camera keeps the agent's left edge this many px from the window's left edge."""
START_LEN, FINAL_LEN = 5, 6
"""Lengths (tiles) of the safe start and final segments."""
MIN_SURF, MAX_SURF = 4, 10
"""Highest and lowest ground surface rows."""

NONE, COIN, FELL, SAW, ENEMY = 0, 1, 2, 3, 4
"""Outcome codes of a step (:attr:`CoinRun.outcome`)."""
BLOCKED, SAW_BIT = 1, 2
"""Bits of the per-pixel flag masks."""


@dataclass(frozen=True)
class Params:
    """Level generation (and horizontal speed) parameters of a distribution mode.

    Widths, gaps and segments are in tiles, probabilities per segment (or per transition between
    segments, for ``gap_prob``), speeds in px per step. The fields after ``max_enemies`` have
    defaults that reproduce CoinRun-v0 exactly (same levels, same random draws); CoinRun-v1
    (:mod:`simlab.envs.procgen.coinrun_v1`) sets them.
    """

    min_width: int
    max_width: int
    max_gap: int
    min_seg: int
    max_seg: int
    gap_prob: float
    saw_prob: float
    enemy_prob: float
    platform_prob: float
    double_saw_prob: float
    enemy_speed: int
    max_saws: int
    max_enemies: int
    force_gap: bool = True
    """Every level has at least one gap (one is added before the final segment if none was drawn)."""
    safe_segments: int = 0
    """Segments after the start segment that get no saw, enemy or platform."""
    speed: int = SPEED
    """Horizontal speed of the agent (px/step), in ``[1, TILE]`` (no tunnelling)."""


EASY = Params(30, 50, 3, 3, 8, 0.5, 0.3, 0.2, 0.25, 0.0, 1, 12, 6)
HARD = Params(60, 100, 4, 3, 8, 0.6, 0.45, 0.35, 0.1, 0.35, 2, 40, 10)


def params(hard: bool) -> Params:
    """Generation parameters of a mode (CoinRun-v0's)."""
    return HARD if hard else EASY


def max_cols(hard: bool, p: Params | None = None) -> int:
    """Upper bound on a level's width in tiles (array sizes) under ``p`` (default: ``params(hard)``)."""
    p = params(hard) if p is None else p
    return p.max_width + 2 * p.max_gap + p.max_seg + FINAL_LEN + 1


@dataclass(frozen=True, eq=False)
class Level:
    """A generated level (read-only arrays; pixels, origin at the top-left of level row 0)."""

    seed: int
    hard: bool
    width: int
    """Columns (tiles), the two end walls included."""
    surface: np.ndarray
    """``(width,)`` top solid row of each column: -1 for a gap, 0 for the end walls."""
    solid: np.ndarray
    """``(GRID_ROWS, width)`` bool tiles (floating platforms included)."""
    start: tuple[int, int]
    """Agent top-left ``(x, y)``."""
    coin: tuple[int, int]
    """Coin top-left ``(x, y)``."""
    saws: np.ndarray
    """``(k, 2)`` saw top-lefts ``(x, y)``."""
    enemies: np.ndarray
    """``(m, 5)`` enemy patrols ``(x0, span, y, speed, phase)``: x = x0 + tri((phase + speed t) mod 2 span)."""
    flags: np.ndarray
    """``(MASK_ROWS, width * TILE)`` uint8 per agent top-left pixel: bit 1 the box overlaps a solid tile,
    bit 2 it touches a saw's core."""

    def gaps(self) -> list[tuple[int, int, int, int]]:
        """Gaps as ``(first column, width, surface row before, surface row after)``."""
        out, c = [], 1
        while c < self.width - 1:
            if self.surface[c] < 0:
                e = c
                while self.surface[e] < 0:
                    e += 1
                out.append((c, e - c, int(self.surface[c - 1]), int(self.surface[e])))
                c = e
            c += 1
        return out


def _dilate(px: np.ndarray, width_px: int) -> np.ndarray:
    """``m[y, x] = px[y:y+TILE, x:x+TILE].any()`` for top-lefts ``y < MASK_ROWS``, ``x < width_px``."""
    h, w = px.shape
    pad = np.zeros((h + TILE, w + TILE), bool)
    pad[:h, :w] = px
    rows = pad[:-TILE].copy()
    for k in range(1, TILE):
        rows |= pad[k:k + h]
    out = rows[:, :w].copy()
    for k in range(1, TILE):
        out |= rows[:, k:k + w]
    return out[:MASK_ROWS, :width_px]


def _tri(u: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Triangular wave in [0, span] of period 2 span."""
    u = u % (2 * span)
    return np.where(u > span, 2 * span - u, u)


@lru_cache(maxsize=1024)
def generate_level(seed: int, hard: bool = False, p: Params | None = None) -> Level:
    """The level of a seed: a pure function of ``(seed, hard, p)`` (cached; arrays are read-only).

    ``p``: the generation parameters (default: ``params(hard)``, CoinRun-v0's levels). The random
    stream depends on ``(seed, hard)`` only.
    """
    p = params(hard) if p is None else p
    rng = np.random.default_rng([int(seed), 0xC014, int(hard)])
    target = int(rng.integers(p.min_width, p.max_width + 1))
    s = int(rng.integers(7, MAX_SURF))
    surface = [0] + [s] * START_LEN
    saws: list[tuple[int, int]] = []
    enemies: list[tuple[int, int, int, int, int]] = []
    platforms: list[tuple[int, int, int]] = []
    had_gap = False
    n_seg = 0

    def transition(force_gap: bool = False) -> None:
        nonlocal s, had_gap
        if force_gap or rng.random() < p.gap_prob:
            g = int(rng.integers(2, p.max_gap + 1))
            rise = 1 if g <= 3 else 0  # wide gaps never land higher
            ns = s + int(rng.integers(-rise, 3))  # rows grow downwards: negative = higher
            surface.extend([-1] * g)
            had_gap = True
        else:
            ns = s + (-2, -1, 1, 2)[int(rng.integers(4))]
        s = min(max(ns, MIN_SURF), MAX_SURF)

    while len(surface) + FINAL_LEN + 1 < target:
        transition()
        seg = int(rng.integers(p.min_seg, p.max_seg + 1))
        c0 = len(surface)
        c1 = c0 + seg - 1
        surface.extend([s] * seg)
        u = rng.random()
        if n_seg < p.safe_segments:
            u = float("inf")  # no hazard or platform
        n_seg += 1
        y = s * TILE - TILE
        if seg >= 5 and u < p.enemy_prob and len(enemies) < p.max_enemies:
            span = (c1 - c0) * TILE
            enemies.append((c0 * TILE, span, y, p.enemy_speed, int(rng.integers(0, 2 * span))))
        elif seg >= 4 and u < p.enemy_prob + p.saw_prob and len(saws) + 2 <= p.max_saws:
            n = 2 if seg >= 5 and rng.random() < p.double_saw_prob else 1
            c = int(rng.integers(c0 + 1, c1 - n))  # at least 2 free tiles after the saw(s)
            saws.extend((cc * TILE, y) for cc in range(c, c + n))
        elif seg >= 6 and s >= MIN_SURF + 3 and u < p.enemy_prob + p.saw_prob + p.platform_prob:
            platforms.append((s - 3, c0 + 2, c1 - 2))
    if p.force_gap and not had_gap:
        transition(force_gap=True)
    surface.extend([s] * FINAL_LEN + [0])
    width = len(surface)
    coin = ((width - 3) * TILE, s * TILE - TILE)

    surf = np.array(surface, np.int64)
    rows = np.arange(GRID_ROWS)[:, None]
    solid = (surf[None, :] >= 0) & (rows >= surf[None, :])
    for r, a, b in platforms:
        solid[r, a:b + 1] = True
    sol_px = solid.repeat(TILE, 0).repeat(TILE, 1)
    saw_px = np.zeros_like(sol_px)
    for x, y in saws:
        saw_px[y + 1:y + TILE - 1, x + 1:x + TILE - 1] = True
    flags = (_dilate(sol_px, width * TILE).astype(np.uint8) * BLOCKED
             | _dilate(saw_px, width * TILE).astype(np.uint8) * SAW_BIT)
    lv = Level(int(seed), bool(hard), width, surf, solid, (2 * TILE, surface[2] * TILE - TILE), coin,
               np.array(saws, np.int64).reshape(-1, 2), np.array(enemies, np.int64).reshape(-1, 5), flags)
    for a in (lv.surface, lv.solid, lv.saws, lv.enemies, lv.flags):
        a.flags.writeable = False
    return lv


class LevelBatch:
    """Levels of a batch as padded arrays (what :func:`advance` reads)."""

    def __init__(self, n: int, hard: bool, p: Params | None = None) -> None:
        p = params(hard) if p is None else p
        self.hard = hard
        self.speed = p.speed
        """Horizontal speed (px/step) of the agent on these levels."""
        wpx = max_cols(hard, p) * TILE
        self.flags = np.full((n, MASK_ROWS, wpx), BLOCKED, np.uint8)
        self.width_px = np.full(n, wpx, np.int64)
        self.coin = np.zeros((n, 2), np.int64)
        e = p.max_enemies
        self.en_x0 = np.zeros((n, e), np.int64)
        self.en_span = np.ones((n, e), np.int64)
        self.en_y = np.full((n, e), -1000, np.int64)  # unused enemy slots: far above the level
        self.en_speed = np.zeros((n, e), np.int64)
        self.en_phase = np.zeros((n, e), np.int64)

    @classmethod
    def of(cls, levels: list[Level], hard: bool, p: Params | None = None) -> LevelBatch:
        """A batch holding the given levels (generated under ``p``, default ``params(hard)``) in order."""
        b = cls(len(levels), hard, p)
        for i, lv in enumerate(levels):
            b.set(i, lv)
        return b

    def set(self, i: int, lv: Level) -> None:
        """Write level ``lv`` into slot ``i``."""
        w = lv.width * TILE
        self.flags[i, :, :w] = lv.flags
        self.flags[i, :, w:] = BLOCKED
        self.width_px[i] = w
        self.coin[i] = lv.coin
        m = len(lv.enemies)
        self.en_y[i] = -1000
        self.en_span[i] = 1
        self.en_x0[i, :m], self.en_span[i, :m], self.en_y[i, :m], self.en_speed[i, :m], self.en_phase[i, :m] = (
            lv.enemies.T)

    def enemy_x(self, t: np.ndarray, lvl: np.ndarray | None = None) -> np.ndarray:
        """Enemy left edges ``(M, E)`` at steps ``t`` ``(M,)`` (of levels ``lvl``, default: slot i)."""
        g = (lambda a: a) if lvl is None else (lambda a: a[lvl])
        span = g(self.en_span)
        return g(self.en_x0) + _tri(g(self.en_phase) + g(self.en_speed) * np.asarray(t)[:, None], span)


def advance(b: LevelBatch, x: np.ndarray, y: np.ndarray, vy: np.ndarray, t_next: np.ndarray,
            actions: np.ndarray, lvl: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The dynamics of one step, vectorised over states: ``(x, y, vy, outcome)`` after it.

    State ``i`` plays level ``lvl[i]`` of ``b`` (default: level ``i``); ``t_next``
    is the step count after this step (enemies are checked at that time).
    ``outcome`` is one of NONE, COIN, FELL, SAW, ENEMY.
    """
    wpx = b.flags.shape[2]
    flat = b.flags.reshape(-1)
    base = (np.arange(len(x)) if lvl is None else lvl) * (MASK_ROWS * wpx)
    top = MASK_ROWS - 1
    dx = ACTION_DX[actions] * b.speed
    nx = x + dx
    hit = (flat[base + np.clip(y, 0, top) * wpx + nx] & BLOCKED) > 0
    nx = np.where(hit, np.where(dx > 0, (nx + TILE - 1) // TILE * TILE - TILE, (nx // TILE + 1) * TILE), nx)
    ground = (flat[base + np.clip(y + 1, 0, top) * wpx + nx] & BLOCKED) > 0
    vy = np.where(ground & (ACTION_DY[actions] < 0), -JUMP, np.minimum(vy + GRAVITY, VMAX))
    ny = y + vy
    hit = (flat[base + np.clip(ny, 0, top) * wpx + nx] & BLOCKED) > 0
    ny = np.where(hit, np.where(vy > 0, (ny + TILE - 1) // TILE * TILE - TILE, (ny // TILE + 1) * TILE), ny)
    vy = np.where(hit, 0, vy)
    saw = (flat[base + np.clip(ny, 0, top) * wpx + nx] & SAW_BIT) > 0
    ex = b.enemy_x(np.broadcast_to(t_next, nx.shape), lvl)
    ey = b.en_y if lvl is None else b.en_y[lvl]
    enemy = ((np.abs(ex - nx[:, None]) < TILE - 1) & (np.abs(ey - ny[:, None]) < TILE - 1)).any(1)
    coin = b.coin if lvl is None else b.coin[lvl]
    got = (np.abs(nx - coin[:, 0]) < TILE) & (np.abs(ny - coin[:, 1]) < TILE)
    outcome = np.select([ny >= FALL_Y, saw, enemy, got], [FELL, SAW, ENEMY, COIN], NONE)
    return nx, ny, vy, outcome


def _sprite(rows: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets ``(P, 2)`` (dy, dx) and characters ``(P,)`` of the non-``.`` pixels of a text sprite."""
    px = [(r, c, v) for r, line in enumerate(rows) for c, v in enumerate(line) if v != "."]
    return np.array([p[:2] for p in px], np.int64), np.array([p[2] for p in px])


def _colors(chars: np.ndarray, table: dict[str, object]) -> np.ndarray:
    """Per-pixel colours ``(P, 3)`` uint8 of a sprite's characters."""
    return np.array([table[c] for c in chars], np.uint8).reshape(-1, 3)


AGENT_PIX, _AGENT = _sprite((".###.", "##o#o", "#####", "#####", "##.##"))
ENEMY_PIX, _ENEMY = _sprite((".###.", "#o#o#", "#####", "#####", "#.#.#"))
SAW_PIX, _SAW = _sprite(("#.#.#", ".###.", "##o##", ".###.", "#.#.#"))
COIN_PIX, _COIN = _sprite((".###.", "#o#:#", "##.:#", "###:#", ".###."))
AGENT_COLORS = _colors(_AGENT, {"#": (250, 250, 250), "o": (20, 20, 20)})
COIN_COLORS = _colors(_COIN, {"#": (255, 200, 0), ":": (200, 140, 0), "o": (255, 255, 210)})
ENEMY_BODY, SAW_CORE = _ENEMY == "#", _SAW == "o"
"""Pixels drawn in the palette's hazard colour (enemy bodies, saw cores); the rest: white eyes, grey teeth."""
ENEMY_EYE, SAW_METAL = np.array([255, 255, 255], np.uint8), np.array([175, 175, 190], np.uint8)


def hazard_colors(hazard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel colours of the enemy and saw sprites of levels with hazard colours ``(N, 3)``:
    ``((N, P_enemy, 3), (N, P_saw, 3))``."""
    h = np.asarray(hazard, np.uint8)[:, None, :]
    return (np.where(ENEMY_BODY[None, :, None], h, ENEMY_EYE), np.where(SAW_CORE[None, :, None], h, SAW_METAL))


_EDGE = (np.arange(TILE)[:, None] == TILE - 1) | (np.arange(TILE)[None, :] == TILE - 1)
_TOP_ROW = np.broadcast_to(np.arange(TILE)[:, None] == 0, (TILE, TILE))


def _blit(frames: np.ndarray, ys: np.ndarray, xs: np.ndarray, pix: np.ndarray, colors: np.ndarray) -> None:
    """Paint sprites into frames ``(N, H, W, 3)``, in place.

    ``(ys, xs)`` ``(N, K)``: top-lefts of K sprites per frame; ``pix`` ``(P, 2)``: the sprite's pixel
    offsets (within a TILE box); ``colors``: ``(P, 3)`` per pixel, or ``(N, P, 3)`` per frame and pixel.
    Off-frame pixels are clipped.
    """
    _, h, w, _ = frames.shape
    f, k = np.nonzero((ys > -TILE) & (ys < h) & (xs > -TILE) & (xs < w))  # sprites (partly) on screen
    yy = ys[f, k][:, None] + pix[:, 0]
    xx = xs[f, k][:, None] + pix[:, 1]
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    fr = np.broadcast_to(f[:, None], yy.shape)[ok]
    pi = np.broadcast_to(np.arange(len(pix)), yy.shape)[ok]
    frames[fr, yy[ok], xx[ok]] = colors[pi] if colors.ndim == 2 else colors[fr, pi]


@lru_cache(maxsize=64)
def _tile_textures(wall: tuple[int, int, int]) -> np.ndarray:
    w = np.array(wall, np.int64)
    ground = np.where(_EDGE[..., None], w * 3 // 5, w)
    surface = np.where(_TOP_ROW[..., None], (w + 255) // 2, ground)
    return np.stack([ground, ground, surface]).astype(np.uint8)


def tile_textures(wall: np.ndarray) -> np.ndarray:
    """Terrain tile textures ``(3, TILE, TILE, 3)`` of a wall colour: (unused, ground, ground surface)."""
    return _tile_textures(tuple(int(v) for v in wall))


def draw_static(lv: Level, strip: np.ndarray, pal: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Draw the static layer of a level into ``out`` ``(64, W, 3)``: ``strip`` (the background,
    ``(64, W, 3)``), terrain in the palette's wall colour, saws and the coin. Returns ``out``."""
    out[:] = strip
    w = lv.width * TILE
    kind = lv.solid[:ROWS].astype(np.int64)
    kind[1:] += lv.solid[1:ROWS] & ~lv.solid[:ROWS - 1]  # 0 empty, 1 ground, 2 ground under open sky
    terrain = tile_textures(pal[2])[kind].transpose(0, 2, 1, 3, 4).reshape(ROWS * TILE, w, 3)
    mask = lv.solid[:ROWS].repeat(TILE, 0).repeat(TILE, 1)
    np.copyto(out[TOP:, :w], terrain, where=mask[..., None])
    out[:TOP, :TILE] = out[TOP + 1, :TILE]  # the end walls reach the top of the frame
    out[:TOP, w - TILE:w] = out[TOP + 1, w - TILE:w]
    _blit(out[None], lv.saws[None, :, 1] + TOP, lv.saws[None, :, 0], SAW_PIX, hazard_colors(pal[None, 3])[1])
    _blit(out[None], np.array([[lv.coin[1] + TOP]]), np.array([[lv.coin[0]]]), COIN_PIX, COIN_COLORS)
    return out


class CoinRun(BatchedGame):
    """Batched CoinRun (see module docstring)."""

    name = "coinrun"
    max_steps = 1000

    @classmethod
    def level_params(cls, hard: bool) -> Params:
        """Generation parameters of a mode (subclasses, e.g. CoinRun-v1, give their own)."""
        return params(hard)

    def __init__(self, num_envs: int, opts: ProcgenOptions) -> None:
        super().__init__(num_envs, opts)
        self.params = self.level_params(self.hard)
        """Generation parameters of this engine's levels."""
        self.levels = LevelBatch(num_envs, self.hard, self.params)
        self.x = np.zeros(num_envs, np.int64)
        self.y = np.zeros(num_envs, np.int64)
        self.vy = np.zeros(num_envs, np.int64)
        self.outcome = np.zeros(num_envs, np.int64)
        """Outcome code of each slot's last step (NONE, COIN, FELL, SAW, ENEMY)."""
        self.wpx = -(-max_cols(self.hard, self.params) * TILE // OBS_SIZE) * OBS_SIZE  # whole background tiles
        self.static = np.zeros((num_envs, OBS_SIZE, self.wpx, 3), np.uint8)
        self.enemy_colors = np.zeros((num_envs, len(ENEMY_PIX), 3), np.uint8)
        self._slots = np.arange(num_envs)[:, None]
        self._strips: dict[tuple[int, int], np.ndarray] = {}
        self._rows = np.arange(OBS_SIZE)

    def _strip(self, seed: int, fam: int, pal: int) -> np.ndarray:
        """The background of a level tiled over the static layer's width; background_images is
        a function of the (background family, palette) pair only, so one strip per pair is cached."""
        if (fam, pal) not in self._strips:
            bg = background_images(np.array([seed]), self.opts.use_backgrounds)[0]
            self._strips[fam, pal] = np.tile(bg, (1, self.wpx // OBS_SIZE, 1))
        return self._strips[fam, pal]

    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        fams, pal_ids = visual_factors(seeds)
        pals = palette_of(seeds)
        for k, (i, s) in enumerate(zip(idx, seeds)):
            lv = generate_level(int(s), self.hard, self.params)
            self.levels.set(int(i), lv)
            self.x[i], self.y[i] = lv.start
            draw_static(lv, self._strip(int(s), int(fams[k]), int(pal_ids[k])), pals[k], self.static[i])
        self.vy[idx] = 0
        self.outcome[idx] = NONE
        self.enemy_colors[idx] = hazard_colors(pals[:, 3])[0]

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.x, self.y, self.vy, self.outcome = advance(self.levels, self.x, self.y, self.vy, self.t + 1, actions)
        done = self.outcome != NONE
        return np.where(self.outcome == COIN, 10.0, 0.0).astype(np.float32), done

    def camera(self) -> np.ndarray:
        """Left edge (level px) of each slot's 64 px window."""
        return np.clip(self.x - CAMERA_LEAD, 0, self.levels.width_px - OBS_SIZE)

    def _render(self, out: np.ndarray) -> None:
        n = self.n
        cam = self.camera()
        # The 64 px window of each static row, as one 192-byte item per (slot, row) (a strided
        # view starting at every pixel): the gather copies 64 x N contiguous rows.
        item = np.dtype((np.void, OBS_SIZE * 3))
        st = self.static
        windows = np.ndarray((n, OBS_SIZE, self.wpx - OBS_SIZE + 1), item, st, 0, (st.strides[0], st.strides[1], 3))
        rows = windows[self._slots, self._rows, cam[:, None]]
        if out.flags.c_contiguous:
            out.reshape(n, OBS_SIZE, OBS_SIZE * 3).view(item)[..., 0] = rows
        else:
            out[:] = rows.view(np.uint8).reshape(out.shape)
        ex = self.levels.enemy_x(self.t) - cam[:, None]
        _blit(out, self.levels.en_y + TOP, ex, ENEMY_PIX, self.enemy_colors)
        _blit(out, (self.y + TOP)[:, None], (self.x - cam)[:, None], AGENT_PIX, AGENT_COLORS)
