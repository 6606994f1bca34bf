"""Procgen-like CoinRun: solvability (search over the real dynamics), level protocol, batching, rendering."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen.base import ProcgenOptions
from simlab.envs.procgen.coinrun import (
    ENEMY,
    FALL_Y,
    FELL,
    GRAVITY,
    JUMP,
    NONE,
    OBS_SIZE,
    SAW,
    SPEED,
    TILE,
    TOP,
    VMAX,
    CoinRun,
    generate_level,
)
from simlab.envs.procgen.coinrun_solver import NOOP, RIGHT, replay, solve
from simlab.envs.procgen.vec import ProcgenEnv


@pytest.fixture(scope="module")
def plans() -> dict[bool, tuple[list[int], list]]:
    return {False: (list(range(200)), solve(range(200), False)), True: (list(range(100)), solve(range(100), True))}


@pytest.mark.parametrize("hard", [False, True])
def test_every_level_is_solvable(plans, hard: bool) -> None:
    seeds, found = plans[hard]
    assert [s for s, p in zip(seeds, found) if p is None] == []
    total, end = replay(seeds, hard, found)  # the plans, replayed on the engine, reach the coin at their last step
    assert (total == 10.0).all()
    assert (end == np.array([len(p) - 1 for p in found])).all()


def jump_reach(rise: int) -> int:
    """The widest gap (px) a running jump crosses to land ``rise`` px above its take-off height: an
    independent integration of the jump arc. Taking off with 1 px of the box still on the ground
    (x <= edge - 1), the box reaches past the gap at the last step its feet are still >= ``rise``."""
    h, v, k, last = 0, -JUMP, 0, 0
    while True:
        k += 1
        h -= v
        v = min(v + GRAVITY, VMAX)
        if h >= rise:
            last = k
        if h < min(rise, 0) - 4 * TILE:
            return SPEED * last + TILE - 2


@pytest.mark.parametrize("hard", [False, True])
def test_gaps_are_within_a_jump(hard: bool) -> None:
    widths = []
    for seed in range(300):
        lv = generate_level(seed, hard)
        assert lv.gaps(), "every level has at least one gap"
        for _, g, before, after in lv.gaps():
            rise = (before - after) * TILE  # rows grow downwards
            assert 2 <= g <= (4 if hard else 3)
            assert g * TILE <= jump_reach(rise) - 2, (seed, g, rise)  # 2 px to spare
            widths.append(g)
        steps = np.diff(lv.surface[1:-1][lv.surface[1:-1] >= 0])
        assert steps.min() >= -2  # steps up (between segments, gaps or not) are at most 2 tiles
    assert max(widths) == (4 if hard else 3)


def test_level_is_pure_function_of_seed() -> None:
    generate_level.cache_clear()
    a = generate_level(1234)
    generate_level.cache_clear()
    b = generate_level(1234)
    assert a is not b
    for f in ("surface", "solid", "saws", "enemies", "flags"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.start == b.start and a.coin == b.coin and a.width == b.width
    layouts = {generate_level(s).surface.tobytes() for s in range(100)}
    assert len(layouts) == 100, "level layouts must vary with the seed"
    g1, g2 = CoinRun(1, ProcgenOptions()), CoinRun(1, ProcgenOptions())
    g1.load(np.array([0]), np.array([7]))
    g2.load(np.array([0]), np.array([7]))
    assert np.array_equal(g1.static, g2.static)


def test_hard_differs_from_easy() -> None:
    easy = [generate_level(s, False) for s in range(200)]
    hard = [generate_level(s, True) for s in range(200)]
    assert all(not np.array_equal(e.surface, h.surface) for e, h in zip(easy, hard))
    assert min(h.width for h in hard) > np.mean([e.width for e in easy])
    assert max(g for e in easy for _, g, _, _ in e.gaps()) < max(g for h in hard for _, g, _, _ in h.gaps())

    def hazards_per_tile(levels):
        return sum(len(lv.saws) + len(lv.enemies) for lv in levels) / sum(lv.width for lv in levels)

    assert hazards_per_tile(hard) > 1.5 * hazards_per_tile(easy)
    assert {int(v) for e in easy for v in e.enemies[:, 3]} == {1}
    assert {int(v) for h in hard for v in h.enemies[:, 3]} == {2}


@pytest.mark.parametrize("hard", [False, True])
def test_solver_plan_plays_procgen_env_to_the_coin(plans, hard: bool) -> None:
    seeds, found = plans[hard]
    env = ProcgenEnv("coinrun", distribution_mode="hard" if hard else "easy")
    for s, plan in list(zip(seeds, found))[:6]:
        env.reset(options={"level_seed": s})
        total, term = 0.0, False
        for k, a in enumerate(plan):
            _, r, term, trunc, info = env.step(a)
            total += r
            assert not trunc and info["level_seed"] == s
            assert term == (k == len(plan) - 1)
        assert term and total == 10.0


def _first_gap_right_after_start() -> int:
    return next(s for s in range(1000) if generate_level(s).surface[6] < 0)


def test_falling_into_a_gap_terminates_without_reward() -> None:
    s = _first_gap_right_after_start()
    env = ProcgenEnv("coinrun")
    env.reset(options={"level_seed": s})
    for k in range(60):
        _, r, term, trunc, _ = env.step(RIGHT)
        assert r == 0.0 and not trunc
        if term:
            break
    assert term and env.game.outcome[0] == FELL and env.game.y[0] >= FALL_Y


def test_touching_a_saw_or_an_enemy_terminates_without_reward() -> None:
    env = ProcgenEnv("coinrun")
    s = next(s for s in range(1000) if len(generate_level(s).saws))
    lv = generate_level(s)
    env.reset(options={"level_seed": s})
    sx, sy = (int(v) for v in lv.saws[0])
    env.game.x[0], env.game.y[0] = sx - TILE, sy  # on the ground tile left of the saw
    outcomes = []
    for a in (NOOP, RIGHT):
        _, r, term, _, _ = env.step(a)
        outcomes.append((r, term, int(env.game.outcome[0])))
    assert outcomes == [(0.0, False, NONE), (0.0, True, SAW)]

    s = next(s for s in range(1000) if len(generate_level(s).enemies))
    x0, span, ey, _, _ = (int(v) for v in generate_level(s).enemies[0])
    env.reset(options={"level_seed": s})
    env.game.x[0], env.game.y[0] = x0 + span // 2, ey  # standing in the middle of the patrol
    for k in range(4 * span):
        _, r, term, _, _ = env.step(NOOP)
        assert r == 0.0
        if term:
            break
    assert term and env.game.outcome[0] == ENEMY


def test_camera_follows_the_agent_and_frames_show_the_level(plans) -> None:
    seeds, found = plans[False]
    s, plan = seeds[0], found[0]
    env = ProcgenEnv("coinrun")
    obs, _ = env.reset(options={"level_seed": s})
    game = env.game
    frames, cams = [obs], [int(game.camera()[0])]
    for a in plan[:-1]:
        obs, _, term, _, _ = env.step(a)
        assert not term
        frames.append(obs)
        cams.append(int(game.camera()[0]))
        # the frame is the static layer's window at the camera, except under the agent and enemies
        cam = cams[-1]
        window = game.static[0, :, cam:cam + OBS_SIZE]
        sprite = np.zeros((OBS_SIZE, OBS_SIZE), bool)
        ex = game.levels.enemy_x(game.t)[0] - cam
        for yy, xx in [(game.y[0], game.x[0] - cam), *zip(game.levels.en_y[0], ex)]:
            sprite[max(0, yy + TOP):max(0, yy + TOP + TILE), max(0, xx):max(0, xx + TILE)] = True
        assert np.array_equal(frames[-1][~sprite], window[~sprite])
        assert sprite.any() and not np.array_equal(frames[-1][sprite], window[sprite])  # the agent is drawn
    cams = np.array(cams)
    assert cams[0] == 0 and cams[-1] > 100  # the window scrolls right with the agent
    moved = np.flatnonzero(np.diff(cams) != 0)
    assert len(moved) > 50
    assert all(not np.array_equal(a, b) for a, b in pairwise(frames))  # the observation is not constant


def test_backgrounds_option_and_palette() -> None:
    on = ProcgenEnv("coinrun").reset(options={"level_seed": 5})[0]
    off = ProcgenEnv("coinrun", use_backgrounds=False).reset(options={"level_seed": 5})[0]
    assert (off[:TOP, TILE:-TILE] == 0).all() and not (on[:TOP, TILE:-TILE] == 0).all()
    walls = {tuple(ProcgenEnv("coinrun").reset(options={"level_seed": s})[0][TOP + 1, 1]) for s in range(30)}
    assert len(walls) > 1, "terrain colours come from the level's palette"
