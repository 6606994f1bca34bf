"""Rendering (envs/collision2d/render.py) and the paper's parser / velocity metric (parse.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.envs.collision2d import scenarios as sc
from simlab.envs.collision2d.parse import (
    color_masks,
    evaluate_videos,
    fill_missing,
    frame_velocity_error,
    parse_balls,
    valid_frames,
    velocity_error,
)
from simlab.envs.collision2d.physics import COND_FRAMES, FRAME_DT, WORLD_SIZE
from simlab.envs.collision2d.render import BLUE, RED, render_balls, render_shapes, world_to_pixel

WHITE = (255, 255, 255)
COLLIDING = ("collision", "oblique")


def _states(scenario: str, n: int, split: str = "id", seed: int = 0) -> dict[str, np.ndarray]:
    return sc.generate_states(sc.VideoSpec(scenario, split, seed), 0, n)


def _evaluate(scenario, frames, g, lo=0, hi=None):
    hi = len(frames) if hi is None else hi
    return evaluate_videos(frames, g["pos"][lo:hi], g["radii"][lo:hi], g["t_contact"][lo:hi],
                           scenario in COLLIDING)


# ---------------------------------------------------------------------------- rendering
def test_render_is_deterministic_and_batch_independent():
    g = _states("collision", 100, split="ood")  # mixed radii: patch size differs per batch
    a = render_balls(g["pos"], g["radii"], 64)
    b = render_balls(g["pos"], g["radii"], 64)
    assert a.dtype == np.uint8 and a.shape == (100, 32, 64, 64, 3)
    assert a.tobytes() == b.tobytes()
    pieces = np.concatenate([render_balls(g["pos"][i:i + 7], g["radii"][i:i + 7], 64)
                             for i in range(0, 100, 7)])
    assert pieces.tobytes() == a.tobytes()
    single = render_balls(g["pos"][41:42], g["radii"][41:42], 64)
    assert single.tobytes() == a[41:42].tobytes()


def test_render_into_reused_buffer_equals_fresh_render():
    g1, g2 = _states("collision", 30, seed=1), _states("oblique", 30, split="ood_all", seed=2)
    buf = np.empty((30, 32, 48, 48, 3), np.uint8)
    out1 = render_balls(g1["pos"], g1["radii"], 48, out=buf)
    assert out1 is buf
    assert buf.tobytes() == render_balls(g1["pos"], g1["radii"], 48).tobytes()
    # Dirty buffer (previous videos) must be fully overwritten.
    render_balls(g2["pos"], g2["radii"], 48, out=buf)
    assert buf.tobytes() == render_balls(g2["pos"], g2["radii"], 48).tobytes()
    buf[:] = 7
    render_balls(g1["pos"], g1["radii"], 48, out=buf)
    assert buf.tobytes() == render_balls(g1["pos"], g1["radii"], 48).tobytes()
    with pytest.raises(ValueError):
        render_balls(g1["pos"], g1["radii"], 48, out=np.empty((30, 32, 48, 48, 3), np.float32))
    with pytest.raises(ValueError):
        render_balls(g1["pos"], g1["radii"], 48, out=np.empty((29, 32, 48, 48, 3), np.uint8))


@pytest.mark.parametrize("scenario", ["uniform", "collision", "oblique"])
def test_pixel_colours_exact_away_from_edges(scenario):
    res = 64
    g = _states(scenario, 40, split="train", seed=3)
    fr = render_balls(g["pos"], g["radii"], res)
    k = g["pos"].shape[2]
    pix = world_to_pixel(g["pos"], res)  # (N, T, K, 2) col,row
    rpx = g["radii"] * res / WORLD_SIZE  # (N, K)
    c = np.arange(res) + 0.5
    dx = c[None, None, None, None, :] - pix[..., 0][..., None, None]
    dy = c[None, None, None, :, None] - pix[..., 1][..., None, None]
    d = np.sqrt(dx**2 + dy**2) - rpx[:, None, :, None, None]  # (N, T, K, H, W) signed px
    deep = d < -1.0
    far = d > 1.0
    white = far.all(axis=2)
    colours = {0: RED, 1: BLUE}
    assert white.sum() > 0.5 * white.size
    assert (fr[white] == WHITE).all()
    for j in range(k):
        m = deep[:, :, j]
        if j == 0 and k == 2:
            m = m & far[:, :, 1]  # ball 2 is drawn over ball 1
        assert m.sum() > 1000
        assert (fr[m] == colours[j]).all(), j
    # Only the colours of the balls blended with white occur: no green anywhere
    # except as a part of a white-ish blend (G == B for red-on-white pixels).
    if k == 1:
        assert (fr[..., 1] == fr[..., 2]).all()
        assert (fr[..., 0] == 255).all()


def test_render_ball_partly_outside_and_fully_outside():
    pos = np.array([[[[0.2, 5.0]], [[-5.0, 5.0]], [[9.9, 0.1]]]])  # (1, 3, 1, 2)
    fr = render_balls(pos, np.array([[1.0]]), 32)
    m = color_masks(fr)[0, :, 0]  # (T, H, W)
    assert 0 < m[0].sum() < np.pi * 3.2**2 * 0.8  # clipped at the left edge
    assert m[0, :, 0].any()
    assert m[1].sum() == 0 and (fr[0, 1] == 255).all()  # fully outside: blank frame
    assert 0 < m[2].sum() and m[2][-1, -1]


# ---------------------------------------------------------------------------- parser
def test_color_mask_thresholds():
    px = np.array([[[255, 0, 0], [128, 126, 126], [127, 0, 0], [255, 127, 0],
                    [0, 0, 255], [126, 126, 128], [0, 0, 127], [255, 255, 255]]], np.uint8)
    m = color_masks(px)
    np.testing.assert_array_equal(m[0], [[1, 1, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(m[1], [[0, 0, 0, 0, 1, 1, 0, 0]])


@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_parse_ground_truth_recovers_centres_and_radii(scenario):
    res = 64
    g = _states(scenario, 150, seed=4)
    fr = render_balls(g["pos"], g["radii"], res)
    k = g["pos"].shape[2]
    p = parse_balls(fr, k)
    assert p["center"].shape == g["pos"].shape and p["radius"].shape == g["pos"].shape[:3]
    v = valid_frames(g["pos"], g["radii"], cond_frames=0)  # fully in view
    assert v.mean() > 0.3
    err_px = np.linalg.norm(p["center"] - g["pos"], axis=-1)[v] * res / WORLD_SIZE
    assert err_px.max() < 0.5
    rel = (np.abs(p["radius"] - g["radii"][:, None]) / g["radii"][:, None])[v]
    assert rel.max() < 0.06
    assert rel.mean() < 0.01
    np.testing.assert_allclose(p["area"], np.pi * (p["radius"] * res / WORLD_SIZE) ** 2)


def test_parse_absent_ball_is_nan():
    fr = np.full((1, 2, 16, 16, 3), 255, np.uint8)
    fr[0, 1, 4:8, 4:8] = RED
    p = parse_balls(fr, 2)
    assert np.isnan(p["center"][0, 0]).all() and np.isnan(p["center"][0, :, 1]).all()
    np.testing.assert_allclose(p["center"][0, 1, 0], [6 * 10 / 16, 10 - 6 * 10 / 16])
    np.testing.assert_array_equal(p["area"][0, :, 0], [0, 16])


# ---------------------------------------------------------------------------- metric floor
@pytest.mark.parametrize(
    "scenario, res, bound",
    [
        ("uniform", 64, 0.03), ("collision", 64, 0.03), ("oblique", 64, 0.035), ("parabola", 64, 0.03),
        ("uniform", 128, 0.012), ("collision", 128, 0.012), ("oblique", 128, 0.015),
        ("parabola", 128, 0.012),
    ],
)
def test_ground_truth_parse_floor(scenario, res, bound):
    """Measured floors (seed 0, 300 ID videos): 64 px 0.009/0.019/0.023/0.012,
    128 px 0.0034/0.0065/0.0081/0.0046 for uniform/collision/oblique/parabola."""
    g = _states(scenario, 300)
    verr, ferr, miss, rerr = [], [], [], []
    for lo in range(0, 300, 50):  # bounded memory at 128 px
        fr = render_balls(g["pos"][lo:lo + 50], g["radii"][lo:lo + 50], res)
        ev = _evaluate(scenario, fr, g, lo, lo + 50)
        verr.append(ev["velocity_error"])
        ferr.append(ev["frame_velocity_error"])
        miss.append(ev["missing"])
        rerr.append(ev["radius_error"])
    verr, ferr = np.concatenate(verr), np.concatenate(ferr)
    assert np.isfinite(verr).all()
    assert verr.mean() < bound
    assert verr.mean() > 1e-4  # a real parse, not a short cut to the ground truth
    assert (np.concatenate(miss) == 0).all()
    assert np.concatenate(rerr).mean() < 0.02
    if scenario not in COLLIDING:  # one ball: |mean v| <= mean |v| (not so when balls are weighted)
        assert (ferr >= verr - 1e-12).all()


# ---------------------------------------------------------------------------- corrupted predictions
def test_frozen_prediction_error_is_the_speed():
    g = _states("uniform", 100, seed=5)
    pred = g["pos"].copy()
    pred[:, COND_FRAMES:] = pred[:, COND_FRAMES - 1:COND_FRAMES]
    ev = _evaluate("uniform", render_balls(pred, g["radii"], 64), g)
    floor = _evaluate("uniform", render_balls(g["pos"], g["radii"], 64), g)["velocity_error"]
    # The frozen ball has zero velocity; the truth moves at v: error = v (up to the parse floor).
    np.testing.assert_allclose(ev["velocity_error"], g["v"], atol=0.06)
    assert ev["velocity_error"].mean() > 30 * floor.mean()


@pytest.mark.parametrize("scenario", ["uniform", "parabola", "collision"])
def test_wrong_speed_prediction_error(scenario):
    g = _states(scenario, 100, seed=6)
    t = np.arange(32) * FRAME_DT
    pred = g["pos"].copy()
    # A drift of 0.5 world units / s on top of the truth after the conditioning frames:
    # against the motion (-x) for one ball, towards the middle (in y) for two balls.
    drift = np.clip(t - t[COND_FRAMES - 1], 0, None)[None, :, None] * 0.5
    if scenario in COLLIDING:
        pred[..., 1] += drift * np.sign(WORLD_SIZE / 2 - g["p0"][:, None, :, 1])
    else:
        pred[..., 0] -= drift
    ev = _evaluate(scenario, render_balls(pred, g["radii"], 64), g)
    floor = _evaluate(scenario, render_balls(g["pos"], g["radii"], 64), g)["velocity_error"]
    # Where the drifted ball stays fully in view on the frames that count, the
    # parsed error is the drift speed (up to the parse floor).
    valid = valid_frames(g["pos"], g["radii"], g["t_contact"] if scenario in COLLIDING else None)
    seen = valid_frames(pred, g["radii"], cond_frames=0)
    clean = ~(valid & ~seen).any(axis=(1, 2))
    assert clean.mean() > 0.5
    e = ev["velocity_error"][clean]
    assert np.median(e) == pytest.approx(0.5, abs=0.02)
    assert (np.abs(e - 0.5) < 0.06).mean() > 0.9  # single collision videos have few valid pairs
    assert (np.abs(e - 0.5) < 0.2).all()
    assert np.nanmean(ev["velocity_error"]) > 10 * floor.mean()


def test_no_collision_prediction_is_penalised():
    """Balls passing through each other (no bounce) vs the elastic truth."""
    g = _states("collision", 100, seed=7)
    t = np.arange(32) * FRAME_DT
    ghost = g["p0"][:, None] + g["v0"][:, None] * t[None, :, None, None]
    ev = _evaluate("collision", render_balls(ghost, g["radii"], 64), g)
    floor = _evaluate("collision", render_balls(g["pos"], g["radii"], 64), g)["velocity_error"]
    assert np.nanmean(ev["velocity_error"]) > 1.0
    assert np.nanmean(ev["velocity_error"]) > 30 * floor.mean()


@pytest.mark.parametrize("scenario, ball", [("uniform", 0), ("collision", 1), ("collision", 0)])
def test_erased_ball_is_penalised_and_counted_missing(scenario, ball):
    g = _states(scenario, 60, seed=8)
    fr = render_balls(g["pos"], g["radii"], 64)
    from_frame = 12
    colour = np.array(RED if ball == 0 else BLUE, np.uint8)
    m = color_masks(fr)[:, from_frame:, ball]
    part = fr[:, from_frame:]
    part[m] = 255  # erase the ball: it is absent from frame 12 on
    assert not color_masks(fr)[:, from_frame:, ball].any()
    assert (fr != colour).any(-1).any()
    ev = _evaluate(scenario, fr, g)
    floor = _evaluate(scenario, render_balls(g["pos"], g["radii"], 64), g)
    valid = valid_frames(g["pos"], g["radii"], g["t_contact"] if scenario in COLLIDING else None)
    erased = valid[:, from_frame:, ball].sum(1)
    expected_missing = erased / valid.sum(axis=(1, 2))
    np.testing.assert_allclose(ev["missing"], expected_missing)
    assert (ev["missing"] > 0).mean() > 0.5
    hit = erased >= 2  # a finite-difference pair involves the missing ball
    assert hit.mean() > 0.5
    assert (ev["velocity_error"][hit] > 0.04).all()
    assert np.median(ev["velocity_error"][hit]) > 0.4
    assert ev["velocity_error"][hit].mean() > 30 * floor["velocity_error"].mean()
    assert (floor["missing"] == 0).all()


# ---------------------------------------------------------------------------- valid frames / metric
def test_valid_frames_drops_partly_out_of_view_and_conditioning():
    t = np.arange(32) * FRAME_DT
    # Ball moving right at 2 u/s from x=2, r=1: fully in view while x + 1 <= 10, i.e. t <= 3.5.
    # Ball 2 falling from y=9.5 at 4 u/s, r=0.5: in view while y - 0.5 >= 0 -> t <= 2.25.
    pos = np.zeros((1, 32, 2, 2))
    pos[0, :, 0] = np.stack([2 + 2 * t, np.full(32, 5.0)], -1)
    pos[0, :, 1] = np.stack([np.full(32, 5.0), 9.5 - 4 * t], -1)
    pos[0, :, 0, 0] += 1.5 * (t > 2.0)  # jump: ball 1 partly out of view (x > 9) after t=2.65
    radii = np.array([[1.0, 0.5]])
    v = valid_frames(pos, radii)
    x1 = pos[0, :, 0, 0]
    want1 = (x1 + 1 <= 10) & (np.arange(32) >= COND_FRAMES - 1)
    want2 = (pos[0, :, 1, 1] - 0.5 >= 0) & (np.arange(32) >= COND_FRAMES - 1)
    np.testing.assert_array_equal(v[0, :, 0], want1)
    np.testing.assert_array_equal(v[0, :, 1], want2)
    assert not v[0, :2].any() and v[0, 2].all()
    # Hand count: ball 1 valid on frames 2..27 (x + 1 <= 10 until t = 2.75), ball 2 on 2..22.
    assert v[0, :, 0].sum() == 26 and v[0, 27, 0] and not v[0, 28, 0]
    assert v[0, :, 1].sum() == 21 and v[0, 22, 1] and not v[0, 23, 1]
    # Starting partly out of view also counts as invalid.
    pos2 = pos.copy()
    pos2[0, :, 0, 0] = np.linspace(-1, 5, 32)
    assert not valid_frames(pos2, radii)[0, :, 0][pos2[0, :, 0, 0] < 1.0].any()


def test_valid_frames_after_contact_only():
    pos = np.full((3, 32, 2, 2), 5.0)
    pos[..., 1, 0] = 7.5
    radii = np.full((3, 2), 1.0)
    tc = np.array([0.5, 0.55 + 1e-12, np.inf])
    v = valid_frames(pos, radii, tc)
    frames = np.arange(32)
    np.testing.assert_array_equal(v[0, :, 0], frames >= 5)   # frame exactly at contact counts
    np.testing.assert_array_equal(v[1, :, 1], frames >= 6)
    np.testing.assert_array_equal(v[2, :, 0], frames >= COND_FRAMES - 1)  # no contact: no cut
    np.testing.assert_array_equal(valid_frames(pos, radii)[0, :, 0], frames >= COND_FRAMES - 1)
    # With the real generator: no valid frame before the contact in collision videos.
    g = _states("collision", 200, seed=9)
    v = valid_frames(g["pos"], g["radii"], g["t_contact"])
    before = (frames * FRAME_DT)[None, :] < g["t_contact"][:, None] - 1e-9
    assert not v[before].any()
    assert v.any(axis=(1, 2)).all()


def test_velocity_error_definition():
    rng = np.random.default_rng(10)
    gt = np.cumsum(rng.normal(size=(20, 32, 2, 2)), axis=1)
    valid = np.ones((20, 32, 2), bool)
    # A constant offset does not change velocities.
    np.testing.assert_allclose(velocity_error(gt + 3.0, gt, valid), 0.0, atol=1e-12)
    # Uniform extra velocity u on ball 1 only -> per-video error |u| / 2 (mean over balls).
    pred = gt.copy()
    pred[:, :, 0, 0] += 0.4 * np.arange(32) * FRAME_DT
    np.testing.assert_allclose(velocity_error(pred, gt, valid), 0.2)
    np.testing.assert_allclose(frame_velocity_error(pred, gt, valid), 0.2)
    # Balls without valid pairs are skipped; videos without any are NaN.
    valid2 = valid.copy()
    valid2[:, :, 1] = False
    np.testing.assert_allclose(velocity_error(pred, gt, valid2), 0.4)
    valid2[0] = False
    valid2[1, ::2] = False  # isolated frames: no valid pair
    e = velocity_error(pred, gt, valid2)
    assert np.isnan(e[:2]).all() and np.isfinite(e[2:]).all()
    # Mean of per-frame errors bounds the error of the mean (equal pair counts per ball).
    noisy = gt + rng.normal(scale=0.1, size=gt.shape)
    assert (frame_velocity_error(noisy, gt, valid) >= velocity_error(noisy, gt, valid) - 1e-12).all()


def test_fill_missing_uses_paper_fallbacks():
    c = np.full((1, 3, 2, 2), np.nan)
    c[0, 0] = [[2.0, 3.0], [7.0, 4.0]]
    out = fill_missing(c, collision=True)
    assert np.isnan(c[0, 1]).all()  # input untouched
    np.testing.assert_array_equal(out[0, 1:, 0], [[0.0, 3.0], [0.0, 3.0]])
    np.testing.assert_array_equal(out[0, 1:, 1], [[WORLD_SIZE, 4.0], [WORLD_SIZE, 4.0]])
    out1 = fill_missing(c[:, :, :1], collision=False)
    np.testing.assert_array_equal(out1[0, 1:, 0], [[WORLD_SIZE, 3.0], [WORLD_SIZE, 3.0]])


# ---------------------------------------------------------------------------- other shapes
@pytest.mark.parametrize(
    "shape",
    [0, 1, 2, 3],
    ids=["disc", "square", "ring", "triangle"],
)
def test_render_shapes_centred_on_their_centre(shape):
    res, r = 128, 1.5
    centre = np.array([5.03, 4.97])
    fr = render_shapes(centre.reshape(1, 1, 1, 2), np.array([[r]]), np.array([BLUE], np.uint8), res,
                       shapes=np.array([[shape]]))
    p = parse_balls(fr, 2)
    np.testing.assert_allclose(p["center"][0, 0, 1], centre, atol=0.5 * WORLD_SIZE / res)
    area = p["area"][0, 0, 1]
    disc_area = np.pi * (r * res / WORLD_SIZE) ** 2
    if shape == 2:  # ring: outer radius r, thickness RING_WIDTH * r
        assert area == pytest.approx(disc_area * (1 - 0.6**2), rel=0.03)
    else:  # disc, square and triangle have the disc's area
        assert area == pytest.approx(disc_area, rel=0.03)
