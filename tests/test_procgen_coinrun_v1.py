"""CoinRun-v1: levels a random agent can finish (Procgen's easy CoinRun), every level solvable,
hazards that still stop fixed policies, and CoinRun-v0 left exactly as it was."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import gymnasium
import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen import coinrun_v1 as V1
from simlab.envs.procgen.base import ProcgenOptions
from simlab.envs.procgen.coinrun import (
    EASY,
    FINAL_LEN,
    START_LEN,
    TILE,
    CoinRun,
    Params,
    generate_level,
    max_cols,
)
from simlab.envs.procgen.coinrun_solver import LEFT, RIGHT, replay, solve
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv

V0_LEVELS = {False: "eb4255b8fbb63c972e58ee37e601a5746df4f95f9aa934b6ccdaf4b0f03b593a",
             True: "3fdd5be3d2a126abcf74a0fbcd83bb095a9cd85d6f686987c397a03111afba8d"}
"""SHA-256 of every array of CoinRun-v0's levels 0-59 (easy) and 0-29 (hard), computed with
``envs/procgen/coinrun.py`` as it was before CoinRun-v1 existed: old results must reproduce."""
V0_ENGINE = {False: "bd15d2f3ad95fc7d5e84e751b870de65c53210f42c989e6da30716547020509e",
             True: "f5933d25b306a764aeed23611d4fd0a83759c6d0dbe814122bfbf6fbec2cdede"}
"""SHA-256 of the frames, rewards and terminations of 300 random steps of 8 CoinRun-v0 envs
(easy / hard, backgrounds on), computed before CoinRun-v1 existed."""



def _level_digest(seeds: range, hard: bool, p: Params | None = None) -> str:
    h = hashlib.sha256()
    for s in seeds:
        lv = generate_level(int(s), hard, p)
        for a in (lv.surface, lv.solid, lv.saws, lv.enemies, lv.flags):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((lv.width, lv.start, lv.coin)).encode())
    return h.hexdigest()


def _engine_digest(cls: type[CoinRun], hard: bool) -> str:
    g = cls(8, ProcgenOptions(num_levels=50, use_backgrounds=True, distribution_mode="hard" if hard else "easy"))
    g.load(np.arange(8), np.arange(8) * 7 + 1)
    obs = np.empty((8, 64, 64, 3), np.uint8)
    h = hashlib.sha256()
    rng = np.random.default_rng(0)
    for t in range(300):
        r, d = g.step(rng.integers(0, 15, 8))
        g.render(obs)
        h.update(obs.tobytes())
        h.update(r.tobytes())
        h.update(d.tobytes())
        if d.any():
            idx = np.flatnonzero(d)
            g.load(idx, idx + 100 + t)
    return h.hexdigest()


@pytest.mark.parametrize("hard", [False, True])
def test_coinrun_v0_is_unchanged(hard: bool) -> None:
    generate_level.cache_clear()
    assert _level_digest(range(60 if not hard else 30), hard) == V0_LEVELS[hard]
    assert _engine_digest(CoinRun, hard) == V0_ENGINE[hard]
    # v0's explicit parameters give the same levels as the default (the engine passes them)
    assert _level_digest(range(10), hard, CoinRun.level_params(hard)) == _level_digest(range(10), hard)


def test_v1_differs_from_v0_and_its_engine_is_pure() -> None:
    assert _engine_digest(V1.CoinRunV1, False) != V0_ENGINE[False]
    assert _engine_digest(V1.CoinRunV1, False) == _engine_digest(V1.CoinRunV1, False)
    generate_level.cache_clear()
    a = generate_level(1234, False, V1.EASY_V1)
    generate_level.cache_clear()
    b = generate_level(1234, False, V1.EASY_V1)
    assert a is not b
    for f in ("surface", "solid", "saws", "enemies", "flags"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    levels = [generate_level(s, False, V1.EASY_V1) for s in range(200)]
    layouts = {(lv.solid.tobytes(), lv.saws.tobytes(), lv.enemies[:, :4].tobytes()) for lv in levels}
    assert len(layouts) >= 150, "level layouts must vary with the seed (short levels repeat a few)"


def test_v1_is_registered_and_passes_the_checkers() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gymnasium.make("simlab/CoinRun-v1")
    check_env(env.unwrapped)
    sb3_check(ProcgenEnv("coinrun_v1"))
    vec = gymnasium.make_vec("simlab/CoinRun-v1", num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    assert "simlab/CoinRun-v0" in gymnasium.registry


def test_vec_env_is_deterministic_from_its_seed() -> None:
    def play(seed: int) -> bytes:
        env = ProcgenVecEnv("coinrun_v1", 8, num_levels=200)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(3)
        h = hashlib.sha256(obs.tobytes())
        for _ in range(200):
            obs, r, term, _trunc, info = env.step(rng.integers(0, 15, 8))
            h.update(obs.tobytes())
            h.update(r.tobytes())
            h.update(term.tobytes())
            h.update(np.asarray(info["level_seed"]).tobytes())
        return h.digest()

    assert play(5) == play(5)
    assert play(5) != play(6)


def test_v1_levels_are_short_with_few_gaps_and_a_safe_start() -> None:
    p = V1.EASY_V1
    easy = [generate_level(s, False, p) for s in range(300)]
    v0 = [generate_level(s, False) for s in range(300)]
    widths = np.array([lv.width for lv in easy])
    # at least one segment between the start and the final segment (never a flat corridor)
    assert widths.min() >= 1 + START_LEN + p.min_seg + FINAL_LEN + 1 and widths.max() <= max_cols(False, p)
    assert widths.mean() < 0.6 * np.mean([lv.width for lv in v0])
    n_gaps = np.array([len(lv.gaps()) for lv in easy])
    assert (n_gaps == 0).mean() > 0.5, "no gap is forced into a v1 level"
    assert n_gaps.mean() < 0.25 * np.mean([len(lv.gaps()) for lv in v0])
    assert all(2 <= g <= p.max_gap for lv in easy for _, g, _, _ in lv.gaps())
    assert _first_segment_hazards(easy, p.min_seg) == 0
    # hazards remain: a sizeable share of levels has a saw or an enemy
    assert np.mean([len(lv.saws) + len(lv.enemies) > 0 for lv in easy]) > 0.15


def _first_segment_hazards(levels: list, seg_len: int) -> int:
    """Levels with a saw, an enemy or a platform in the start segment or in the first ``seg_len``
    columns of the segment after it (past the gap, if any)."""
    bad = 0
    for lv in levels:
        c0 = 1 + START_LEN
        while lv.surface[c0] < 0:
            c0 += 1
        end = (c0 + seg_len) * TILE
        cols = np.arange(c0 + seg_len)
        above = lv.solid[:, cols] & (np.arange(lv.solid.shape[0])[:, None] < lv.surface[None, cols])
        bad += bool((lv.saws[:, 0] < end).any() or (lv.enemies[:, 0] < end).any() or above.any())
    return bad


def test_no_hazard_in_the_first_segment() -> None:
    """With every segment 6 tiles long (so the first one is known), ``safe_segments=1`` keeps it free
    of saws, enemies and platforms; without it, many levels have one there."""
    fixed = replace(V1.EASY_V1, min_seg=6, max_seg=6)
    safe = [generate_level(s, False, fixed) for s in range(200)]
    unsafe = [generate_level(s, False, replace(fixed, safe_segments=0)) for s in range(200)]
    assert _first_segment_hazards(safe, 6) == 0
    assert _first_segment_hazards(unsafe, 6) > 20


def test_agent_runs_at_the_v1_speed() -> None:
    for cls, speed in ((CoinRun, EASY.speed), (V1.CoinRunV1, V1.SPEED_V1)):
        g = cls(1, ProcgenOptions())
        g.load(np.array([0]), np.array([3]))
        x0 = int(g.x[0])
        g.step(np.array([RIGHT]))
        assert int(g.x[0]) - x0 == speed
        g.step(np.array([LEFT]))
        assert int(g.x[0]) == x0
    assert V1.SPEED_V1 <= TILE  # no tunnelling through a tile


@pytest.mark.parametrize("hard", [False, True])
def test_every_v1_level_is_solvable(hard: bool) -> None:
    """The search finds the coin on every level; its plans, replayed on the v1 engine, reach it."""
    seeds = list(range(200 if not hard else 60))
    found = solve(seeds, hard, V1.params_v1(hard))
    assert [s for s, f in zip(seeds, found) if f is None] == []
    plans: list[list[int]] = [f for f in found if f is not None]
    total, end = replay(seeds, hard, plans, V1.CoinRunV1)
    assert (total == 10.0).all()
    assert (end == np.array([len(plan) - 1 for plan in plans])).all()


def success_rate(policy: str, hard: bool = False, levels: int = 200, reps: int = 2, seed: int = 0) -> float:
    """Share of episodes reaching the coin within 1000 steps, ``reps`` episodes on each of levels
    ``0..levels-1``; ``policy``: ``random`` (uniform over the 15 actions each step), ``right``
    (always RIGHT) or ``held`` (uniform random actions held 1-10 steps)."""
    n = levels * reps
    game = V1.CoinRunV1(n, ProcgenOptions(distribution_mode="hard" if hard else "easy", use_backgrounds=False))
    game.load(np.arange(n), np.tile(np.arange(levels), reps))
    rng = np.random.default_rng(seed)
    got, done = np.zeros(n, bool), np.zeros(n, bool)
    held, left = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for _ in range(game.max_steps):
        if policy == "random":
            a = rng.integers(0, 15, n)
        elif policy == "right":
            a = np.full(n, RIGHT)
        else:
            new = left <= 0
            held[new], left[new] = rng.integers(0, 15, new.sum()), rng.integers(1, 11, new.sum())
            left -= 1
            a = held
        r, d = game.step(a)
        got |= ~done & (r == 10.0)
        done |= d
        if done.all():
            break
    return float(got.mean())


def test_random_play_reaches_the_coin_on_a_good_share_of_easy_levels() -> None:
    """The point of v1: random play finds the reward (v0: 0 of 64 episodes), but fixed policies do
    not solve the game (hazards, gaps and steps still matter)."""
    rand = success_rate("random")
    right = success_rate("right")
    held = success_rate("held")
    assert 0.2 <= rand <= 0.5, rand
    assert 0.15 <= right <= 0.6, right
    assert 0.3 <= held <= 0.8, held
    assert success_rate("random", hard=True, levels=100) < rand / 4  # hard stays hard
