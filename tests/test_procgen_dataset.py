"""Procgen transition datasets: content, byte-identical sharding/resume, validation, env checks, Minari."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

import simlab  # noqa: F401  (registers the envs)
from simlab.data import FORMAT_VERSION
from simlab.envs.procgen.dataset import (
    KIND,
    ProcgenCollectConfig,
    TransitionDataset,
    collect_procgen,
    export_minari,
    parse_levels,
)
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv
from simlab.errors import ConfigError, DatasetError
from simlab.integrity import seal

CFG = ProcgenCollectConfig(game="maze", levels="0:50", transitions=90, policy="random", seed=3,
                           num_envs=4, transitions_per_shard=32)
ORACLE = ProcgenCollectConfig(game="maze", levels="0:5", transitions=120, policy="oracle", seed=1,
                              num_envs=4, transitions_per_shard=64)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pg") / "a"
    res = collect_procgen(CFG, out, progress=False)
    assert res.complete and res.written == [0, 1, 2] and res.items_written == 90
    return out


@pytest.fixture(scope="module")
def oracle_ds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pg") / "oracle"
    assert collect_procgen(ORACLE, out, progress=False).complete
    return out


# ---- config ---------------------------------------------------------------------------------

def test_parse_levels() -> None:
    assert parse_levels("0:200") == (0, 200)
    assert parse_levels("250:") == (250, 0)  # unlimited from 250
    cfg = ProcgenCollectConfig(levels="10:30")
    assert (cfg.start_level, cfg.num_levels) == (10, 20)


@pytest.mark.parametrize("text", ["abc", "0-200", "1:2:3", "x:5", "-1:5", "5:3", "4:4", ""])
def test_bad_level_ranges(text: str) -> None:
    with pytest.raises(ConfigError, match="levels"):
        ProcgenCollectConfig(levels=text)


@pytest.mark.parametrize("kw", [{"game": "pong"}, {"distribution_mode": "medium"}, {"transitions": 0},
                                {"num_envs": 0}, {"transitions_per_shard": 0}, {"policy": ""},
                                {"game": "dodge", "policy": "oracle"}])
def test_bad_collect_config(kw) -> None:
    with pytest.raises(ConfigError):
        ProcgenCollectConfig(**kw)


def test_missing_policy_path_is_a_config_error(tmp_path: Path) -> None:
    cfg = ProcgenCollectConfig(policy=str(tmp_path / "nope"), transitions=8, num_envs=2)
    with pytest.raises(ConfigError, match="saved policy"):
        collect_procgen(cfg, tmp_path / "out", progress=False)


# ---- content ---------------------------------------------------------------------------------

def test_layout_and_manifest(unbroken: Path) -> None:
    man = json.loads((unbroken / "manifest.json").read_text())
    assert man["kind"] == KIND and man["format_version"] == FORMAT_VERSION and man["count"] == 90
    assert man["config"]["levels"] == "0:50" and man["env_id"] == "simlab/Maze-v0"
    assert man["observation_shape"] == [64, 64, 3] and man["n_actions"] == 15
    assert [(s["start"], s["stop"]) for s in man["shards"]] == [(0, 32), (32, 64), (64, 90)]
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in man["shards"])
    ds = TransitionDataset(unbroken, verify=True)
    d = ds.load()
    assert d["obs"].shape == (90, 64, 64, 3) and d["obs"].dtype == np.uint8
    assert d["actions"].dtype == np.int64 and d["rewards"].dtype == np.float32
    assert d["terminations"].dtype == bool and d["truncations"].dtype == bool
    assert ((0 <= d["level_seed"]) & (d["level_seed"] < 50)).all()
    assert len(np.unique(d["episode_id"])) == ds.num_episodes == man["episodes"]
    assert len(set(d["actions"].tolist())) > 5, "the random policy uses many actions"
    idx = np.array([89, 3, 40, 3, 0])
    got = ds.get(idx, keys=("obs", "actions", "episode_id"))
    for k in got:
        assert np.array_equal(got[k], d[k][idx])
    assert sum(len(b["actions"]) for b in ds.iter_batches(batch_size=25)) == 90


def test_episodes_replay_in_the_env(oracle_ds: Path) -> None:
    """Every stored episode segment is reproduced by the single env from its level seed and actions."""
    ds = TransitionDataset(oracle_ds)
    eps = list(ds.episodes())
    assert len(eps) == ds.num_episodes and sum(len(e["actions"]) for e in eps) == len(ds)
    assert any(e["terminations"][-1] for e in eps), "the oracle reaches the cheese"
    env = ProcgenEnv("maze")
    for e in eps:
        obs, _ = env.reset(options={"level_seed": int(e["level_seed"][0])})
        assert np.array_equal(obs, e["observations"][0]), "every segment starts at its level's start"
        for t, a in enumerate(e["actions"]):
            obs, r, term, trunc, _ = env.step(int(a))
            assert np.array_equal(obs, e["observations"][t + 1])
            assert r == e["rewards"][t] and term == e["terminations"][t] and trunc == e["truncations"][t]
        assert e["cut"] == (not (term or trunc))


def test_oracle_takes_shortest_paths(oracle_ds: Path) -> None:
    from test_procgen_maze import bfs_path_len  # a solver independent of the oracle

    from simlab.envs.procgen.maze import generate_maze

    done = [e for e in TransitionDataset(oracle_ds).episodes() if not e["cut"]]
    assert done
    for e in done:
        board, agent, cheese = generate_maze(int(e["level_seed"][0]))
        assert e["terminations"][-1] and len(e["actions"]) == bfs_path_len(board, agent, cheese)


# ---- determinism -------------------------------------------------------------------------------

def test_sharding_is_byte_identical(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    r0 = collect_procgen(CFG, out, shard=(1, 2), progress=False)
    assert r0.written == [1] and not r0.complete and not (out / "manifest.json").exists()
    r1 = collect_procgen(CFG, out, shard=(0, 2), progress=False)
    assert r1.written == [0, 2] and r1.complete
    assert _tree_bytes(out) == _tree_bytes(unbroken)


def test_resume_after_kill_equals_unbroken(unbroken: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "c"
    import simlab.data as datamod  # the shared shard loop (collect_shards) writes the shards

    real = datamod.write_h5_shard
    calls = {"n": 0}

    def dying(path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while writing the second shard
            raise KeyboardInterrupt
        return real(path, *a, **k)

    monkeypatch.setattr(datamod, "write_h5_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        collect_procgen(CFG, out, progress=False)
    monkeypatch.setattr(datamod, "write_h5_shard", real)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob(".*tmp*")), "no half-written file may remain"
    with pytest.raises(ConfigError, match="resume"):
        collect_procgen(CFG, out, progress=False)
    with pytest.raises(ConfigError, match="seed"):
        collect_procgen(ProcgenCollectConfig(**{**CFG.__dict__, "seed": 4}), out, resume=True, progress=False)
    res = collect_procgen(CFG, out, resume=True, progress=False)
    assert res.skipped == [0] and res.written == [1, 2] and res.complete
    assert _tree_bytes(out) == _tree_bytes(unbroken)


def test_seed_changes_content(unbroken: Path, tmp_path: Path) -> None:
    other = ProcgenCollectConfig(**{**CFG.__dict__, "seed": 4, "transitions": 32})
    collect_procgen(other, tmp_path / "d", progress=False)
    a = TransitionDataset(unbroken).load(0, 32)
    b = TransitionDataset(tmp_path / "d").load()
    assert not np.array_equal(a["actions"], b["actions"])


def test_plain_backgrounds_option(unbroken: Path, tmp_path: Path) -> None:
    """use_backgrounds=False: same levels and actions, but every frame's background is one colour."""
    plain = ProcgenCollectConfig(**{**CFG.__dict__, "transitions": 32, "use_backgrounds": False})
    collect_procgen(plain, tmp_path / "d", progress=False)
    a = TransitionDataset(unbroken).load(0, 32)
    b = TransitionDataset(tmp_path / "d").load()
    np.testing.assert_array_equal(a["actions"], b["actions"])

    def colours(obs: np.ndarray) -> float:
        return float(np.mean([len(np.unique(o.reshape(-1, 3), axis=0)) for o in obs]))

    assert colours(b["obs"]) < colours(a["obs"])


def test_saved_policy_as_behaviour_policy(tmp_path: Path) -> None:
    import torch

    from simlab.policies.saved import ImpalaActor, save_policy

    torch.manual_seed(0)
    save_policy(tmp_path / "pol", ImpalaActor(depths=(2, 2, 2), features_dim=8))
    cfg = ProcgenCollectConfig(game="maze", levels="0:10", transitions=24, policy=str(tmp_path / "pol"),
                               num_envs=4, transitions_per_shard=12)
    collect_procgen(cfg, tmp_path / "x", progress=False)
    collect_procgen(cfg, tmp_path / "y", progress=False)
    assert _tree_bytes(tmp_path / "x") == _tree_bytes(tmp_path / "y")
    man = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert len(man["policy_sha256"]) == 64


# ---- validation on read ------------------------------------------------------------------------

def test_truncated_shard_is_named(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    shutil.copytree(unbroken, out)
    shard = out / "shards" / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="shard-00001.h5"):
        TransitionDataset(out)


def test_corrupt_shard_is_named(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "k"
    shutil.copytree(unbroken, out)
    shard = out / "shards" / "shard-00002.h5"
    raw = bytearray(shard.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="shard-00002.h5"):
        TransitionDataset(out, verify=True)
    with pytest.raises(DatasetError, match="shard-00002.h5"):
        TransitionDataset(out).load()  # without verify the chunk checksum fails on read


def test_wrong_kind_and_missing_manifest(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "w"
    shutil.copytree(unbroken, out)
    man = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(seal({**man, "kind": "simlab.collision2d.videos"})))
    with pytest.raises(DatasetError, match="kind"):
        TransitionDataset(out)
    (out / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest"):
        TransitionDataset(out)
    with pytest.raises(DatasetError, match="no such dataset"):
        TransitionDataset(tmp_path / "absent")


def test_shard_swapped_between_datasets_is_caught(unbroken: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    shutil.copytree(unbroken, out)
    man = json.loads((out / "manifest.json").read_text())
    swap = ("file", "bytes", "sha256")
    man["shards"][0], man["shards"][1] = ({**man["shards"][0], **{k: man["shards"][1][k] for k in swap}},
                                          {**man["shards"][1], **{k: man["shards"][0][k] for k in swap}})
    (out / "manifest.json").write_text(json.dumps(seal(man)))
    with pytest.raises(DatasetError, match="range"):
        TransitionDataset(out).load()


# ---- env compatibility ---------------------------------------------------------------------------

class _FakeEnv(gymnasium.Env):
    def __init__(self, shape=(64, 64, 3), n=15, dtype=np.uint8) -> None:
        self.observation_space = spaces.Box(0, 255, shape, dtype)
        self.action_space = spaces.Discrete(n)


def test_check_env_compat(unbroken: Path) -> None:
    ds = TransitionDataset(unbroken)
    ds.check_env_compat(ProcgenVecEnv("maze", 2))
    ds.check_env_compat(gymnasium.make("simlab/Maze-v0"))
    with pytest.raises(ConfigError, match=r"observations \(64, 64, 3\) uint8 but env .* \(84, 84, 3\)") as e:
        ds.check_env_compat(_FakeEnv(shape=(84, 84, 3)))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="float32"):
        ds.check_env_compat(_FakeEnv(dtype=np.float32))
    with pytest.raises(ConfigError, match=r"Discrete\(15\) actions but env .* Discrete\(4\)"):
        ds.check_env_compat(_FakeEnv(n=4))


# ---- Minari ------------------------------------------------------------------------------------

def test_minari_round_trip(oracle_ds: Path, tmp_path: Path, monkeypatch) -> None:
    minari = pytest.importorskip("minari", reason="minari is not installed (pip install minari)")
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    root = tmp_path / "minari"
    path = export_minari(oracle_ds, "simlab/maze/oracle-v0", minari_root=root)
    assert path == (root / "simlab/maze/oracle-v0").resolve()
    assert "MINARI_DATASETS_PATH" not in __import__("os").environ, "the env var is restored"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    md = minari.load_dataset("simlab/maze/oracle-v0")
    ds = TransitionDataset(oracle_ds)
    assert md.total_episodes == ds.num_episodes and md.total_steps == len(ds)
    eps = list(ds.episodes())
    for e, me in zip(eps, md.iterate_episodes()):
        assert np.array_equal(me.actions, e["actions"])
        assert np.array_equal(me.observations, e["observations"]), "images are stored losslessly"
        assert np.array_equal(me.rewards, e["rewards"])
        assert bool(me.terminations[-1] or me.truncations[-1])
    assert np.array_equal(np.concatenate([me.actions for me in md.iterate_episodes()]),
                          ds.load(keys=("actions",))["actions"])
    env = md.recover_environment()
    assert env.observation_space.shape == (64, 64, 3) and env.spec.kwargs["num_levels"] == 5
    with pytest.raises(ConfigError, match="already exists"):
        export_minari(oracle_ds, "simlab/maze/oracle-v0", minari_root=root)


def test_minari_missing_is_a_clear_error(oracle_ds: Path, monkeypatch) -> None:
    import builtins

    from simlab.errors import SimlabError

    real = builtins.__import__

    def no_minari(name, *a, **k):
        if name == "minari" or name.startswith("minari."):
            raise ImportError("No module named 'minari'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_minari)
    with pytest.raises(SimlabError, match="pip install minari"):
        export_minari(oracle_ds, "x/y-v0", minari_root="/nonexistent")
