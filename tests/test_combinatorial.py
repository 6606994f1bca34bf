"""Combinatorial scenes: templates and splits, pymunk physics, rendering, dataset, abnormality detector."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from simlab.envs.combinatorial import abnormality as ab
from simlab.envs.combinatorial.dataset import (
    CombinatorialConfig,
    CombinatorialDataset,
    collect_combinatorial,
    open_dataset,
)
from simlab.envs.combinatorial.physics import (
    COLLISION_SLOP,
    body_speed_max,
    max_penetration,
    simulate_variant,
)
from simlab.envs.combinatorial.render import PALETTE, render_video
from simlab.envs.combinatorial.report import combinatorial_report, format_markdown, wilson_ci
from simlab.envs.combinatorial.templates import (
    NUM_TYPES,
    TEMPLATES,
    split_templates,
    template_types,
    variant_layout,
    video_key,
)
from simlab.errors import ConfigError, DatasetError


def _gt(i: int, res: int = 32, frames: int = 32) -> tuple[dict, np.ndarray]:
    st = simulate_variant(i % 70, (7, 0, i), frames)
    return st, render_video(st, res)


# ---- templates and splits -----------------------------------------------------------------
def test_seventy_templates_and_splits():
    assert len(TEMPLATES) == 70 and TEMPLATES == tuple(itertools.combinations(range(8), 4))
    test = set(split_templates("test_out"))
    t6, t30, t60 = (set(split_templates("train", n)) for n in (6, 30, 60))
    assert len(test) == 10 and (len(t6), len(t30), len(t60)) == (6, 30, 60)
    assert t6 < t30 < t60 and not (t60 & test) and t60 | test == set(range(70))
    assert split_templates("test_in", 30) == split_templates("train", 30)
    assert {t for i in t6 for t in TEMPLATES[i]} == set(range(NUM_TYPES))  # every type seen in training


@pytest.mark.parametrize("call", [
    lambda: template_types(70), lambda: template_types(-1), lambda: split_templates("val"),
    lambda: split_templates("train", 12), lambda: video_key("train", -1, 0),
    lambda: CombinatorialConfig(size=0), lambda: CombinatorialConfig(resolution=48),
    lambda: CombinatorialConfig(frames=-3), lambda: CombinatorialConfig(split="nope"),
    lambda: render_video(simulate_variant(0, 0, 2), 16),
])
def test_bad_input_is_one_line_config_error(call):
    with pytest.raises(ConfigError) as e:
        call()
    assert "\n" not in str(e.value)


def test_variants_are_pure_functions_of_their_key():
    a, b = variant_layout(12, (1, 0, 5)), variant_layout(12, (1, 0, 5))
    assert a == b and a != variant_layout(12, (1, 1, 5))
    assert video_key("train", 3, 9) != video_key("test_in", 3, 9)


# ---- physics and rendering ----------------------------------------------------------------
def test_simulation_is_deterministic():
    a, b = simulate_variant(33, (2, 0, 1)), simulate_variant(33, (2, 0, 1))
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.parametrize("template", [0, 23, 41, 69])
def test_physics_sanity(template):
    st = simulate_variant(template, (0, 0, template))
    assert body_speed_max(st, static=True) == 0.0  # static objects never move
    assert max_penetration(st) < 0.05 + COLLISION_SLOP  # world units; a pixel at 128 px is 0.078
    red = int(np.flatnonzero(st["valid"] & (st["color"] == 0))[0])
    y = st["pose"][:, red, 1]
    assert y[5] < y[0] - 0.2 and y[:4].tolist() == sorted(y[:4], reverse=True)  # falls under gravity


def test_render_uses_the_palette_only():
    _, fr = _gt(3, 64)
    assert fr.shape == (32, 64, 64, 3) and fr.dtype == np.uint8
    colours = {tuple(c) for c in fr.reshape(-1, 3)}
    assert colours <= {(255, 255, 255), *map(tuple, PALETTE)} and (255, 0, 0) in colours


# ---- abnormality detector ----------------------------------------------------------------
@pytest.mark.parametrize("res,n", [(32, 24), (64, 6)])
def test_detector_flags_no_ground_truth(res, n):
    flagged = [i for i in range(n) if ab.flags(_gt(100 + 11 * i, res)[1])["abnormal"]]
    assert flagged == []


MIN_RATE = {"appear_vanish": 0.5, "colour": 0.75, "size_shape": 0.25, "static_moved": 0.75,
            "interpenetration": 0.25, "against_gravity": 0.5}
"""Regression floors on a fixed 8-video sample (32 px); rates over 70 videos are in the THRESHOLDS
docstring (size_shape and interpenetration are the detector's weakest kinds at 32 px)."""


@pytest.mark.parametrize("kind", ab.KINDS)
def test_each_corruption_kind_is_flagged(kind):
    hits = n = 0
    for i in range(40):
        if n == 8:
            break
        st, gt = _gt(200 + i)
        try:
            fr = ab.corrupt(kind, st, 32, i)
        except ConfigError:  # e.g. no static body to move
            continue
        assert fr.shape == gt.shape and np.array_equal(fr[0], gt[0]) and not np.array_equal(fr, gt)
        n += 1
        hits += ab.flags(fr)[kind]
    assert n == 8 and hits / n >= MIN_RATE[kind], (kind, hits, n)


def test_off_palette_colour_and_still_video():
    _, fr = _gt(5)
    still = np.repeat(fr[:1], 8, 0)
    assert not ab.flags(still)["abnormal"]
    blue = fr.copy()
    blue[10:, :, :, :][(fr[10:] == PALETTE[1]).all(-1)] = (0, 0, 255)
    assert ab.flags(blue)["colour"]


def test_detector_rejects_bad_video():
    with pytest.raises(ConfigError):
        ab.scores(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError):
        ab.scores(np.zeros((4, 32, 32, 3), np.float32))


def test_ssim_psnr():
    _, a = _gt(9)
    assert ab.psnr(a, a) == math.inf and ab.ssim(a, a) == pytest.approx(1.0)
    z, o = np.zeros((2, 16, 16, 3), np.uint8), np.ones((2, 16, 16, 3), np.uint8)
    assert ab.psnr(z, o) == pytest.approx(10 * math.log10(255 ** 2))  # MSE 1
    rng = np.random.default_rng(0)
    noisy = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    s1, s2 = ab.ssim(a, noisy), ab.ssim(noisy, a)
    assert s1 == pytest.approx(s2) and 0 < s1 < 0.95
    assert ab.psnr(a, noisy) < 30
    with pytest.raises(ConfigError):
        ab.ssim(a, a[:, :16])


# ---- dataset ----------------------------------------------------------------------------
def test_dataset_round_trip_resume_and_train_stream(tmp_path):
    out = tmp_path / "ds"
    kw = {"resolution": 32, "frames": 8, "train_templates": 6, "videos_per_shard": 4, "progress": False}
    res = collect_combinatorial(out, "train", 10, **kw)
    assert res.complete and res.written == [0, 1, 2]
    first = {p.name: p.read_bytes() for p in (out / "shards").glob("*.h5")}
    (out / "shards" / "shard-00001.h5").unlink()
    (out / "manifest.json").unlink()
    with pytest.raises(ConfigError):
        collect_combinatorial(out, "train", 10, **kw)  # existing dataset without --resume
    res = collect_combinatorial(out, "train", 10, resume=True, **kw)
    assert res.written == [1] and res.skipped == [0, 2] and res.complete
    assert {p.name: p.read_bytes() for p in (out / "shards").glob("*.h5")} == first

    ds = open_dataset(out)
    assert isinstance(ds, CombinatorialDataset) and len(ds) == 10 and ds.cond_frames == 1
    d = ds.load()
    assert d["frames"].shape == (10, 8, 32, 32, 3)
    assert set(d["template"].tolist()) <= set(split_templates("train", 6))
    assert np.array_equal(ds.render({k: v for k, v in d.items() if k != "frames"}), d["frames"])
    assert json.loads((out / "manifest.json").read_text())["kind"] == "simlab.combinatorial.videos"

    from simlab.world_models.video_diffusion.data import TrainStream, check_compatible

    check_compatible(ds, 8, 32)
    with pytest.raises(DatasetError):
        check_compatible(ds, 16, 32)
    batch = TrainStream(ds, 3, seed=0).batch(0)
    assert batch.shape == (3, 8, 32, 32, 3) and batch.dtype == np.uint8


def test_test_in_and_train_differ(tmp_path):
    kw = {"resolution": 32, "frames": 2, "train_templates": 6, "progress": False}
    collect_combinatorial(tmp_path / "a", "train", 6, **kw)
    collect_combinatorial(tmp_path / "b", "test_in", 6, **kw)
    a, b = CombinatorialDataset(tmp_path / "a").load(), CombinatorialDataset(tmp_path / "b").load()
    assert np.array_equal(a["template"], b["template"]) and not np.array_equal(a["pose"], b["pose"])


# ---- report ------------------------------------------------------------------------------
def test_report_table():
    gts = np.stack([_gt(300 + i)[1] for i in range(3)])
    bad = np.stack([ab.corrupt("colour", _gt(300 + i)[0], 32, i) for i in range(3)])
    rep = combinatorial_report({"test_in": (gts, gts), "test_out": (bad, gts)}, meta={"model": "x"})
    assert rep["splits"]["test_in"]["abnormal"]["any"]["rate"] == 0.0
    assert rep["splits"]["test_in"]["ssim"]["mean"] == pytest.approx(1.0)
    assert rep["splits"]["test_in"]["psnr"]["infinite"] == 3
    assert rep["splits"]["test_out"]["abnormal"]["colour"]["count"] == 3
    json.dumps(rep)
    md = format_markdown(rep)
    assert "| test_out | 3 |" in md and "SSIM" in md
    assert wilson_ci(0, 10)[0] == 0.0 and 0 < wilson_ci(0, 10)[1] < 0.35
    with pytest.raises(ConfigError):
        combinatorial_report({"x": (gts, gts[:2])})
