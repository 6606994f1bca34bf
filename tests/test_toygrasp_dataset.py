"""Toy-grasp demo datasets and CLI: content, byte-identical sharding and resume, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

from simlab.cli import main
from simlab.envs.toygrasp.dataset import (
    GraspCollectConfig,
    GraspDemos,
    collect_toygrasp,
    dart_action,
)
from simlab.errors import ConfigError, DatasetError

CFG = GraspCollectConfig(backend="pybullet", toys=2, demos=3, demos_per_shard=2, resolution=32, seed=5)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "collect_config.json"}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tg") / "a"
    res = collect_toygrasp(CFG, out, progress=False)
    assert res.complete and res.written == [0, 1]
    return out


def test_demos_hold_expert_grasps(unbroken: Path) -> None:
    ds = GraspDemos(unbroken, verify=True)
    assert len(ds) == 3 and ds.manifest["env_id"] == "simlab/ToyGrasp-v0"
    eps = list(ds.episodes())
    assert [e["object"] for e in eps] == ["toy/0", "toy/0", "toy/1"]  # each toy's demos are consecutive
    assert [e["demo_id"] for e in eps] == [0, 1, 2]
    for e in eps:
        n = len(e["actions"])
        assert e["rgb"].shape == (n, 32, 32, 3) and e["mask"].shape == (n, 32, 32)
        assert e["proprio"].shape == (n, 8) and e["actions"].shape == (n, 5)
        assert np.abs(e["actions"]).max() <= 1.0
        assert (e["mask"] > 0).any()  # the target is visible
        if e["success"]:
            assert e["terminations"][-1] and e["rewards"][-1] == 1.0 and e["rewards"][:-1].sum() == 0
            assert (e["actions"][:, 4] > 0).any()  # the gripper closed
    assert ds.manifest["successes"] == sum(e["success"] for e in eps) >= 2


def test_sharded_and_resumed_collections_are_byte_identical(unbroken: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    collect_toygrasp(CFG, b, shard=(1, 2), progress=False)
    assert not (b / "manifest.json").exists()  # shard 0 still missing
    res = collect_toygrasp(CFG, b, shard=(0, 2), progress=False)
    assert res.complete
    assert _tree(b) == _tree(unbroken)
    # a killed run: shard 1 lost, manifest absent -> resume rewrites only shard 1
    c = tmp_path / "c"
    shutil.copytree(unbroken, c)
    (c / "shards" / "shard-00001.h5").unlink()
    (c / "manifest.json").unlink()
    res = collect_toygrasp(CFG, c, resume=True, progress=False)
    assert res.written == [1] and res.skipped == [0] and _tree(c) == _tree(unbroken)


def test_refuses_to_overwrite_or_mix_configs(unbroken: Path) -> None:
    with pytest.raises(ConfigError, match="already holds a dataset"):
        collect_toygrasp(CFG, unbroken, progress=False)
    other = GraspCollectConfig(backend="pybullet", toys=3, demos=3, demos_per_shard=2, resolution=32, seed=5)
    with pytest.raises(ConfigError, match="toys"):
        collect_toygrasp(other, unbroken, resume=True, progress=False)


def test_reader_errors_name_the_file(unbroken: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(unbroken, bad)
    f = bad / "shards" / "shard-00000.h5"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="shard-00000.h5"):
        GraspDemos(bad)


def test_dart_noise_perturbs_only_the_approach() -> None:
    rng = np.random.default_rng(0)
    a = np.array([1.0, -0.6, -1.0, 0.3, -1.0], np.float32)
    assert dart_action(a, 0, rng, 0.0) is a  # off: unchanged, nothing drawn
    out = dart_action(a, 0, rng, 0.5)
    assert out[4] == a[4] and not np.allclose(out[:4], a[:4]) and np.abs(out).max() <= 1.0
    assert dart_action(a, 2, rng, 0.5) is a  # closing: never perturbed
    near = np.array([0.2, 0.1, 0.0, 0.0, -1.0], np.float32)
    assert dart_action(near, 1, rng, 0.5) is near  # settling on the waypoint: no noise


def test_dart_labels_are_the_experts_corrections(unbroken: Path, tmp_path: Path) -> None:
    cfg = GraspCollectConfig(backend="pybullet", toys=2, demos=3, demos_per_shard=2, resolution=32, seed=5,
                             noise=0.5)
    collect_toygrasp(cfg, tmp_path / "n", progress=False)
    noisy, clean = list(GraspDemos(tmp_path / "n").episodes()), list(GraspDemos(unbroken).episodes())
    assert GraspDemos(tmp_path / "n").config.noise == 0.5 and GraspDemos(unbroken).config.noise == 0.0
    assert "noise" not in json.loads((unbroken / "manifest.json").read_text())["config"]  # old layout kept
    # same resets; the executed moves differ, so the labelled actions differ and the expert's later
    # actions correct the drift instead of repeating the clean plan
    assert any(len(n["actions"]) != len(c["actions"]) or not np.allclose(n["actions"], c["actions"])
               for n, c in zip(noisy, clean))
    assert sum(e["success"] for e in noisy) >= 2


@pytest.mark.parametrize(("kw", "msg"), [
    ({"noise": -0.1}, "--noise"), ({"noise": float("nan")}, "--noise"),
    ({"backend": "bullet"}, "unknown backend"), ({"split": "val"}, "unknown toygrasp split"),
    ({"demos": 0}, "--demos must be >= 1"), ({"resolution": 8}, "--resolution"),
])
def test_bad_configs(kw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        GraspCollectConfig(**kw)


def test_cli_collect_and_render_toys(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    rc = main(["collect", "toygrasp", "--out", str(out), "--toys", "1", "--demos", "1", "--resolution", "32",
               "--json"])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and info["complete"] and info["demos"] == 1
    rc = main(["collect", "toygrasp", "--out", str(tmp_path / "e"), "--backend", "ode"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown backend 'ode'" in err
    assert not (tmp_path / "e").exists()  # nothing half-written
    png = tmp_path / "toys.png"
    assert main(["render-toys", "--seeds", "0:2", "--out", str(png), "--resolution", "32"]) == 0
    from PIL import Image

    im = np.asarray(Image.open(png))
    assert im.shape == (32, 64, 3) and im.std() > 5
    assert main(["render-toys", "--seeds", "x", "--out", str(png)]) == 2
    assert main(["render-toys", "--out", str(tmp_path / "toys.jpg")]) == 2
    assert not (tmp_path / "toys.jpg").exists()
