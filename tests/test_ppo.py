"""PPO end to end on simlab/Maze-v0 (debug preset): run directory, exported policy, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.config import load_yaml
from simlab.envs.procgen.vec import ProcgenVecEnv
from simlab.errors import CheckpointError, ConfigError
from simlab.policies.evaluate import load_policy
from simlab.policies.ppo import PPOConfig, debug_config, ppo_config, resolve_device, train_ppo
from simlab.runs import RunDir

X = 1024  # first run; the resumed run goes to 2 * X


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[PPOConfig, RunDir]:
    cfg = debug_config(total_timesteps=X, checkpoint_every=512, eval_every=X, eval_episodes=2,
                       eval_splits=["val"])
    run = train_ppo(cfg, tmp_path_factory.mktemp("ppo") / "run", progress=False)
    return cfg, run


def test_run_directory_contents(first_run: tuple[PPOConfig, RunDir]) -> None:
    cfg, run = first_run
    p = run.path
    assert load_yaml(PPOConfig, p / "config.yaml") == cfg
    recs = run.metrics()
    keys = set().union(*recs)
    assert any(k.startswith("train/") for k in keys) and "train/value_loss" in keys
    assert {"rollout/ep_rew_mean", "time/fps", "eval/val_mean_return"} <= keys
    assert max(r["step"] for r in recs) == X
    latest = p / "checkpoints" / "latest"
    for f in ("sb3_model.zip", "state.json", "policy/config.json", "policy/model.safetensors"):
        assert (latest / f).exists(), f
    assert json.loads((latest / "state.json").read_text())["num_timesteps"] == X
    assert (p / "policy" / "model.safetensors").exists() and (p / "checkpoints" / "best" / "policy").is_dir()
    meta = json.loads((p / "policy" / "config.json").read_text())["meta"]
    assert meta["trainer"] == "ppo" and meta["num_timesteps"] == X and meta["env_id"] == "simlab/Maze-v0"
    assert run.stage_done("train")["num_timesteps"] == X
    assert not list((p / "checkpoints").glob(".*")), "no temporary checkpoint directories left"


def test_exported_policy_acts_like_sb3_predict(first_run: tuple[PPOConfig, RunDir]) -> None:
    from stable_baselines3 import PPO

    _, run = first_run
    model = PPO.load(run.path / "checkpoints" / "latest" / "sb3_model.zip", device="cpu")
    env = ProcgenVecEnv("maze", 32)
    obs, _ = env.reset(seed=5)
    obs2, *_ = env.step(np.random.default_rng(0).integers(0, 15, 32))
    batch = np.concatenate([obs, obs2])
    want, _ = model.predict(batch, deterministic=True)
    for pol in (load_policy(run.path), load_policy(run.path / "checkpoints" / "latest" / "policy")):
        np.testing.assert_array_equal(pol.act(batch), want)


def test_resume_continues_from_checkpoint(first_run: tuple[PPOConfig, RunDir], tmp_path: Path) -> None:
    cfg, run = first_run
    out = tmp_path / "resumed"
    shutil.copytree(run.path, out)
    with open(out / "metrics.jsonl", "a") as f:  # what a killed run logged after its last checkpoint
        f.write(json.dumps({"step": X + 512, "train/stale": 1.0}) + "\n" + '{"step": 99')
    shutil.rmtree(out / "policy")
    with pytest.raises(ConfigError, match="not empty"):
        train_ppo(cfg, out, progress=False)
    cfg2 = debug_config(**{**cfg.__dict__, "total_timesteps": 2 * X})
    run2 = train_ppo(cfg2, out, resume=True, progress=False)
    assert json.loads((out / "checkpoints" / "latest" / "state.json").read_text())["num_timesteps"] == 2 * X
    recs = run2.metrics()
    steps = [r["step"] for r in recs]
    assert steps == sorted(steps), "records continue from the checkpoint, not from 0"
    assert any(X < s <= 2 * X for s in steps) and max(steps) == 2 * X
    assert not any("train/stale" in r for r in recs)
    totals = [r["time/total_timesteps"] for r in recs if "time/total_timesteps" in r]
    assert totals[0] == 512 and X + 512 in totals and 512 not in totals[2:]
    assert load_yaml(PPOConfig, out / "config.yaml").total_timesteps == 2 * X
    assert (out / "policy" / "config.json").exists()
    # a different learning problem cannot be resumed
    with pytest.raises(ConfigError, match="lr"):
        train_ppo(debug_config(**{**cfg2.__dict__, "lr": 1e-3}), out, resume=True, progress=False)


def test_resume_from_corrupt_checkpoint_fails_cleanly(first_run: tuple[PPOConfig, RunDir], tmp_path: Path) -> None:
    cfg, run = first_run
    out = tmp_path / "bad"
    shutil.copytree(run.path, out)
    z = out / "checkpoints" / "latest" / "sb3_model.zip"
    z.write_bytes(z.read_bytes()[:1000])
    cfg2 = debug_config(**{**cfg.__dict__, "total_timesteps": 2 * X})
    with pytest.raises(CheckpointError, match="sb3_model.zip"):
        train_ppo(cfg2, out, resume=True, progress=False)


def test_config_presets_overrides_and_errors() -> None:
    cfg = ppo_config(["debug"], ["lr=0.001", "env_id=simlab/CoinRun-v0"])
    assert cfg.lr == 1e-3 and cfg.num_envs == 8 and cfg.env_id == "simlab/CoinRun-v0"
    d = PPOConfig()
    assert (d.num_envs, d.n_steps, d.batch_size, d.gamma, d.lr, d.num_levels) == (64, 256, 2048, 0.999, 5e-4, 200)
    with pytest.raises(ConfigError, match="bogus"):
        ppo_config(overrides=["bogus=1"])
    with pytest.raises(ConfigError, match="Collision2D"):
        PPOConfig(env_id="simlab/Collision2D-v0")
    with pytest.raises(ConfigError, match="batch_size"):
        debug_config(batch_size=10**6)
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda")


def test_pooled_network_learning_curve_and_kept_checkpoints(tmp_path: Path) -> None:
    """cnn_depths with a 0 (2x2 average-pool stage, as the cpu preset): the exported ImpalaActor acts
    like SB3's predict on full 64x64 frames; the run keeps step_<N> policies, the fixed baselines and
    the learning curve (CSV, JSON, PNG)."""
    from stable_baselines3 import PPO

    from simlab.envs.procgen.dataset import _policy_dir

    cfg = debug_config(env_id="simlab/CoinRun-v0", cnn_depths=[0, 8, 16], total_timesteps=1024,
                       checkpoint_every=512, keep_checkpoints=True, baseline_episodes=2, eval_every=1024,
                       eval_episodes=2, eval_splits=["train", "val"])
    run = train_ppo(cfg, tmp_path / "run", progress=False)
    p = run.path
    model = PPO.load(p / "checkpoints" / "latest" / "sb3_model.zip", device="cpu")
    obs, _ = ProcgenVecEnv("coinrun", 16).reset(seed=3)
    want, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(load_policy(p).act(obs), want)
    assert json.loads((p / "policy" / "config.json").read_text())["network"]["depths"] == [0, 8, 16]
    assert _policy_dir(f"{p}@512") == p / "checkpoints" / "step_512" / "policy"
    assert json.loads((p / "checkpoints" / "step_512" / "state.json").read_text())["num_timesteps"] == 512
    base = json.loads((p / "baselines.json").read_text())["baselines"]
    assert set(base) == {"uniform random", "stand still"} and set(base["stand still"]) == {"train", "val"}
    header = (p / "learning_curve.csv").read_text().splitlines()[0].split(",")
    assert {"step", "elapsed_s", "time/fps", "time/process_cpu_s", "eval/val_mean_return"} <= set(header)
    rows = json.loads((p / "learning_curve.json").read_text())["rows"]
    assert rows[-1]["step"] == 1024 and (p / "plots" / "learning_curve.png").stat().st_size > 1000


def test_cpu_preset_resolves() -> None:
    cfg = ppo_config(["cpu"], ["env_id=simlab/CoinRun-v0"])
    assert cfg.cnn_depths[0] == 0 and cfg.keep_checkpoints and cfg.baseline_episodes > 0
    assert cfg.num_envs * cfg.n_steps % cfg.batch_size == 0 and cfg.checkpoint_every % (cfg.num_envs * cfg.n_steps) == 0
    with pytest.raises(ConfigError, match="cnn_depths"):
        debug_config(cnn_depths=[0, 0])
