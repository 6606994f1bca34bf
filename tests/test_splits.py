"""Generalization splits as data (simlab/splits.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simlab.errors import ConfigError
from simlab.splits import ROLES, Split, in_union, sample_union


# ---------------------------------------------------------------------------- construction
def test_roles_and_bad_role():
    for role in ROLES:
        assert Split("s", role).role == role
    with pytest.raises(ConfigError, match="'bogus'"):
        Split("s", "bogus")


@pytest.mark.parametrize("iv", [(2.0, 1.0), (np.nan, 1.0), (0.0, np.inf), (-np.inf, 0.0)])
def test_bad_interval_is_config_error_naming_the_attribute(iv):
    with pytest.raises(ConfigError, match="'speed'"):
        Split("s", continuous={"speed": (iv,)})


def test_intervals_normalised_to_float_tuples():
    s = Split("s", continuous={"r": [[0, 1], [2, 3]], "v": ((1, 1),)})
    assert s.continuous == {"r": ((0.0, 1.0), (2.0, 3.0)), "v": ((1.0, 1.0),)}
    assert all(type(x) is float for iv in s.continuous["r"] for x in iv)


def test_combo_key_must_be_categorical_and_seeds_non_negative():
    with pytest.raises(ConfigError, match="'shape'"):
        Split("s", categorical={"color": ("r", "b")}, combo_keys=("shape",))
    with pytest.raises(ConfigError, match="seeds"):
        Split("s", seeds=(-1, 10))
    with pytest.raises(ConfigError, match="seeds"):
        Split("s", seeds=(0, -10))


def test_empty_interval_union_is_config_error():
    with pytest.raises(ConfigError, match="'r'"):
        Split("s", continuous={"r": ()})


# ---------------------------------------------------------------------------- sampling
def test_sample_union_is_uniform_over_the_union():
    rng = np.random.default_rng(0)
    ivs = ((0.0, 1.0), (2.0, 5.0))  # lengths 1 and 3
    x = sample_union(rng, ivs, 200_000)
    assert in_union(x, ivs).all()
    assert not ((x > 1.0) & (x < 2.0)).any()
    frac = (x <= 1.0).mean()
    assert abs(frac - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 200_000)
    # Flat density inside each interval: 8 equal bins over [2, 5].
    h, _ = np.histogram(x[x >= 2], bins=8, range=(2, 5))
    exp = h.sum() / 8
    assert (np.abs(h - exp) < 5 * np.sqrt(exp)).all()


def test_sample_union_points():
    rng = np.random.default_rng(1)
    x = sample_union(rng, ((1.0, 1.0), (3.0, 3.0)), 1000)
    assert set(np.unique(x)) == {1.0, 3.0}
    assert 0.4 < (x == 1.0).mean() < 0.6
    # A point next to an interval gets the weight of the smallest positive length.
    y = sample_union(rng, ((0.0, 0.5), (2.0, 2.0), (3.0, 5.0)), 100_000)
    assert abs((y == 2.0).mean() - 0.5 / 3.0) < 0.01
    assert in_union(y, ((0.0, 0.5), (2.0, 2.0), (3.0, 5.0))).all()


def test_in_union_is_closed():
    ivs = ((0.0, 1.0), (2.0, 3.0))
    x = np.array([[-1e-12, 0.0, 1.0, 1.0 + 1e-12], [1.5, 2.0, 3.0, 3.5]])
    np.testing.assert_array_equal(in_union(x, ivs), [[0, 1, 1, 0], [0, 1, 1, 0]])
    assert in_union(np.array([]), ivs).shape == (0,)


def test_sample_is_reproducible_and_inside():
    s = Split("s", continuous={"r": ((0.5, 1.0),), "v": ((0.0, 1.0), (4.0, 6.0))},
              categorical={"color": ("red", "blue", "green")}, seeds=(100, 50))
    a = s.sample(np.random.default_rng(7), 5000)
    b = s.sample(np.random.default_rng(7), 5000)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert set(a) == {"r", "v", "color", "seed"}
    assert all(len(v) == 5000 for v in a.values())
    assert s.contains(a).all()
    assert set(a["color"]) == {"red", "blue", "green"}
    assert a["seed"].min() >= 100 and a["seed"].max() < 150
    assert len(np.unique(a["seed"])) == 50
    c = s.sample(np.random.default_rng(8), 5000)
    assert not np.array_equal(a["r"], c["r"])
    assert all(len(v) == 0 for v in s.sample(np.random.default_rng(0), 0).values())


def test_unlimited_seeds():
    s = Split("s", seeds=(10, 0))
    x = s.sample(np.random.default_rng(0), 10000)["seed"]
    assert x.min() >= 10 and x.max() < 2**31 - 1
    assert s.contains({"seed": np.array([9, 10, 2**30])}).tolist() == [False, True, True]


def test_combos_excluded_and_included():
    cat = {"shape": ("disc", "square"), "color": ("red", "blue", "green")}
    ex = Split("comb_train", "train", categorical=cat, combo_keys=("shape", "color"),
               exclude_combos=(("disc", "red"), ("square", "blue")))
    assert len(ex.allowed_combos()) == 4
    a = ex.sample(np.random.default_rng(0), 4000)
    pairs = set(zip(a["shape"].tolist(), a["color"].tolist()))
    assert pairs == set(ex.allowed_combos())
    assert ("disc", "red") not in pairs and ("square", "blue") not in pairs
    # The held-out combinations form the test split, and the two are disjoint.
    inc = Split("comb_test", "comb_test", categorical=cat, combo_keys=("shape", "color"),
                include_combos=(("disc", "red"), ("square", "blue")))
    b = inc.sample(np.random.default_rng(1), 4000)
    assert set(zip(b["shape"].tolist(), b["color"].tolist())) == {("disc", "red"), ("square", "blue")}
    assert not ex.contains(b).any()
    assert not inc.contains(a).any()
    allx = Split("none", categorical=cat, combo_keys=("shape", "color"),
                 include_combos=(("disc", "red"),), exclude_combos=(("disc", "red"),))
    with pytest.raises(ConfigError, match="'none'"):
        allx.sample(np.random.default_rng(0), 3)


def test_contains_checks_every_attribute():
    s = Split("s", continuous={"r": ((1.0, 2.0),)}, categorical={"c": ("a", "b")}, seeds=(5, 5))
    p = {"r": np.array([1.5, 2.5, 1.5, 1.5, 1.0]), "c": np.array(["a", "a", "z", "b", "b"]),
         "seed": np.array([5, 5, 5, 10, 9])}
    np.testing.assert_array_equal(s.contains(p), [True, False, False, False, True])
    # A parameter set without seeds is judged on the other attributes only.
    del p["seed"]
    np.testing.assert_array_equal(s.contains(p), [True, False, False, True, True])


# ---------------------------------------------------------------------------- grid
def test_grid_single_interval_is_linspace_in_c_order():
    s = Split("s", continuous={"v": ((1.0, 4.0),), "r": ((0.7, 1.5),)})
    g = s.grid({"v": 4, "r": 3})
    assert list(g) == ["v", "r"]
    np.testing.assert_array_equal(g["v"], np.repeat(np.linspace(1.0, 4.0, 4), 3))
    np.testing.assert_array_equal(g["r"], np.tile(np.linspace(0.7, 1.5, 3), 4))
    # Key order decides the layout.
    g2 = s.grid({"r": 3, "v": 4})
    np.testing.assert_array_equal(g2["r"], np.repeat(np.linspace(0.7, 1.5, 3), 4))


def test_grid_over_union_spreads_points_by_length():
    s = Split("s", continuous={"v": ((1.0, 1.5), (3.5, 4.0))})
    v = s.grid({"v": 5})["v"]
    np.testing.assert_allclose(v, [1.0, 1.25, 3.5, 3.75, 4.0])
    v = s.grid({"v": 300})["v"]
    assert in_union(v, s.continuous["v"]).all()
    assert v[0] == 1.0 and v[-1] == 4.0
    assert len(np.unique(v)) == 300
    assert abs((v <= 1.5).mean() - 0.5) < 0.01
    # Equal steps along the union's total length.
    u = np.where(v <= 1.5, v - 1.0, v - 3.5 + 0.5)
    np.testing.assert_allclose(np.diff(u), 1.0 / 299, rtol=1e-9)


def test_grid_rejects_unknown_attribute():
    with pytest.raises(ConfigError, match="'x'"):
        Split("s", continuous={"v": ((0.0, 1.0),)}).grid({"x": 3})


# ---------------------------------------------------------------------------- serialisation
def test_to_dict_is_plain_json():
    s = Split("c", "comb_test", {"r": ((0.5, 1.0),)}, {"shape": ("disc", "square")},
              combo_keys=("shape",), include_combos=(("disc",),), seeds=(3, 4), description="d")
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["name"] == "c" and d["role"] == "comb_test"
    assert d["continuous"] == {"r": [[0.5, 1.0]]}
    assert d["seeds"] == [3, 4]


def test_split_round_trips_through_its_json_form():
    s = Split("c", "comb_test", {"r": ((0.5, 1.0),)},
              {"shape": ("disc", "square"), "color": ("red", "blue")},
              combo_keys=("shape", "color"), exclude_combos=(("disc", "red"),), seeds=(3, 4))
    back = Split(**json.loads(json.dumps(s.to_dict())))
    a = s.sample(np.random.default_rng(0), 500)
    assert back.contains(a).all()
    assert set(map(tuple, back.allowed_combos())) == set(s.allowed_combos())
