"""simlab eval combinatorial: a video model on PHYRE-like scenes, in- vs out-of-template, beside repeat-last."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymunk")
pytest.importorskip("diffusers")

from simlab.cli import main

FRAMES = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("comb")
    paths = {}
    for split, size in (("train", 8), ("test_in", 4), ("test_out", 4)):
        paths[split] = root / split
        assert main(["collect", "combinatorial", "--out", str(paths[split]), "--split", split, "--size", str(size),
                     "--frames", str(FRAMES), "--train-templates", "6", "--seed", "3"]) == 0
    paths["run"] = root / "run"
    assert main(["train", "video-diffusion", "--data", str(paths["train"]), "--preset", "debug", "--out",
                 str(paths["run"]), "resolution=32", f"num_frames={FRAMES}", "cond_frames=1", "max_steps=2"]) == 0
    return paths


def test_eval_writes_model_and_repeat_last_tables(tiny: dict[str, Path], capsys) -> None:
    capsys.readouterr()
    rc = main(["eval", "combinatorial", "--model", str(tiny["run"]), "--data", str(tiny["test_in"]),
               "--data", f"held_out={tiny['test_out']}", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["model"]["splits"]) == {"test_in", "held_out"} and res["meta"]["cond_frames"] == 1
    for name in ("test_in", "held_out"):
        rep = res["repeat_last"]["splits"][name]
        # a frozen scene: nothing moves, so nothing moves wrongly; the ground truth is never flagged
        assert rep["abnormal"]["any"]["count"] == 0 and rep["ground_truth_abnormal"] == 0
        assert rep["videos"] == 4 and 0.0 < rep["ssim"]["mean"] <= 1.0
        m = res["model"]["splits"][name]
        assert m["videos"] == 4 and set(m["abnormal"]) >= {"any", "colour"}
    out = tiny["run"] / "eval_combinatorial"
    assert json.loads((out / "combinatorial.json").read_text())["meta"]["data"]["held_out"] == str(tiny["test_out"])
    assert "Repeat the last condition frame" in (out / "combinatorial.md").read_text()


def test_ground_truth_scored_as_model_is_perfect(tiny: dict[str, Path]) -> None:
    from simlab.envs.combinatorial.dataset import CombinatorialDataset
    from simlab.envs.combinatorial.report import combinatorial_report

    gt = CombinatorialDataset(tiny["test_out"]).load()["frames"]
    rep = combinatorial_report({"test_out": (gt, gt)})["splits"]["test_out"]
    assert rep["abnormal"]["any"]["count"] == 0 and rep["ssim"]["mean"] == pytest.approx(1.0)
    noisy = np.clip(gt.astype(int) + np.random.default_rng(0).integers(-60, 61, gt.shape), 0, 255).astype(np.uint8)
    worse = combinatorial_report({"test_out": (noisy, gt)})["splits"]["test_out"]
    assert worse["ssim"]["mean"] < 0.9


@pytest.mark.parametrize("args, msg", [
    (["--data", "{test_in}", "--data", "{test_in}"], "two --data for the split 'test_in'"),
    (["--data", "{train}/nope"], "no such dataset directory"),
    (["--data", "{test_in}", "--steps", "0"], "--steps"),
    (["--data", "{test_in}", "--sampler", "heun"], "unknown sampler"),
])
def test_bad_input_is_one_line_exit_2(tiny: dict[str, Path], capsys, args: list[str], msg: str) -> None:
    capsys.readouterr()
    args = [a.format(**{k: str(v) for k, v in tiny.items()}) for a in args]
    rc = main(["eval", "combinatorial", "--model", str(tiny["run"]), "--out", str(tiny["run"] / "bad"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and msg in err and len(err.splitlines()) == 1, err
    assert not (tiny["run"] / "bad" / "combinatorial.json").exists()


def test_model_of_another_frame_count_is_refused(tiny: dict[str, Path], tmp_path: Path, capsys) -> None:
    other = tmp_path / "d"
    assert main(["collect", "combinatorial", "--out", str(other), "--split", "test_in", "--size", "2",
                 "--frames", str(FRAMES + 2), "--train-templates", "6"]) == 0
    capsys.readouterr()
    assert main(["eval", "combinatorial", "--model", str(tiny["run"]), "--data", str(other)]) == 2
    assert "frames per video" in capsys.readouterr().err
