"""Behaviour cloning: learns an expert, writes a complete run, resumes bit-exactly, validates its data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import simlab  # noqa: F401
import simlab.policies.bc as bcmod
from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen
from simlab.errors import CheckpointError, ConfigError, DatasetError
from simlab.policies.bc import BCConfig, train_bc

torch = pytest.importorskip("torch")

TINY = {"depths": (4, 8, 8), "features_dim": 32, "batch_size": 16, "lr": 3e-3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def expert_ds(tmp_path_factory) -> Path:
    """BFS-oracle maze transitions on two levels: a trivially learnable obs -> action map."""
    out = tmp_path_factory.mktemp("bc") / "oracle"
    cfg = ProcgenCollectConfig(game="maze", levels="0:2", transitions=256, policy="oracle", seed=0,
                               num_envs=8, transitions_per_shard=128)
    assert collect_procgen(cfg, out, progress=False).complete
    return out


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bc") / "tiny"
    cfg = ProcgenCollectConfig(game="maze", levels="0:20", transitions=48, policy="random", seed=0,
                               num_envs=4, transitions_per_shard=48)
    collect_procgen(cfg, out, progress=False)
    return out


def _weights(run_path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_path / "policy" / "model.safetensors"))


def test_bc_learns_the_oracle(expert_ds: Path, tmp_path: Path) -> None:
    from simlab.envs.procgen.dataset import TransitionDataset
    from simlab.envs.procgen.vec import ProcgenEnv
    from simlab.policies.saved import SavedPolicy

    acts = TransitionDataset(expert_ds).load(keys=("actions",))["actions"]
    majority = np.bincount(acts).max() / len(acts)
    cfg = BCConfig(data=str(expert_ds), epochs=20, seed=0, batch_size=32, lr=3e-3, depths=(8, 16, 16),
                   features_dim=64, log_every=0, eval_episodes=2, eval_splits=("train",), eval_num_envs=2,
                   eval_max_episode_steps=5)
    run = train_bc(cfg, tmp_path / "run", progress=False)
    recs = run.metrics()
    train = [r for r in recs if "train/loss" in r]
    assert [r["step"] for r in train] == [8 * (e + 1) for e in range(20)]  # one record per epoch
    assert train[-1]["train/accuracy"] >= 0.9 > majority + 0.1, (train[-1], majority)
    assert train[-1]["train/loss"] < train[0]["train/loss"]
    assert "eval/train/mean_return" in recs[-1] and (run.path / "eval_info.json").exists()
    for f in ("config.yaml", "policy/config.json", "policy/model.safetensors", "checkpoints/latest/trainer.json",
              "checkpoints/latest/trainer.safetensors", "checkpoints/latest/policy/model.safetensors"):
        assert (run.path / f).exists(), f
    meta = json.loads((run.path / "policy" / "config.json").read_text())["meta"]
    assert meta["trainer"] == "bc" and meta["env_id"] == "simlab/Maze-v0"
    # The clone plays its training levels like the expert: to the cheese.
    policy = SavedPolicy.load(run.path / "policy")
    env = ProcgenEnv("maze")
    for level in (0, 1):
        obs, _ = env.reset(options={"level_seed": level})
        for _ in range(60):
            obs, r, term, _, _ = env.step(int(policy.act(obs)[0]))
            if term:
                break
        assert term and r == 10.0, f"BC policy did not solve training level {level}"
    # A trained run can serve as the behaviour policy of a new collection.
    res = collect_procgen(ProcgenCollectConfig(levels="0:2", transitions=16, policy=str(run.path), num_envs=4,
                                               transitions_per_shard=16), tmp_path / "again", progress=False)
    assert res.complete


def test_resume_after_kill_gives_the_same_weights(tiny_ds: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = BCConfig(data=str(tiny_ds), epochs=3, log_every=2, seed=1, **TINY)  # 3 steps per epoch
    a = train_bc(cfg, tmp_path / "a", progress=False)

    real = bcmod._train_step
    calls = {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 6:  # killed in the middle of the second epoch's last step
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(bcmod, "_train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train_bc(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(bcmod, "_train_step", real)
    assert json.loads((tmp_path / "b" / "checkpoints" / "latest" / "trainer.json").read_text())["step"] == 3
    assert not (tmp_path / "b" / "policy").exists()
    with pytest.raises(ConfigError, match="resume"):
        train_bc(cfg, tmp_path / "b", progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train_bc(BCConfig(**{**cfg.__dict__, "lr": 1e-2}), tmp_path / "b", resume=True, progress=False)
    b = train_bc(cfg, tmp_path / "b", resume=True, progress=False)

    wa, wb = _weights(a.path), _weights(b.path)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), "resume must be bit-exact"
    strip = [{k: v for k, v in r.items() if not k.startswith("time")} for r in a.metrics()]
    assert strip == [{k: v for k, v in r.items() if not k.startswith("time")} for r in b.metrics()]
    # Resuming a finished run changes nothing.
    train_bc(cfg, tmp_path / "b", resume=True, progress=False)
    assert all(torch.equal(wa[k], v) for k, v in _weights(b.path).items())


def test_same_seed_same_weights_other_seed_differs(tiny_ds: Path, tmp_path: Path) -> None:
    cfg = BCConfig(data=str(tiny_ds), steps=2, seed=5, preload=False, **TINY)
    a = _weights(train_bc(cfg, tmp_path / "a", progress=False).path)
    b = _weights(train_bc(BCConfig(**{**cfg.__dict__, "preload": True}), tmp_path / "b", progress=False).path)
    c = _weights(train_bc(BCConfig(**{**cfg.__dict__, "seed": 6}), tmp_path / "c", progress=False).path)
    assert all(torch.equal(a[k], b[k]) for k in a), "reading batches from HDF5 == preloaded"
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_data_must_fit_the_env(tiny_ds: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="collected on simlab/Maze-v0, not simlab/CoinRun-v0"):
        train_bc(BCConfig(data=str(tiny_ds), env="simlab/CoinRun-v0", **TINY), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists(), "nothing is written before the data is validated"
    import gymnasium

    from simlab.envs.procgen.dataset import TransitionDataset, check_spaces

    ds = TransitionDataset(tiny_ds)
    with pytest.raises(ConfigError, match=r"Discrete\(15\) actions but env simlab/Collision2D-v0 has Box"):
        check_spaces(ds.root, ds.observation_shape, ds.observation_dtype, ds.n_actions,
                     gymnasium.make("simlab/Collision2D-v0"))
    with pytest.raises(ConfigError, match="data="):
        train_bc(BCConfig(**TINY), tmp_path / "r", progress=False)
    with pytest.raises(DatasetError, match="no such dataset"):
        train_bc(BCConfig(data=str(tmp_path / "absent"), **TINY), tmp_path / "r", progress=False)


@pytest.mark.parametrize("kw", [{"epochs": 0}, {"batch_size": 0}, {"lr": 0.0}, {"steps": -1},
                                {"device": "tpu"}, {"depths": ()}, {"eval_num_envs": 0}])
def test_bad_bc_config(kw) -> None:
    with pytest.raises(ConfigError):
        BCConfig(**kw)


def test_checkpoint_of_other_data_is_refused(tiny_ds: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_ds, data)
    cfg = BCConfig(data=str(data), steps=1, **TINY)
    train_bc(cfg, tmp_path / "r", progress=False)
    man = data / "manifest.json"  # the dataset is re-collected in place: other content, same path
    man.write_text(man.read_text().replace('"seed": 0', '"seed": 0 '))
    with pytest.raises(CheckpointError, match="different data"):
        train_bc(cfg, tmp_path / "r", resume=True, progress=False)


def test_minari_dataset_as_input(expert_ds: Path, tmp_path: Path) -> None:
    pytest.importorskip("minari", reason="minari is not installed (pip install minari)")
    from simlab.envs.procgen.dataset import export_minari

    path = export_minari(expert_ds, "simlab/maze/bc-v0", minari_root=tmp_path / "m")
    run = train_bc(BCConfig(data=f"minari:{path}", steps=2, **TINY), tmp_path / "r", progress=False)
    meta = json.loads((run.path / "policy" / "config.json").read_text())["meta"]
    assert meta["env_id"] == "simlab/Maze-v0" and meta["data"].startswith("minari:")
