"""Contracts every procgen-like game meets: batch slot 0 == single env, gymnasium/SB3 checkers, make_vec."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv

# game -> (env id, steps to play, minimum episode ends, action choices that end episodes often enough)
GAMES = {
    "maze": ("simlab/Maze-v0", 600, 1, None),
    "coinrun": ("simlab/CoinRun-v0", 600, 3, [2, 8, 7, 7, 5, 4, 1, 0, 3, 6, 12]),  # right-biased play
    "coinrun_v1": ("simlab/CoinRun-v1", 600, 3, None),
    "bigfish": ("simlab/BigFish-v0", 600, 2, None),
    "dodge": ("simlab/Dodge-v0", 900, 2, None),
    "dodge_v1": ("simlab/Dodge-v1", 900, 2, None),
}


@pytest.mark.parametrize("game", list(GAMES))
def test_slot_zero_equals_single_env_trajectory(game: str) -> None:
    _, steps, min_ends, choices = GAMES[game]
    vec = ProcgenVecEnv(game, 8, num_levels=50)
    single = ProcgenEnv(game, num_levels=50)
    vo, vi = vec.reset(seed=3)
    so, si = single.reset(seed=3)
    assert np.array_equal(vo[0], so) and vi["level_seed"][0] == si["level_seed"]
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(steps):  # crosses episode boundaries
        a = rng.choice(choices, 8) if choices else rng.integers(0, 15, 8)
        vo, vr, vt, vtr, vinf = vec.step(a)
        so, sr, st, strunc, _ = single.step(int(a[0]))
        assert vr[0] == sr and vt[0] == st and vtr[0] == strunc
        if st or strunc:
            ends += 1
            assert np.array_equal(vinf["final_obs"][0], so)
            so, _ = single.reset()
        assert np.array_equal(vo[0], so)
    assert ends >= min_ends


@pytest.mark.parametrize("game", list(GAMES))
def test_gymnasium_registration_and_checkers(game: str) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env_id = GAMES[game][0]
    env = gymnasium.make(env_id)
    assert env.spec.max_episode_steps == (500 if game == "maze" else 1000)
    check_env(env.unwrapped)
    sb3_check(env.unwrapped)
    vec = gymnasium.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8
    obs, rew, term, trunc, _ = vec.step(np.array([0, 4, 8, 14]))
    assert rew.dtype == np.float32 and term.shape == trunc.shape == (4,)
