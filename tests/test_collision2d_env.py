"""Tests of the Collision2D control env (simlab/Collision2D-v0) and its event-driven physics."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest

import simlab  # noqa: F401  (registers the env ids)
from simlab.envs.collision2d.control import (
    Collision2DEnv,
    advance_balls,
    ball_contact_time,
    damped_duration,
    kinetic_energy_of,
    wall_contact_times,
)
from simlab.envs.collision2d.parse import parse_balls
from simlab.envs.collision2d.physics import FRAME_DT, WORLD_SIZE, masses_from_radii
from simlab.envs.collision2d.scenarios import ID_R, OOD_R
from simlab.errors import ActionError, ConfigError
from simlab.splits import in_union

ENV_ID = "simlab/Collision2D-v0"
W = WORLD_SIZE


def make(**kwargs: object) -> gymnasium.Env:
    return gymnasium.make(ENV_ID, **kwargs)


def state(pos: list, vel: list, radii: list, target: list | None = None) -> dict:
    s = {"pos": pos, "vel": vel, "radii": radii}
    s["target"] = target if target is not None else [1.2, 1.2, 1.0]
    return {"state": s}


def momentum_of(vel: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return (masses_from_radii(radii)[:, None] * vel).sum(0)


# ---- API checkers ---------------------------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_gymnasium_check_env(obs_mode: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = make(obs_mode=obs_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [str(w.message) for w in caught]


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_sb3_check_env(obs_mode: str) -> None:
    env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    env = make(obs_mode=obs_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env_checker.check_env(env, warn=True)
    assert not [str(w.message) for w in caught]


def test_spaces_and_obs_layout() -> None:
    env = make()
    assert env.action_space == gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    env32 = make(resolution=32)
    assert env32.reset(seed=0)[0].shape == (32, 32, 3)

    senv = make(obs_mode="state")
    obs, _ = senv.reset(seed=3)
    assert obs.shape == (13,) and obs.dtype == np.float32
    s = senv.unwrapped.get_state()
    ms = senv.unwrapped.max_speed
    expect = np.concatenate([s["pos"][0] / W, s["vel"][0] / ms, s["pos"][1] / W, s["vel"][1] / ms,
                             s["radii"] / W, s["target"] / W]).astype(np.float32)
    np.testing.assert_array_equal(obs, expect)
    obs, *_ = senv.step(np.array([1.0, 0.0], np.float32))
    s = senv.unwrapped.get_state()
    assert obs[2] == np.float32(s["vel"][0, 0] / ms) and obs[2] > 0


def test_render_frame_parses_to_ball_positions() -> None:
    env = make(render_mode="rgb_array")
    env.reset(seed=1)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    s = env.unwrapped.get_state()
    parsed = parse_balls(frame[None, None], 2)
    np.testing.assert_allclose(parsed["center"][0, 0], s["pos"], atol=0.05)
    np.testing.assert_allclose(parsed["radius"][0, 0], s["radii"], atol=0.05)
    # The green target ring is drawn and is neither red nor blue for the parser.
    tx, ty, tr = s["target"]
    col = int((tx + 0.8 * tr) / W * 256)
    row = int((W - ty) / W * 256)
    if np.linalg.norm(s["pos"] - [tx + 0.8 * tr, ty], axis=1).min() > 2.1:
        assert tuple(frame[row, col]) == (0, 160, 0)
    plain = make().unwrapped
    plain.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert plain.render() is None


# ---- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_determinism_same_seed_same_actions(obs_mode: str) -> None:
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (60, 2)).astype(np.float32)
    runs = []
    for _ in range(2):
        env = make(obs_mode=obs_mode)
        obs, _ = env.reset(seed=42)
        seq = [obs]
        for a in actions:
            obs, r, term, trunc, _ = env.step(a)
            seq.append(obs)
            seq.append(np.array([r]))
            if term or trunc:
                break
        runs.append(seq)
    assert len(runs[0]) == len(runs[1])
    for x, y in zip(*runs):
        assert x.tobytes() == y.tobytes()
    other = make(obs_mode=obs_mode).reset(seed=43)[0]
    assert other.tobytes() != runs[0][0].tobytes()


# ---- exact physics ---------------------------------------------------------------------------


def test_energy_conserved_zero_actions_full_episode() -> None:
    env = make(obs_mode="state").unwrapped
    radii = np.array([0.9, 1.3])
    env.reset(seed=0, options=state([[3.0, 3.0], [7.0, 6.0]], [[5.3, 2.1], [-3.7, 4.4]], radii.tolist(),
                                     [9.0, 1.0, 0.5]))
    e0 = kinetic_energy_of(env.get_state()["vel"], radii)
    balls = walls = 0
    for _ in range(200):  # ignore termination: the physics keeps running
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
        balls += info["ball_contacts"]
        walls += info["wall_contacts"]
        s = env.get_state()
        p, r = s["pos"], s["radii"]
        assert (p >= r[:, None] - 1e-9).all() and (p <= W - r[:, None] + 1e-9).all()
        assert np.linalg.norm(p[1] - p[0]) >= r.sum() - 1e-9
    e1 = kinetic_energy_of(env.get_state()["vel"], radii)
    assert balls >= 3 and walls >= 20
    assert abs(e1 - e0) / e0 < 1e-9


def test_momentum_conserved_in_ball_contact() -> None:
    pos = np.array([[4.0, 5.0], [5.9, 5.4]])
    vel = np.array([[3.0, 0.5], [-1.0, -0.2]])
    radii = np.array([0.8, 1.2])
    _, v, nb, nw = advance_balls(pos, vel, radii, FRAME_DT)
    assert (nb, nw) == (1, 0)
    m0, m1 = momentum_of(vel, radii), momentum_of(v, radii)
    np.testing.assert_allclose(m1, m0, rtol=0, atol=1e-12)
    assert abs(kinetic_energy_of(v, radii) - kinetic_energy_of(vel, radii)) < 1e-12
    assert not np.allclose(v, vel)  # it did bounce
    np.testing.assert_array_equal(pos, [[4.0, 5.0], [5.9, 5.4]])  # inputs untouched


@pytest.mark.parametrize("axis,sign", [(0, 1), (0, -1), (1, 1), (1, -1)])
def test_wall_bounce_reverses_normal_velocity_exactly(axis: int, sign: int) -> None:
    r = 0.6
    p_red = np.array([5.0, 5.0])
    p_red[axis] = (W - r - 0.2) if sign > 0 else (r + 0.2)
    v_red = np.array([0.7, -0.3])
    v_red[axis] = 4.0 * sign
    env = make(obs_mode="state").unwrapped
    far = [1.5, 8.5] if axis == 0 and sign > 0 else [8.5, 8.5]
    if axis == 1 and sign > 0:
        far = [8.5, 1.5]
    env.reset(options=state([p_red.tolist(), far], [v_red.tolist(), [0, 0]], [r, 0.7], [1.1, 1.1, 0.5]))
    _, _, _, _, info = env.step(np.zeros(2))
    v = env.get_state()["vel"][0]
    expect = v_red.copy()
    expect[axis] = -expect[axis]
    np.testing.assert_array_equal(v, expect)
    assert info["wall_contacts"] == 1 and info["ball_contacts"] == 0
    # Position: 0.05 s to the wall, then 0.05 s back.
    p = env.get_state()["pos"][0]
    wall_pos = (W - r) if sign > 0 else r
    assert p[axis] == pytest.approx(wall_pos - sign * 4.0 * 0.05, abs=1e-12)
    assert p[1 - axis] == pytest.approx(p_red[1 - axis] + v_red[1 - axis] * FRAME_DT, abs=1e-12)


@pytest.mark.parametrize("radii", [(1.0, 1.0), (0.7, 1.5)])
def test_slow_collision_still_bounces(radii: tuple[float, float]) -> None:
    r = np.array(radii)
    pos = np.array([[3.0, 5.0], [3.0 + r.sum() + 0.0005, 5.0]])  # contact after 0.05 s
    vel = np.array([[0.01, 0.0], [0.0, 0.0]])
    _, v, nb, nw = advance_balls(pos, vel, r, FRAME_DT)
    assert nb == 1 and nw == 0
    # Head-on elastic: relative velocity reversed, momentum kept.
    np.testing.assert_allclose(v[1] - v[0], -(vel[1] - vel[0]), atol=1e-15)
    np.testing.assert_allclose(momentum_of(v, r), momentum_of(vel, r), atol=1e-15)
    assert v[1, 0] > 0
    if radii[0] == radii[1]:
        np.testing.assert_allclose(v, [[0.0, 0.0], [0.01, 0.0]], atol=1e-15)


def test_wall_contact_times_brute_force() -> None:
    rng = np.random.default_rng(1)
    ts = np.linspace(0.0, 4.0, 400_001)  # step 1e-5 s
    for _ in range(40):
        r = rng.uniform(0.3, 2.0, 2)
        pos = r[:, None] + rng.random((2, 2)) * (W - 2 * r[:, None])
        vel = rng.uniform(-6, 6, (2, 2))
        vel[0, 1] = 0.0 if rng.random() < 0.2 else vel[0, 1]
        got = wall_contact_times(pos, vel, r)
        assert got.shape == (2, 2)
        for k in range(2):
            for a in range(2):
                x = pos[k, a] + vel[k, a] * ts
                touch = (x - r[k] <= 0.0) | (x + r[k] >= W)
                brute = ts[np.argmax(touch)] if touch.any() else np.inf
                if np.isinf(brute):
                    assert got[k, a] > 4.0
                else:
                    assert abs(got[k, a] - brute) <= 1.01e-5
    # Exactly on the wall, moving into it: 0; moving away: the far wall.
    t = wall_contact_times([[W - 1.0, 5.0]], [[2.0, 0.0]], [1.0])
    assert t[0, 0] == 0.0 and t[0, 1] == np.inf
    t = wall_contact_times([[W - 1.0, 5.0]], [[-2.0, 0.0]], [1.0])
    assert t[0, 0] == pytest.approx((W - 2.0) / 2.0)


def test_ball_contact_time_brute_force() -> None:
    rng = np.random.default_rng(2)
    ts = np.linspace(0.0, 3.0, 300_001)
    hits = 0
    for _ in range(60):
        r = rng.uniform(0.3, 1.5, 2)
        pos = rng.uniform(2, 8, (2, 2))
        if np.linalg.norm(pos[1] - pos[0]) < r.sum():
            continue
        # Aim roughly at each other half of the time so that hits happen.
        vel = rng.uniform(-3, 3, (2, 2))
        if rng.random() < 0.5:
            vel[0] = (pos[1] - pos[0]) * rng.uniform(0.3, 1.5) + rng.normal(0, 0.3, 2)
        got = ball_contact_time(pos, vel, r)
        d = np.linalg.norm((pos[1] - pos[0])[None] + (vel[1] - vel[0])[None] * ts[:, None], axis=1)
        touch = d <= r.sum()
        if touch.any():
            hits += 1
            assert abs(got - ts[np.argmax(touch)]) <= 1.01e-5
        else:
            assert got > 3.0
    assert hits >= 10
    # Moving apart / at rest: never.
    assert ball_contact_time([[0, 0], [3, 0]], [[-1, 0], [1, 0]], [1, 1]) == np.inf
    assert ball_contact_time([[0, 0], [3, 0]], [[0, 0], [0, 0]], [1, 1]) == np.inf


def test_advance_matches_fine_fixed_step_reference() -> None:
    """The event loop agrees with a brute-force tiny-step simulation (error ~ step x speed)."""
    pos = np.array([[8.8, 5.0], [6.5, 5.3]])
    vel = np.array([[5.0, 1.0], [-3.0, 0.0]])
    r = np.array([1.0, 0.8])
    m = masses_from_radii(r)
    duration = 0.6
    p_ev, v_ev, nb, nw = advance_balls(pos, vel, r, duration)
    assert nb >= 1 and nw >= 1
    h = 1e-5
    p, v = pos.copy(), vel.copy()
    for _ in range(round(duration / h)):
        p = p + v * h
        for k in range(2):
            for a in range(2):
                if (p[k, a] < r[k] and v[k, a] < 0) or (p[k, a] > W - r[k] and v[k, a] > 0):
                    v[k, a] = -v[k, a]
        n = p[1] - p[0]
        dist = math.hypot(*n)
        n = n / dist
        vrel = float((v[0] - v[1]) @ n)
        if dist < r.sum() and vrel > 0:
            j = 2 * vrel / m.sum()
            v = np.stack([v[0] - j * m[1] * n, v[1] + j * m[0] * n])
    np.testing.assert_allclose(p_ev, p, atol=5e-4)
    np.testing.assert_allclose(v_ev, v, atol=5e-3)


def test_damping_closed_form() -> None:
    c = 0.7
    pos = np.array([[3.0, 5.0], [7.0, 2.0]])
    vel = np.array([[1.0, 0.5], [0.0, 0.0]])
    r = np.array([0.5, 0.5])
    p, v, nb, nw = advance_balls(pos, vel, r, FRAME_DT, damping=c)
    assert (nb, nw) == (0, 0)
    np.testing.assert_allclose(v, vel * math.exp(-c * FRAME_DT), rtol=1e-14)
    np.testing.assert_allclose(p, pos + vel * (1 - math.exp(-c * FRAME_DT)) / c, rtol=1e-14)
    assert damped_duration(FRAME_DT, 0.0) == FRAME_DT
    env = make(obs_mode="state", damping=c).unwrapped
    env.reset(options=state([[3.0, 5.0], [7.0, 2.0]], vel.tolist(), r.tolist()))
    e0 = kinetic_energy_of(vel, r)
    env.step(np.zeros(2))
    assert kinetic_energy_of(env.get_state()["vel"], r) == pytest.approx(e0 * math.exp(-2 * c * FRAME_DT))


def test_impulse_and_speed_cap() -> None:
    env = make(obs_mode="state").unwrapped
    r1 = 1.2
    env.reset(options=state([[5.0, 5.0], [8.0, 8.0]], [[0, 0], [0, 0]], [r1, 0.8]))
    env.step(np.array([0.5, -1.0]))
    v = env.get_state()["vel"][0]
    np.testing.assert_allclose(v, np.array([0.5, -1.0]) * env.max_impulse / r1**2, rtol=1e-12)
    light = make(obs_mode="state", max_speed=3.0).unwrapped
    light.reset(options=state([[5.0, 5.0], [8.0, 8.0]], [[0, 0], [0, 0]], [0.3, 0.8]))
    for _ in range(3):
        light.step(np.array([1.0, 1.0]))
        assert np.linalg.norm(light.get_state()["vel"][0]) <= 3.0 + 1e-12


# ---- splits ---------------------------------------------------------------------------------


def test_splits_radii_ranges() -> None:
    assert {"train", "id", "ood"} <= set(Collision2DEnv.splits)
    assert Collision2DEnv.splits["ood"].role == "ood_test"
    for split, ivs in (("train", (ID_R, ID_R)), ("id", (ID_R, ID_R)), ("ood", (OOD_R, OOD_R)),
                       ("ood_r1", (OOD_R, ID_R)), ("ood_r2", (ID_R, OOD_R))):
        env = make(split=split, obs_mode="state").unwrapped
        radii = []
        for seed in range(25):
            env.reset(seed=seed)
            radii.append(env.get_state()["radii"])
        radii = np.array(radii)
        assert in_union(radii[:, 0], ivs[0]).all() and in_union(radii[:, 1], ivs[1]).all(), split
        assert env.split.contains({"r1": radii[:, 0], "r2": radii[:, 1],
                                   "target_r": np.full(25, 1.2)}).all()


def test_start_state_valid_and_at_rest() -> None:
    env = make(split="ood", obs_mode="state").unwrapped
    for s in range(30):
        _, info = env.reset(seed=s)
        st = env.get_state()
        p, r, t = st["pos"], st["radii"], st["target"]
        assert not info["is_success"]
        assert np.linalg.norm(p[1] - p[0]) >= r.sum()
        assert (np.linalg.norm(p - t[:2], axis=1) >= t[2] + r).all()
        assert (p >= r[:, None]).all() and (p <= W - r[:, None]).all()
        assert (t[:2] >= t[2]).all() and (t[:2] <= W - t[2]).all()
        np.testing.assert_array_equal(st["vel"], 0.0)


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action,match", [
    ([np.nan, 0.0], "finite"),
    ([0.0, np.inf], "finite"),
    ([0.0, 0.0, 0.0], "shape"),
    ([[0.0, 0.0]], "shape"),
    (0.5, "shape"),
    ([1.5, 0.0], r"\[-1, 1\]"),
    ([0.0, -1.01], r"\[-1, 1\]"),
    (["a", "b"], "numeric"),
])
def test_bad_actions_raise(action: object, match: str) -> None:
    env = make(obs_mode="state")
    env.reset(seed=0)
    with pytest.raises(ActionError, match=match):
        env.step(action)


def test_action_tolerance_accepted() -> None:
    env = make(obs_mode="state")
    env.reset(seed=0)
    env.step(np.array([1.0 + 1e-9, -1.0 - 1e-9]))
    env.step(np.array([1.0, -1.0], np.float32))


@pytest.mark.parametrize("kwargs,match", [
    ({"split": "nope"}, "train.*id"),
    ({"resolution": 15}, "resolution"),
    ({"render_resolution": 8}, "render_resolution"),
    ({"obs_mode": "rgb"}, "obs_mode"),
    ({"max_impulse": 0.0}, "max_impulse"),
    ({"damping": -1.0}, "damping"),
])
def test_bad_config_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Collision2DEnv(**kwargs)


def test_bad_reset_state_raises() -> None:
    env = Collision2DEnv(obs_mode="state")
    with pytest.raises(ConfigError, match="overlap"):
        env.reset(options=state([[5.0, 5.0], [5.5, 5.0]], [[0, 0], [0, 0]], [1.0, 1.0]))
    with pytest.raises(ConfigError, match="inside"):
        env.reset(options=state([[0.5, 5.0], [8.0, 5.0]], [[0, 0], [0, 0]], [1.0, 1.0]))
    with pytest.raises(ConfigError, match="unknown keys"):
        env.reset(options={"state": {"position": [[1, 1], [5, 5]]}})


# ---- episodes -------------------------------------------------------------------------------


def test_random_policy_episode_truncates_at_200() -> None:
    env = make(obs_mode="state")
    env.action_space.seed(0)
    for seed in range(20):
        env.reset(seed=seed)
        for t in range(1, 201):
            _, reward, term, trunc, info = env.step(env.action_space.sample())
            assert math.isfinite(reward)
            if term or trunc:
                break
        if trunc:
            assert t == 200 and not term and not info["is_success"]
            return
        assert term and info["is_success"]
    pytest.fail("no random episode reached truncation in 20 tries")


def test_hand_made_push_into_target_succeeds() -> None:
    env = make(obs_mode="state")
    env.reset(options=state([[2.0, 5.0], [4.5, 5.0]], [[0, 0], [0, 0]], [1.0, 1.0], [8.0, 5.0, 1.2]))
    total = 0.0
    for t in range(1, 41):
        _, reward, term, trunc, info = env.step(np.array([1.0, 0.0], np.float32))
        total += reward
        if term:
            break
    assert term and not trunc and info["is_success"]
    assert reward >= 10.0
    assert info["dist_blue_target"] <= 1.2
    # Shaping telescopes: total = phi(end) - phi(start) + bonus.
    phi0 = -(3.5 + 0.1 * 2.5)
    phi1 = -(info["dist_blue_target"] + 0.1 * info["dist_red_blue"])
    assert total == pytest.approx(phi1 - phi0 + 10.0)


def _scripted(env: Collision2DEnv) -> np.ndarray:
    """Move red behind blue (as seen from the target), then push toward the target."""
    s = env.get_state()
    pr, pb = s["pos"]
    vr = s["vel"][0]
    r1, r2 = s["radii"]
    u = s["target"][:2] - pb
    u /= np.linalg.norm(u) + 1e-12
    goal = pb - u * (r1 + r2 + 0.3)
    to_goal = goal - pr
    d = float(np.linalg.norm(to_goal))
    aligned = float(np.dot(pr - pb, -u) / (np.linalg.norm(pr - pb) + 1e-12))
    v_des = u * 3.0 if (d < 0.5 or aligned > 0.95) else to_goal / (d + 1e-12) * min(4.0, 2.0 * d)
    return np.clip((v_des - vr) * r1**2 / env.max_impulse, -1.0, 1.0)


def test_scripted_policy_succeeds_often() -> None:
    env = make(obs_mode="state")
    wins = 0
    for seed in range(8):
        env.reset(seed=seed)
        for _ in range(200):
            _, _, term, trunc, info = env.step(_scripted(env.unwrapped))
            if term or trunc:
                break
        wins += int(info["is_success"])
    assert wins >= 4
