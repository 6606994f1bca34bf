"""Attribute scenes of the priority probe: splits, generation, rendering, parser."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.envs.collision2d import attributes as A
from simlab.envs.collision2d.physics import COND_FRAMES, FRAME_DT
from simlab.envs.collision2d.scenarios import CHUNK, MIN_VISIBLE_FRAMES
from simlab.errors import ConfigError

RES = 64


def _probes() -> list[tuple[str, str]]:
    names = ["shape_color", "size_velocity"] + [f"pair_{a}_{b}" for a, b in A.probe_pairs()]
    return [(f"{n}_train", f"{n}_test") for n in names]


# ---- splits ---------------------------------------------------------------------
def test_split_names_and_roles():
    splits = A.attribute_splits()
    assert splits["train"].role == "train" and splits["id"].role == "id_test"
    assert len(A.probe_pairs()) == 6
    for tr, te in _probes():
        assert splits[tr].role == "train" and splits[te].role == "comb_test"
    assert set(splits) == {"train", "id"} | {n for p in _probes() for n in p}


@pytest.mark.parametrize("train_name,test_name", _probes())
def test_probe_splits_disjoint(train_name, test_name):
    splits = A.attribute_splits()
    train, test = splits[train_name], splits[test_name]
    rng = np.random.default_rng(0)
    a = train.sample(rng, 5000)
    b = test.sample(rng, 5000)
    assert train.contains(a).all() and test.contains(b).all()
    assert not test.contains(a).any()
    assert not train.contains(b).any()
    # The held-out combinations are data of the splits.
    assert set(test.allowed_combos()).isdisjoint(train.allowed_combos())
    # Every value a test split uses appears in its training split.
    for key in test.categorical:
        assert set(b[key].tolist()) <= set(a[key].tolist()), key
        for i, ck in enumerate(train.combo_keys):
            assert {c[i] for c in test.allowed_combos()} <= {c[i] for c in train.allowed_combos()}, ck


def test_full_train_splits_cover_every_value():
    splits = A.attribute_splits()
    rng = np.random.default_rng(1)
    for name in ("train", "shape_color_train", "size_velocity_train"):
        s = splits[name].sample(rng, 5000)
        assert set(s["shape"].tolist()) == set(A.SHAPES), name
        assert set(s["color"].tolist()) == set(A.COLOR_NAMES), name
    s = splits["size_velocity_train"].sample(rng, 5000)
    assert set(s["r_bin"].tolist()) == set(A.R_BINS)
    assert set(s["v_bin"].tolist()) == set(A.V_BINS)


def test_latin_square_holdouts():
    held = A.SHAPE_COLOR_HELD_OUT
    assert len(set(held)) == 8
    for sh, col in held:
        assert A.COLOR_NAMES.index(col) % 4 == A.SHAPES.index(sh)
    for sh in A.SHAPES:
        assert sum(h[0] == sh for h in held) == 2
    for col in A.COLOR_NAMES:
        assert sum(h[1] == col for h in held) == 1
    sv = A.SIZE_VELOCITY_HELD_OUT
    assert {r for r, _ in sv} == set(A.R_BINS) and {v for _, v in sv} == set(A.V_BINS)


def test_palette_distinct_and_saturated():
    rgb = A.PALETTE_RGB.astype(float)
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb)) * 1e9
    assert d.min() >= 100
    assert (rgb.min(axis=1) == 0).all()  # a channel at 0: far from the white background


def test_unknown_split_and_bad_input():
    with pytest.raises(ConfigError, match=r"unknown attribute split 'nope'; choose one of train"):
        A.AttributeSpec("nope")
    with pytest.raises(ConfigError, match="unknown attribute split"):
        A.attribute_split("shape_colour_test")
    with pytest.raises(ConfigError, match="seed"):
        A.AttributeSpec("train", -1)
    with pytest.raises(ConfigError, match="bad video range"):
        A.generate_attribute_states(A.AttributeSpec(), 5, 2)
    with pytest.raises(ConfigError, match="uint8"):
        A.parse_attributes(np.zeros((1, 2, 8, 8, 3), np.float32))
    st = A.generate_attribute_states(A.AttributeSpec(), 0, 2)
    with pytest.raises(ConfigError, match="differ"):
        A.attribute_consistency(np.full((2, 5, 16, 16, 3), 255, np.uint8), st)


# ---- generation -------------------------------------------------------------------
def test_generation_deterministic_and_chunk_independent():
    spec = A.AttributeSpec("size_velocity_test", seed=3)
    full = A.generate_attribute_states(spec, 0, 3000)
    parts = [A.generate_attribute_states(spec, 0, 1000), A.generate_attribute_states(spec, 1000, 3000)]
    again = A.generate_attribute_states(spec, 0, 3000)
    mid = A.generate_attribute_states(spec, CHUNK - 7, CHUNK + 9)
    for k, v in full.items():
        np.testing.assert_array_equal(v, np.concatenate([p[k] for p in parts]), err_msg=k)
        np.testing.assert_array_equal(v, again[k], err_msg=k)
        np.testing.assert_array_equal(v[CHUNK - 7:CHUNK + 9], mid[k], err_msg=k)
    np.testing.assert_array_equal(full["index"], np.arange(3000))
    other = A.generate_attribute_states(A.AttributeSpec("size_velocity_test", seed=4), 0, 100)
    assert not np.array_equal(other["r"], full["r"][:100])
    empty = A.generate_attribute_states(spec, 5, 5)
    assert empty["pos"].shape[0] == 0 and empty["shape"].dtype == np.int64


@pytest.mark.parametrize("name", ["train", "shape_color_test", "size_velocity_train",
                                  "size_velocity_test", "pair_size_velocity_test",
                                  "pair_color_shape_train"])
def test_generated_videos_lie_in_their_split(name):
    st = A.generate_attribute_states(A.AttributeSpec(name, seed=0), 0, 1500)
    n = len(st["r"])
    assert st["pos"].shape == (n, 32, 1, 2) and st["radii"].shape == (n, 1)
    assert A.attribute_splits()[name].contains(A.split_params(st)).all()
    # Uniform horizontal motion at speed v.
    np.testing.assert_allclose(st["vel"][:, :, 0, 0], np.repeat(st["v"][:, None], 32, 1))
    np.testing.assert_allclose(st["vel"][:, :, 0, 1], 0.0)
    # Every shape fully in view for the first MIN_VISIBLE_FRAMES + 1 frames.
    assert A.fully_visible(st["pos"], st["radii"])[:, :MIN_VISIBLE_FRAMES + 1].all()


def test_bins_are_uniform_inside():
    st = A.generate_attribute_states(A.AttributeSpec("pair_size_velocity_train", seed=2), 0, 4000)
    p = A.split_params(st)
    small = p["r_bin"] == "small"
    assert set(p["r_bin"].tolist()) == {"small", "large"}
    # Diagonal only: small with slow, large with fast.
    assert (p["v_bin"][small] == "slow").all() and (p["v_bin"][~small] == "fast").all()
    lo, hi = A.R_BINS["small"]
    r = st["r"][small]
    assert r.min() >= lo and r.max() < hi and r.max() - r.min() > 0.9 * (hi - lo)


# ---- rendering and parsing -----------------------------------------------------------
@pytest.fixture(scope="module")
def gt():
    st = A.generate_attribute_states(A.AttributeSpec("train", seed=5), 0, 96)
    return st, A.render_attribute_videos(st, RES)


def test_render_deterministic(gt):
    st, frames = gt
    assert frames.shape == (96, 32, RES, RES, 3) and frames.dtype == np.uint8
    buf = np.zeros_like(frames)
    again = A.render_attribute_videos(st, RES, out=buf)
    assert again is buf and again.tobytes() == frames.tobytes()
    with pytest.raises(ConfigError, match="res"):
        A.render_attribute_videos(st, 0)


def test_parser_reads_ground_truth(gt):
    st, frames = gt
    p = A.parse_attributes(frames)
    vis = A.fully_visible(st["pos"], st["radii"])
    assert vis.sum() > 1000
    color_ok = (p["color"] == st["color"][:, None])[vis]
    assert color_ok.mean() >= 0.99
    for s in range(len(A.SHAPES)):
        m = vis & (st["shape"][:, None] == s)
        assert m.sum() > 50, A.SHAPES[s]
        assert (p["shape"][m] == s).mean() >= 0.99, A.SHAPES[s]
    size_err = np.abs(p["size"] - st["r"][:, None])[vis]
    assert size_err.max() < 0.03
    # Centre velocity from finite differences matches v (paper-style mean).
    both = vis[:, 1:] & vis[:, :-1]
    vx = np.diff(p["center"][..., 0], axis=1) / FRAME_DT
    mean_vx = np.where(both, vx, 0).sum(1) / both.sum(1)
    assert np.abs(mean_vx - st["v"]).max() < 0.05
    # Vertical position constant.
    cy = np.where(vis, p["center"][..., 1], np.nan)
    assert np.nanmax(np.nanmax(cy, 1) - np.nanmin(cy, 1)) < 0.02


def test_parser_empty_frames():
    p = A.parse_attributes(np.full((2, 3, 32, 32, 3), 255, np.uint8))
    assert (p["color"] == -1).all() and (p["shape"] == -1).all()
    assert np.isnan(p["center"]).all() and np.isnan(p["radius"]).all()


def test_consistency_ground_truth(gt):
    st, frames = gt
    c = A.attribute_consistency(frames, st)
    assert (c["evaluated"] >= MIN_VISIBLE_FRAMES + 1 - COND_FRAMES).all()
    for k in ("color_ok", "shape_ok", "size_ok", "velocity_ok", "consistent"):
        assert c[k].all(), k
    np.testing.assert_array_equal(c["color_pred"], st["color"])
    np.testing.assert_array_equal(c["shape_pred"], st["shape"])
    assert np.nanmax(c["velocity_error"]) < 0.05 and np.nanmax(c["size_error"]) < 0.03


def _spliced(st, frames, **changes):
    """Ground truth for the conditioning frames, an altered render after them."""
    alt = {**st, **changes}
    if "r" in changes:
        alt["radii"] = changes["r"][:, None]
    out = A.render_attribute_videos(alt, RES)
    out[:, :COND_FRAMES] = frames[:, :COND_FRAMES]
    return out


@pytest.mark.parametrize("which", ["color", "shape", "size", "velocity"])
def test_consistency_flags_the_altered_attribute(gt, which):
    st, frames = gt
    if which == "color":
        bad = _spliced(st, frames, color=(st["color"] + 1) % len(A.COLOR_NAMES))
    elif which == "shape":
        bad = _spliced(st, frames, shape=(st["shape"] + 1) % len(A.SHAPES))
    elif which == "size":
        bad = _spliced(st, frames, r=st["r"] * 0.75)  # smaller: stays in view
    else:
        # Half the speed from the last conditioning frame on (stays in view).
        t = np.arange(st["pos"].shape[1]) * FRAME_DT
        t0 = (COND_FRAMES - 1) * FRAME_DT
        pos = st["pos"].copy()
        late = t >= t0
        pos[:, late, 0, 0] = (st["pos"][:, COND_FRAMES - 1, 0, 0][:, None]
                              + 0.5 * st["v"][:, None] * (t[late] - t0))
        bad = _spliced(st, frames, pos=pos)
    c = A.attribute_consistency(bad, st)
    for attr in ("color", "shape", "size", "velocity"):
        ok = c[f"{attr}_ok"]
        if attr == which:
            assert not ok.any(), attr
        else:
            assert ok.all(), (which, attr)
    assert not c["consistent"].any()
    if which == "color":
        np.testing.assert_array_equal(c["color_pred"], (st["color"] + 1) % len(A.COLOR_NAMES))
    if which == "shape":
        np.testing.assert_array_equal(c["shape_pred"], (st["shape"] + 1) % len(A.SHAPES))


def test_consistency_missing_object(gt):
    st, frames = gt
    blank = frames[:4].copy()
    blank[:, COND_FRAMES:] = 255
    sub = {k: v[:4] for k, v in st.items()}
    c = A.attribute_consistency(blank, sub)
    assert not c["color_ok"].any() and not c["shape_ok"].any() and not c["size_ok"].any()
    assert (c["color_pred"] == -1).all() and not c["consistent"].any()


def test_parser_robust_to_blur_and_noise(gt):
    """Generated videos are blurry and noisy: a 3x3 box blur plus noise keeps shapes and colours."""
    st, frames = gt
    f = frames[:24].astype(np.float32)
    pad = np.pad(f, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    blur = sum(pad[:, :, i:i + RES, j:j + RES] for i in range(3) for j in range(3)) / 9
    noisy = blur + np.random.default_rng(0).normal(0, 8, f.shape)
    bad = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    sub = {k: v[:24] for k, v in st.items()}
    p = A.parse_attributes(bad)
    vis = A.fully_visible(sub["pos"], sub["radii"])
    assert (p["shape"] == sub["shape"][:, None])[vis].mean() >= 0.99
    assert (p["color"] == sub["color"][:, None])[vis].mean() >= 0.99
    assert A.attribute_consistency(bad, sub)["consistent"].all()
