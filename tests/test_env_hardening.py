"""Hardening of the gymnasium API of every registered simlab env (issue 9, "The gymnasium API").

Bad constructor arguments, reset seeds/options and actions fail with one-line simlab errors;
step() before reset() raises ResetNeededError; numpy integer seeds work; valid values still work.
The property tests draw random (mostly bad) keyword arguments for every env id.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simlab  # noqa: F401  (registers the envs)
from simlab.envs.procgen.base import ProcgenOptions
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv
from simlab.errors import ActionError, ConfigError, ResetNeededError, SimlabError
from simlab.registry import ENV_SPECS
from simlab.validate import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_options,
    check_seed,
)

# ToyGrasp (envs/toygrasp, needs the grasp extra) validates its own arguments; not covered here.
TOYGRASP = {"simlab/ToyGrasp-v0", "simlab/ToyGraspMJ-v0"}
ENV_IDS = [s.id for s in ENV_SPECS if s.id not in TOYGRASP]
PROCGEN_IDS = [s.id for s in ENV_SPECS if s.vector_entry_point is not None]
COLLISION = "simlab/Collision2D-v0"

PROCGEN_ARGS = ("num_levels", "start_level", "distribution_mode", "use_backgrounds", "rand_seed",
                "visual_split", "render_mode", "game", "options")
VEC_ARGS = PROCGEN_ARGS + ("num_envs", "max_episode_steps")
COLLISION_ARGS = ("split", "obs_mode", "resolution", "render_mode", "render_resolution", "max_impulse",
                  "max_speed", "damping", "success_bonus", "approach_weight", "max_events")


def _args(env_id: str, vec: bool = False) -> tuple[str, ...]:
    if env_id == COLLISION:
        return COLLISION_ARGS + ("bogus_argument",)
    return (VEC_ARGS if vec else PROCGEN_ARGS) + ("bogus_argument",)


def assert_one_line(err: BaseException) -> None:
    msg = str(err)
    assert msg and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert len(msg) < 400, msg


# values a user might pass: right and wrong types, edge and absurd sizes, numpy scalars
VALUES = st.one_of(
    st.integers(-10, 70),
    st.sampled_from([-1, -(2**63), 2**31 - 2, 2**31 - 1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.5, -0.5, math.nan, math.inf, -math.inf, 1e-300, 1e300, 2.0, 64.0]),
    st.text(max_size=6),
    st.sampled_from(["5", "no", "yes", "easy", "hard", "medium", "train", "id", "ood", "pixels", "state",
                     "rgb_array", "human", "vis_train", "vis_test", "maze", "dodge_v1", "pong", ""]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(-5, 70).map(np.int64),
    st.integers(0, 70).map(np.uint8),
    st.booleans().map(np.bool_),
    st.floats(-100, 100).map(np.float32),
    st.complex_numbers(max_magnitude=5),
    st.just(b"5"),
    st.just(object()),
)


def kwargs_strategy(env_id: str, vec: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(_args(env_id, vec)), VALUES, min_size=1, max_size=3)


def _exercise(env: Any, vec: bool) -> None:
    """reset + two steps with valid actions; must not raise."""
    try:
        env.reset(seed=0)
        for _ in range(2):
            env.step(env.action_space.sample())
        if getattr(env, "render_mode", None) == "rgb_array":
            env.render()
    finally:
        env.close()


def check_construct(env_id: str, kwargs: dict[str, Any], vec: bool = False) -> None:
    """Either one-line SimlabError (ConfigError) at construction, or a working env; nothing else."""
    try:
        if vec:
            num_envs = kwargs.pop("num_envs", 2)
            env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                                     **kwargs)
        else:
            env = gymnasium.make(env_id, **kwargs)
    except SimlabError as e:
        assert isinstance(e, ConfigError), type(e)
        assert_one_line(e)
        return
    _exercise(env, vec)


SMALL = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
LARGE = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("env_id", ENV_IDS)
@SMALL
@given(data=st.data())
def test_random_constructor_kwargs(env_id: str, data: st.DataObject) -> None:
    check_construct(env_id, data.draw(kwargs_strategy(env_id)))


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
@SMALL
@given(data=st.data())
def test_random_vec_constructor_kwargs(env_id: str, data: st.DataObject) -> None:
    check_construct(env_id, data.draw(kwargs_strategy(env_id, vec=True)), vec=True)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
@LARGE
@given(data=st.data())
def test_random_constructor_kwargs_slow(env_id: str, data: st.DataObject) -> None:
    check_construct(env_id, data.draw(kwargs_strategy(env_id)))


@pytest.mark.slow
@pytest.mark.parametrize("env_id", PROCGEN_IDS)
@LARGE
@given(data=st.data())
def test_random_vec_constructor_kwargs_slow(env_id: str, data: st.DataObject) -> None:
    check_construct(env_id, data.draw(kwargs_strategy(env_id, vec=True)), vec=True)


# ---- reset(seed, options) and step(action), random --------------------------------------------------

def check_reset(env: Any, seed: Any, options: Any) -> None:
    try:
        env.reset(seed=seed, options=options)
    except SimlabError as e:
        assert isinstance(e, ConfigError), type(e)
        assert_one_line(e)
        return
    env.step(env.action_space.sample())


def check_step(env: Any, action: Any) -> None:
    try:
        env.step(action)
    except SimlabError as e:
        assert isinstance(e, ActionError), type(e)
        assert_one_line(e)


OPTION_VALUES = st.one_of(st.none(), VALUES, st.dictionaries(
    st.sampled_from(["level_seed", "level_seeds", "state", "bogus", "reset_mask"]), VALUES, max_size=2))


@pytest.mark.parametrize("env_id", ENV_IDS)
@SMALL
@given(data=st.data())
def test_random_reset_and_actions(env_id: str, data: st.DataObject) -> None:
    env = gymnasium.make(env_id)
    check_reset(env, data.draw(VALUES, "seed"), data.draw(OPTION_VALUES, "options"))
    env.reset(seed=1)
    check_step(env, data.draw(st.one_of(VALUES, st.lists(VALUES, max_size=3)), "action"))


@pytest.mark.parametrize("env_id", PROCGEN_IDS[:1] + PROCGEN_IDS[-1:])
@SMALL
@given(data=st.data())
def test_random_vec_reset_and_actions(env_id: str, data: st.DataObject) -> None:
    env = gymnasium.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
    seed = data.draw(st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=2)), "seed")
    check_reset(env, seed, data.draw(OPTION_VALUES, "options"))
    env.reset(seed=1)
    check_step(env, data.draw(st.one_of(VALUES, st.lists(VALUES, max_size=3)), "actions"))


# ---- the examples of issue 9 --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, needle", [
    ({"num_levels": "5"}, "num_levels"),
    ({"num_levels": 1.5}, "num_levels"),
    ({"num_levels": -1}, "num_levels"),
    ({"num_levels": 2**40}, "num_levels"),
    ({"start_level": -3}, "start_level"),
    ({"start_level": 2**31}, "start_level"),
    ({"rand_seed": -1}, "rand_seed"),
    ({"rand_seed": "0"}, "rand_seed"),
    ({"rand_seed": 2**64}, "rand_seed"),
    ({"use_backgrounds": "no"}, "use_backgrounds"),
    ({"use_backgrounds": 2}, "use_backgrounds"),
    ({"use_backgrounds": None}, "use_backgrounds"),
    ({"distribution_mode": "medium"}, "distribution_mode"),
    ({"distribution_mode": ["easy"]}, "distribution_mode"),
    ({"visual_split": "train"}, "visual_split"),
    ({"render_mode": "rgb"}, "render_mode"),
    ({"render_mode": 5}, "render_mode"),
    ({"game": "pong"}, "game"),
    ({"game": ["maze"]}, "game"),
    ({"options": "easy"}, "options"),
    ({"num_level": 5}, "num_level"),
])
def test_procgen_bad_kwargs(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        gymnasium.make("simlab/Maze-v0", **kwargs)
    assert_one_line(e.value)
    assert str(kwargs[next(iter(kwargs))])[:4] in str(e.value) or needle == "num_level"


@pytest.mark.parametrize("kwargs, needle", [
    ({"num_envs": 0}, "num_envs"),
    ({"num_envs": "4"}, "num_envs"),
    ({"num_envs": 100_000}, "num_envs"),
    ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps"),
    ({"num_envs": 2, "max_episode_steps": 2.5}, "max_episode_steps"),
    ({"num_envs": 2, "num_levels": "5"}, "num_levels"),
])
def test_procgen_vec_bad_kwargs(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        gymnasium.make_vec("simlab/CoinRun-v0", vectorization_mode="vector_entry_point", **kwargs)
    assert_one_line(e.value)


@pytest.mark.parametrize("kwargs, needle", [
    ({"split": ["train"]}, "split"),
    ({"split": "TRAIN"}, "split"),
    ({"resolution": 64.0}, "resolution"),
    ({"resolution": 10**9}, "resolution"),
    ({"resolution": "64"}, "resolution"),
    ({"render_resolution": True}, "render_resolution"),
    ({"max_impulse": math.nan}, "max_impulse"),
    ({"max_impulse": "2"}, "max_impulse"),
    ({"max_speed": math.inf}, "max_speed"),
    ({"max_speed": 0}, "max_speed"),
    ({"damping": -math.inf}, "damping"),
    ({"success_bonus": math.nan}, "success_bonus"),
    ({"approach_weight": None}, "approach_weight"),
    ({"max_events": 1.5}, "max_events"),
    ({"max_events": "64"}, "max_events"),
    ({"max_events": 0}, "max_events"),
    ({"obs_mode": None}, "obs_mode"),
    ({"colour": "red"}, "colour"),
])
def test_collision_bad_kwargs(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as e:
        gymnasium.make(COLLISION, **kwargs)
    assert_one_line(e.value)


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
def test_valid_procgen_values_still_accepted(env_id: str) -> None:
    # num_levels=0 means unlimited; numpy scalars stand for ints and bools; 0/1 for bools
    for kw in ({"num_levels": 0}, {"num_levels": np.int64(3), "start_level": np.uint16(7)},
               {"use_backgrounds": np.bool_(False)}, {"use_backgrounds": 0}, {"rand_seed": np.int32(5)},
               {"distribution_mode": np.str_("hard")}, {"visual_split": "vis_test"}, {"visual_split": None},
               {"start_level": 2**31 - 2}, {"num_levels": 2**31 - 1}, {"rand_seed": 2**63 - 1}):
        env = gymnasium.make(env_id, **kw)
        for k, v in kw.items():  # normalised to plain Python values
            got = getattr(env.unwrapped.opts, k)
            assert got == v and (v is None or type(got) in (int, bool, str)), (k, got)
        obs, _info = env.reset()
        assert obs.shape == (64, 64, 3)
        env.step(0)
    opts = gymnasium.make(env_id, use_backgrounds=0).unwrapped.opts
    assert opts.use_backgrounds is False
    v = gymnasium.make_vec(env_id, num_envs=np.int64(3), vectorization_mode="vector_entry_point",
                           max_episode_steps=np.int64(5), num_levels=np.int64(10))
    v.reset(seed=0)
    for _ in range(5):
        _, _, term, trunc, _ = v.step(np.zeros(3, np.int64))
    assert (term | trunc).all()  # max_episode_steps=5 took effect


def test_valid_collision_values_still_accepted() -> None:
    for kw in ({"resolution": np.int64(32), "render_resolution": np.int32(16), "render_mode": "rgb_array"},
               {"max_impulse": np.float32(1.0), "max_speed": 3, "damping": 0, "success_bonus": -1.0,
                "approach_weight": 0.0, "max_events": np.int64(4)},
               {"split": np.str_("ood"), "obs_mode": "state"}):
        env = gymnasium.make(COLLISION, **kw)
        env.reset(seed=np.int64(0))
        env.step(np.zeros(2, np.float32))
        if kw.get("render_mode"):
            assert env.render().shape == (16, 16, 3)


# ---- reset seeds and options ------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ENV_IDS)
def test_numpy_seeds_single_env(env_id: str) -> None:
    env = gymnasium.make(env_id)
    a, _ = env.reset(seed=np.int64(3))
    b, _ = env.reset(seed=3)
    c, _ = env.reset(seed=np.uint32(3))
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
def test_numpy_seeds_batched_env(env_id: str) -> None:
    v = gymnasium.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    a, ia = v.reset(seed=np.int64(3))  # was an IndexError
    b, ib = v.reset(seed=3)
    c, _ic = v.reset(seed=[np.int64(3), 4, 5])
    d, _ = v.reset(seed=np.array([3, 4, 5]))
    assert np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(a, d)
    assert np.array_equal(ia["level_seed"], ib["level_seed"])
    _obs, info = v.reset(options={"level_seeds": np.array([1, 2, 3], np.int32)})
    assert info["level_seed"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("seed, options, needle", [
    (-1, None, "seed"),
    (np.int64(-1), None, "seed"),
    (1.5, None, "seed"),
    ("3", None, "seed"),
    (True, None, "seed"),
    (2**64, None, "seed"),
    (None, {"level_seed": -5}, "level_seed"),
    (None, {"level_seed": "5"}, "level_seed"),
    (None, {"level_seed": 2.0}, "level_seed"),
    (None, {"level_seed": 2**31}, "level_seed"),
    (None, {"level_seeds": [1]}, "level_seeds"),
    (None, {"bogus": 1}, "bogus"),
    (None, "level_seed=3", "options"),
])
def test_bad_reset_single_procgen(seed: Any, options: Any, needle: str) -> None:
    env = gymnasium.make("simlab/Maze-v0")
    with pytest.raises(ConfigError, match=needle) as e:
        env.reset(seed=seed, options=options)
    assert_one_line(e.value)
    _obs, info = env.reset(seed=0, options={"level_seed": np.int64(5)})
    assert info["level_seed"] == 5


@pytest.mark.parametrize("seed, options, needle", [
    (-1, None, "seed"),
    ([0, -1], None, r"seed\[1\]"),
    ([0], None, "seed"),
    ([[0, 1]], None, "seed"),
    ("0", None, "seed"),
    (None, {"level_seeds": [-5, 1]}, "level_seeds"),
    (None, {"level_seeds": [1.5, 1]}, "level_seeds"),
    (None, {"level_seeds": [1, 2, 3]}, "level_seeds"),
    (None, {"level_seeds": ["a", "b"]}, "level_seeds"),
    (None, {"level_seed": 3}, "level_seed"),
    (None, {"reset_mask": [True, False]}, "reset_mask"),
    (None, [1, 2], "options"),
])
def test_bad_reset_batched_procgen(seed: Any, options: Any, needle: str) -> None:
    v = gymnasium.make_vec("simlab/Dodge-v1", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ConfigError, match=needle) as e:
        v.reset(seed=seed, options=options)
    assert_one_line(e.value)


@pytest.mark.parametrize("seed, options, needle", [
    (-1, None, "seed"),
    (None, {"bogus": 1}, "bogus"),
    (None, {"state": "x"}, "state"),
    (None, {"state": {"radii": ["1", "1"]}}, "radii"),
    (None, {"state": {"radii": [True, True]}}, "radii"),
    (None, {"state": {"radii": [1, [2]]}}, "radii"),
])
def test_bad_reset_collision(seed: Any, options: Any, needle: str) -> None:
    env = gymnasium.make(COLLISION)
    with pytest.raises(ConfigError, match=needle) as e:
        env.reset(seed=seed, options=options)
    assert_one_line(e.value)


# ---- step before reset ------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_raises(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array")
    action = env.action_space.sample()
    with pytest.raises(ResetNeededError) as e:
        env.step(action)
    assert_one_line(e.value)
    assert isinstance(e.value, SimlabError) and isinstance(e.value, ResetNeeded)
    with pytest.raises(ResetNeededError):
        env.render()
    env.reset(seed=0)
    env.step(action)
    assert env.render() is not None
    raw = env.unwrapped.__class__(**env.spec.kwargs)  # the class itself, no wrappers
    with pytest.raises(ResetNeededError):
        raw.step(action)


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
def test_batched_step_before_reset_raises(env_id: str) -> None:
    v = gymnasium.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point", render_mode="rgb_array")
    with pytest.raises(ResetNeededError) as e:  # was: reward 10 and terminated=True
        v.step(np.zeros(4, np.int64))
    assert_one_line(e.value)
    with pytest.raises(ResetNeededError):
        v.render()
    v.reset(seed=0)
    v.step(np.zeros(4, np.int64))


def test_cli_style_handling_of_reset_needed() -> None:
    # the CLI maps every SimlabError to one line and exit 2
    v = ProcgenVecEnv("maze", 2)
    try:
        v.step([0, 0])
    except SimlabError as e:
        assert f"error: {e}".count("\n") == 0
    else:
        raise AssertionError("step before reset did not raise")


# ---- actions, uniform across envs -------------------------------------------------------------------

BAD_DISCRETE = [15, -1, 1.5, math.nan, "3", None, [0, 1], [[0]], True, 2**70, np.uint64(2**64 - 1), [1, [2]], 1e300]
BAD_BOX = [[math.nan, 0.0], [0.0, math.inf], [0.0], [[0.0, 0.0]], [1.5, 0.0], ["0.5", "0.5"], [True, False],
           None, "x", [1, [2]], [1j, 0]]


@pytest.mark.parametrize("env_id", PROCGEN_IDS)
@pytest.mark.parametrize("action", BAD_DISCRETE, ids=repr)
def test_bad_discrete_actions(env_id: str, action: Any) -> None:
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ActionError) as e:
        env.step(action)
    assert_one_line(e.value)


BAD_BATCHED = [[15, 0], [-1, 0], [1.5, 0], [math.nan, 0], ["3", "0"], None, [[0], [1]], [True, False],
               [2**70, 0], [1, [2]], np.zeros(3, np.int64), 3, np.array([0, 2**64 - 1], np.uint64), [1j, 0]]


@pytest.mark.parametrize("action", BAD_BATCHED, ids=repr)
def test_bad_batched_actions(action: Any) -> None:
    v = ProcgenVecEnv("bigfish", 2)
    v.reset(seed=0)
    with pytest.raises(ActionError) as e:
        v.step(action)
    assert_one_line(e.value)


@pytest.mark.parametrize("action", BAD_BOX, ids=repr)
def test_bad_box_actions(action: Any) -> None:
    env = gymnasium.make(COLLISION)
    env.reset(seed=0)
    with pytest.raises(ActionError) as e:
        env.step(action)
    assert_one_line(e.value)


def test_good_actions_of_any_integer_type() -> None:
    env = gymnasium.make("simlab/Maze-v0")
    env.reset(seed=0)
    for a in (0, np.int64(14), np.uint8(3), np.array(2), np.array([4]), 5.0):
        env.step(a)


# ---- the validation helpers ---------------------------------------------------------------------------

def test_check_int() -> None:
    assert check_int("n", np.int64(3), 0, 5) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", None, allow_none=True) is None
    for bad in ("3", 3.0, 1.5, True, np.bool_(True), None, [3], math.nan, -1, 6, 2**80):
        with pytest.raises(ConfigError, match="^n must be an integer") as e:
            check_int("n", bad, 0, 5)
        assert_one_line(e.value)


def test_check_float() -> None:
    assert check_float("x", 1) == 1.0 and type(check_float("x", np.float32(0.5))) is float
    assert check_float("x", math.inf, finite=False) == math.inf
    for bad, kw in ((math.nan, {}), (math.inf, {}), (-math.inf, {}), ("1", {}), (True, {}), (None, {}),
                    (1j, {}), (0.0, {"lo": 0.0, "lo_open": True}), (2.0, {"hi": 1.0}), (10**400, {}),
                    (math.nan, {"finite": False})):
        with pytest.raises(ConfigError, match="^x must be") as e:
            check_float("x", bad, **kw)
        assert_one_line(e.value)


def test_check_bool_choice_seed_options() -> None:
    assert check_bool("b", np.bool_(True)) is True and check_bool("b", 0) is False
    for bad in ("no", "False", 2, None, 0.0, [True]):
        with pytest.raises(ConfigError, match="^b must be True or False"):
            check_bool("b", bad)
    assert check_choice("c", np.str_("a"), ("a", "b")) == "a"
    assert check_choice("c", None, ("a",), allow_none=True) is None
    for bad in ("A", 1, None, ["a"], {"a": 1}):
        with pytest.raises(ConfigError, match="^unknown c"):
            check_choice("c", bad, ("a", "b"))
    assert check_seed("s", np.uint64(2**63 - 1)) == 2**63 - 1 and check_seed("s", None) is None
    for bad in (-1, 2**63, 1.0, "1", True):
        with pytest.raises(ConfigError, match="^s must be"):
            check_seed("s", bad)
    assert check_options("o", None, ("k",)) == {} and check_options("o", {"k": 1}, ("k",)) == {"k": 1}
    for bad in ({"x": 1}, [("k", 1)], "k"):
        with pytest.raises(ConfigError):
            check_options("o", bad, ("k",))


def test_one_line_for_multiline_values() -> None:
    with pytest.raises(ConfigError) as e:
        check_int("n", np.zeros((5, 5)))
    assert_one_line(e.value)
    with pytest.raises(ConfigError) as e:
        check_choice("c", "a\nb", ("x",))
    assert_one_line(e.value)


def test_procgen_options_direct() -> None:
    with pytest.raises(ConfigError, match="use_backgrounds"):
        ProcgenOptions(use_backgrounds="no")
    o = ProcgenOptions(num_levels=np.int64(5), rand_seed=np.uint32(2))
    assert type(o.num_levels) is int and type(o.rand_seed) is int
    with pytest.raises(ConfigError, match="options"):
        ProcgenEnv("maze", options={"num_levels": 5})
