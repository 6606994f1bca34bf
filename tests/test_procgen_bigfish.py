"""Procgen-like BigFish: winnability (search-based solver), levels, rules, batching, checkers."""

from __future__ import annotations

import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen.base import ACTION_DX, ACTION_DY, OBS_SIZE, ProcgenOptions
from simlab.envs.procgen.bigfish import (
    AGENT_COLOR,
    AGENT_R0,
    AGENT_SPEED,
    ASPECT,
    FISH_SLOTS,
    GROWTH,
    QUOTA,
    WIN_BONUS,
    BigFish,
    fish_lifetime_bound,
    level_params,
    spawns,
)
from simlab.envs.procgen.vec import ProcgenEnv

EASY, HARD = ProcgenOptions(), ProcgenOptions(distribution_mode="hard")


# ---- a beam-search solver over agent positions -----------------------------------------------
# The fish schedule is a pure function of (level, step) and eating a fish only removes it, so
# a planner can run many copies of a level in one batched engine and keep, per level, the best
# states on a coarse grid of (fish eaten, agent cell): expand each state with the 9 moves, step,
# drop the dead, keep the `beam` best cells. Scores: fish eaten first, then closeness to food,
# predicted contact with bigger fish over a short horizon and closeness to the walls.

def _score(g: BigFish) -> np.ndarray:
    act = np.flatnonzero(g.fa.reshape(-1))
    e = act // FISH_SLOTS
    ar = g.ar
    fr = g.fr.reshape(-1)[act]
    dx = g.fx.reshape(-1)[act] - g.ax[e]
    dy2 = ((g.fy.reshape(-1)[act] - g.ay[e]) / ASPECT) ** 2
    rr = fr + ar[e]
    food = fr < ar[e]
    d_food = np.full(g.n, 100.0)
    np.minimum.at(d_food, e[food], np.sqrt(dx[food] ** 2 + dy2[food]) - rr[food])
    big = ~food
    bx, bvx, by2, brr = dx[big], g.fvx.reshape(-1)[act][big], dy2[big], rr[big]
    pen = np.zeros(len(bx))
    for h in (4.0, 8.0, 12.0):  # overlap with the bigger fish h steps ahead (agent drifting away)
        xh = bx + bvx * h
        pen += np.maximum(brr + 0.5 * AGENT_SPEED * h - np.sqrt(xh * xh + by2), 0.0)
    danger = np.bincount(e[big], pen, minlength=g.n)
    wall = (np.maximum(8.0 - (np.minimum(g.ay, OBS_SIZE - g.ay) - ASPECT * ar), 0.0)
            + 0.5 * np.maximum(8.0 - (np.minimum(g.ax, OBS_SIZE - g.ax) - ar), 0.0))
    return 1000.0 * g.eaten - d_food - 10.0 * danger - 0.5 * wall


def _cells(x, y, owner, eaten, cell: float) -> np.ndarray:
    m = int(OBS_SIZE // cell) + 1
    cx, cy = (x // cell).astype(np.int64), (y // cell).astype(np.int64)
    return ((owner * (QUOTA + 1) + eaten) * m + cx) * m + cy


def beam_solve(seeds, opts: ProcgenOptions, beam: int = 16,
               cell: float = 4.0) -> list[list[int] | None]:
    """Winning action sequences (or None) for levels ``seeds``, all searched in one batch."""
    n_lv = len(seeds)
    g = BigFish(n_lv, opts)
    g.load(np.arange(n_lv), np.asarray(seeds, np.int64))
    owner = np.arange(n_lv)           # level of each row
    prev = np.full(n_lv, -1)          # row -> its row in the previous step's stepped batch
    hist: list[tuple[np.ndarray, np.ndarray]] = []
    plans: list[list[int] | None] = [None] * n_lv
    for step in range(BigFish.max_steps):
        # expand every state with the 9 moves, merging successors that land on the same spot
        par = np.repeat(np.arange(g.n), 9)
        a = np.tile(np.arange(9), g.n)
        ar = g.ar[par]
        nx = np.clip(g.ax[par] + AGENT_SPEED * ACTION_DX[a], ar, OBS_SIZE - ar)
        ny = np.clip(g.ay[par] + AGENT_SPEED * ACTION_DY[a], ASPECT * ar, OBS_SIZE - ASPECT * ar)
        _, first = np.unique(_cells(nx, ny, owner[par], g.eaten[par], 0.25), return_index=True)
        first.sort()
        par, a = par[first], a[first]
        g.take(par)
        owner = owner[par]
        hist.append((prev[par], a))
        rew, done = g.step(a)
        for r in np.flatnonzero(rew >= WIN_BONUS):
            if plans[owner[r]] is None:
                acts, j, rr = [], step, int(r)
                while rr >= 0:
                    acts.append(int(hist[j][1][rr]))
                    rr, j = int(hist[j][0][rr]), j - 1
                plans[owner[r]] = acts[::-1]
        solved = np.array([p is not None for p in plans])
        cand = np.flatnonzero(~done & ~solved[owner])
        if len(cand) == 0:
            break
        c = cand[np.lexsort((-_score(g)[cand], owner[cand]))]  # by level, best first
        _, first = np.unique(_cells(g.ax[c], g.ay[c], owner[c], g.eaten[c], cell), return_index=True)
        c = c[np.sort(first)]
        rank = np.arange(len(c)) - np.searchsorted(owner[c], owner[c])
        sel = c[rank < beam]
        g.take(sel)
        owner, prev = owner[sel], sel
    return plans


def solve_all(seeds, opts: ProcgenOptions) -> dict[int, list[int] | None]:
    """Beam search, retrying the levels it missed with wider beams."""
    plans: dict[int, list[int] | None] = dict.fromkeys(seeds)
    for beam in (16, 64, 256):
        todo = [s for s in seeds if plans[s] is None]
        if not todo:
            break
        plans.update(zip(todo, beam_solve(todo, opts, beam)))
    return plans


@pytest.mark.parametrize("opts, n_levels", [(EASY, 100), (HARD, 50)], ids=["easy", "hard"])
def test_every_level_is_winnable_and_the_plan_wins_in_the_env(opts: ProcgenOptions,
                                                              n_levels: int) -> None:
    plans = solve_all(list(range(n_levels)), opts)
    assert [s for s, p in plans.items() if p is None] == []
    env = ProcgenEnv("bigfish", options=opts)
    for s, plan in plans.items():
        env.reset(options={"level_seed": s})
        total = 0.0
        for i, a in enumerate(plan):
            _, r, term, trunc, _ = env.step(a)
            total += r
            assert not trunc and term == (i == len(plan) - 1), (s, i)
        eaten = int(env.game.eaten[0])
        assert r >= 1.0 + WIN_BONUS and eaten >= QUOTA and total == eaten + WIN_BONUS, s


# ---- level generation ----------------------------------------------------------------------------

def _run(opts: ProcgenOptions, seed: int, actions) -> list[np.ndarray]:
    env = ProcgenEnv("bigfish", options=opts)
    obs, _ = env.reset(options={"level_seed": seed})
    out = [obs]
    for a in actions:
        obs, _, term, trunc, _ = env.step(int(a))
        out.append(obs)
        if term or trunc:
            break
    return out


def test_level_is_pure_function_of_seed_and_levels_differ() -> None:
    acts = np.random.default_rng(1).integers(0, 15, 150)
    a, b = _run(EASY, 77, acts), _run(EASY, 77, acts)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    p = level_params(np.arange(300), False)
    q = level_params(np.arange(300), False)
    assert all(np.array_equal(p[k], q[k]) for k in p)
    assert len(np.unique(p["period"])) > 2 and len(np.unique(np.round(p["v_hi"], 3))) > 100
    # spawn schedules (pure functions of seed and step) differ across levels
    g = BigFish(20, EASY)
    g.load(np.arange(20), np.arange(20))
    first_spawn = {}
    for t in range(60):
        i, f = spawns(g.level_seed, np.full(20, t), g.params())
        for j, r in zip(i, f.get("r", [])):
            first_spawn.setdefault(int(j), (t, round(float(r), 6)))
    assert len(set(first_spawn.values())) == 20
    frames = [_run(EASY, s, [4] * 80)[-1] for s in range(6)]
    assert len({f.tobytes() for f in frames}) == 6


def _spawned(opts: ProcgenOptions, n: int = 200, steps: int = 600) -> dict[str, np.ndarray]:
    g = BigFish(n, opts)
    g.load(np.arange(n), np.arange(1000, 1000 + n))
    rs, vs = [], []
    for t in range(steps):
        i, f = spawns(g.level_seed, np.full(n, t), g.params())
        if len(i):
            rs.append(f["r"])
            vs.append(np.abs(f["vx"]))
    return {"r": np.concatenate(rs), "v": np.concatenate(vs)}


def test_hard_levels_have_faster_and_bigger_fish() -> None:
    easy, hard = _spawned(EASY), _spawned(HARD)
    assert hard["v"].mean() > easy["v"].mean() + 0.25
    assert (hard["r"] >= 5).mean() > 1.5 * (easy["r"] >= 5).mean()
    assert len(hard["r"]) > len(easy["r"])  # hard spawns more often
    pe, ph = level_params(np.arange(50), False), level_params(np.arange(50), True)
    assert not np.array_equal(pe["v_lo"], ph["v_lo"])
    assert not np.array_equal(_run(EASY, 5, [4] * 60)[-1], _run(HARD, 5, [4] * 60)[-1])


@pytest.mark.parametrize("hard", [False, True])
def test_fish_leave_before_their_slot_is_reused(hard: bool) -> None:
    p = level_params(np.arange(5000), hard)
    assert (fish_lifetime_bound(p) <= (FISH_SLOTS - 1) * p["period"] + 1).all()
    g = BigFish(32, HARD if hard else EASY)
    g.load(np.arange(32), np.arange(32))
    for _ in range(600):  # empirically too: a spawning fish never lands on an active one
        i, f = spawns(g.level_seed, g.t, g.params())
        if len(i):
            assert not g.fa[i, f["slot"]].any()
        g.ax[:] = -100.0  # a ghost agent: nothing is eaten, nobody dies
        g.step(np.full(32, 4))
    assert 3 < g.fa.sum(1).mean() < FISH_SLOTS


# ---- rules ---------------------------------------------------------------------------------------

def _env_with_fish(r: float, eaten: int = 0, seed: int = 3) -> ProcgenEnv:
    """A fresh episode with the tank emptied and one fish of radius r about to touch the agent."""
    env = ProcgenEnv("bigfish")
    env.reset(options={"level_seed": seed})
    g = env.game
    g.fa[:] = False
    g.eaten[0] = eaten
    k = FISH_SLOTS - 1  # a slot no spawn uses in the first steps
    g.fa[0, k], g.fr[0, k], g.fvx[0, k] = True, r, -1.0
    g.fx[0, k], g.fy[0, k] = g.ax[0] + g.ar[0] + r + 0.5, g.ay[0]  # touches after one step
    return env


def test_eating_a_smaller_fish_gives_one_and_grows_the_agent() -> None:
    env = _env_with_fish(1.5)
    _, r, term, trunc, _ = env.step(4)
    assert r == 1.0 and not term and not trunc
    assert env.game.eaten[0] == 1 and env.game.ar[0] == AGENT_R0 + GROWTH and not env.game.fa[0].any()


@pytest.mark.parametrize("r", [AGENT_R0, 3.0, 6.0])
def test_touching_a_fish_at_least_as_big_terminates_with_zero(r: float) -> None:
    env = _env_with_fish(r)
    _, rew, term, trunc, _ = env.step(4)
    assert term and rew == 0.0 and not trunc and env.game.eaten[0] == 0


def test_eating_and_dying_in_one_step_is_death() -> None:
    env = _env_with_fish(1.0)
    g = env.game
    k = FISH_SLOTS - 2
    g.fa[0, k], g.fx[0, k], g.fy[0, k], g.fr[0, k], g.fvx[0, k] = True, g.ax[0] - 5.5, g.ay[0], 3.0, 1.0
    _, rew, term, _, _ = env.step(4)
    assert term and rew == 0.0 and g.eaten[0] == 0


def test_the_last_fish_completes_the_level() -> None:
    env = _env_with_fish(1.0, eaten=QUOTA - 1)
    _, r, term, _, _ = env.step(4)
    assert term and r == 1.0 + WIN_BONUS


def test_agent_moves_in_8_directions_and_stays_in_the_tank() -> None:
    env = ProcgenEnv("bigfish")
    env.reset(options={"level_seed": 11})
    g = env.game
    x0, y0 = g.ax[0], g.ay[0]
    env.step(8)  # RIGHT + UP
    assert (g.ax[0], g.ay[0]) == (x0 + AGENT_SPEED, y0 - AGENT_SPEED) and g.face[0] == 1
    env.step(1)  # LEFT
    assert (g.ax[0], g.ay[0]) == (x0, y0 - AGENT_SPEED) and g.face[0] == -1
    for _ in range(40):
        g.fa[:] = False
        env.step(0)  # LEFT + DOWN into the corner
    assert g.ax[0] == g.ar[0] and g.ay[0] == OBS_SIZE - ASPECT * g.ar[0]


# ---- rendering -----------------------------------------------------------------------------------

def _agent_pixels(obs: np.ndarray) -> int:
    return int((obs == AGENT_COLOR).all(-1).sum())


def test_render_sprites_reflect_sizes() -> None:
    env = ProcgenEnv("bigfish", use_backgrounds=False)
    obs, _ = env.reset(options={"level_seed": 4})
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    small = _agent_pixels(obs)
    assert (obs.sum(-1) > 0).sum() == small + 1  # a black tank with only the agent (body + eye)
    env.game.eaten[0] = 12
    env.game.fa[:] = False
    env.game.render(env._obs)
    big = _agent_pixels(env._obs[0])
    assert 10 <= small < big / 3
    # fish pixel areas grow with their radii
    g = BigFish(1, ProcgenOptions(use_backgrounds=False))
    g.load(np.array([0]), np.array([0]))
    g.ax[:] = -100.0
    areas = []
    for r in (1.0, 3.0, 6.0):
        g.fa[:] = False
        g.fa[0, 0], g.fx[0, 0], g.fy[0, 0], g.fr[0, 0], g.fvx[0, 0] = True, 32.0, 32.0, r, 1.0
        out = np.zeros((1, 64, 64, 3), np.uint8)
        g.render(out)
        areas.append(int((out[0].sum(-1) > 0).sum()))
    assert areas[0] < areas[1] < areas[2]


def test_batch_equals_independent_single_engines() -> None:
    seeds = np.array([5, 6, 7, 8, 9, 10])
    batch = BigFish(len(seeds), HARD)
    batch.load(np.arange(len(seeds)), seeds)
    singles = [BigFish(1, HARD) for _ in seeds]
    for g, s in zip(singles, seeds):
        g.load(np.array([0]), np.array([s]))
    ob, os_ = np.empty((len(seeds), 64, 64, 3), np.uint8), np.empty((1, 64, 64, 3), np.uint8)
    rng = np.random.default_rng(2)
    for _ in range(150):
        a = rng.integers(0, 15, len(seeds))
        rb, db = batch.step(a)
        batch.render(ob)
        for i, g in enumerate(singles):
            r, d = g.step(a[i:i + 1])
            g.render(os_)
            assert rb[i] == r[0] and db[i] == d[0] and np.array_equal(ob[i], os_[0])


def test_vec_env_redraws_only_new_episodes_and_every_frame_equals_a_full_render() -> None:
    """The vector env redraws just the slots that start new levels (BigFish episodes end on 41%
    of steps with 64 envs, and each end cost a second full render): each returned frame still
    equals a full render of the state, for backgrounds on and off, with resets in the run."""
    from simlab.envs.procgen.vec import ProcgenVecEnv

    for bg in (False, True):
        env = ProcgenVecEnv("bigfish", 8, options=ProcgenOptions(distribution_mode="hard", use_backgrounds=bg))
        obs, _ = env.reset(seed=3)
        rng = np.random.default_rng(1)
        resets = 0
        full = np.empty_like(obs)
        for _ in range(300):
            obs, _, term, trunc, _ = env.step(rng.integers(0, 15, 8))
            resets += int((term | trunc).sum())
            env.game.render(full)
            np.testing.assert_array_equal(obs, full)
        assert resets > 0
        part = np.zeros_like(full)
        env.game.render(part, np.array([2, 5]))
        np.testing.assert_array_equal(part[[2, 5]], full[[2, 5]])
        assert not part[[0, 1, 3, 4, 6, 7]].any()  # only the asked slots were drawn


# ---- wrappers ------------------------------------------------------------------------------------
