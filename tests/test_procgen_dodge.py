"""Dodge (TakeCover-like procgen game): levels, schedule, rules, solvability, batching, checkers."""

from __future__ import annotations

import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen import dodge as D
from simlab.envs.procgen.base import ACTION_DX, ProcgenOptions, palette_of, visual_factors
from simlab.envs.procgen.dodge import Dodge, level_params, max_shots, next_shots, window_shot
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv

MOVES = np.array([1, 4, 7])  # LEFT, no-op, RIGHT


def game(n: int, seeds, hard: bool = False) -> Dodge:
    g = Dodge(n, ProcgenOptions(distribution_mode="hard" if hard else "easy"))
    g.load(np.arange(n), np.asarray(seeds, np.int64))
    return g


def beam_search(seeds, hard: bool, horizon: int, width: int = 16, rng_seed: int = 0) -> list[list[int] | None]:
    """Action sequences surviving ``horizon`` steps, one per level (None where the search fails).

    A search-based solver on copies of the engine's episode state, vectorised over levels:
    every beam state is expanded with LEFT / stay / RIGHT and the survivors kept are chosen
    to cover as many agent positions as possible (random tie-breaks).
    """
    seeds = np.asarray(seeds)
    n_lv, w3 = len(seeds), 3 * width
    g = game(n_lv * w3, seeds.repeat(w3), hard)
    rng = np.random.default_rng(rng_seed)
    base = (np.arange(n_lv) * w3)[:, None]
    beam = base.repeat(width, 1)  # slot holding each beam state
    valid = np.zeros((n_lv, width), bool)
    valid[:, 0] = True
    history = []
    for _ in range(horizon):
        src = beam.repeat(3, 1).ravel()  # each state three times, in place
        for name in Dodge.episode_state:
            arr = getattr(g, name)
            arr[:] = arr[src]
        _, dead = g.step(np.tile(MOVES, n_lv * width))
        ok = valid.repeat(3, 1) & ~dead.reshape(n_lv, w3)
        key = np.where(ok, g.agent_x.reshape(n_lv, w3) + 64 * np.arange(n_lv)[:, None], -1).ravel()
        first = np.zeros(n_lv * w3, bool)
        first[np.unique(key, return_index=True)[1]] = True
        score = 2.0 * ok + (first.reshape(n_lv, w3) & ok) + 0.5 * rng.random((n_lv, w3))
        order = np.argsort(-score, axis=1)[:, :width]
        valid = np.take_along_axis(ok, order, 1)
        beam = base + order
        history.append(order)
    plans: list[list[int] | None] = []
    for i in range(n_lv):
        if not valid[i].any():
            plans.append(None)
            continue
        j, acts = int(np.flatnonzero(valid[i])[0]), []
        for order in reversed(history):
            c = int(order[i, j])
            acts.append(int(MOVES[c % 3]))
            j = c // 3
        plans.append(acts[::-1])
    return plans


def replay(seed: int, hard: bool, plan: list[int]) -> None:
    env = ProcgenEnv("dodge", distribution_mode="hard" if hard else "easy")
    env.reset(options={"level_seed": seed})
    for i, a in enumerate(plan):
        _, r, term, trunc, info = env.step(a)
        assert r == 1.0 and not term, (seed, hard, i)
        assert trunc == (i + 1 >= env.game.max_steps) and info["level_seed"] == seed


@pytest.mark.parametrize("hard, n_levels", [(False, 100), (True, 50)])
def test_solver_survives_300_steps_on_every_level(hard: bool, n_levels: int) -> None:
    seeds = np.arange(n_levels) + (5000 if hard else 0)
    plans = []
    for k in range(0, n_levels, 25):
        plans += beam_search(seeds[k:k + 25], hard, 300)
    assert all(p is not None for p in plans), [int(s) for s, p in zip(seeds, plans) if p is None]
    for s, p in zip(seeds, plans):
        replay(int(s), hard, p)


def test_solver_survives_whole_episodes() -> None:
    for hard in (False, True):
        seeds = np.arange(4) + 777
        plans = beam_search(seeds, hard, Dodge.max_steps)
        for s, p in zip(seeds, plans):
            assert p is not None, (int(s), hard)
            replay(int(s), hard, p)


def test_level_is_pure_function_of_seed() -> None:
    for hard in (False, True):
        a, b = level_params(np.arange(50), hard), level_params(np.arange(50), hard)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        one = level_params(17, hard)
        assert all(np.array_equal(one[k][0], a[k][17]) for k in a)
    # Two engines of different sizes, same level and actions: identical frames.
    g1, g2 = game(1, [42]), game(3, [7, 42, 9])
    o1, o2 = np.empty((1, 64, 64, 3), np.uint8), np.empty((3, 64, 64, 3), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(150):
        a = int(rng.choice(MOVES))
        g1.step(np.array([a]))
        g2.step(np.array([4, a, 4]))
        assert np.array_equal(g1.render(o1)[0], g2.render(o2)[1])


def test_levels_differ() -> None:
    p = level_params(np.arange(100))
    layouts = {(int(n), tuple(x[:n])) for n, x in zip(p["n_enemies"], p["enemy_x"])}
    assert len(layouts) > 90 and set(p["n_enemies"]) == {3, 4, 5}
    for k in ("period", "p_fire", "shot_vy", "aim_frac"):
        assert len(np.unique(p[k])) > 10, k
    assert len(set(zip(*visual_factors(np.arange(100))))) == 16  # background x palette
    obs = [ProcgenEnv("dodge").reset(options={"level_seed": s})[0] for s in range(10)]
    assert len({o.tobytes() for o in obs}) == 10
    x = p["enemy_x"]
    assert x.min() >= 0 and x.max() + D.ENEMY_W <= 64
    assert all(len(set(r // D.ENEMY_COLUMNS)) == D.MAX_ENEMIES for r in x)  # distinct columns


def shots_fired(hard: bool, seeds, steps: int) -> np.ndarray:
    """Fireballs thrown per level in ``steps`` steps (the agent moving randomly; deaths ignored)."""
    g = game(len(seeds), seeds, hard)
    rng = np.random.default_rng(1)
    count = np.zeros(len(seeds), np.int64)
    for _ in range(steps):
        g.step(rng.choice(MOVES, len(seeds)))
        count += ((g.py == D.SPAWN_Y) & g.alive).sum(1)
    return count


def test_hard_differs_from_easy() -> None:
    seeds = np.arange(200)
    e, h = level_params(seeds, False), level_params(seeds, True)
    assert h["shot_vy"].min() > e["shot_vy"].max()  # faster fireballs on every level
    assert h["period"].max() < e["period"].min() and h["n_enemies"].mean() > e["n_enemies"].mean()
    ce, ch = shots_fired(False, seeds, 500), shots_fired(True, seeds, 500)
    assert ch.mean() > 3 * ce.mean() and (ch > ce).mean() > 0.95
    # the hard ones move faster on screen too
    g = game(50, seeds[:50], True)
    for _ in range(300):
        g.step(np.full(50, 4))
    assert g.vy[g.alive].min() >= D.SHOT_VY[True][0]


def test_schedule_is_a_function_of_level_and_step() -> None:
    """Shot times equal the hashed window schedule, whatever the agent does."""
    seeds = np.arange(20)
    steps = 600
    spawns = []
    for moves in (np.full(20, 4), None):
        g = game(20, seeds)
        rng = np.random.default_rng(3)
        got = np.zeros((20, steps), np.int64)
        for t in range(steps):
            g.step(moves if moves is not None else rng.choice(MOVES, 20))
            got[:, t] = ((g.py == D.SPAWN_Y) & g.alive).sum(1)
        spawns.append(got)
    assert np.array_equal(spawns[0], spawns[1]) and spawns[0].sum() > 50
    # brute force over windows
    p = level_params(seeds)
    expect = np.zeros((20, steps), np.int64)
    for i in range(20):
        for e in range(p["n_enemies"][i]):
            for w in range(steps // p["period"][i] + 2):
                t = int(window_shot(seeds[i], e, w, p["period"][i], p["phase"][i, e], p["p_fire"][i]))
                if p["wake"][i, e] + D.ARRIVE <= t <= steps:
                    expect[i, t - 1] += 1
    assert np.array_equal(expect, spawns[0])
    # next_shots agrees with the brute force from any step
    i, e, after = 3, 0, 123
    nxt = next_shots(seeds[[i]], np.array([e]), np.array([after]), p["wake"][i, [e]], p["period"][[i]],
                     p["phase"][i, [e]], p["p_fire"][[i]])[0]
    shot_steps = np.flatnonzero(expect[i]) + 1
    assert nxt in shot_steps and not ((shot_steps > after) & (shot_steps < nxt)).any()


def test_enemies_glow_before_throwing_and_arrive_over_time() -> None:
    g = game(1, [11])
    out = np.empty((1, 64, 64, 3), np.uint8)
    glow, visible, thrown = [g.charging()[0]], [], 0
    for _ in range(700):
        due = g.next_shot[0] == g.t[0] + 1
        g.step(np.array([4]))
        frame = g.render(out)[0]
        glow.append(g.charging()[0])
        visible.append(int((g.wake[0] <= g.t[0]).sum()))
        for e in np.flatnonzero(glow[-1]):  # glowing enemies are drawn in the fireball colour
            x = g.enemy_x[0, e]
            patch = frame[D.ENEMY_Y:D.ENEMY_Y + D.ENEMY_H, x:x + D.ENEMY_W][D.ENEMY_MASK]
            assert (patch == g.hazard[0]).all()
        for e in np.flatnonzero(due):  # every throw was announced in the WINDUP frames before it
            thrown += 1
            assert all(glow[-1 - j][e] for j in range(1, D.WINDUP + 1))
    assert thrown >= 8
    assert visible[0] == 1 and visible[-1] > 2 and all(np.diff(visible) >= 0)


def test_termination_is_exactly_an_overlap() -> None:
    vec = ProcgenVecEnv("dodge", 16, num_levels=200, distribution_mode="hard")
    vec.reset(seed=5)
    g = vec.game
    rng = np.random.default_rng(0)
    n_term = 0
    for _ in range(400):
        prev_seed = g.level_seed.copy()
        a = rng.integers(0, 15, 16)
        prev_x = np.clip(g.agent_x + ACTION_DX[a] * D.AGENT_SPEED, 0, 64 - D.AGENT_W)
        _, rew, term, _, info = vec.step(a)
        for i in np.flatnonzero(term):  # the fireball that hit is drawn over the agent
            ax, box = int(prev_x[i]), info["final_obs"][i][D.AGENT_Y:D.AGENT_Y + D.AGENT_H]
            ball = (box == palette_of(prev_seed[[i]])[0, 3]).all(-1) | (box == D.CORE_COLOR).all(-1)
            assert ball[:, max(0, ax - 2):ax + D.AGENT_W + 2].any()
        ix, iy = np.floor(g.px + 0.5), np.floor(g.py + 0.5)
        ax = g.agent_x[:, None]
        overlap = (g.alive & (iy + D.SHOT > D.AGENT_Y) & (iy < D.AGENT_Y + D.AGENT_H)
                   & (ix + D.SHOT > ax) & (ix < ax + D.AGENT_W)).any(1)
        assert not overlap.any()  # live episodes (fresh ones included) never overlap
        assert np.array_equal(rew, np.where(term, 0.0, 1.0))
        n_term += int(term.sum())
    assert n_term > 20


def test_reward_is_one_per_step_alive_and_lengths_vary() -> None:
    vec = ProcgenVecEnv("dodge", 50, num_levels=200, start_level=0)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    lengths = []
    while len(lengths) < 100:
        _, rew, term, _, info = vec.step(rng.integers(0, 15, 50))
        assert np.array_equal(rew, np.where(term, 0.0, 1.0).astype(np.float32))
        if "_episode" in info:
            d = info["_episode"]
            ret, length = info["episode_return"][d], info["episode_length"][d]
            assert np.array_equal(ret, length - term[d])  # +1 per step survived
            lengths += list(length)
    lengths = np.array(lengths[:100])
    # a random policy survives a few hundred steps, at varied times
    assert 150 < lengths.mean() < 450 and lengths.std() > 50 and lengths.min() < 120


def test_capacity_is_never_exceeded() -> None:
    for hard in (False, True):
        k = max_shots(hard)
        g = game(200, np.arange(200), hard)
        rng = np.random.default_rng(0)
        most = 0
        for _ in range(1000):
            g.step(rng.choice(MOVES, 200))
            most = max(most, int(g.alive.sum(1).max()))
        assert most < k and g.alive.shape[1] == k


def test_rendering() -> None:
    env = ProcgenEnv("dodge", use_backgrounds=False)
    obs, _ = env.reset(options={"level_seed": 0})
    g = env.game
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    ax = int(g.agent_x[0])
    agent = obs[D.AGENT_Y:D.AGENT_Y + D.AGENT_H, ax:ax + D.AGENT_W]
    assert (agent[D.AGENT_MASK] == D.AGENT_COLOR).all() and (agent[~D.AGENT_MASK] == 0).all()
    assert (obs[D.FLOOR_Y:] == g.enemy_color[0]).all()
    assert (obs[:D.ENEMY_Y + D.ENEMY_H] == g.enemy_color[0]).all(-1).sum() == D.ENEMY_MASK.sum()  # one enemy
    for _ in range(150):
        obs, *_ = env.step(7)
        if g.alive.any():
            break
    m = np.flatnonzero(g.alive[0])[0]
    x, y = int(np.floor(g.px[0, m] + 0.5)), int(np.floor(g.py[0, m] + 0.5))
    ball = obs[y:y + D.SHOT, x:x + D.SHOT]
    assert (ball[1:3, 1:3] == D.CORE_COLOR).all() and (ball[0] == g.hazard[0]).all()
    big = env.game.render_large(0)
    assert big.shape == (512, 512, 3)
