"""Configs (presets + overrides), run directories, video writing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from simlab.config import load_yaml, resolve, save_yaml
from simlab.errors import ConfigError
from simlab.runs import RunDir
from simlab.video import grid, side_by_side, write_mp4


@dataclass
class Inner:
    lr: float = 1e-3
    layers: list[int] = field(default_factory=lambda: [32, 32])


@dataclass
class Cfg:
    steps: int = 10
    name: str = "a"
    dropout: float = 0.05
    device: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_presets_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "fast.yaml"
    p.write_text("steps: 3\ninner:\n  lr: 0.1\n")
    cfg = resolve(Cfg, "test", [str(p)], ["inner.layers=[8, 8, 8]", "name=b", "dropout=0"])
    assert cfg.steps == 3 and cfg.inner.lr == 0.1 and cfg.inner.layers == [8, 8, 8]
    assert cfg.name == "b" and cfg.dropout == 0.0 and isinstance(cfg.dropout, float)
    save_yaml(cfg, tmp_path / "c.yaml")
    assert load_yaml(Cfg, tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("ov, needle", [("stepz=3", "stepz"), ("steps=abc", "integer"), ("steps", "key=value"),
                                        ("inner.lr=fast", "number"), ("inner.nope=1", "inner.nope")])
def test_bad_overrides(ov: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        resolve(Cfg, "test", [], [ov])


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve(Cfg, "test", ["nope"])


def test_run_dir_resume_rules(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "r", Cfg())
    run.log(1, {"loss": 0.5}, namespace="train")
    run.mark_stage("collect", {"episodes": 3})
    with pytest.raises(ConfigError, match="--resume"):
        RunDir.create(tmp_path / "r", Cfg())
    with pytest.raises(ConfigError, match="steps"):
        RunDir.create(tmp_path / "r", Cfg(steps=99), resume=True)
    again = RunDir.create(tmp_path / "r", Cfg(), resume=True)
    assert again.stage_done("collect")["episodes"] == 3
    assert again.metrics()[0]["train/loss"] == 0.5
    with open(again.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "train/lo')  # torn line from a killed process
    assert len(again.metrics()) == 1
    assert again.config(Cfg) == Cfg()


def test_video_grid_and_mp4(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    v = rng.integers(0, 256, (5, 6, 20, 20, 3), dtype=np.uint8)
    g = grid(v, ncols=3, pad=2)
    assert g.shape == (6, 2 * 22 + 2, 3 * 22 + 2, 3)
    assert np.array_equal(g[:, 2:22, 2:22], v[0]) and np.array_equal(g[:, 24:44, 2:22], v[3])
    s = side_by_side(v[0], v[1])
    assert s.shape[2] == 3 * 22 + 2
    assert (s[:, 2:22, 2 * 22 + 2:2 * 22 + 22] < 255).any()  # error panel shows differences
    path = write_mp4(tmp_path / "x.mp4", v[0], fps=5)
    frames = iio.imread(path)
    assert frames.shape[0] == 6 and frames.shape[1] % 16 == 0 and frames.shape[1] >= 256
    with pytest.raises(ConfigError):
        write_mp4(tmp_path / "y.mp4", v[0].astype(np.float32))
    assert not (tmp_path / "y.mp4").exists()
