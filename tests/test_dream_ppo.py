"""PPO in a (toy) dream env: smoke run, exported actor without SB3, checkpoints and resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.errors import CheckpointError, ConfigError
from simlab.policies.cmaes import WorldModelAgent
from simlab.policies.dream_ppo import DreamPolicy, DreamPPOConfig, MlpActor, train_dream_ppo
from simlab.runs import RunDir

IN_DIM, N_ACTIONS, HORIZON = 4, 3, 8
W_STAR = np.array([[2.0, -1.0, 0.0], [0.0, 1.5, -1.0], [-1.0, 0.0, 1.0], [0.5, 0.5, -2.0]], np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class MatchVecEnv(VectorEnv):
    """Toy dream-like env: obs x ~ N(0, I) float32; reward 1 if action == argmax(x @ W_STAR); HORIZON steps.

    Same contract as the dream env: SAME_STEP autoreset with final_obs / episode_* info keys.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, seed: int = 0) -> None:
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (IN_DIM,), np.float32)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.obs = self.rng.standard_normal((num_envs, IN_DIM)).astype(np.float32)
        self.t = np.zeros(num_envs, np.int64)
        self.ret = np.zeros(num_envs)

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed if isinstance(seed, int) else seed[0])
        self.obs = self.rng.standard_normal((self.num_envs, IN_DIM)).astype(np.float32)
        self.t[:], self.ret[:] = 0, 0.0
        return self.obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.asarray(actions).reshape(self.num_envs)
        rew = (a == (self.obs @ W_STAR).argmax(axis=1)).astype(np.float32)
        self.t += 1
        self.ret += rew
        term = np.zeros(self.num_envs, bool)
        trunc = self.t >= HORIZON
        self.obs = self.rng.standard_normal((self.num_envs, IN_DIM)).astype(np.float32)
        info: dict[str, Any] = {}
        if trunc.any():
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(trunc):
                final[i] = self.obs[i].copy()
            self.obs[trunc] = self.rng.standard_normal((int(trunc.sum()), IN_DIM)).astype(np.float32)
            info = {"final_obs": final, "_final_obs": trunc.copy(), "episode_return": np.where(trunc, self.ret, 0.0),
                    "episode_length": np.where(trunc, self.t, 0), "_episode": trunc.copy()}
            self.t[trunc], self.ret[trunc] = 0, 0.0
        return self.obs.copy(), rew, term, trunc, info


X = 256  # steps of the first run: 4 envs x 32 steps x 2 rollouts


def cfg_for(**kw: Any) -> DreamPPOConfig:
    base = {"num_envs": 4, "n_steps": 32, "total_timesteps": X, "batch_size": 64, "n_epochs": 2,
            "net_arch": [16], "checkpoint_every": 128, "seed": 1}
    return DreamPPOConfig(**{**base, **kw})


class Maker:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, num_envs: int, seed: int) -> MatchVecEnv:
        self.calls.append((num_envs, seed))
        return MatchVecEnv(num_envs, seed)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DreamPPOConfig, RunDir, DreamPolicy, dict]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = cfg_for()
    run = RunDir.create(tmp_path_factory.mktemp("dppo") / "run", cfg)
    logged: list[tuple[int, dict]] = []
    maker = Maker()
    policy, info = train_dream_ppo(maker, cfg, run, progress=False, log=lambda s, m: logged.append((s, m)))
    assert maker.calls == [(4, 1)]
    assert logged and all(k.startswith("ppo/") for _, m in logged for k in m)
    yield cfg, run, policy, info
    torch.set_num_threads(threads)


def test_smoke_run_outputs(first_run: tuple[DreamPPOConfig, RunDir, DreamPolicy, dict]) -> None:
    _, run, policy, info = first_run
    assert info["num_timesteps"] == X and info["resumed_from"] == 0 and info["episodes"] > 0
    keys = set().union(*run.metrics())
    assert {"ppo/ep_rew_mean", "ppo/value_loss", "ppo/entropy_loss", "ppo/fps"} <= keys
    assert not any(k.startswith(("train/", "rollout/")) for k in keys)
    ck = run.checkpoint("dream_ppo")
    for f in ("sb3_model.zip", "state.json", "policy/config.json", "policy/diffusion_pytorch_model.safetensors"):
        assert (ck / f).exists(), f
    assert json.loads((ck / "state.json").read_text())["num_timesteps"] == X
    assert run.stage_done("dream_ppo")["num_timesteps"] == X
    assert not list((run.path / "checkpoints").glob(".*"))
    obs = np.random.default_rng(0).standard_normal((10, IN_DIM)).astype(np.float32)
    a = policy.act(obs)
    assert a.shape == (10,) and a.dtype == np.int64 and ((0 <= a) & (a < N_ACTIONS)).all()
    assert policy.act(obs, deterministic=False).shape == (10,)


def test_exported_actor_matches_sb3_and_loads_without_it(
        first_run: tuple[DreamPPOConfig, RunDir, DreamPolicy, dict], tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    _, run, policy, _ = first_run
    model = PPO.load(run.checkpoint("dream_ppo") / "sb3_model.zip", device="cpu")
    obs = np.random.default_rng(1).standard_normal((64, IN_DIM)).astype(np.float32)
    want, _ = model.predict(obs, deterministic=True)
    loaded = DreamPolicy.load(run.path / "dream_policy")
    np.testing.assert_array_equal(loaded.act(obs), want)
    np.testing.assert_array_equal(policy.act(obs), want)
    with torch.no_grad():
        ref = model.policy.get_distribution(torch.from_numpy(obs)).distribution.logits
    np.testing.assert_allclose(torch.log_softmax(torch.from_numpy(loaded.logits(obs)), 1).numpy(), ref.numpy(),
                               rtol=1e-5, atol=1e-5)
    doc = json.loads((run.path / "dream_policy" / "config.json").read_text())
    assert doc["_class_name"] == "MlpActor" and doc["net_arch"] == [16]
    assert doc["_meta"]["trainer"] == "dream_ppo"
    # bad files -> CheckpointError
    p = tmp_path / "p"
    loaded.save(p)
    (p / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        DreamPolicy.load(p)
    with pytest.raises(CheckpointError, match="config.json"):
        DreamPolicy.load(tmp_path)


def test_resume_continues_num_timesteps(first_run: tuple[DreamPPOConfig, RunDir, DreamPolicy, dict],
                                        tmp_path: Path) -> None:
    import shutil

    cfg, run, _, _ = first_run
    out = tmp_path / "resumed"
    shutil.copytree(run.path, out)
    with open(out / "metrics.jsonl", "a") as f:  # what a killed run logged after its last checkpoint
        f.write(json.dumps({"step": X + 128, "ppo/stale": 1.0}) + "\n")
    cfg2 = cfg_for(total_timesteps=2 * X)
    run2 = RunDir.create(out, cfg, resume=True)
    _, info = train_dream_ppo(Maker(), cfg2, run2, progress=False)
    assert info["resumed_from"] == X and info["num_timesteps"] == 2 * X
    assert json.loads((run2.checkpoint("dream_ppo") / "state.json").read_text())["num_timesteps"] == 2 * X
    steps = [r["step"] for r in run2.metrics()]
    assert steps == sorted(steps) and max(steps) == 2 * X and not any("ppo/stale" in r for r in run2.metrics())
    assert DreamPolicy.load(out / "dream_policy").meta["num_timesteps"] == 2 * X
    with pytest.raises(ConfigError, match="net_arch"):
        train_dream_ppo(Maker(), cfg_for(total_timesteps=2 * X, net_arch=[8]), run2, progress=False)


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_record"])
def test_damaged_checkpoint_is_refused_before_unpickling(first_run: tuple[DreamPPOConfig, RunDir, DreamPolicy, dict],
                                                         tmp_path: Path, damage: str) -> None:
    """The SB3 zip is a pickle: a flipped byte, a truncation or a missing digest record must be a
    one-line CheckpointError naming the file, not a traceback from SB3 or a silently wrong model."""
    import shutil

    cfg, run, _, _ = first_run
    out = tmp_path / "damaged"
    shutil.copytree(run.path, out)
    ckpt = RunDir.create(out, cfg, resume=True).checkpoint("dream_ppo")
    z = ckpt / "sb3_model.zip"
    if damage == "flip":
        b = bytearray(z.read_bytes())
        b[len(b) // 2] ^= 0x01
        z.write_bytes(bytes(b))
    elif damage == "truncate":
        z.write_bytes(z.read_bytes()[:-100])
    else:
        (ckpt / "files.sha256.json").unlink()
    with pytest.raises(CheckpointError) as e:
        train_dream_ppo(Maker(), cfg_for(total_timesteps=2 * X), RunDir.create(out, cfg, resume=True), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and ("sb3_model.zip" in msg or "integrity record" in msg)


def test_killed_run_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    cfg = cfg_for(total_timesteps=3 * 128)
    run = RunDir.create(tmp_path / "run", cfg)

    def die(step: int, metrics: dict) -> None:
        if step >= 256:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        train_dream_ppo(Maker(), cfg, run, progress=False, log=die)
    state = json.loads((run.checkpoint("dream_ppo") / "state.json").read_text())
    assert state["num_timesteps"] == 128  # saved at the start of the second rollout
    _, info = train_dream_ppo(Maker(), cfg, RunDir.create(run.path, cfg, resume=True), progress=False)
    assert info["resumed_from"] == 128 and info["num_timesteps"] == 3 * 128
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(steps) and max(steps) == 3 * 128


def test_dream_policy_in_world_model_agent() -> None:
    class WM:
        def encode(self, frames: np.ndarray) -> np.ndarray:
            return frames.reshape(len(frames), -1, 3).mean(axis=1)[:, :2].astype(np.float32)

        def initial_state(self, batch: int) -> np.ndarray:
            return np.zeros((batch, 2), np.float32)

        def rnn_step(self, z: np.ndarray, a: np.ndarray, state: np.ndarray) -> np.ndarray:
            return state + z

        def hidden(self, state: np.ndarray) -> np.ndarray:
            return state

    policy = DreamPolicy(MlpActor(IN_DIM, N_ACTIONS, [8]))
    agent = WorldModelAgent(WM(), policy)
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    a = agent.act(frames)
    assert a.shape == (5,)
    z = WM().encode(frames)
    np.testing.assert_array_equal(a, policy.act(np.concatenate([z, np.zeros_like(z)], 1)))
    np.testing.assert_allclose(agent.state, z)


@pytest.mark.parametrize("bad", [{"batch_size": 1000}, {"activation": "gelu"}, {"net_arch": [0]},
                                 {"gamma": 1.5}, {"num_envs": 0}])
def test_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        cfg_for(**bad)


def test_wrong_env_spaces_rejected() -> None:
    class Boxy(MatchVecEnv):
        def __init__(self, n: int, seed: int) -> None:
            super().__init__(n, seed)
            self.single_action_space = spaces.Box(-1, 1, (2,), np.float32)

    with pytest.raises(ConfigError, match="Discrete"):
        train_dream_ppo(Boxy, cfg_for(), None, progress=False)
