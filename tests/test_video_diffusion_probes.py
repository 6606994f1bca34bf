"""Video diffusion probes and scaling grid (issue 11): the velocity-gap probe, the attribute priority probe
and ``simlab train video-diffusion-grid``, end to end with the ``debug`` preset on tiny data, plus the
probes' scoring on ground-truth and hand-made "snapping" / "attribute-dropping" videos (what makes the
numbers able to fail), and one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from simlab.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def collect(out: Path, scenario: str, split: str, size: int, res: int = 16, seed: int = 0,
            frames: bool = False) -> Path:
    args = ["collect", "collision2d", "--scenario", scenario, "--split", split, "--size", str(size),
            "--resolution", str(res), "--seed", str(seed), "--out", str(out), "--json"]
    assert main(args + ([] if frames else ["--no-store-frames"])) == 0
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny 16 px datasets and two debug-preset runs: one on gap_train, one on pair_color_shape_train."""
    root = tmp_path_factory.mktemp("probes")
    d = {
        "gap_train": collect(root / "gap_train", "uniform", "gap_train", 32),
        "gap_test": collect(root / "gap_test", "uniform", "gap_test", 12, seed=1, frames=True),
        "gap_test32": collect(root / "gap_test32", "uniform", "gap_test", 2, res=32, seed=1),
        "pair_train": collect(root / "pair_train", "attributes", "pair_color_shape_train", 16),
        "pair_test": collect(root / "pair_test", "attributes", "pair_color_shape_test", 6, seed=1),
        "sc_test": collect(root / "sc_test", "attributes", "shape_color_test", 4, seed=1),
    }
    for name, data in (("gap_run", d["gap_train"]), ("pair_run", d["pair_train"])):
        d[name] = root / name
        assert main(["train", "video-diffusion", "--data", str(data), "--preset", "debug", "--out",
                     str(d[name]), "--json"]) == 0
    return d


# ---- the scoring functions on ground truth and hand-made predictions -----------------------------
def test_gap_scores_ground_truth_follows_the_law_and_snapped_videos_snap(tmp_path: Path) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.envs.collision2d.physics import FRAME_DT
    from simlab.envs.collision2d.render import render_balls
    from simlab.world_models.video_diffusion.probes import GAP_EDGES, gap_scores, predicted_velocity

    ds = VideoDataset(collect(tmp_path / "gt", "uniform", "gap_test", 96, res=32, seed=3))
    st = ds.load(0, len(ds))
    v_true, c = st["param_v"], 3
    gt = predicted_velocity(st["frames"], st["pos"], st["radii"], c)
    s = gap_scores(gt, v_true)
    assert s["core_videos"] >= 30
    assert s["abs_error"]["mean"] < 0.06  # the parse floor at 32 px
    assert s["within_gap"] == 1.0 and s["near_edge"] == 0.0 and abs(s["slope"] - 1) < 0.1
    # A "case-based" predictor: after the condition frames each ball moves at the gap edge nearest its speed.
    edge = np.where(np.abs(v_true - GAP_EDGES[0]) <= np.abs(v_true - GAP_EDGES[1]), *GAP_EDGES)
    pos = st["pos"].copy()
    k = np.arange(pos.shape[1]) - (c - 1)
    pos[:, c - 1:, 0, 0] = pos[:, c - 1:c, 0, 0] + k[None, c - 1:] * FRAME_DT * edge[:, None]
    snapped = render_balls(pos, st["radii"], 32)
    snapped[:, :c] = st["frames"][:, :c]
    sn = gap_scores(predicted_velocity(snapped, st["pos"], st["radii"], c), v_true)
    assert sn["near_edge"] >= 0.95 and sn["within_gap"] == 0.0
    assert sn["edge_pull"]["mean"] > 0.4 and sn["abs_error"]["mean"] > 0.4 and sn["slope"] > 2  # a step
    still = st["frames"].copy()
    still[:, c:] = still[:, c - 1:c]
    st_s = gap_scores(predicted_velocity(still, st["pos"], st["radii"], c), v_true)
    assert st_s["other"] == 1.0 and abs(st_s["abs_error"]["mean"] - np.mean(v_true)) < 0.1


def test_attribute_pair_scoring_ground_truth_ties_and_keepers_win(tmp_path: Path) -> None:
    from simlab.envs.collision2d.attributes import COLOR_NAMES, SHAPES, render_attribute_videos
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.world_models.video_diffusion.probes import (
        attribute_arrays,
        pair_result,
        priority_ordering,
    )

    ds = VideoDataset(collect(tmp_path / "p", "attributes", "pair_color_shape_test", 24, res=32, seed=2))
    st = ds.load(0, len(ds))
    gt = pair_result(attribute_arrays(st["frames"], st, 3), "color", "shape")
    assert gt["kept"] == {"color": 1.0, "shape": 1.0} and gt["winner"] == "tie" and gt["both"] == 1.0
    red, blue = COLOR_NAMES.index("red"), COLOR_NAMES.index("blue")
    disc, square = SHAPES.index("disc"), SHAPES.index("square")
    color, shape = st["param_color"], st["param_shape"]
    assert set(zip(color.tolist(), shape.tolist())) <= {(red, square), (blue, disc)}  # the held-out pairs

    def rendered(new_color: np.ndarray, new_shape: np.ndarray) -> np.ndarray:
        f = render_attribute_videos({"pos": st["pos"], "radii": st["radii"], "color": new_color,
                                     "shape": new_shape}, 32)
        f[:, :3] = st["frames"][:, :3]
        return f

    # Keeps the colour, gives up the shape: (red, square) -> (red, disc), (blue, disc) -> (blue, square).
    keep_color = pair_result(attribute_arrays(rendered(color, np.where(color == red, disc, square)), st, 3),
                             "color", "shape")
    assert keep_color["kept"]["color"] == 1.0 and keep_color["kept"]["shape"] == 0.0
    assert keep_color["winner"] == "color" and keep_color["significant"]
    keep_shape = pair_result(attribute_arrays(rendered(np.where(shape == disc, red, blue), shape), st, 3),
                             "color", "shape")
    assert keep_shape["winner"] == "shape" and keep_shape["kept"]["color"] == 0.0
    pr = priority_ordering([keep_color])
    assert pr["ordering"] == ["color", "shape"] and pr["pairs_agreeing_with_paper"] == 1
    assert priority_ordering([keep_shape])["pairs_agreeing_with_paper"] == 0


# ---- the commands end to end ------------------------------------------------------------------------
def test_gap_probe_end_to_end(tiny: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "gap"
    rc, text, err = run(["eval", "gap-probe", "--model", tiny["gap_run"], "--data", tiny["gap_test"],
                         "--out", out, "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(text)
    assert rep["videos"] == 12 and rep["split"] == "gap_test" and rep["gap"] == [1.5, 3.5]
    assert set(rep["predictors"]) == {"model", "ground_truth", "repeat_last", "constant_velocity"}
    gt, still = rep["predictors"]["ground_truth"], rep["predictors"]["repeat_last"]
    assert gt["abs_error"]["mean"] < 0.15 and gt["near_edge"] == 0.0
    assert still["other"] == 1.0 and still["abs_error"]["mean"] > 1.0
    assert np.isfinite(rep["predictors"]["model"]["abs_error"]["mean"])
    saved = json.loads((out / "gap_probe.json").read_text())
    assert len(saved["per_video"]["v_true"]) == 12 and len(saved["per_video"]["v_pred"]["model"]) == 12
    assert (out / "gap_probe.png").stat().st_size > 5000
    assert "| model |" in (out / "gap_probe.md").read_text()
    rc, text, _ = run(["eval", "gap-probe", "--model", tiny["gap_run"], "--data", tiny["gap_test"],
                       "--limit", "3", "--edge-band", "0.1", "--sampler", "euler"], capsys)
    assert rc == 0 and "velocity-gap probe" in text and "3 videos" in text
    assert json.loads((tiny["gap_run"] / "probes" / "gap" / "gap_probe.json").read_text())["sampler"] == "euler"
    assert (tiny["gap_run"] / "probes" / "gap" / "gap_probe.json").exists()  # the default --out


def test_attribute_probe_and_eval_physics_on_attributes(tiny: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "attr"
    rc, text, err = run(["eval", "attribute-probe", "--model", tiny["pair_run"], "--data", tiny["pair_test"],
                         "--out", out, "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(text)
    (pair,) = rep["pairs"]
    assert pair["pair"] == ["color", "shape"] and pair["videos"] == 6
    assert set(pair["kept"]) == {"color", "shape"} and pair["winner"] in ("color", "shape", "tie")
    assert pair["references"]["ground_truth"]["kept"]["color"] == 1.0
    assert pair["references"]["repeat_last"]["kept"]["color"] == 1.0
    assert sorted(rep["priority"]["ordering"]) == ["color", "shape"] and rep["priority"]["pairs"] == 1
    assert (out / "attribute_probe.json").exists() and "color x shape" in (out / "attribute_probe.md").read_text()
    rc, text, err = run(["eval", "physics", "--model", tiny["pair_run"], "--data", tiny["sc_test"], "--json"],
                        capsys)
    assert rc == 0, err
    res = json.loads(text)
    assert set(res["predictors"]) == {"model", "ground_truth", "repeat_last"}
    assert res["predictors"]["repeat_last"]["consistency_rate"]["velocity"] == 0.0
    assert set(res["predictors"]["model"]["consistency_rate"]) == {"color", "size", "velocity", "shape",
                                                                   "consistent"}


def test_grid_runs_and_resumes_without_redoing_cells(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid"
    args = ["train", "video-diffusion-grid", "--out", out, "--data-sizes", "30k:16,30k:32", "--model-sizes", "xs",
            "--preset", "debug", "--eval-videos", "3", "--json"]
    rc, text, err = run(args, capsys)
    assert rc == 0, err
    rep = json.loads(text)
    assert [c["cell"] for c in rep["cells"]] == ["30k-n16_xs", "30k-n32_xs"]
    for c in rep["cells"]:
        for role in ("id", "ood"):
            assert c[role]["videos"] == 3 and np.isfinite(c[role]["predictors"]["model"]["velocity_error"]["mean"])
        assert c["ood"]["split"] == "ood_v" and c["train_videos"] in (16, 32) and c["steps"] == 4
    assert (out / "scaling.png").stat().st_size > 5000 and "30k:32" in (out / "scaling.md").read_text()
    assert sorted(p.name for p in (out / "data").iterdir()) == ["uniform16_id", "uniform16_ood_v",
                                                               "uniform16_train30k_n16", "uniform16_train30k_n32"]

    def stamps() -> dict[str, int]:
        return {str(p.relative_to(out)): p.stat().st_mtime_ns
                for p in [*out.glob("cells/*.json"), *out.glob("runs/*/train_info.json"),
                          *out.glob("runs/*/model/*.safetensors")]}

    before = stamps()
    rc, text, err = run([*args, "--resume"], capsys)
    assert rc == 0, err
    assert json.loads(text)["skipped_cells"] == ["30k-n16_xs", "30k-n32_xs"] and stamps() == before
    # A cell whose training finished but whose scores were lost is only evaluated again.
    (out / "cells" / "30k-n16_xs.json").unlink()
    rc, text, err = run([*args, "--resume"], capsys)
    assert rc == 0, err
    after = stamps()
    assert after["runs/30k-n16_xs/train_info.json"] == before["runs/30k-n16_xs/train_info.json"]
    assert after["cells/30k-n32_xs.json"] == before["cells/30k-n32_xs.json"]
    assert len(json.loads(text)["cells"]) == 2


# ---- bad input: one line, exit code 2, nothing written ----------------------------------------------------
def _one_line_error(args: list, capsys, match: str) -> None:
    rc, _, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err


def test_bad_input_is_one_line_exit_2(tiny: dict[str, Path], tmp_path: Path, capsys) -> None:
    x = tmp_path / "x"
    gap = ["eval", "gap-probe", "--model", tiny["gap_run"], "--out", x]
    _one_line_error([*gap, "--data", tiny["pair_test"]], capsys, "the gap probe scores one-ball motion")
    _one_line_error([*gap, "--data", tiny["gap_test32"]], capsys, "32px frames, but the model works at 16px")
    _one_line_error([*gap, "--data", tiny["gap_test"], "--edge-band", "0.6"], capsys, "--edge-band")
    _one_line_error([*gap, "--data", tiny["gap_test"], "--edge-band", "0.5"], capsys, "--edge-band must be in")
    _one_line_error([*gap, "--data", tiny["gap_test"], "--sampler", "heun"], capsys, "unknown sampler 'heun'")
    _one_line_error(["eval", "gap-probe", "--model", tmp_path / "nope", "--data", tiny["gap_test"], "--out", x],
                    capsys, "no saved video diffusion model")
    wrong = tmp_path / "wrong_run"  # a run that says it was trained on another split
    shutil.copytree(tiny["gap_run"], wrong)
    info = json.loads((wrong / "train_info.json").read_text())
    (wrong / "train_info.json").write_text(json.dumps({**info, "data": str(tiny["gap_test"])}))
    _one_line_error(["eval", "gap-probe", "--model", wrong, "--data", tiny["gap_test"], "--out", x], capsys,
                    "was trained on uniform/gap_test; this probe needs a model trained on uniform/gap_train")
    attr = ["eval", "attribute-probe", "--out", x]
    _one_line_error([*attr, "--model", tiny["pair_run"], "--data", tiny["sc_test"]], capsys,
                    "needs a pair test split")
    _one_line_error([*attr, "--model", tiny["pair_run"], "--data", tiny["gap_test"]], capsys,
                    "not an attribute-scene dataset")
    _one_line_error([*attr, "--model", tiny["pair_run"], "--model", tiny["gap_run"], "--data", tiny["pair_test"]],
                    capsys, "one --model per --data")
    _one_line_error([*attr, "--model", tiny["pair_run"], "--data", tiny["pair_test"], "--model", tiny["pair_run"],
                     "--data", tiny["pair_test"]], capsys, "is given twice")
    _one_line_error(["eval", "attribute-probe", "--model", tiny["pair_run"], "--model", tiny["pair_run"],
                     "--data", tiny["pair_test"], "--data", tiny["pair_test"]], capsys, "--out is required")
    _one_line_error(["eval", "physics", "--model", tiny["pair_run"], "--data", tiny["pair_test"], "--video",
                     x / "w.mp4"], capsys, "--video is not available for attribute scenes")
    grid = ["train", "video-diffusion-grid", "--out", x, "--preset", "debug"]
    _one_line_error([*grid, "--model-sizes", "s,huge"], capsys, "unknown model size 'huge'")
    _one_line_error([*grid, "--data-sizes", "30k,40k"], capsys, "unknown data size '40k'")
    _one_line_error([*grid, "--data-sizes", "30k:0"], capsys, "N must be in 1..30000")
    _one_line_error([*grid, "--data-sizes", "30k,30k"], capsys, "is repeated")
    _one_line_error([*grid, "--ood-split", "ood_x"], capsys, "unknown split 'ood_x'")
    _one_line_error([*grid, "--scenario", "attributes"], capsys, "has no linspace grids")
    _one_line_error([*grid, "nope=1"], capsys, "unknown config key")
    _one_line_error([*grid[:-1], "gpu-xl"], capsys, "unknown preset")
    assert not x.exists(), "a refused command must not write anything"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    _one_line_error(["train", "video-diffusion-grid", "--out", busy, "--preset", "debug"], capsys,
                    "is not empty; pass --resume")
    _one_line_error(["train", "video-diffusion-grid", "--out", busy, "--preset", "debug", "--resume"], capsys,
                    "no grid.json")
    clash = tmp_path / "clash"  # --data-root holding a dataset of another kind under the grid's name
    collect(clash / "uniform16_train30k_n8", "uniform", "train", 8)
    capsys.readouterr()
    _one_line_error(["train", "video-diffusion-grid", "--out", tmp_path / "g", "--preset", "debug",
                     "--data-sizes", "30k:8", "--data-root", clash], capsys, "different config")
    assert not (tmp_path / "g").exists()
