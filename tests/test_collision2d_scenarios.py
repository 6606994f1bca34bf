"""Scenarios, splits, paper grids and the deterministic generator (envs/collision2d/scenarios.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simlab.envs.collision2d import scenarios as sc
from simlab.envs.collision2d.physics import FRAME_DT, WORLD_SIZE
from simlab.errors import ConfigError
from simlab.splits import in_union

ONE_BALL = ("uniform", "parabola")
TWO_BALL = ("collision", "oblique")
COLLISION_LEVELS = {
    "ood_r1": {"r1"},
    "ood_v1": {"v1"},
    "ood_r1r2": {"r1", "r2"},
    "ood_v1v2": {"v1", "v2"},
    "ood_r1v1": {"r1", "v1"},
    "ood_all": {"r1", "r2", "v1", "v2"},
}
ONE_BALL_LEVELS = {"ood_r": {"r"}, "ood_v": {"v"}, "ood_rv": {"r", "v"}}


def _id_range(attr: str):
    return sc.ID_R if attr.startswith("r") else sc.ID_V


def _ood_range(attr: str):
    return sc.OOD_R if attr.startswith("r") else sc.OOD_V


def _on_boundary(params: dict[str, np.ndarray], split) -> np.ndarray:
    """Rows where some attribute sits exactly on an interval endpoint of ``split``."""
    n = len(next(iter(params.values())))
    m = np.zeros(n, dtype=bool)
    for k, ivs in split.continuous.items():
        ends = np.array([e for iv in ivs for e in iv])
        m |= np.isin(params[k], ends)
    return m


# ---------------------------------------------------------------------------- split ranges
def test_split_names():
    for s in ONE_BALL:
        assert sc.num_balls(s) == 1
        assert sc.split_names(s) == ["train", "id", "ood_r", "ood_v", "ood_rv", "gap_train",
                                     "gap_test", "ood"]
    for s in TWO_BALL:
        assert sc.num_balls(s) == 2
        assert sc.split_names(s) == ["train", "id", *COLLISION_LEVELS, "gap_train", "gap_test", "ood"]
    assert sc.MIXTURES["ood_two"] == tuple(COLLISION_LEVELS)
    assert sc.MIXTURES["ood_one"] == tuple(ONE_BALL_LEVELS)


@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_every_split_samples_inside_its_ranges(scenario):
    rng = np.random.default_rng(0)
    for name, split in sc.scenario_splits(scenario).items():
        s = split.sample(rng, 5000)
        assert set(s) == set(split.continuous)
        assert split.contains(s).all(), name
        for k, ivs in split.continuous.items():
            assert in_union(s[k], ivs).all(), (name, k)
            # Every interval of a union is used.
            for lo, hi in ivs:
                assert ((s[k] >= lo) & (s[k] <= hi)).any(), (name, k, lo, hi)
        # The generator hands out the same ranges.
        g = sc.generate_states(sc.VideoSpec(scenario, name, seed=1), 0, 1500)
        assert split.contains({k: g[k] for k in split.continuous}).all(), name


@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_ood_mixture_rows_come_from_their_level(scenario):
    g = sc.generate_states(sc.VideoSpec(scenario, "ood", seed=2), 0, 3000)
    splits = sc.scenario_splits(scenario)
    levels = sc.MIXTURES["ood_two" if scenario in TWO_BALL else "ood_one"]
    lv = g["ood_level"]
    assert set(np.unique(lv)) == set(range(len(levels)))
    for i, name in enumerate(levels):
        rows = lv == i
        params = {k: g[k][rows] for k in splits[name].continuous}
        assert splits[name].contains(params).all(), name
        # ... and never from the ID region.
        inside = splits["id"].contains(params) & ~_on_boundary(params, splits["id"])
        assert not inside.any(), name


@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_id_and_each_ood_split_are_disjoint(scenario):
    rng = np.random.default_rng(3)
    splits = sc.scenario_splits(scenario)
    id_split = splits["id"]
    assert splits["train"].continuous == id_split.continuous
    oods = [s for s in splits.values() if s.role == "ood_test"]
    assert len(oods) == (7 if scenario in TWO_BALL else 4)  # levels + gap_test
    for other in oods:
        if other.name == "gap_test":
            continue  # the gap is an interpolation probe *inside* the ID speeds
        a = other.sample(rng, 20000)
        hit = id_split.contains(a)
        assert not (hit & ~_on_boundary(a, id_split)).any(), other.name
        b = id_split.sample(rng, 20000)
        hit = other.contains(b)
        assert not (hit & ~_on_boundary(b, other)).any(), other.name


def test_contains_detects_boundary_points_only():
    """The disjointness check above is not vacuous: ID and OOD share only endpoints."""
    split = sc.scenario_splits("uniform")
    assert split["id"].contains({"r": np.array([1.5]), "v": np.array([2.0])}).all()
    assert split["ood_r"].contains({"r": np.array([1.5]), "v": np.array([2.0])}).all()
    assert not split["ood_r"].contains({"r": np.array([1.4999]), "v": np.array([2.0])}).any()
    assert not split["id"].contains({"r": np.array([1.5001]), "v": np.array([2.0])}).any()


@pytest.mark.parametrize("scenario", ["uniform", "oblique"])
def test_gap_train_and_gap_test_speeds_disjoint(scenario):
    splits = sc.scenario_splits(scenario)
    vkeys = [k for k in splits["gap_train"].continuous if k.startswith("v")]
    for k in vkeys:
        tr, te = splits["gap_train"].continuous[k], splits["gap_test"].continuous[k]
        assert tr == sc.GAP_TRAIN_V and te == sc.GAP_TEST_V
        # Interiors disjoint (closed intervals may share an endpoint).
        for a0, a1 in tr:
            for b0, b1 in te:
                assert min(a1, b1) - max(a0, b0) <= 0.0
        # Both inside the ID speeds: the gap probe interpolates, it does not extrapolate.
        for lo, hi in (*tr, *te):
            assert in_union(np.array([lo, hi]), sc.ID_V).all()
        # Together they tile the ID speed range.
        assert sum(b - a for a, b in (*tr, *te)) == pytest.approx(sc.ID_V[0][1] - sc.ID_V[0][0])
    rng = np.random.default_rng(4)
    a = splits["gap_test"].sample(rng, 20000)
    b = splits["gap_train"].sample(rng, 20000)
    for k in vkeys:
        assert not in_union(a[k], sc.GAP_TRAIN_V).any()
        assert not in_union(b[k], sc.GAP_TEST_V).any()
    # Radii are ID in both.
    for k in splits["gap_train"].continuous:
        if k.startswith("r"):
            assert splits["gap_train"].continuous[k] == splits["gap_test"].continuous[k] == sc.ID_R


@pytest.mark.parametrize("scenario", TWO_BALL)
def test_collision_ood_levels_make_exactly_the_right_attributes_ood(scenario):
    rng = np.random.default_rng(5)
    splits = sc.scenario_splits(scenario)
    for name, ood_attrs in COLLISION_LEVELS.items():
        split = splits[name]
        assert split.role == "ood_test"
        assert set(split.continuous) == {"r1", "r2", "v1", "v2"}
        s = split.sample(rng, 5000)
        for attr in ("r1", "r2", "v1", "v2"):
            if attr in ood_attrs:
                assert split.continuous[attr] == _ood_range(attr), (name, attr)
                assert in_union(s[attr], _ood_range(attr)).all()
                assert not in_union(s[attr], _id_range(attr)).any(), (name, attr)
            else:
                assert split.continuous[attr] == _id_range(attr), (name, attr)
                assert in_union(s[attr], _id_range(attr)).all(), (name, attr)


@pytest.mark.parametrize("scenario", ONE_BALL)
def test_one_ball_ood_levels(scenario):
    splits = sc.scenario_splits(scenario)
    for name, ood_attrs in ONE_BALL_LEVELS.items():
        for attr in ("r", "v"):
            want = _ood_range(attr) if attr in ood_attrs else _id_range(attr)
            assert splits[name].continuous[attr] == want, (name, attr)


# ---------------------------------------------------------------------------- paper grids
@pytest.mark.parametrize(
    "scenario, grid, counts, size",
    [
        ("uniform", "30k", {"v": 300, "r": 100}, 30_000),
        ("uniform", "300k", {"v": 1000, "r": 300}, 300_000),
        ("uniform", "3m", {"v": 3000, "r": 1000}, 3_000_000),
        ("parabola", "30k", {"v": 300, "r": 100}, 30_000),
        ("parabola", "3m", {"v": 3000, "r": 1000}, 3_000_000),
        ("collision", "30k", {"r1": 8, "r2": 8, "v1": 21, "v2": 21}, 8**2 * 21**2),
        ("collision", "300k", {"r1": 14, "r2": 14, "v1": 41, "v2": 41}, 14**2 * 41**2),
        ("collision", "3m", {"r1": 26, "r2": 26, "v1": 71, "v2": 71}, 26**2 * 71**2),
        ("oblique", "30k", {"r1": 8, "r2": 8, "v1": 21, "v2": 21}, 28_224),
    ],
)
def test_paper_grid_sizes(scenario, grid, counts, size):
    assert sc.GRIDS[scenario][grid] == counts
    spec = sc.VideoSpec(scenario, "train", 0, grid)
    assert spec.grid_size() == size
    assert sc.VideoSpec(scenario, "train", 0).grid_size() is None
    # The last video exists, one past it does not.
    last = sc.generate_states(spec, size - 3, size)
    np.testing.assert_array_equal(last["index"], [size - 3, size - 2, size - 1])
    with pytest.raises(ConfigError, match=str(size)):
        sc.generate_states(spec, size - 1, size + 1)


def test_collision_30k_is_28224():
    assert sc.VideoSpec("collision", "train", 0, "30k").grid_size() == 28224


@pytest.mark.parametrize("scenario", ["uniform", "collision"])
def test_grid_yields_exact_linspace_values_in_seeded_permutation(scenario):
    spec = sc.VideoSpec(scenario, "train", 0, "30k")
    n = spec.grid_size()
    g = sc.generate_states(spec, 0, n)
    counts = sc.GRIDS[scenario]["30k"]
    split = sc.scenario_splits(scenario)["train"]
    keys = list(counts)
    axes = [np.linspace(*split.continuous[k][0], counts[k]) for k in keys]
    for k, ax in zip(keys, axes):
        np.testing.assert_array_equal(np.unique(g[k]), ax)  # bit-exact linspace values
    mesh = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], -1)
    got = np.stack([g[k] for k in keys], -1)
    # Every grid point exactly once.
    order_m = np.lexsort(mesh.T[::-1])
    order_g = np.lexsort(got.T[::-1])
    np.testing.assert_array_equal(got[order_g], mesh[order_m])
    # In a permuted (not C) order, fixed by the seed.
    assert not np.array_equal(got, mesh)
    again = sc.generate_states(spec, 0, 500)
    for k in keys:
        np.testing.assert_array_equal(again[k], g[k][:500])
    other = sc.generate_states(sc.VideoSpec(scenario, "train", 1, "30k"), 0, n)
    assert not np.array_equal(np.stack([other[k] for k in keys], -1), got)
    other_sorted = np.stack([other[k] for k in keys], -1)
    np.testing.assert_array_equal(other_sorted[np.lexsort(other_sorted.T[::-1])], mesh[order_m])


def test_grid_on_a_union_of_intervals_stays_inside():
    spec = sc.VideoSpec("uniform", "gap_train", 0, "30k")
    g = sc.generate_states(spec, 0, spec.grid_size())
    assert in_union(g["v"], sc.GAP_TRAIN_V).all()
    assert not in_union(g["v"], ((1.5 + 1e-9, 3.5 - 1e-9),)).any()
    u = np.unique(g["v"])
    assert len(u) == 300
    assert u[0] == 1.0 and u[-1] == 4.0
    np.testing.assert_array_equal(np.unique(g["r"]), np.linspace(0.7, 1.5, 100))


# ---------------------------------------------------------------------------- determinism
@pytest.mark.parametrize(
    "spec",
    [
        sc.VideoSpec("collision", "train", 0),
        sc.VideoSpec("oblique", "ood", 3),
        sc.VideoSpec("parabola", "id", 7),
        sc.VideoSpec("uniform", "train", 0, "30k"),
    ],
    ids=lambda s: f"{s.scenario}-{s.split}-{s.seed}-{s.grid}",
)
def test_generate_states_is_shard_independent(spec):
    whole = sc.generate_states(spec, 0, 3000)
    parts = [sc.generate_states(spec, a, b) for a, b in [(0, 1000), (1000, 2500), (2500, 3000)]]
    assert set(whole) == set(parts[0])
    for k in whole:
        cat = np.concatenate([p[k] for p in parts])
        assert cat.dtype == whole[k].dtype, k
        assert cat.tobytes() == whole[k].tobytes(), k  # bit-for-bit
    np.testing.assert_array_equal(whole["index"], np.arange(3000))
    # A single video, out of the middle of a chunk.
    one = sc.generate_states(spec, 1500, 1501)
    for k in whole:
        assert one[k].tobytes() == whole[k][1500:1501].tobytes(), k
    assert whole["pos"].shape[:2] == (3000, 32)


def test_different_seeds_and_splits_differ():
    a = sc.generate_states(sc.VideoSpec("collision", "train", 0), 0, 500)
    b = sc.generate_states(sc.VideoSpec("collision", "train", 1), 0, 500)
    c = sc.generate_states(sc.VideoSpec("collision", "id", 0), 0, 500)
    a2 = sc.generate_states(sc.VideoSpec("collision", "train", 0), 0, 500)
    for k in ("r1", "v1", "p0"):
        assert a[k].tobytes() == a2[k].tobytes()
        # Fresh samples: no value is shared.
        assert not np.isin(a[k], b[k]).any()
        assert not np.isin(a[k], c[k]).any()


def test_empty_range():
    g = sc.generate_states(sc.VideoSpec("collision", "train", 0), 5, 5)
    assert g["pos"].shape == (0, 32, 2, 2)
    assert g["index"].shape == (0,)


# ---------------------------------------------------------------------------- placement
@pytest.mark.parametrize("scenario", sc.SCENARIOS)
def test_balls_start_fully_in_view_and_apart(scenario):
    tol = 1e-9  # balls may start exactly at an edge (rounded)
    for split in sc.split_names(scenario):
        g = sc.generate_states(sc.VideoSpec(scenario, split, 11), 0, 2000)
        p0, r = g["p0"], g["radii"][..., None]
        assert (p0 - r >= -tol).all() and (p0 + r <= WORLD_SIZE + tol).all(), split
        if scenario in TWO_BALL:
            d = np.linalg.norm(p0[:, 1] - p0[:, 0], axis=-1)
            assert (d >= g["radii"].sum(1) - 1e-12).all(), split
            # Ball 1 moves right, ball 2 left, along x only.
            np.testing.assert_array_equal(g["v0"][:, 0, 0], g["v1"])
            np.testing.assert_array_equal(g["v0"][:, 1, 0], -g["v2"])
            assert (g["v0"][..., 1] == 0).all()
            if scenario == "collision":
                np.testing.assert_array_equal(p0[:, 0, 1], p0[:, 1, 1])
            else:
                b = p0[:, 1, 1] - p0[:, 0, 1]
                assert (np.abs(b) <= 0.7 * g["radii"].sum(1) + 1e-12).all()
                assert (np.abs(b) > 1e-3).mean() > 0.9
        else:
            # One ball: fully visible for at least MIN_VISIBLE_FRAMES frames.
            pos = g["pos"][:, : sc.MIN_VISIBLE_FRAMES, 0]
            rr = g["radii"][:, None, :]
            assert (pos - rr >= -tol).all() and (pos + rr <= WORLD_SIZE + tol).all(), split
            np.testing.assert_array_equal(g["v0"][:, 0, 0], g["v"])
            if scenario == "parabola":
                assert (p0[:, 0, 1] >= 6.0).all()




@pytest.mark.parametrize(
    "scenario, split",
    [(scenario, s) for scenario in ("collision", "oblique") for s in ("train", "id", "gap_train", "gap_test")],
)
def test_id_speed_contact_after_frame_4_with_8_frames_after(scenario, split):
    spec = sc.VideoSpec(scenario, split, 12)
    tc = sc.generate_states(spec, 0, 20000, num_frames=1)["t_contact"]  # contact needs no frames
    assert np.isfinite(tc).all()
    assert (tc >= sc.MIN_PRE_FRAMES * FRAME_DT - 1e-9).all()
    last = (32 - sc.MIN_POST_FRAMES) * FRAME_DT
    assert (tc <= last + 1e-9).all(), f"{(tc > last).mean():.2%} contacts after t={last}"
    # Apart before the contact.
    g = sc.generate_states(spec, 0, 2000)
    np.testing.assert_array_equal(g["t_contact"], tc[:2000])
    pos = g["pos"]
    d = np.linalg.norm(pos[:, :, 1] - pos[:, :, 0], axis=-1)
    rs = np.broadcast_to(g["radii"].sum(1)[:, None], d.shape)
    pre = np.arange(32) * FRAME_DT < tc[:2000, None]
    assert (d[pre] > rs[pre]).all()


@pytest.mark.parametrize(
    "scenario",
    ["collision", "oblique"],
)
def test_every_two_ball_video_shows_its_contact(scenario):
    """For every split (OOD speeds included) the contact happens inside the 3.2 s video."""
    late = {}
    for split in sc.split_names(scenario):
        tc = sc.generate_states(sc.VideoSpec(scenario, split, 13), 0, 20000, num_frames=1)["t_contact"]
        assert np.isfinite(tc).all(), split
        if (tc > 3.1).any():
            late[split] = float((tc > 3.1).mean())
    assert not late, late


# ---------------------------------------------------------------------------- errors
def test_unknown_names_and_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="'snooker'"):
        sc.VideoSpec("snooker")
    with pytest.raises(ConfigError, match="'snooker'"):
        sc.scenario_splits("snooker")
    with pytest.raises(ConfigError, match="'ood_r'"):
        sc.VideoSpec("collision", "ood_r")  # a one-ball split name
    with pytest.raises(ConfigError, match="'ood_r1'"):
        sc.VideoSpec("uniform", "ood_r1")
    with pytest.raises(ConfigError, match="'30m'"):
        sc.VideoSpec("uniform", "train", 0, "30m")
    with pytest.raises(ConfigError, match="-1"):
        sc.VideoSpec("uniform", "train", -1)
    with pytest.raises(ConfigError, match="ood"):
        sc.VideoSpec("collision", "ood", 0, "30k")
    spec = sc.VideoSpec("uniform")
    with pytest.raises(ConfigError, match="range"):
        sc.generate_states(spec, -1, 5)
    with pytest.raises(ConfigError, match="range"):
        sc.generate_states(spec, 5, 4)
    # Errors are also ValueErrors (callers catching ValueError keep working).
    with pytest.raises(ValueError):
        sc.VideoSpec("snooker")


def test_gravity_per_scenario():
    assert sc.gravity("parabola") == (0.0, -2.5)
    for s in ("uniform", "collision", "oblique"):
        assert sc.gravity(s) == (0.0, 0.0)
    g = sc.generate_states(sc.VideoSpec("parabola", "id", 0), 0, 50)
    t = np.arange(32) * FRAME_DT
    np.testing.assert_allclose(g["pos"][:, :, 0, 1], g["p0"][:, None, 0, 1] - 1.25 * t**2, atol=1e-12)
    np.testing.assert_allclose(g["pos"][:, :, 0, 0], g["p0"][:, None, 0, 0] + g["v"][:, None] * t,
                               atol=1e-12)
