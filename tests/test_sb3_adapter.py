"""SB3VecEnv: a gymnasium 1.x same-step-autoreset VectorEnv seen through SB3's VecEnv contract."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

import simlab  # noqa: F401
from simlab.envs.procgen.vec import ProcgenVecEnv
from simlab.errors import ConfigError
from simlab.sb3 import SB3VecEnv, unbatch_info


class CountdownVecEnv(VectorEnv):
    """Tiny batched env: obs = [slot, t]; slot i terminates at t == i + 2 (reward 1 per step),
    every episode is truncated at t == limit first if limit < i + 2. Same-step autoreset."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 4, limit: int = 3, report_episodes: bool = False) -> None:
        self.num_envs = num_envs
        self.limit = limit
        self.report = report_episodes
        self.render_mode = None
        self.single_observation_space = spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.t = np.zeros(num_envs, np.int64)
        self.seed_seen: Any = None

    def _obs(self) -> np.ndarray:
        return np.stack([np.arange(self.num_envs), self.t], 1).astype(np.float32)

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.seed_seen = seed
        self.t[:] = 0
        return self._obs(), {"tag": np.full(self.num_envs, 7)}

    def step(self, actions: Any):
        self.t += 1
        rew = np.ones(self.num_envs, np.float32)
        term = self.t == np.arange(self.num_envs) + 2
        trunc = (self.t >= self.limit) & ~term
        done = term | trunc
        obs = self._obs()
        info: dict[str, Any] = {"tag": np.full(self.num_envs, 7)}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = obs[i].copy()
            info["final_obs"], info["_final_obs"] = final, done.copy()
            if self.report:
                info["episode_return"] = np.where(done, 100.0 * self.t, 0.0)
                info["episode_length"] = np.where(done, self.t, 0)
                info["_episode"] = done.copy()
            self.t[done] = 0
            obs = self._obs()
        return obs, rew, term, trunc, info


def test_dones_terminal_observation_and_timelimit() -> None:
    venv = SB3VecEnv(CountdownVecEnv(num_envs=4, limit=3))
    assert venv.num_envs == 4 and venv.observation_space.shape == (2,)
    obs = venv.reset()
    assert obs.shape == (4, 2) and venv.reset_infos[0] == {"tag": 7}
    seen = []
    for _ in range(6):
        obs, rew, dones, infos = venv.step(np.zeros(4, np.int64))
        assert rew.dtype == np.float32 and dones.dtype == bool and len(infos) == 4
        seen.append(dones.copy())
        for i, d in enumerate(infos):
            assert d["tag"] == 7
            if dones[i]:
                t_end = min(i + 2, 3)
                np.testing.assert_array_equal(d["terminal_observation"], [i, t_end])
                assert obs[i, 1] == 0, "the returned obs of a finished env is its reset obs"
                # slot 0: term at 2; 1: term at 3; 2, 3: truncated at 3 (term would be at 4, 5)
                assert d["TimeLimit.truncated"] == (i >= 2)
                assert d["episode"]["r"] == pytest.approx(t_end) and d["episode"]["l"] == t_end
            else:
                assert "terminal_observation" not in d and "episode" not in d
    assert np.array_equal(seen[1], [True, False, False, False])  # t == 2
    assert np.array_equal(seen[2], [False, True, True, True])  # t == 3


def test_env_reported_episode_stats_win() -> None:
    venv = SB3VecEnv(CountdownVecEnv(num_envs=2, limit=10, report_episodes=True))
    venv.reset()
    _, _, dones, infos = venv.step(np.zeros(2, np.int64))
    _, _, dones, infos = venv.step(np.zeros(2, np.int64))
    assert dones[0] and infos[0]["episode"]["r"] == 200.0 and infos[0]["episode"]["l"] == 2


def test_seed_is_passed_once_and_misc_api() -> None:
    inner = CountdownVecEnv(num_envs=3)
    venv = SB3VecEnv(inner)
    assert venv.seed(5) == [5, 6, 7]
    venv.reset()
    assert inner.seed_seen == [5, 6, 7]
    venv.reset()
    assert inner.seed_seen is None
    assert venv.get_attr("limit") == [3, 3, 3] and venv.get_attr("limit", indices=1) == [3]
    venv.set_attr("limit", 4)
    assert inner.limit == 4
    with pytest.raises(ConfigError):
        venv.set_attr("limit", 5, indices=[0])
    assert venv.env_method("_obs", indices=[0, 2])[0].shape == (3, 2)
    assert venv.env_is_wrapped(object) == [False] * 3
    with pytest.raises(AttributeError):
        venv.get_attr("nope")
    venv.close()


def test_requires_same_step_autoreset() -> None:
    class NextStep(CountdownVecEnv):
        metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    with pytest.raises(ConfigError, match="SAME_STEP"):
        SB3VecEnv(NextStep())


def test_unbatch_info_masks_and_nested() -> None:
    info = {"a": np.array([1, 2, 3]), "_a": np.array([True, False, True]), "s": 5,
            "episode": {"r": np.array([1.0, 0.0, 2.0]), "_r": np.array([True, False, True])},
            "_episode": np.array([True, False, True])}
    out = unbatch_info(info, 3)
    assert out[0] == {"a": 1, "s": 5, "episode": {"r": 1.0}} and out[1] == {"s": 5}
    assert out[2]["episode"] == {"r": 2.0}


def test_procgen_terminal_observation_matches_direct_env() -> None:
    """Through the adapter, the terminal observation is exactly the env's final frame."""
    venv = SB3VecEnv(ProcgenVecEnv("maze", 3, max_episode_steps=4, render_mode="rgb_array"))
    ref = ProcgenVecEnv("maze", 3, max_episode_steps=4)
    venv.seed(11)
    o1 = venv.reset()
    o2, _ = ref.reset(seed=11)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    n_done = 0
    for _ in range(9):
        a = rng.integers(0, 15, size=3)
        o1, r1, d1, infos = venv.step(a)
        o2, r2, term, trunc, info = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, term | trunc)
        for i in np.flatnonzero(d1):
            np.testing.assert_array_equal(infos[i]["terminal_observation"], info["final_obs"][i])
            assert infos[i]["TimeLimit.truncated"] == bool(trunc[i] and not term[i])
            assert infos[i]["episode"]["l"] == info["episode_length"][i]
            assert infos[i]["level_seed"] == info["level_seed"][i]
            n_done += 1
    assert n_done >= 3
    frame = venv.render()
    assert frame is not None and frame.shape == (512, 512, 3)
    assert venv.get_attr("render_mode") == ["rgb_array"] * 3


def test_ppo_smoke_run_logs_episode_returns() -> None:
    from stable_baselines3 import PPO

    venv = SB3VecEnv(CountdownVecEnv(num_envs=4, limit=3))
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    model.learn(total_timesteps=64)
    assert model.num_timesteps == 64
    assert len(model.ep_info_buffer) > 0
    assert {e["l"] for e in model.ep_info_buffer} <= {2, 3}
    a, _ = model.predict(venv.reset(), deterministic=True)
    assert a.shape == (4,)
