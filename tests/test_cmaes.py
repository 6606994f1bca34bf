"""CMA-ES linear controller: toy batched task, one env per generation, resume, save/load, agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import seal
from simlab.policies.cmaes import (
    CMAESConfig,
    LinearController,
    WorldModelAgent,
    rollout_controllers,
    train_cmaes,
)
from simlab.runs import RunDir
from simlab.world_models.base import WEIGHTS_NAME, seal_config

IN_DIM, N_ACTIONS, HORIZON = 4, 3, 10
W_STAR = np.array([[2.0, -1.0, 0.0], [0.0, 1.5, -1.0], [-1.0, 0.0, 1.0], [0.5, 0.5, -2.0]], np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class MatchVecEnv(VectorEnv):
    """Toy batched task with the dream env's contract (SAME_STEP autoreset, float32 obs).

    Each step shows x ~ N(0, I) (float32, IN_DIM); reward 1 if the action equals
    ``argmax(x @ W_STAR)``, else 0 and (with ``terminate``) the episode ends; truncated after
    HORIZON steps. The linear controller with W = W_STAR scores HORIZON every episode.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, seed: int = 0, terminate: bool = True, obs_scale: float = 1.0) -> None:
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (IN_DIM,), np.float32)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.obs_scale = obs_scale
        self.terminate = terminate
        self.closed = False

    def _draw(self, k: int) -> np.ndarray:
        return (self.rng.standard_normal((k, IN_DIM)) * self.obs_scale).astype(np.float32)

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed if isinstance(seed, int) else seed[0])
        self.obs = self._draw(self.num_envs)
        self.t = np.zeros(self.num_envs, np.int64)
        self.ret = np.zeros(self.num_envs, np.float64)
        return self.obs.copy(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.asarray(actions).reshape(self.num_envs)
        good = a == (self.obs / self.obs_scale @ W_STAR).argmax(axis=1)
        rew = good.astype(np.float32)
        self.t += 1
        self.ret += rew
        term = ~good if self.terminate else np.zeros(self.num_envs, bool)
        trunc = (self.t >= HORIZON) & ~term
        done = term | trunc
        self.obs = self._draw(self.num_envs)
        info: dict[str, Any] = {}
        if done.any():
            final = np.empty(self.num_envs, dtype=object)
            for i in np.flatnonzero(done):
                final[i] = self.obs[i].copy()  # the finished episode's last observation
            self.obs[done] = self._draw(int(done.sum()))  # same-step reset
            info = {"final_obs": final, "_final_obs": done.copy(),
                    "episode_return": np.where(done, self.ret, 0.0),
                    "episode_length": np.where(done, self.t, 0), "_episode": done.copy()}
            self.t[done], self.ret[done] = 0, 0.0
        return self.obs.copy(), rew, term, trunc, info

    def close(self, **kwargs: Any) -> None:
        self.closed = True


class CountingMaker:
    """``make_env(num_envs, seed)`` that records every construction; optionally fails at call ``fail_at``."""

    def __init__(self, fail_at: int | None = None, terminate: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail_at = fail_at
        self.terminate = terminate
        self.envs: list[MatchVecEnv] = []

    def __call__(self, num_envs: int, seed: int) -> MatchVecEnv:
        self.calls.append((num_envs, seed))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        env = MatchVecEnv(num_envs, seed, terminate=self.terminate)
        self.envs.append(env)
        return env


def small_cfg(**kw: Any) -> CMAESConfig:
    base = {"popsize": 12, "episodes_per_candidate": 4, "generations": 6, "seed": 3,
            "max_episode_steps": 50, "eval_every": 0, "eval_episodes": 32}
    return CMAESConfig(**{**base, **kw})


# ---- controller ---------------------------------------------------------------------------------
def test_controller_params_act_save_load(tmp_path: Path) -> None:
    c = LinearController(IN_DIM, [5, 7, 9])
    assert c.num_params == IN_DIM * 3 + 3
    vec = np.random.default_rng(0).standard_normal(c.num_params)
    c.set_params(vec)
    np.testing.assert_allclose(c.get_params(), vec.astype(np.float32), rtol=0, atol=0)
    obs = np.random.default_rng(1).standard_normal((20, IN_DIM)).astype(np.float32)
    want = np.array([5, 7, 9])[(obs @ c.W + c.b).argmax(axis=1)]
    np.testing.assert_array_equal(c.act(obs), want)
    assert c.act(obs[0]).shape == (1,)
    with pytest.raises(ConfigError):
        c.act(np.zeros((2, IN_DIM + 1)))
    with pytest.raises(ConfigError):
        c.set_params(np.zeros(3))

    c.save(tmp_path / "ctrl", meta={"note": "x"})
    d = LinearController.load(tmp_path / "ctrl")
    assert d.actions == [5, 7, 9] and d.in_dim == IN_DIM and d.meta["note"] == "x"
    np.testing.assert_array_equal(d.get_params(), c.get_params())
    np.testing.assert_array_equal(d.act(obs), c.act(obs))
    doc = json.loads((tmp_path / "ctrl" / "config.json").read_text())
    assert doc["_class_name"] == "LinearController" and doc["_simlab_format_version"] == 2
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {"in_dim": IN_DIM, "actions": [5, 7, 9]}
    assert doc["_meta"] == {"note": "x"} and doc["_action_space"]["actions"] == [5, 7, 9]
    assert sorted(p.name for p in (tmp_path / "ctrl").iterdir()) == ["config.json", WEIGHTS_NAME]


def test_controller_load_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        LinearController.load(tmp_path / "nothing")
    LinearController(IN_DIM, [0, 1, 2], np.ones(15)).save(tmp_path / "c")
    w = tmp_path / "c" / WEIGHTS_NAME
    blob = w.read_bytes()
    w.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=WEIGHTS_NAME):
        LinearController.load(tmp_path / "c")
    w.write_bytes(blob)
    cfgp = tmp_path / "c" / "config.json"
    doc = json.loads(cfgp.read_text())
    cfgp.write_text(json.dumps(seal_config({**doc, "in_dim": 5})))
    with pytest.raises(CheckpointError, match="do not match"):
        LinearController.load(tmp_path / "c")
    cfgp.write_text(json.dumps({**doc, "in_dim": 5}))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        LinearController.load(tmp_path / "c")
    cfgp.write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        LinearController.load(tmp_path / "c")
    cfgp.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        LinearController.load(tmp_path / "c")


@pytest.mark.parametrize("bad", [{"popsize": 1}, {"episodes_per_candidate": 0}, {"sigma0": 0.0},
                                 {"sigma0": float("nan")}, {"generations": -1}, {"max_episode_steps": 0},
                                 {"eval_every": -2}, {"diagonal": "yes"}])
def test_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        CMAESConfig(**bad)


# ---- batched evaluation -------------------------------------------------------------------------
def test_rollout_counts_first_episode_per_slot() -> None:
    maker = CountingMaker()
    opt = LinearController(IN_DIM, [0, 1, 2])
    opt.W = W_STAR.copy()
    params = np.stack([opt.get_params(), np.zeros(opt.num_params)])
    out = rollout_controllers(maker, params, IN_DIM, [0, 1, 2], episodes=5, seed=1, max_episode_steps=100)
    assert maker.calls == [(10, 1)] and maker.envs[0].closed
    np.testing.assert_array_equal(out["returns"][0], HORIZON)  # optimal: every first episode is full
    assert out["finished"].all() and out["steps"] == HORIZON
    assert (out["returns"][1] < HORIZON).all()  # always action 0: fails early
    np.testing.assert_array_equal(out["lengths"][1], out["returns"][1] + 1)  # the failing step ends it
    short = rollout_controllers(maker, params, IN_DIM, [0, 1, 2], episodes=5, seed=1, max_episode_steps=3)
    np.testing.assert_array_equal(short["returns"][0], 3)  # unfinished slots: partial return
    assert not short["finished"][0].any()
    with pytest.raises(ConfigError, match="observations have shape"):
        rollout_controllers(maker, np.zeros((1, 6 * 3 + 3)), 6, [0, 1, 2], 1, 0, 5)
    with pytest.raises(ConfigError, match="action ids"):
        rollout_controllers(maker, np.zeros((1, IN_DIM * 3 + 3)), IN_DIM, [0, 1, 3], 1, 0, 5)


# ---- training -----------------------------------------------------------------------------------
def test_cmaes_solves_toy_task_one_env_per_generation() -> None:
    maker = CountingMaker(terminate=False)  # reward = number of correct steps out of HORIZON
    cfg = small_cfg(popsize=16, episodes_per_candidate=8, generations=25)
    np.random.seed(123)
    ctrl, info = train_cmaes(maker, IN_DIM, [0, 1, 2], cfg, progress=False)
    after = np.random.random()
    np.random.seed(123)
    assert after == np.random.random(), "cma's draws must not touch the global numpy RNG"
    # every generation: ONE batched env holding popsize x episodes slots, nothing else
    assert len(maker.calls) == cfg.generations
    assert all(n == cfg.popsize * cfg.episodes_per_candidate for n, _ in maker.calls)
    assert len({s for _, s in maker.calls}) == cfg.generations  # a fresh dream seed per generation
    assert all(env.closed for env in maker.envs)
    hist = info["history"]
    assert [h["generation"] for h in hist] == list(range(1, 26))
    assert {"cmaes/mean_return", "cmaes/best_return", "cmaes/sigma", "time/generation_s"} <= set(hist[0])
    first = np.mean([h["cmaes/mean_return"] for h in hist[:2]])
    last = np.mean([h["cmaes/mean_return"] for h in hist[-3:]])
    assert first < 0.5 * HORIZON and last > 0.75 * HORIZON, (first, last)  # random play: HORIZON / 3
    assert info["best_source"] == "candidate" and info["best_return"] >= 0.9 * HORIZON
    # the kept controller really plays near-optimally on fresh episodes
    out = rollout_controllers(lambda n, s: MatchVecEnv(n, s, terminate=False), ctrl.get_params(), IN_DIM,
                              [0, 1, 2], 200, 999, 100)
    assert out["returns"].mean() >= 0.8 * HORIZON


def test_cmaes_improves_on_survival_task() -> None:
    cfg = small_cfg(popsize=16, episodes_per_candidate=8, generations=40, eval_every=10, eval_episodes=128)
    _, info = train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], cfg, progress=False)
    evals = [e["return"] for e in info["evals"]]
    assert info["history"][0]["cmaes/mean_return"] < 1.0 and max(evals) > 4.0, evals


def test_cmaes_with_mean_evaluation_and_diagonal(tmp_path: Path) -> None:
    maker = CountingMaker()
    cfg = small_cfg(generations=5, eval_every=2, diagonal=True)
    run = RunDir.create(tmp_path / "run", cfg)
    ctrl, info = train_cmaes(maker, IN_DIM, [0, 1, 2], cfg, run=run, progress=False)
    gen_calls = [c for c in maker.calls if c[0] == cfg.popsize * cfg.episodes_per_candidate]
    eval_calls = [c for c in maker.calls if c[0] == cfg.eval_episodes]
    assert len(gen_calls) == 5 and len(eval_calls) == 3  # generations 2, 4 and the last (5)
    assert [e["generation"] for e in info["evals"]] == [2, 4, 5]
    assert info["best_source"] == "eval"
    assert info["best_return"] == max(e["return"] for e in info["evals"])
    recs = run.metrics()
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5]
    assert "cmaes/eval_return" in recs[1] and "cmaes/eval_return" not in recs[0]
    saved = LinearController.load(run.path / "controller")
    np.testing.assert_array_equal(saved.get_params(), ctrl.get_params())
    assert run.stage_done("cmaes")["generations"] == 5
    assert not list((run.path / "checkpoints").glob(".*")), "no temporary checkpoint directories left"


@pytest.mark.parametrize("eval_every", [0, 2])
def test_resume_gives_identical_controller(tmp_path: Path, eval_every: int) -> None:
    cfg = small_cfg(generations=6, eval_every=eval_every)
    full, info_full = train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], cfg,
                                  run=RunDir.create(tmp_path / "full", cfg), progress=False)

    run = RunDir.create(tmp_path / "killed", cfg)
    np.random.seed(0)
    killer = CountingMaker(fail_at=4 if eval_every == 0 else 5)  # dies inside generation 4
    with pytest.raises(KeyboardInterrupt):
        train_cmaes(killer, IN_DIM, [0, 1, 2], cfg, run=run, progress=False)
    state = json.loads((run.checkpoint("cmaes") / "state.json").read_text())
    assert state["generation"] == 3 and len(state["fitness"]) == 3
    with open(run.path / "metrics.jsonl", "a") as f:  # a record a killed run wrote after its checkpoint
        f.write(json.dumps({"step": 4, "cmaes/mean_return": -1.0}) + "\n")

    np.random.seed(999)  # global numpy RNG use outside cma must not matter
    resumer = CountingMaker()
    run2 = RunDir.create(tmp_path / "killed", cfg, resume=True)
    ctrl, info = train_cmaes(resumer, IN_DIM, [0, 1, 2], cfg, run=run2, progress=False)
    assert info["resumed_from"] == 3
    assert len(resumer.calls) == (3 if eval_every == 0 else 5)  # only generations 4..6 (+ evals 4, 6)
    np.testing.assert_array_equal(ctrl.get_params(), full.get_params())
    np.testing.assert_array_equal(info["final_mean"], info_full["final_mean"])
    assert info["final_sigma"] == info_full["final_sigma"]
    assert info["best_return"] == info_full["best_return"]
    assert [h["cmaes/mean_return"] for h in info["history"]] == \
        [h["cmaes/mean_return"] for h in info_full["history"]]
    assert [r["step"] for r in run2.metrics()] == [1, 2, 3, 4, 5, 6]

    # extending a finished run: more generations continue from generation 6
    cfg9 = small_cfg(generations=8, eval_every=eval_every)
    _, info9 = train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], cfg9, run=run2, progress=False)
    assert info9["resumed_from"] == 6 and len(info9["history"]) == 8
    # a different learning problem is refused
    with pytest.raises(ConfigError, match="sigma0"):
        train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], small_cfg(generations=8, sigma0=0.5,
                                                                  eval_every=eval_every), run=run2,
                    progress=False)
    # a corrupted fitness record cannot be replayed silently
    sp = run2.checkpoint("cmaes") / "state.json"
    st = json.loads(sp.read_text())
    st["fitness"][0][0] += 1.0
    sp.write_text(json.dumps(st))  # a plain edit: the seal refuses it
    with pytest.raises(CheckpointError, match="checksum"):
        train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], cfg9, run=run2, progress=False)
    sp.write_text(json.dumps(seal(st)))  # resealed: the replay of the fitness record still refuses it
    with pytest.raises(CheckpointError, match="replay"):
        train_cmaes(CountingMaker(), IN_DIM, [0, 1, 2], cfg9, run=run2, progress=False)


# ---- the agent in the real env ------------------------------------------------------------------
class ToyWorldModel:
    """z = mean pixel value per channel (3); state = running sum of z and of the actions (h: 2 numbers)."""

    def __init__(self) -> None:
        self.inits: list[int] = []

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
        return torch.as_tensor(frames, dtype=torch.float32).mean(dim=(1, 2))

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.inits.append(batch)
        return torch.zeros(batch, 2), torch.zeros(batch, 1)

    def rnn_step(self, z: torch.Tensor, actions: np.ndarray,
                 state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        a = torch.as_tensor(actions, dtype=torch.float32)
        return torch.stack([h[:, 0] + z[:, 0], h[:, 1] + a], dim=1), c + 1

    def hidden(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return state[0]


class RecordingController:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(obs.copy())
        return np.arange(len(obs)) % 2 + 1  # slot 0 -> 1, slot 1 -> 2, slot 2 -> 1


def test_world_model_agent_keeps_and_clears_state() -> None:
    wm, ctrl = ToyWorldModel(), RecordingController()
    agent = WorldModelAgent(wm, ctrl)
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[:, :, :, 0] = np.array([10, 20, 30], np.uint8)[:, None, None]
    a = agent.act(frames)
    np.testing.assert_array_equal(a, [1, 2, 1])
    x0 = ctrl.seen[0]
    assert x0.shape == (3, 5) and x0.dtype == np.float32
    np.testing.assert_allclose(x0[:, 0], [10, 20, 30]) and np.testing.assert_allclose(x0[:, 3:], 0)
    agent.act(frames)
    np.testing.assert_allclose(ctrl.seen[1][:, 3], [10, 20, 30])  # h carried over from the last call
    np.testing.assert_allclose(ctrl.seen[1][:, 4], [1, 2, 1])
    agent.reset(np.array([False, True, False]))  # slot 1's episode ended
    agent.act(frames)
    np.testing.assert_allclose(ctrl.seen[2][:, 3], [20, 0, 60])
    np.testing.assert_allclose(ctrl.seen[2][:, 4], [2, 0, 2])
    np.testing.assert_allclose(agent.state[1][:, 0], [3, 1, 3])  # every state leaf is reset per slot
    with pytest.raises(ConfigError):
        agent.reset(np.array([True, False]))
    agent.reset()  # everything
    agent.act(frames)
    np.testing.assert_allclose(ctrl.seen[3][:, 3:], 0)
    agent.act(frames[:2])  # a new batch size starts fresh states
    assert wm.inits[-1] == 2 and ctrl.seen[4].shape == (2, 5)
    np.testing.assert_allclose(ctrl.seen[4][:, 3:], 0)


def test_world_model_agent_with_linear_controller_in_evaluator_loop() -> None:
    """The agent drives a batched env like run_split does, with the reset hook after each step."""
    wm = ToyWorldModel()
    ctrl = LinearController(5, [0, 1])
    ctrl.W[4] = [-1.0, 1.0]  # action 1 once the (action-sum) part of h is positive
    ctrl.b[:] = [0.5, 0.0]
    agent = WorldModelAgent(wm, ctrl)
    obs = np.zeros((2, 64, 64, 3), np.uint8)
    assert list(agent.act(obs)) == [0, 0]
    agent.state = (agent.state[0] + torch.tensor([[0.0, 1.0], [0.0, 0.0]]), agent.state[1])
    assert list(agent.act(obs)) == [1, 0]
    agent.reset(np.array([True, False]))
    assert list(agent.act(obs)) == [0, 0]


def test_dropout_world_model_view_follows_spec_interfaces() -> None:
    """The adapter over SPEC's DropoutWorldModel (vae.encode -> (mu, logvar); rnn.step(...).state)."""
    from types import SimpleNamespace

    from simlab.policies.cmaes import DropoutWorldModelView

    class VAE:
        def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            assert x.dtype == torch.uint8
            mu = x.float().mean(dim=(1, 2))[:, :2]
            return mu, torch.zeros_like(mu)

    class RNN:
        def initial_state(self, batch: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.zeros(batch, 3), torch.zeros(batch, 3)

        def step(self, z: torch.Tensor, a: torch.Tensor, state: Any, masks: Any = None) -> Any:
            assert masks is None and a.dtype == torch.long
            h, c = state
            return SimpleNamespace(state=(h + a[:, None].float(), c + 1))

    view = DropoutWorldModelView(SimpleNamespace(vae=VAE(), rnn=RNN()))
    ctrl = LinearController(5, [0, 1, 2], np.r_[np.zeros(15), [0.0, 1.0, 0.0]])  # always action 1
    agent = WorldModelAgent(view, ctrl)
    frames = np.full((2, 64, 64, 3), 7, np.uint8)
    np.testing.assert_array_equal(agent.act(frames), [1, 1])
    agent.act(frames)
    _, x = agent.features(frames)
    np.testing.assert_allclose(x, [[7, 7, 2, 2, 2], [7, 7, 2, 2, 2]])
    sampled = DropoutWorldModelView(SimpleNamespace(vae=VAE(), rnn=RNN()), sample_z=True, seed=1)
    assert sampled.encode(frames).shape == (2, 2)


def test_world_model_agent_runs_in_the_shared_evaluator() -> None:
    """The evaluator plays real frames through the agent and resets its memory at episode starts."""
    from simlab.policies.evaluate import run_split

    wm = ToyWorldModel()
    agent = WorldModelAgent(wm, LinearController(5, [0, 4]))
    calls: list = []
    real_reset = agent.reset
    agent.reset = lambda mask=None: (calls.append(None if mask is None else np.asarray(mask).copy()),
                                     real_reset(mask))[1]
    eps, _ = run_split(agent, "maze", "train", episodes=2, num_envs=2, max_episode_steps=4)
    assert len(eps) == 2 and all(e["length"] == 4 for e in eps)
    assert agent.batch == 2 and set(wm.inits) == {2}
    assert calls[0] is None, "all slots cleared when a split starts"
    assert any(c is not None and c.all() for c in calls[1:]), "slots cleared when their episodes end"


def test_common_starts_give_every_candidate_the_same_dreams() -> None:
    """With common_starts, episode j of every controller starts from the same start state: in a
    deterministic dream (temperature 0, expected done), equal controllers then score equal returns
    episode by episode, and different controllers differ only by their play."""
    import torch

    from simlab.world_models.dropout.mdnrnn import MDNRNN
    from simlab.world_models.dropout.model import DropoutWorldModel
    from simlab.world_models.dropout.vae import ConvVAE

    torch.manual_seed(0)
    model = DropoutWorldModel(ConvVAE(z_dim=4), MDNRNN(z_dim=4, hidden=8, mixtures=2), torch.randn(50, 4))

    def make_env(n: int, seed: int):
        return model.as_vec_env(n, mask_mode="none", temperature=0.0, max_episode_steps=6, seed=seed,
                                done_mode="expected")

    c = LinearController(12, [0, 1, 2])
    c.set_params(np.random.default_rng(1).normal(size=c.num_params))
    params = np.stack([c.get_params(), c.get_params()])
    same = rollout_controllers(make_env, params, 12, [0, 1, 2], episodes=8, seed=5, max_episode_steps=6,
                               common_starts=True)["returns"]
    np.testing.assert_allclose(same[0], same[1])
    assert len(np.unique(np.round(same[0], 6))) > 1  # the episodes themselves differ (different starts)
    apart = rollout_controllers(make_env, params, 12, [0, 1, 2], episodes=8, seed=5, max_episode_steps=6)["returns"]
    assert not np.allclose(apart[0], apart[1])  # without: each slot draws its own start
    with pytest.raises(ConfigError, match="num_start_states"):
        rollout_controllers(CountingMaker(), np.zeros((2, IN_DIM * 3 + 3)), IN_DIM, [0, 1, 2], 2, 0, 5,
                            common_starts=True)
