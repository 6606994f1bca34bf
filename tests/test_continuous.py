"""Continuous (Box) actions through the dropout world model: MDN-RNN, world model, dreams, CMA-ES, agent."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from simlab.integrity import seal
from simlab.world_models.base import seal_config

torch = pytest.importorskip("torch")

from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.errors import ActionError, CheckpointError, ConfigError
from simlab.policies.cmaes import (
    CMAESConfig,
    DropoutWorldModelView,
    LinearController,
    WorldModelAgent,
    rollout_controllers,
    train_cmaes,
)
from simlab.runs import RunDir
from simlab.world_models.dropout import (
    MDNRNN,
    ConvVAE,
    DropoutWorldModel,
    MDNRNNConfig,
    RNNTrainConfig,
    train_mdnrnn,
)

Z, H, D, K = 4, 16, 3, 2
CAR_BOX = spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vae() -> ConvVAE:
    torch.manual_seed(0)
    return ConvVAE(z_dim=Z).eval()


def car_model(vae: ConvVAE, seed: int = 0, dropout: float = 0.05, done_bias: float = -10.0) -> DropoutWorldModel:
    torch.manual_seed(seed)
    rnn = MDNRNN(MDNRNNConfig(z_dim=Z, action_dim=D, hidden=H, mixtures=K, dropout=dropout))
    with torch.no_grad():
        rnn.done_fc.bias.fill_(done_bias)
    return DropoutWorldModel(vae, rnn, torch.randn(4, Z), env_id="CarRacing-v3", action_space=CAR_BOX)


# ---- MDN-RNN ---------------------------------------------------------------------------------------
def test_config_modes_and_validation() -> None:
    c = MDNRNNConfig(z_dim=Z, action_dim=D, hidden=H)
    assert c.continuous and c.n_actions == 0 and c.action_width == D
    d = MDNRNNConfig(z_dim=Z, n_actions=5, hidden=H)
    assert not d.continuous and d.action_dim == 0 and d.action_width == 5
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError):
            MDNRNNConfig(action_dim=bad)
        with pytest.raises(ConfigError):
            RNNTrainConfig(action_dim=bad)
    assert RNNTrainConfig(action_dim=2).n_actions == 0
    rnn = MDNRNN(c)
    assert rnn.cell.input_size == Z + D and rnn.continuous


def test_step_forward_and_action_checks() -> None:
    torch.manual_seed(0)
    rnn = MDNRNN(z_dim=Z, action_dim=D, hidden=H, mixtures=K)
    z, a = torch.randn(2, 5, Z), torch.rand(2, 5, D)
    out = rnn(z, a)
    assert out.mu.shape == (2, 5, K, Z) and out.reward.shape == (2, 5)
    state = None
    for t in range(5):  # forward equals a loop of steps
        step = rnn.step(z[:, t], a[:, t], state)
        state = step.state
    torch.testing.assert_close(step.mu, out.mu[:, -1])
    # the action is fed raw, never masked; masks act on z only
    masks = rnn.sample_masks(2, 0.5, generator=torch.Generator().manual_seed(0))
    x = rnn.masked_input(z[:, 0], a[:, 0], masks)
    torch.testing.assert_close(x[:, Z:], a[:, 0])
    torch.testing.assert_close(x[:, :Z], z[:, 0] * masks.z)
    # the action changes the prediction
    assert not torch.allclose(rnn.step(z[:, 0], a[:, 0]).mu, rnn.step(z[:, 0], a[:, 0] + 1).mu)
    with pytest.raises(ActionError, match="shape"):
        rnn.step(z[:, 0], torch.zeros(2, D + 1))
    with pytest.raises(ActionError, match="shape"):
        rnn.step(z[:, 0], torch.zeros(2, dtype=torch.long))
    with pytest.raises(ActionError, match="NaN"):
        rnn.step(z[:, 0], torch.full((2, D), float("nan")))
    with pytest.raises(ActionError):
        rnn(z, torch.zeros(2, 4, D))


def action_rule_data(n_ep: int = 24, t: int = 20, seed: int = 0) -> tuple[list[np.ndarray], ...]:
    """z_{t+1} = 0.5 z_t + [a0, a1, a2, -a0] + small noise; reward = a1 - a2; never done."""
    rng = np.random.default_rng(seed)
    zs, acts, rews, dones = [], [], [], []
    for _ in range(n_ep):
        a = np.clip(rng.normal(0.0, 0.6, (t, D)), -1, 1).astype(np.float32)
        z = np.zeros((t + 1, Z), np.float32)
        z[0] = rng.normal(size=Z)
        for i in range(t):
            z[i + 1] = 0.5 * z[i] + np.r_[a[i], -a[i, 0]] + rng.normal(0, 0.05, Z)
        zs.append(z)
        acts.append(a)
        rews.append((a[:, 1] - a[:, 2]).astype(np.float32))
        dones.append(np.zeros(t, bool))
    return zs, acts, rews, dones


def test_train_mdnrnn_continuous_reduces_loss_and_is_deterministic() -> None:
    zs, acts, rews, dones = action_rule_data()
    cfg = RNNTrainConfig(action_dim=D, hidden=H, mixtures=K, epochs=30, batch_size=8, seq_len=10, lr=1e-2,
                         max_steps=60, log_every=5)
    logs: list[dict[str, float]] = []
    rnn = train_mdnrnn(zs, acts, rews, dones, cfg, seed=0, log=lambda s, m: logs.append(m))
    assert rnn.continuous and rnn.config.action_dim == D
    first, last = logs[0]["rnn/loss"], logs[-1]["rnn/loss"]
    assert last < first - 1.0, (first, last)
    assert logs[-1]["rnn/reward"] < 0.5 * logs[0]["rnn/reward"]
    # arrays (N_ep, T, d) work too and give the same model as the list
    rnn2 = train_mdnrnn(np.stack(zs), np.stack(acts), np.stack(rews), np.stack(dones), cfg, seed=0)
    for p, q in zip(rnn.parameters(), rnn2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_train_mdnrnn_continuous_rejects_bad_actions() -> None:
    zs, acts, rews, dones = action_rule_data(n_ep=2, t=5)
    cfg = RNNTrainConfig(action_dim=D, hidden=H, mixtures=K, epochs=1, batch_size=2)
    with pytest.raises(ConfigError, match=r"actions \(T, 3\)"):
        train_mdnrnn(zs, [a[:, :2] for a in acts], rews, dones, cfg)
    with pytest.raises(ConfigError):
        train_mdnrnn(zs, [a[:, 0] for a in acts], rews, dones, cfg)
    bad = [a.copy() for a in acts]
    bad[1][2, 0] = np.inf
    with pytest.raises(ActionError, match="episode 1"):
        train_mdnrnn(zs, bad, rews, dones, cfg)
    with pytest.raises(ActionError):
        train_mdnrnn(zs, [a.astype(bool) for a in acts], rews, dones, cfg)
    # a discrete config refuses float vectors as before
    with pytest.raises(ConfigError):
        train_mdnrnn(zs, acts, rews, dones, RNNTrainConfig(n_actions=3, hidden=H, epochs=1))


# ---- world model and dreams -------------------------------------------------------------------------
def test_world_model_action_space_round_trip_and_checks(tmp_path: Path, vae: ConvVAE) -> None:
    model = car_model(vae)
    assert model.continuous and model.action_dim == D and model.n_actions == 0
    model.save_pretrained(tmp_path / "wm")
    doc = json.loads((tmp_path / "wm" / "world_model.json").read_text())
    assert doc["action_space"] == {"type": "Box", "shape": [3], "dtype": "float32",
                                   "low": [-1.0, 0.0, 0.0], "high": [1.0, 1.0, 1.0]}
    back = DropoutWorldModel.from_pretrained(tmp_path / "wm")
    assert back.continuous and back.action_space == model.action_space
    rnn = model.rnn
    with pytest.raises(ConfigError, match="needs action_space"):
        DropoutWorldModel(vae, rnn, torch.zeros(1, Z))
    with pytest.raises(ConfigError, match="shape"):
        DropoutWorldModel(vae, rnn, torch.zeros(1, Z), action_space=spaces.Box(-1, 1, (2,), np.float32))
    with pytest.raises(ConfigError, match="finite"):
        DropoutWorldModel(vae, rnn, torch.zeros(1, Z), action_space=spaces.Box(-np.inf, 1, (3,), np.float32))
    with pytest.raises(ConfigError):
        DropoutWorldModel(vae, rnn, torch.zeros(1, Z), action_space=spaces.Discrete(3))
    doc["action_space"] = {"type": "Discrete", "n": 3}  # a json that contradicts the saved MDN-RNN
    (tmp_path / "wm" / "world_model.json").write_text(json.dumps(seal(doc)))
    with pytest.raises(CheckpointError):
        DropoutWorldModel.from_pretrained(tmp_path / "wm")


def test_discrete_world_model_saved_without_action_space_still_loads(tmp_path: Path, vae: ConvVAE) -> None:
    rnn = MDNRNN(MDNRNNConfig(z_dim=Z, n_actions=5, hidden=H, mixtures=K))
    DropoutWorldModel(vae, rnn, torch.zeros(2, Z)).save_pretrained(tmp_path / "old")
    for name, key in (("world_model.json", "action_space"), ("mdnrnn/config.json", "action_dim")):
        p = tmp_path / "old" / name
        doc = json.loads(p.read_text())
        doc.pop(key)  # as written before this feature
        p.write_text(json.dumps(seal_config(doc) if name.startswith("mdnrnn") else seal(doc)))
    old = DropoutWorldModel.from_pretrained(tmp_path / "old")
    assert not old.continuous and old.action_space == spaces.Discrete(5)
    assert old.as_env().action_space == spaces.Discrete(5)


def test_dream_env_box_space_check_env_and_action_errors(vae: ConvVAE) -> None:
    from gymnasium.utils.env_checker import check_env

    model = car_model(vae)
    env = model.as_env(max_episode_steps=12, seed=0)
    assert env.action_space == CAR_BOX and env.action_space.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds (z is unbounded)
        check_env(env, skip_render_check=True)
    env.reset(seed=1)
    obs, rew, *_ = env.step(np.array([0.5, 1.0, 0.0], np.float32))
    assert obs.shape == (Z + H,) and isinstance(rew, float)
    for bad, what in (([1.5, 0.5, 0.5], "outside"), ([0.0, -0.1, 0.0], "outside"),
                      ([np.nan, 0.5, 0.5], "NaN"), ([0.0, 0.5], "shape"), ("go", "shape"),
                      (np.array([["a", "b", "c"]]), "real numbers")):
        with pytest.raises(ActionError, match=what) as err:
            env.step(np.asarray(bad))
        assert "\n" not in str(err.value)
    venv = model.as_vec_env(4, mask_mode="mc_mean", mc_samples=3, max_episode_steps=5)
    assert venv.action_space.shape == (4, D)
    venv.reset(seed=0)
    for _ in range(6):
        venv.step(np.tile(CAR_BOX.sample(), (4, 1)))
    with pytest.raises(ActionError, match="outside"):
        venv.step(torch.full((4, D), 2.0))
    with pytest.raises(ActionError, match="shape"):
        venv.step(np.zeros((3, D), np.float32))


def test_dream_step_matches_the_model_step_with_continuous_actions(vae: ConvVAE) -> None:
    model = car_model(vae, dropout=0.0)
    env = model.as_vec_env(3, mask_mode="none", temperature=0.0, max_episode_steps=50, seed=0)
    obs, _ = env.reset(seed=0)
    z = torch.from_numpy(obs[:, :Z])
    a = np.random.default_rng(0).uniform(CAR_BOX.low, CAR_BOX.high, (3, D)).astype(np.float32)
    want = model.rnn.step(z, torch.from_numpy(a))
    obs2, rew, *_ = env.step(a)
    np.testing.assert_allclose(obs2[:, Z:], want.state[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(rew, want.reward.detach().numpy(), atol=1e-5)


# ---- controllers ------------------------------------------------------------------------------------
def test_linear_controller_continuous_act_and_save_load(tmp_path: Path) -> None:
    c = LinearController(5, CAR_BOX)
    assert c.continuous and c.n_outputs == D and c.num_params == 5 * D + D
    vec = np.random.default_rng(0).standard_normal(c.num_params) * 3
    c.set_params(vec)
    obs = np.random.default_rng(1).standard_normal((50, 5)).astype(np.float32) * 3
    a = c.act(obs)
    assert a.shape == (50, D) and a.dtype == np.float32
    assert (a >= CAR_BOX.low).all() and (a <= CAR_BOX.high).all()
    want = CAR_BOX.low + (np.tanh(obs @ c.W + c.b) + 1) / 2 * (CAR_BOX.high - CAR_BOX.low)
    np.testing.assert_allclose(a, want, atol=1e-6)
    assert c.act(obs[0]).shape == (1, D)
    assert LinearController(5, CAR_BOX).act(obs[:1])[0].tolist() == [0.0, 0.5, 0.5]  # zero params: the middle
    c.save(tmp_path / "ctrl", meta={"note": "car"})
    back = LinearController.load(tmp_path / "ctrl")
    assert back.continuous and back.actions == CAR_BOX and back.meta["note"] == "car"
    np.testing.assert_array_equal(back.act(obs), a)
    doc = json.loads((tmp_path / "ctrl" / "config.json").read_text())
    assert doc["_action_space"]["type"] == "Box" and doc["action_space"]["low"] == [-1.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match="finite"):
        LinearController(5, spaces.Box(-np.inf, np.inf, (2,), np.float32))
    with pytest.raises(ConfigError):
        LinearController(5, spaces.MultiBinary(3))


class TargetVecEnv(VectorEnv):
    """Toy continuous task (SAME_STEP autoreset): obs x ~ N(0, I) (4,), reward = -|a - target(x)|^2
    with target(x) = low + (tanh(x @ W_STAR) + 1) / 2 * (high - low); HORIZON steps."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    W_STAR = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [-1.0, 0.5, 0.0], [0.5, 0.0, 1.5]], np.float32)
    HORIZON = 8

    def __init__(self, num_envs: int, seed: int = 0) -> None:
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.single_action_space = CAR_BOX
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.obs = self.rng.standard_normal((self.num_envs, 4)).astype(np.float32)
        self.t = np.zeros(self.num_envs, np.int64)
        return self.obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.asarray(actions)
        assert a.shape == (self.num_envs, D) and a.dtype == np.float32
        assert (a >= CAR_BOX.low).all() and (a <= CAR_BOX.high).all()
        target = CAR_BOX.low + (np.tanh(self.obs @ self.W_STAR) + 1) / 2 * (CAR_BOX.high - CAR_BOX.low)
        rew = -((a - target) ** 2).sum(axis=1).astype(np.float32)
        self.t += 1
        trunc = self.t >= self.HORIZON
        self.obs = self.rng.standard_normal((self.num_envs, 4)).astype(np.float32)
        self.t[trunc] = 0
        return self.obs.copy(), rew, np.zeros(self.num_envs, bool), trunc, {}


def test_rollout_controllers_and_cmaes_improve_on_a_continuous_toy() -> None:
    ideal = np.r_[TargetVecEnv.W_STAR.ravel(), np.zeros(D)]
    out = rollout_controllers(TargetVecEnv, np.stack([np.zeros_like(ideal), ideal]), 4, CAR_BOX, 3, 0, 20)
    assert out["returns"].shape == (2, 3) and out["finished"].all()
    np.testing.assert_allclose(out["returns"][1], 0.0, atol=1e-4)  # the target controller is perfect
    assert (out["returns"][0] < -0.1).all()
    cfg = CMAESConfig(popsize=10, episodes_per_candidate=2, generations=12, sigma0=0.5, seed=1,
                      max_episode_steps=20, eval_every=0)
    ctrl, info = train_cmaes(TargetVecEnv, 4, CAR_BOX, cfg, progress=False)
    assert ctrl.continuous and ctrl.actions == CAR_BOX
    hist = [h["cmaes/mean_return"] for h in info["history"]]
    assert np.mean(hist[-3:]) > np.mean(hist[:3])


class DreamMaker:
    """``make_env(num_envs, seed)`` over a continuous dream; raises KeyboardInterrupt at call ``fail_at``."""

    def __init__(self, model: DropoutWorldModel, fail_at: int | None = None) -> None:
        self.model, self.fail_at, self.calls = model, fail_at, 0

    def __call__(self, num_envs: int, seed: int) -> Any:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        return self.model.as_vec_env(num_envs, seed=seed, max_episode_steps=10)


def test_cmaes_in_a_continuous_dream_resumes_exactly(tmp_path: Path, vae: ConvVAE) -> None:
    model = car_model(vae, done_bias=-2.0)
    cfg = CMAESConfig(popsize=6, episodes_per_candidate=2, generations=5, seed=2, max_episode_steps=10,
                      eval_every=2, eval_episodes=4)
    full, info_full = train_cmaes(DreamMaker(model), model.obs_dim, model.action_space, cfg,
                                  run=RunDir.create(tmp_path / "full", cfg), progress=False)
    run = RunDir.create(tmp_path / "killed", cfg)
    with pytest.raises(KeyboardInterrupt):
        train_cmaes(DreamMaker(model, fail_at=5), model.obs_dim, model.action_space, cfg, run=run, progress=False)
    state = json.loads((run.checkpoint("cmaes") / "state.json").read_text())
    assert state["generation"] == 3 and state["actions"]["type"] == "Box"
    resumed, info = train_cmaes(DreamMaker(model), model.obs_dim, model.action_space, cfg,
                                run=RunDir.create(tmp_path / "killed", cfg, resume=True), progress=False)
    assert info["resumed_from"] == 3
    np.testing.assert_array_equal(resumed.get_params(), full.get_params())
    assert info["best_return"] == info_full["best_return"]
    saved = LinearController.load(tmp_path / "killed" / "controller")
    assert saved.continuous and saved.actions == CAR_BOX
    # a continuous controller in a discrete dream, and the reverse, are refused
    disc = DropoutWorldModel(vae, MDNRNN(z_dim=Z, n_actions=3, hidden=H, mixtures=K), torch.zeros(1, Z))
    with pytest.raises(ConfigError, match="Discrete"):
        rollout_controllers(lambda n, s: disc.as_vec_env(n, seed=s), np.zeros(model.obs_dim * D + D),
                            model.obs_dim, CAR_BOX, 1, 0, 5)
    with pytest.raises(ConfigError, match="continuous"):
        rollout_controllers(DreamMaker(model), np.zeros(model.obs_dim * 3 + 3), model.obs_dim, [0, 1, 2], 1, 0, 5)
    # the checkpoint is for this Box: other actions are refused
    with pytest.raises(ConfigError, match="checkpoint is for"):
        train_cmaes(DreamMaker(model), model.obs_dim, spaces.Box(-1, 1, (3,), np.float32), cfg,
                    run=RunDir.create(tmp_path / "killed", cfg, resume=True), progress=False)


def test_world_model_agent_passes_float_actions(vae: ConvVAE) -> None:
    model = car_model(vae)
    ctrl = LinearController(model.obs_dim, model.action_space,
                            np.random.default_rng(0).standard_normal(model.obs_dim * D + D))
    view = DropoutWorldModelView(model)
    assert view.continuous
    agent = WorldModelAgent(view, ctrl)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    a = agent.act(frames)
    assert a.shape == (2, D) and a.dtype == np.float32
    assert (a >= CAR_BOX.low).all() and (a <= CAR_BOX.high).all()
    with torch.no_grad():
        z = view.encode(frames)
        want = model.rnn.step(z, torch.from_numpy(a)).state[0]
    torch.testing.assert_close(agent.state[0], want)
    a2 = agent.act(frames)  # the state moved on, so the features changed
    assert not np.array_equal(a2, a)
    agent.reset(np.array([True, False]))
    assert torch.equal(agent.state[0][0], torch.zeros(H))
