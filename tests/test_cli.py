"""CLI: every command end to end on tiny inputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from simlab.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_on_every_command(capsys) -> None:
    for args in (["--help"], ["envs", "--help"], ["collect", "--help"], ["collect", "collision2d", "--help"],
                 ["render", "--help"], ["eval", "--help"], ["eval", "physics", "--help"]):
        rc, out, _ = run(args, capsys)
        assert rc == 0 and "Usage" in out, args


def test_envs_json(capsys) -> None:
    rc, out, _ = run(["envs", "--json"], capsys)
    assert rc == 0
    info = json.loads(out)
    assert "simlab/Collision2D-v0" in [e["id"] for e in info["envs"]]
    assert set(info["generators"]["collision2d"]) == {"uniform", "collision", "oblique", "parabola", "attributes"}
    assert "ood_all" in info["generators"]["collision2d"]["collision"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "ds"
    assert main(["collect", "collision2d", "--scenario", "collision", "--split", "id", "--size", "40",
                 "--out", str(out), "--json"]) == 0
    return out


def test_collect_eval_render(dataset: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    rc, out, _ = run(["eval", "physics", "--ground-truth", "--data", str(dataset), "--json"], capsys)
    assert rc == 0
    res = json.loads(out)
    assert res["videos"] == 40 and res["scenario"] == "collision"
    assert 0 < res["velocity_error"]["mean"] < 0.05
    rc, out, _ = run(["render", "--data", str(dataset), "--indices", "0:4", "--out", str(tmp_path / "v.mp4"),
                      "--json"], capsys)
    assert rc == 0 and (tmp_path / "v.mp4").stat().st_size > 1000
    assert json.loads(out)["indices"] == [0, 1, 2, 3]


def test_attribute_probe_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "attr"
    assert main(["collect", "collision2d", "--scenario", "attributes", "--split", "shape_color_test",
                 "--size", "30", "--no-store-frames", "--out", str(out)]) == 0
    capsys.readouterr()
    rc, text, _ = run(["eval", "physics", "--ground-truth", "--data", str(out), "--json"], capsys)
    assert rc == 0
    rates = json.loads(text)["consistency_rate"]
    assert rates["consistent"] == 1.0 and set(rates) >= {"color", "shape", "size", "velocity"}
    from simlab.envs.collision2d.attributes import COLOR_NAMES, SHAPE_COLOR_HELD_OUT, SHAPES
    from simlab.envs.collision2d.dataset import VideoDataset

    st = VideoDataset(out).load(0, 30, frames=False)
    combos = {(SHAPES[s], COLOR_NAMES[c]) for s, c in zip(st["param_shape"], st["param_color"])}
    assert combos <= set(SHAPE_COLOR_HELD_OUT)


def test_eval_predictions(dataset: Path, tmp_path: Path, capsys) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset

    gt = VideoDataset(dataset).load(0, 10)
    frozen = gt["frames"].copy()
    frozen[:, 3:] = frozen[:, 2:3]  # a "model" that stops moving after the conditioning frames
    pred = tmp_path / "pred.h5"
    with h5py.File(pred, "w") as f:
        f["frames"] = frozen
        f["index"] = np.arange(10)
    rc, out, _ = run(["eval", "physics", "--data", str(dataset), "--pred", str(pred), "--json",
                      "--video", str(tmp_path / "cmp.mp4")], capsys)
    assert rc == 0
    assert json.loads(out)["velocity_error"]["mean"] > 1.0
    import imageio.v3 as iio

    cmp = iio.imread(tmp_path / "cmp.mp4")
    assert cmp.shape[0] == 32 and cmp.shape[2] > cmp.shape[1] / 2  # 4 rows of gt | pred | error
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["frames"] = frozen[:, :, :8]
    rc, _, err = run(["eval", "physics", "--data", str(dataset), "--pred", str(tmp_path / "bad.h5")], capsys)
    assert rc == 2 and "frames must be uint8" in err


@pytest.mark.parametrize("args, needle", [
    (["collect", "collision2d", "--scenario", "nope", "--out", "X"], "unknown scenario"),
    (["collect", "collision2d", "--resolution", "8", "--out", "X"], "resolution"),
    (["collect", "collision2d", "--size", "abc", "--out", "X"], "--size"),
    (["collect", "collision2d", "--bogus", "--out", "X"], "No such option"),
    (["eval", "physics", "--ground-truth", "--data", "MISSING"], "no such dataset"),
    (["render", "--env", "simlab/Nope-v0", "--out", "X/v.mp4"], "unknown env id"),
    (["render", "--out", "X/v.mp4"], "exactly one of"),
])
def test_bad_input_one_line_exit_2(args, needle, tmp_path: Path, capsys) -> None:
    args = [a.replace("X", str(tmp_path / "x")).replace("MISSING", str(tmp_path / "missing")) for a in args]
    rc, _, err = run(args, capsys)
    assert rc == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists(), "a failed command must not write anything"


def test_console_script_exit_code(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "simlab.cli", "collect", "collision2d", "--scenario", "nope",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, check=False)
    assert p.returncode == 2
    assert p.stderr.strip() == "error: unknown scenario 'nope'; choose one of uniform, collision, oblique, parabola"
