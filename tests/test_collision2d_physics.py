"""Exact closed-form physics of the collision testbed (envs/collision2d/physics.py).

Checks conservation laws, the elastic formula (also for very slow contacts),
contact times against brute force, trajectory continuity / no overlap, free
flight under gravity, agreement with an independent engine (pymunk), and input
validation.
"""

from __future__ import annotations

import numpy as np
import pytest

from simlab.envs.collision2d import physics as ph
from simlab.errors import ConfigError

G_PARABOLA = np.array(ph.PARABOLA_GRAVITY)


# ---------------------------------------------------------------------------- helpers
def colliding_pairs(rng: np.random.Generator, n: int, head_on: bool,
                    speed: tuple[float, float] = (0.5, 6.0),
                    radius: float | None = None) -> dict[str, np.ndarray]:
    """``n`` random two-disc scenes that are guaranteed to collide.

    Ball 1 has an arbitrary 2D velocity (the collision is not in the lab frame's
    rest frame of either ball), ball 2 starts at a random direction and distance
    and approaches ball 1 with impact parameter ``b`` (0 for head-on,
    ``|b| < 0.95 (r1 + r2)`` for oblique).
    """
    r = rng.uniform(0.2, 2.0, (n, 2)) if radius is None else np.full((n, 2), radius)
    rs = r.sum(1)
    ang = rng.uniform(0, 2 * np.pi, n)
    u = np.stack([np.cos(ang), np.sin(ang)], -1)  # direction from ball 1 to ball 2
    perp = np.stack([-u[:, 1], u[:, 0]], -1)
    gap = rng.uniform(0.05, 3.0, n)
    b = np.zeros(n) if head_on else rng.uniform(-0.95, 0.95, n) * rs
    # Ball 2 sits at distance along u, shifted by b along perp; it moves along -u.
    along = np.sqrt(rs**2 - b**2) + gap
    p1 = rng.uniform(-3, 3, (n, 2))
    p2 = p1 + along[:, None] * u + b[:, None] * perp
    v1 = rng.uniform(-3, 3, (n, 2))
    s = rng.uniform(*speed, n)
    v2 = v1 - s[:, None] * u
    p0 = np.stack([p1, p2], 1)
    v0 = np.stack([v1, v2], 1)
    return {"p0": p0, "v0": v0, "radii": r, "t_expected": gap / s}


def elastic_1d(m1, u1, m2, u2):
    """Textbook 1D elastic collision."""
    v1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
    v2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
    return v1, v2


# ---------------------------------------------------------------------------- basics
def test_frame_times_and_masses():
    t = ph.frame_times()
    assert t.shape == (ph.NUM_FRAMES,) == (32,)
    assert t[0] == 0.0
    np.testing.assert_allclose(np.diff(t), ph.FRAME_DT)
    np.testing.assert_allclose(t[-1], 3.1)
    np.testing.assert_array_equal(ph.masses_from_radii(np.array([0.5, 2.0])), [0.25, 4.0])


def test_kinetic_energy_and_momentum_helpers():
    vel = np.array([[[1.0, 2.0], [-3.0, 0.5]]])  # (1, K=2, 2)
    m = np.array([[2.0, 4.0]])
    np.testing.assert_allclose(ph.kinetic_energy(vel, m), [0.5 * (2 * 5.0 + 4 * 9.25)])
    np.testing.assert_allclose(ph.momentum(vel, m), [[2 * 1 - 4 * 3, 2 * 2 + 4 * 0.5]])


# ---------------------------------------------------------------------------- conservation
@pytest.mark.parametrize("head_on", [True, False], ids=["head_on", "oblique"])
@pytest.mark.parametrize("g", [(0.0, 0.0), ph.PARABOLA_GRAVITY], ids=["free", "gravity"])
def test_momentum_and_energy_conserved_across_contact(head_on, g):
    rng = np.random.default_rng(1 + head_on)
    c = colliding_pairs(rng, 4000, head_on)
    tc_max = c["t_expected"].max()
    out = ph.simulate_balls(c["p0"], c["v0"], c["radii"], np.array([0.0, tc_max + 0.5]), g)
    # Every constructed scene collides, at the constructed time.
    assert np.isfinite(out["t_contact"]).all()
    np.testing.assert_allclose(out["t_contact"], c["t_expected"], rtol=1e-9, atol=1e-12)
    m = ph.masses_from_radii(c["radii"])
    v_before, v_after = out["vel"][:, 0], out["vel"][:, 1]
    # Remove the gravity contribution to compare pre- and post-contact velocities
    # at the same instant (gravity changes momentum and energy, the contact must not).
    v_after = v_after - np.asarray(g) * (tc_max + 0.5)
    p0, p1 = ph.momentum(v_before, m), ph.momentum(v_after, m)
    scale_p = np.sum(m * np.linalg.norm(v_before, axis=-1), -1)
    assert (np.linalg.norm(p1 - p0, axis=-1) / scale_p).max() < 1e-12
    e0, e1 = ph.kinetic_energy(v_before, m), ph.kinetic_energy(v_after, m)
    assert (np.abs(e1 - e0) / e0).max() < 1e-12
    # And something did happen: velocities changed.
    assert (np.abs(v_after - v_before).max(axis=(1, 2)) > 1e-3).all()


def test_elastic_velocities_normal_reversed_tangential_kept():
    rng = np.random.default_rng(3)
    n = 5000
    p1, p2 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    v1, v2 = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    m1, m2 = rng.uniform(0.05, 4, n), rng.uniform(0.05, 4, n)
    a1, a2 = ph.elastic_velocities(p1, v1, m1, p2, v2, m2)
    nrm = (p2 - p1) / np.linalg.norm(p2 - p1, axis=-1, keepdims=True)
    t = np.stack([-nrm[:, 1], nrm[:, 0]], -1)

    def dot(a, b):
        return np.einsum("ni,ni->n", a, b)

    # Tangential components of each ball unchanged.
    np.testing.assert_allclose(dot(a1, t), dot(v1, t), atol=1e-12)
    np.testing.assert_allclose(dot(a2, t), dot(v2, t), atol=1e-12)
    # Normal components follow the 1D elastic formula.
    e1, e2 = elastic_1d(m1, dot(v1, nrm), m2, dot(v2, nrm))
    np.testing.assert_allclose(dot(a1, nrm), e1, atol=1e-12)
    np.testing.assert_allclose(dot(a2, nrm), e2, atol=1e-12)
    # Relative normal velocity exactly reversed (restitution 1).
    np.testing.assert_allclose(dot(a2 - a1, nrm), -dot(v2 - v1, nrm), atol=1e-12)


@pytest.mark.parametrize("rel_speed", [0.01, 0.001])
def test_slow_collisions_still_bounce(rel_speed):
    """No restitution velocity threshold (stock Box2D makes slow contacts inelastic)."""
    r = np.array([[0.7, 1.3]])
    m1, m2 = r[0] ** 2
    u1, u2 = 0.3 * rel_speed, -0.7 * rel_speed
    gap = 2.0 * rel_speed  # contact at t = 2 s
    p0 = np.array([[[1.0, 5.0], [1.0 + r.sum() + gap, 5.0]]])
    v0 = np.array([[[u1, 0.0], [u2, 0.0]]])
    out = ph.simulate_balls(p0, v0, r, np.array([0.0, 3.0]))
    np.testing.assert_allclose(out["t_contact"], [2.0], rtol=1e-12)
    w1, w2 = elastic_1d(m1, u1, m2, u2)
    np.testing.assert_allclose(out["vel"][0, 1, :, 0], [w1, w2], rtol=1e-12)
    np.testing.assert_array_equal(out["vel"][0, 1, :, 1], [0.0, 0.0])
    # The balls separate with the same relative speed.
    np.testing.assert_allclose(w2 - w1, rel_speed, rtol=1e-12)


def test_equal_masses_head_on_swap_velocities():
    r = np.array([[1.0, 1.0], [0.5, 0.5]])
    p0 = np.array([[[2.0, 5.0], [6.0, 5.0]], [[1.0, 1.0], [4.0, 5.0]]])
    d = p0[1, 1] - p0[1, 0]
    d /= np.linalg.norm(d)
    v0 = np.array([[[3.0, 0.0], [-1.0, 0.0]], [[2.0 * d[0], 2.0 * d[1]], [0.0, 0.0]]])
    out = ph.simulate_balls(p0, v0, r, np.array([0.0, 3.0]))
    assert np.isfinite(out["t_contact"]).all()
    np.testing.assert_allclose(out["vel"][:, 1, 0], v0[:, 1], atol=1e-12)
    np.testing.assert_allclose(out["vel"][:, 1, 1], v0[:, 0], atol=1e-12)


def test_equal_masses_oblique_target_at_rest_leaves_at_right_angle():
    rng = np.random.default_rng(4)
    c = colliding_pairs(rng, 500, head_on=False, radius=0.8)
    # Ball 1 at rest; ball 2 hits it obliquely -> outgoing velocities perpendicular.
    c["v0"][:, 1] -= c["v0"][:, 0]
    c["v0"][:, 0] = 0.0
    out = ph.simulate_balls(c["p0"], c["v0"], c["radii"], np.array([20.0]))
    hit = np.isfinite(out["t_contact"])
    assert hit.sum() > 300
    va, vb = out["vel"][hit, 0, 0], out["vel"][hit, 0, 1]
    cos = np.einsum("ni,ni->n", va, vb) / np.maximum(
        np.linalg.norm(va, axis=-1) * np.linalg.norm(vb, axis=-1), 1e-300)
    assert np.abs(cos).max() < 1e-9


# ---------------------------------------------------------------------------- contact time
def test_contact_time_matches_brute_force():
    rng = np.random.default_rng(5)
    n = 300
    dp = rng.uniform(-4, 4, (n, 2))
    dist = rng.uniform(0.4, 2.0, n)
    far = np.linalg.norm(dp, axis=-1) > dist + 0.05
    dp, dist = dp[far], dist[far]
    n = len(dp)
    speed = rng.uniform(1.0, 4.0, n)
    # Aim roughly at the other disc so that about half of the cases hit.
    ang = np.arctan2(-dp[:, 1], -dp[:, 0]) + rng.uniform(-0.6, 0.6, n)
    dv = speed[:, None] * np.stack([np.cos(ang), np.sin(ang)], -1)
    tc = ph.contact_time(dp, dv, dist)
    step = 2e-4
    ts = np.arange(0.0, 8.0, step)
    d = np.linalg.norm(dp[:, None] + dv[:, None] * ts[None, :, None], axis=-1)  # (n, T)
    inside = d <= dist[:, None]
    bf_hit = inside.any(1)
    assert 0.2 * n < bf_hit.sum() < 0.9 * n  # both outcomes are exercised
    # Near-grazing cases can touch between samples: allow only where the minimum
    # distance is within numerical reach of the contact distance.
    dmin = d.min(1)
    clear = np.abs(dmin - dist) > speed * step
    np.testing.assert_array_equal(np.isfinite(tc)[clear], bf_hit[clear])
    first = np.where(bf_hit, inside.argmax(1) * step, np.inf)
    h = bf_hit & clear
    assert (tc[h] <= first[h] + 1e-12).all()
    assert (tc[h] >= first[h] - step - 1e-12).all()
    # At the returned time the discs touch exactly.
    hit = np.isfinite(tc)
    touch = np.linalg.norm(dp[hit] + dv[hit] * tc[hit, None], axis=-1)
    np.testing.assert_allclose(touch, dist[hit], rtol=1e-12)


@pytest.mark.parametrize(
    "dp, dv, dist, expected",
    [
        ((4.0, 0.0), (0.0, 0.0), 2.0, np.inf),        # zero relative velocity
        ((4.0, 0.0), (0.0, 1.0), 2.0, np.inf),        # parallel tracks, perpendicular to dp
        ((0.0, 3.0), (5.0, 0.0), 2.0, np.inf),        # parallel lines farther apart than r1+r2
        ((4.0, 0.0), (1.0, 0.0), 2.0, np.inf),        # moving apart
        ((4.0, 0.0), (-1.0, 0.0), 2.0, 2.0),          # head-on approach
        ((2.0, 0.0), (-1.0, 0.0), 2.0, 0.0),          # already touching, approaching
        ((2.0, 0.0), (1.0, 0.0), 2.0, np.inf),        # already touching, separating
        ((2.0, 0.0), (0.0, 1.0), 2.0, np.inf),        # already touching, sliding tangentially
        ((1.5, 0.0), (-1.0, 0.0), 2.0, 0.0),          # overlapping and approaching
        ((5.0, 2.0), (-1.0, 0.0), 2.0, 5.0),          # exact grazing contact
        ((5.0, 2.0 + 1e-9), (-1.0, 0.0), 2.0, np.inf),  # just misses
    ],
)
def test_contact_time_edge_cases(dp, dv, dist, expected):
    t = ph.contact_time(np.array([dp]), np.array([dv]), np.array([dist]))
    assert t.shape == (1,)
    if np.isinf(expected):
        assert np.isinf(t[0]) and t[0] > 0
    else:
        np.testing.assert_allclose(t[0], expected, rtol=1e-12, atol=1e-15)


def test_contact_time_is_batched_elementwise():
    rng = np.random.default_rng(6)
    c = colliding_pairs(rng, 50, head_on=False)
    dp = c["p0"][:, 1] - c["p0"][:, 0]
    dv = c["v0"][:, 1] - c["v0"][:, 0]
    dist = c["radii"].sum(1)
    full = ph.contact_time(dp, dv, dist)
    one = np.array([ph.contact_time(dp[i:i + 1], dv[i:i + 1], dist[i:i + 1])[0] for i in range(50)])
    np.testing.assert_array_equal(full, one)
    assert ph.contact_time(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0)).shape == (0,)


# ---------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("g", [(0.0, 0.0), ph.PARABOLA_GRAVITY], ids=["free", "gravity"])
def test_trajectories_continuous_and_never_overlap(g):
    rng = np.random.default_rng(7)
    c = colliding_pairs(rng, 200, head_on=False)
    times = np.linspace(0.0, 4.0, 4001)
    out = ph.simulate_balls(c["p0"], c["v0"], c["radii"], times, g)
    pos = out["pos"]
    d = np.linalg.norm(pos[:, :, 1] - pos[:, :, 0], axis=-1)
    rs = c["radii"].sum(1)
    assert (d >= rs[:, None] * (1 - 1e-12)).all(), "discs overlap at a sampled time"
    # Positions move at most |v| dt between samples: no jump at the contact.
    step = np.linalg.norm(np.diff(pos, axis=1), axis=-1)
    vmax = np.linalg.norm(out["vel"], axis=-1).max(axis=(1, 2))
    assert (step.max(axis=(1, 2)) <= vmax * (times[1] - times[0]) * (1 + 1e-9)).all()
    # Sampling exactly at, and just around, the contact: continuous positions,
    # touching discs, and the post-contact velocity at the contact sample.
    for i in range(0, 200, 10):
        tc = out["t_contact"][i]
        eps = 1e-7
        s = ph.simulate_balls(c["p0"][i:i + 1], c["v0"][i:i + 1], c["radii"][i:i + 1],
                              np.array([tc - eps, tc, tc + eps]), g)
        p = s["pos"][0]
        np.testing.assert_allclose(np.linalg.norm(p[1, 1] - p[1, 0]), rs[i], rtol=1e-12)
        assert np.abs(p[2] - p[0]).max() < 2 * eps * np.abs(s["vel"][0]).max() + 1e-12
        np.testing.assert_allclose(s["vel"][0, 1], s["vel"][0, 2] - np.asarray(g) * eps, atol=1e-12)
        assert np.abs(s["vel"][0, 1] - s["vel"][0, 0]).max() > 1e-3  # the jump is at tc, not after


@pytest.mark.parametrize("k", [1, 2])
def test_free_flight_is_exact_parabola(k):
    rng = np.random.default_rng(8)
    n = 100
    p0 = np.stack([np.stack([rng.uniform(1, 3, n), rng.uniform(6, 9, n)], -1),
                   np.stack([rng.uniform(7, 9, n), rng.uniform(6, 9, n)], -1)], 1)[:, :k]
    v0 = np.stack([np.stack([rng.uniform(0, 1, n), rng.uniform(-1, 1, n)], -1),
                   np.stack([rng.uniform(-1, 0, n), rng.uniform(-1, 1, n)], -1)], 1)[:, :k]
    if k == 2:
        v0[:, 1] = v0[:, 0]  # same velocity: never touch
    r = rng.uniform(0.3, 1.0, (n, k))
    t = ph.frame_times()
    out = ph.simulate_balls(p0, v0, r, t, ph.PARABOLA_GRAVITY)
    tt = t[None, :, None, None]
    np.testing.assert_allclose(out["pos"], p0[:, None] + v0[:, None] * tt + 0.5 * G_PARABOLA * tt**2,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["vel"], v0[:, None] + G_PARABOLA * tt, rtol=0, atol=1e-12)
    assert np.isinf(out["t_contact"]).all()
    assert out["pos"].shape == (n, 32, k, 2)


def test_gravity_does_not_change_contact_time_and_post_contact_is_parabola():
    rng = np.random.default_rng(9)
    c = colliding_pairs(rng, 300, head_on=False)
    t = np.linspace(0, 5, 51)
    free = ph.simulate_balls(c["p0"], c["v0"], c["radii"], t)
    grav = ph.simulate_balls(c["p0"], c["v0"], c["radii"], t, ph.PARABOLA_GRAVITY)
    np.testing.assert_array_equal(free["t_contact"], grav["t_contact"])
    # A shared uniform field only adds g t^2 / 2 to every disc at all times.
    tt = t[None, :, None, None]
    np.testing.assert_allclose(grav["pos"], free["pos"] + 0.5 * G_PARABOLA * tt**2, atol=1e-10)
    np.testing.assert_allclose(grav["vel"], free["vel"] + G_PARABOLA * tt, atol=1e-10)


# ---------------------------------------------------------------------------- pymunk
def _pymunk_run(p0, v0, radii, g, dt, duration):
    pymunk = pytest.importorskip("pymunk")
    space = pymunk.Space()
    space.gravity = (float(g[0]), float(g[1]))
    space.damping = 1.0
    bodies = []
    for i in range(len(p0)):
        off = np.array([1000.0 * i, 0.0])  # scenes far apart share one space
        for k in range(2):
            r = float(radii[i, k])
            m = r * r
            body = pymunk.Body(m, pymunk.moment_for_circle(m, 0.0, r))
            body.position = tuple(map(float, p0[i, k] + off))
            body.velocity = tuple(map(float, v0[i, k]))
            shape = pymunk.Circle(body, r)
            shape.elasticity = 1.0
            shape.friction = 0.0
            space.add(body, shape)
            bodies.append((body, off))
    for _ in range(round(duration / dt)):
        space.step(dt)
    pos = np.array([np.array(b.position) - off for b, off in bodies]).reshape(len(p0), 2, 2)
    vel = np.array([np.array(b.velocity) for b, _ in bodies]).reshape(len(p0), 2, 2)
    return pos, vel


@pytest.mark.parametrize("g", [(0.0, 0.0), ph.PARABOLA_GRAVITY], ids=["free", "gravity"])
def test_agrees_with_pymunk(g):
    """~20 head-on and oblique cases against a fixed-step engine (dt = 1e-4 s).

    Tolerance from the step size: pymunk detects the contact up to one step
    late, so the contact position is off by up to ``|dv| dt``; it resolves the
    impulse along the normal of the slightly penetrated pair, whose direction
    is off by up to ``|dv| dt / (r1 + r2)`` rad, giving a velocity error of
    ``|dv|^2 dt / (r1 + r2)`` that then accumulates over the remaining time
    (< 3.1 s). Semi-implicit Euler adds ``|g| dt T / 2`` to positions. The
    bound below is twice that sum (measured errors are 0.05-0.9 of it), and
    the error must shrink with the step (it is a discretisation error, not a
    different physics).
    """
    rng = np.random.default_rng(10)
    n, duration = 20, 3.1
    r = rng.uniform(0.3, 1.5, (n, 2))
    vx1, vx2 = rng.uniform(0.5, 4, n), rng.uniform(0.5, 4, n)
    b = np.where(np.arange(n) % 2 == 0, 0.0, rng.uniform(-0.8, 0.8, n) * r.sum(1))
    dist = r.sum(1) + rng.uniform(0.5, 3, n)
    p0 = np.zeros((n, 2, 2))
    p0[:, 0, 1], p0[:, 1, 0], p0[:, 1, 1] = -b / 2, dist, b / 2
    v0 = np.zeros((n, 2, 2))
    v0[:, 0, 0], v0[:, 1, 0] = vx1, -vx2
    exact = ph.simulate_balls(p0, v0, r, np.array([duration]), g)
    assert (exact["t_contact"] < duration).all()
    ex_pos, ex_vel = exact["pos"][:, 0], exact["vel"][:, 0]
    dvn = vx1 + vx2
    errs = {}
    for dt in (1e-3, 1e-4):
        pos, vel = _pymunk_run(p0, v0, r, g, dt, duration)
        vel_tol = 2 * (dvn**2 * dt / r.sum(1) + np.linalg.norm(g) * dt) + 1e-9
        pos_tol = 2 * (dvn * dt * (1 + dvn * duration / r.sum(1)) + np.linalg.norm(g) * dt * duration)
        pe = np.abs(pos - ex_pos).max(axis=(1, 2))
        ve = np.abs(vel - ex_vel).max(axis=(1, 2))
        errs[dt] = (pe.max(), ve.max())
        if dt == 1e-4:
            assert (pe <= pos_tol).all(), (pe / pos_tol).max()
            assert (ve <= vel_tol).all(), (ve / vel_tol).max()
            assert pe.max() < 0.02 and ve.max() < 0.005
    assert errs[1e-4][0] < errs[1e-3][0] / 3


# ---------------------------------------------------------------------------- validation
def _ok_state(n: int = 3, k: int = 2):
    p0 = np.zeros((n, k, 2))
    p0[:, :, 0] = np.arange(k) * 3.0 + 2.0
    p0[:, :, 1] = 5.0
    return p0, np.zeros((n, k, 2)), np.ones((n, k))


def test_validate_accepts_good_and_touching_states():
    ph.validate_balls(*_ok_state())
    ph.validate_balls(*_ok_state(k=1))
    p0, v0, r = _ok_state()
    r[:] = 1.5  # centre distance 3 == r1 + r2: touching is allowed
    ph.validate_balls(p0, v0, r)


@pytest.mark.parametrize("bad_r", [0.0, -0.5])
def test_validate_rejects_nonpositive_radius(bad_r):
    p0, v0, r = _ok_state()
    r[1, 0] = bad_r
    with pytest.raises(ConfigError, match="radius"):
        ph.validate_balls(p0, v0, r)
    with pytest.raises(ConfigError, match="radius"):
        ph.simulate_balls(p0, v0, r, ph.frame_times())


@pytest.mark.parametrize("which", ["p0", "v0", "radii"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_validate_rejects_non_finite(which, value):
    p0, v0, r = _ok_state()
    {"p0": p0, "v0": v0, "radii": r}[which].flat[3] = value
    with pytest.raises(ConfigError, match="finite"):
        ph.validate_balls(p0, v0, r)


def test_validate_rejects_overlap():
    p0, v0, r = _ok_state()
    p0[2, 1, 0] = p0[2, 0, 0] + 1.9  # r1 + r2 = 2
    with pytest.raises(ConfigError, match="overlap") as ei:
        ph.validate_balls(p0, v0, r)
    assert "scene 2" in str(ei.value)
    with pytest.raises(ConfigError, match="overlap"):
        ph.simulate_balls(p0, v0, r, ph.frame_times())


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 2), (3, 2), (3,)),            # missing ball axis
        ((3, 2, 3), (3, 2, 3), (3, 2)),    # 3D coordinates
        ((3, 2, 2), (3, 1, 2), (3, 2)),    # v0 shape differs
        ((3, 2, 2), (3, 2, 2), (3,)),      # radii without ball axis
        ((3, 2, 2), (3, 2, 2), (3, 2, 1)),  # radii with extra axis
        ((3, 2, 2), (3, 2, 2), (2, 2)),    # radii for another batch
    ],
)
def test_validate_rejects_bad_shapes(shapes):
    sp, sv, sr = shapes
    p0 = np.arange(np.prod(sp), dtype=float).reshape(sp) * 10
    with pytest.raises(ConfigError, match="shape"):
        ph.validate_balls(p0, np.zeros(sv), np.ones(sr))


@pytest.mark.parametrize("k", [0, 3])
def test_ball_count_outside_1_2_is_a_config_error(k):
    p0, v0, r = _ok_state(k=k)
    with pytest.raises(ConfigError):
        ph.simulate_balls(p0, v0, r, ph.frame_times())
