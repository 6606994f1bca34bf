"""BigFish: eat smaller fish to grow; touching a fish at least as big ends the episode.

Description:
    The agent (a white fish with a dark eye) swims in a 64x64 px tank. Other
    fish enter from the left or right edge at random heights and swim straight
    across at a constant speed. Every fish (agent included) has a radius ``r``:
    its body is an ellipse of half-width ``r`` and half-height ``0.7 r`` with a
    fan tail behind (the tail is only drawn, it does not collide). Two bodies
    touch when their ellipses overlap (exact: all bodies share the aspect ratio,
    so the test is ``dx**2 + (dy / 0.7)**2 < (r_agent + r_fish)**2``).
    Touching a fish smaller than the agent eats it and the agent's radius grows
    by 0.25 px; touching one at least as big kills the agent (eating and dying in
    the same step: dying wins, nothing is eaten). The agent starts at the centre
    with radius 2; eating 20 fish (radius 7) completes the level.
Spawns:
    Time is cut into windows of ``P`` steps (``P`` depends on the level). In
    window ``k`` one fish may spawn, at step ``k P + offset_k``, with the level's
    probability ``q``; its side, height, radius, speed and colour are drawn too.
    All of it is :func:`~simlab.envs.procgen.base.hash_uniform` of
    (level seed, k), so the fish schedule is a pure function of the level and
    the time step, independent of the agent (which can only remove fish by
    eating them). The fish of window ``k`` lives in slot ``k % 24``: a fish
    always leaves the tank before its slot is reused (checked by the tests), so
    every env holds at most 24 fish and all updates are vectorised over
    envs x slots. The first three windows and every fourth one always spawn a
    fish smaller than the starting agent ("food": radius 1-1.7), so food is
    never scarce and every level is winnable (the tests solve 150 levels with a
    search-based planner and replay the plans in the env).
Levels:
    A pure function of the seed and the distribution mode: spawn period and
    probability, radius distribution ``r = 1 + (r_max - 1) u**e`` (food fish
    apart), speed range,
    fish colours (from the level's palette) and background. Hard levels spawn
    more often, have more and bigger big fish and faster fish.
Action Space:
    ``Discrete(15)``, Procgen's combos: the 8 directions move the agent 1.5 px
    per axis (diagonals move on both axes); the rest are no-ops. The agent stays
    inside the tank and faces the way it last moved horizontally.
Observation Space:
    ``(64, 64, 3)`` uint8: background pattern, fish in the level's colours
    (sprite size follows the radius, quantised to 0.5 px), the agent in white.
Rewards:
    +1 per fish eaten; +10 more when the level is completed.
Episode End:
    Level completed or agent eaten (terminated) or 1000 steps (truncated).
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
    hash_uniform,
    palette_of,
)

FISH_SLOTS = 24
"""Fish slots per env (the fish of spawn window ``k`` lives in slot ``k % FISH_SLOTS``)."""
AGENT_R0 = 2.0
GROWTH = 0.25
QUOTA = 20
"""Fish to eat to complete a level (the agent's radius is then ``AGENT_R0 + QUOTA * GROWTH``)."""
AGENT_SPEED = 1.5
ASPECT = 0.7
"""Body half-height / half-width."""
TAIL = 1.6
"""The tail ends ``TAIL * r`` behind the body centre."""
FISH_R_MIN = 1.0
EARLY_WINDOWS = 3
FOOD_EVERY = 4
"""The first ``EARLY_WINDOWS`` spawn windows and every ``FOOD_EVERY``-th one always bring a
fish smaller than the starting agent (food is never scarce, so every level is winnable)."""
WIN_BONUS = 10.0
AGENT_COLOR = np.array([250, 250, 250], np.uint8)
EYE_COLOR = np.array([15, 15, 25], np.uint8)
_LEVEL_STREAM, _SPAWN_STREAM = 0xB16F, 0xF15B
_W = float(OBS_SIZE)


def level_params(seeds: np.ndarray, hard: bool) -> dict[str, np.ndarray]:
    """Per-level spawn parameters of ``seeds`` (vectorised, pure function of seed and mode).

    Keys: ``period`` (int, steps per spawn window), ``prob`` (spawn probability
    per window), ``expo`` (radius exponent: smaller = more big fish), ``r_max``,
    ``v_lo``, ``v_hi`` (fish speed range, px/step).
    """
    u = hash_uniform(np.asarray(seeds, np.int64)[:, None], np.arange(6), _LEVEL_STREAM)
    keys = ("period", "prob", "expo", "r_max", "v_lo", "v_hi")
    if hard:
        lo, span = (5, 0.7, 0.8, 7.5, 0.9, 1.3), (4, 0.3, 0.4, 1.0, 0.1, 0.3)
    else:
        lo, span = (6, 0.6, 1.3, 6.5, 0.7, 1.0), (4, 0.3, 0.5, 1.0, 0.1, 0.2)
    out = {k: lo[i] + span[i] * u[:, i] for i, k in enumerate(keys)}
    out["period"] = np.floor(out["period"]).astype(np.int64)
    return out


def spawns(seeds: np.ndarray, t: np.ndarray,
           params: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fish spawning at step ``t`` of levels ``seeds`` (vectorised over envs).

    Window ``k = t // period`` spawns at step ``k * period + floor(u * period)``
    when ``frac(u * period) < prob`` (always in the first windows), with
    ``u = hash_uniform(seed, 8 k, stream)``; the fish's own draws use
    ``8 k + 1 ... 8 k + 5``. Returns the indices ``i`` of the spawning envs and
    the new fishes' ``slot``, ``r``, ``y``, ``vx`` (its sign is the direction),
    ``x`` (just outside the entry edge) and ``color`` (0-2, an index into the
    level's fish colours), one entry per index.
    """
    seeds = np.asarray(seeds, np.int64)
    period = params["period"]
    k = t // period
    up = hash_uniform(seeds, k * 8, _SPAWN_STREAM) * period
    when = np.floor(up)
    food = (k < EARLY_WINDOWS) | (k % FOOD_EVERY == 0)
    i = np.flatnonzero((t - k * period == when) & ((up - when < params["prob"]) | food))
    if len(i) == 0:
        return i, {}
    k, food = k[i], food[i]
    u = hash_uniform(seeds[i, None], (k * 8)[:, None] + np.arange(1, 6), _SPAWN_STREAM)
    r_max, expo = params["r_max"][i], params["expo"][i]
    r = np.where(food, FISH_R_MIN + 0.7 * u[:, 0], FISH_R_MIN + (r_max - FISH_R_MIN) * u[:, 0] ** expo)
    right = u[:, 1] < 0.5
    v_lo, v_hi = params["v_lo"][i], params["v_hi"][i]
    speed = v_lo + (v_hi - v_lo) * u[:, 2]
    return i, {
        "slot": k % FISH_SLOTS, "r": r, "y": ASPECT * r + (_W - 2 * ASPECT * r) * u[:, 3],
        "vx": np.where(right, speed, -speed), "x": np.where(right, -r - 0.5, _W + r + 0.5),
        "color": np.minimum((u[:, 4] * 3).astype(np.int64), 2),
    }


def fish_lifetime_bound(params: dict[str, np.ndarray]) -> np.ndarray:
    """Most steps a fish of these levels can stay active (crossing the tank at the slowest speed)."""
    travel = _W + 1.0 + (1.0 + TAIL) * params["r_max"]
    return np.ceil(travel / params["v_lo"]).astype(np.int64) + 1


def fish_sprite(r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets ``(dy, dx)`` from the centre pixel and eye flags of a right-facing fish."""
    a, b = r + 0.3, ASPECT * r + 0.3
    h, back, front = int(np.ceil(b)), int(np.ceil(TAIL * r + 0.5)), int(np.ceil(a))
    dy, dx = np.mgrid[-h:h + 1, -back:front + 1]
    body = (dx / a) ** 2 + (dy / b) ** 2 <= 1.0
    tail = (dx <= -0.7 * r) & (dx >= -TAIL * r - 0.5) & (np.abs(dy) <= 0.9 * (-dx - 0.7 * r))
    m = body | tail
    eye = np.zeros_like(m)
    if r >= 2.0:
        eye[h - round(0.3 * r), back + round(0.45 * r)] = True
    return dy[m], dx[m], eye[m]


def _sprite_table(max_r: float = 10.0) -> tuple[np.ndarray, ...]:
    """Ragged table of sprites indexed by ``round(2 r) * 2 + facing_left``."""
    dys, dxs, eyes, counts = [], [], [], []
    for sid in range(int(2 * max_r) + 1):
        dy, dx, eye = fish_sprite(max(sid, 1) / 2.0)
        for left in (False, True):
            dys.append(dy)
            dxs.append(-dx if left else dx)
            eyes.append(eye)
            counts.append(len(dy))
    counts_a = np.array(counts, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts_a)[:-1]])
    return (np.concatenate(dys), np.concatenate(dxs), np.concatenate(eyes), starts, counts_a)


_SPR_DY, _SPR_DX, _SPR_EYE, _SPR_START, _SPR_COUNT = _sprite_table()
_SPR_DY, _SPR_DX, _SPR_START = (a.astype(np.int32) for a in (_SPR_DY, _SPR_DX, _SPR_START))
_MAX_SID = len(_SPR_COUNT) // 2 - 1
_PIXEL = np.dtype((np.void, 3))


class BigFish(BatchedGame):
    """Batched BigFish (see module docstring)."""

    name = "bigfish"
    max_steps = 1000

    _ENV_STATE = ("level_seed", "t", "ax", "ay", "eaten", "face", "period", "prob", "expo", "r_max",
                  "v_lo", "v_hi", "fish_colors", "fa", "fx", "fy", "fr", "fvx", "fc")
    """Per-env state arrays (first axis = env), gathered by :meth:`take`."""

    def __init__(self, num_envs: int, opts: ProcgenOptions) -> None:
        super().__init__(num_envs, opts)
        n, k = num_envs, FISH_SLOTS
        self.ax = np.full(n, _W / 2)
        self.ay = np.full(n, _W / 2)
        self.eaten = np.zeros(n, np.int64)
        self.face = np.ones(n, np.int64)  # +1 faces right, -1 left
        self.period = np.full(n, 8, np.int64)
        self.prob, self.expo, self.r_max = np.zeros(n), np.ones(n), np.full(n, 7.0)
        self.v_lo, self.v_hi = np.ones(n), np.ones(n)
        self.fish_colors = np.zeros((n, 3, 3), np.uint8)
        self.fa = np.zeros((n, k), bool)
        self.fx, self.fy = np.zeros((n, k)), np.zeros((n, k))
        self.fr, self.fvx = np.ones((n, k)), np.ones((n, k))
        self.fc = np.zeros((n, k), np.int64)
        self.static: np.ndarray | None = None  # background per level, built at the first render
        self._dirty = np.ones(n, bool)

    @property
    def ar(self) -> np.ndarray:
        """Agent radii (a function of the fish eaten, so always exact)."""
        return AGENT_R0 + GROWTH * self.eaten

    def params(self) -> dict[str, np.ndarray]:
        """The level parameters of every slot (see :func:`level_params`)."""
        return {k: getattr(self, k) for k in ("period", "prob", "expo", "r_max", "v_lo", "v_hi")}

    def take(self, idx: np.ndarray) -> None:
        """Replace the batch by copies of slots ``idx`` (any length: the batch is resized).

        For planners: a search expands states by ``take(np.repeat(beam, 9))``.
        """
        idx = np.asarray(idx, np.int64)
        for name in self._ENV_STATE:
            setattr(self, name, getattr(self, name)[idx])
        self.n = len(idx)
        self.static, self._dirty = None, np.ones(self.n, bool)

    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        for k, v in level_params(seeds, self.hard).items():
            getattr(self, k)[idx] = v
        self.ax[idx] = self.ay[idx] = _W / 2
        self.eaten[idx] = 0
        self.face[idx] = 1
        self.fa[idx] = False
        pal = palette_of(seeds).astype(np.int64)
        self.fish_colors[idx] = np.stack([pal[:, 2], pal[:, 3], (pal[:, 2] + pal[:, 3]) // 2], 1)
        self._dirty[idx] = True

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        # 1. spawn (a pure function of level seed and step)
        i, f = spawns(self.level_seed, self.t, self.params())
        if len(i):
            j = f["slot"]
            self.fa[i, j] = True
            self.fx[i, j], self.fy[i, j], self.fr[i, j] = f["x"], f["y"], f["r"]
            self.fvx[i, j], self.fc[i, j] = f["vx"], f["color"]
        # 2. fish swim; those whose tail left the tank disappear (work on active fish only)
        self.fx += self.fvx
        fa = self.fa.reshape(-1)  # a view: the state arrays are always C-contiguous
        act = np.flatnonzero(fa)
        fx, fr = self.fx.reshape(-1)[act], self.fr.reshape(-1)[act]
        gone = np.abs(fx - _W / 2) - TAIL * fr > _W / 2 + 0.5
        if gone.any():
            fa[act[gone]] = False
            keep = ~gone
            act, fx, fr = act[keep], fx[keep], fr[keep]
        # 3. the agent moves (8 directions) inside the tank
        dx, dy = ACTION_DX[actions], ACTION_DY[actions]
        ar = self.ar
        self.ax = np.clip(self.ax + AGENT_SPEED * dx, ar, _W - ar)
        self.ay = np.clip(self.ay + AGENT_SPEED * dy, ASPECT * ar, _W - ASPECT * ar)
        self.face = np.where(dx != 0, dx, self.face)
        # 4. contacts: eat smaller fish, die on a fish at least as big
        e = act // FISH_SLOTS
        ddx = fx - self.ax[e]
        ddy = (self.fy.reshape(-1)[act] - self.ay[e]) * (1.0 / ASPECT)
        rr = fr + ar[e]
        touch = ddx * ddx + ddy * ddy < rr * rr
        n_eat = np.zeros(n, np.int64)
        dead = np.zeros(n, bool)
        if touch.any():
            te, tact = e[touch], act[touch]
            dead[te[fr[touch] >= ar[te]]] = True
            eat = ~dead[te]
            fa[tact[eat]] = False
            n_eat = np.bincount(te[eat], minlength=n)
            self.eaten += n_eat
            ar = self.ar
            self.ax = np.clip(self.ax, ar, _W - ar)
            self.ay = np.clip(self.ay, ASPECT * ar, _W - ASPECT * ar)
        win = (self.eaten >= QUOTA) & (self.eaten - n_eat < QUOTA)
        reward = (n_eat + WIN_BONUS * win).astype(np.float32)
        return reward, dead | win

    partial_render = True

    def _render(self, out: np.ndarray, idx: np.ndarray | None = None) -> None:
        if not out.flags.c_contiguous:  # the scatter below writes through a flat view
            tmp = np.ascontiguousarray(out)
            self._render(tmp, idx)
            out[...] = tmp
            return
        if self.static is None:
            self.static = np.zeros((self.n, OBS_SIZE, OBS_SIZE, 3), np.uint8)
            self._dirty[:] = True
        if self._dirty.any():  # static layer: cached per level
            d = np.flatnonzero(self._dirty)
            self.static[d] = background_images(self.level_seed[d], self.opts.use_backgrounds)
            self._dirty[d] = False
        if idx is None:
            sel = np.arange(self.n)
            np.copyto(out, self.static)
            e, k = np.nonzero(self.fa)
        else:
            sel = np.asarray(idx, np.int64)
            out[sel] = self.static[sel]
            e, k = np.nonzero(self.fa[sel])
            e = sel[e]
        # every visible fish, then the agents (drawn last, on top), as one ragged scatter
        n = len(sel)
        env = np.concatenate([e, sel])
        r = np.concatenate([self.fr[e, k], self.ar[sel]])
        left = np.concatenate([self.fvx[e, k] < 0, self.face[sel] < 0])
        cy = np.floor(np.concatenate([self.fy[e, k], self.ay[sel]])).astype(np.int64)
        cx = np.floor(np.concatenate([self.fx[e, k], self.ax[sel]])).astype(np.int64)
        col = np.concatenate([self.fish_colors[e, self.fc[e, k]], np.broadcast_to(AGENT_COLOR, (n, 3)),
                              EYE_COLOR[None]])
        m = len(r)
        spr = np.minimum(np.rint(2 * r).astype(np.int64), _MAX_SID) * 2 + left
        cnt = _SPR_COUNT[spr]
        first = (np.cumsum(cnt) - cnt).astype(np.int32)
        pix = np.arange(cnt.sum(), dtype=np.int32) + np.repeat(_SPR_START[spr] - first, cnt)
        py = np.repeat(cy.astype(np.int32), cnt) + _SPR_DY[pix]
        px = np.repeat(cx.astype(np.int32), cnt) + _SPR_DX[pix]
        ok = (py.view(np.uint32) < OBS_SIZE) & (px.view(np.uint32) < OBS_SIZE)  # negatives wrap to huge
        flat = (np.repeat(env, cnt) * OBS_SIZE + py) * OBS_SIZE + px
        ci = np.where(_SPR_EYE[pix], np.int32(m), np.repeat(np.arange(m, dtype=np.int32), cnt))
        # scatter whole 3-byte pixels at once through a void view (the last colour is the eye's)
        pixels = out.reshape(-1, 3).view(_PIXEL).reshape(-1)
        pixels[flat[ok]] = np.ascontiguousarray(col).view(_PIXEL).reshape(-1)[ci[ok]]
