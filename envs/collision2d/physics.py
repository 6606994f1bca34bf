"""Exact, closed-form 2D ball physics, batched over many scenes in numpy.

Why hand-written rather than Box2D/pymunk: fixed-step engines integrate with a
time step and (in stock Box2D) a restitution velocity threshold of 1 m/s, so
slow collisions become inelastic and contact times are quantised to the step.
Two discs in free space (optionally under one uniform gravity field) have an
analytic solution: their *relative* motion is linear (a shared gravity field
cancels), so the contact time is the root of a quadratic and the post-contact
velocities follow from the elastic impulse along the contact normal. Two discs
in free space can touch at most once, so one event is the whole story.

Units: world units (the world is ``WORLD_SIZE`` x ``WORLD_SIZE``), seconds,
world units / second. Mass is ``density * r**2`` (2D discs, fixed density).
Arrays are batched on the leading axis ``N`` (scenes); ``K`` is the number of
balls (1 or 2); positions and velocities are ``(..., 2)`` as (x, y), y up.
"""

from __future__ import annotations

import numpy as np

from simlab.errors import ConfigError

WORLD_SIZE: float = 10.0
"""Side of the square world, world units."""
FRAME_DT: float = 0.1
"""Seconds between video frames."""
NUM_FRAMES: int = 32
"""Frames per video (3.2 s)."""
COND_FRAMES: int = 3
"""Leading frames a video model is conditioned on."""
PARABOLA_GRAVITY: tuple[float, float] = (0.0, -2.5)
"""Gravity of the parabola scenario, world units / s^2."""


def frame_times(num_frames: int = NUM_FRAMES, dt: float = FRAME_DT) -> np.ndarray:
    """Times of the video frames, shape ``(num_frames,)``, seconds, starting at 0."""
    return np.arange(num_frames, dtype=np.float64) * dt


def masses_from_radii(radii: np.ndarray) -> np.ndarray:
    """Mass of discs of equal density (1 per unit area / pi): ``r**2``. Same shape as ``radii``."""
    return np.asarray(radii, dtype=np.float64) ** 2


def contact_time(dp: np.ndarray, dv: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Earliest time ``t >= 0`` at which ``|dp + dv * t| == dist`` while approaching.

    Args:
        dp: relative position ``p2 - p1``, shape ``(N, 2)``.
        dv: relative velocity ``v2 - v1``, shape ``(N, 2)``.
        dist: contact distance ``r1 + r2``, shape ``(N,)``.

    Returns:
        Contact times, shape ``(N,)``, ``inf`` where the discs never touch
        (moving apart, missing each other, or not moving relative to each other).
        Discs that already overlap and approach get ``0``.
    """
    dp = np.asarray(dp, dtype=np.float64)
    dv = np.asarray(dv, dtype=np.float64)
    a = np.einsum("ni,ni->n", dv, dv)
    b = 2.0 * np.einsum("ni,ni->n", dp, dv)
    c = np.einsum("ni,ni->n", dp, dp) - np.asarray(dist, dtype=np.float64) ** 2
    disc = b * b - 4.0 * a * c
    approaching = b < 0.0
    hit = approaching & (disc >= 0.0) & (a > 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Smaller root of a t^2 + b t + c written as 2c / (-b + sqrt(disc)):
        # no cancellation since -b > 0 (numerically stable form).
        t = (2.0 * c) / (-b + np.sqrt(np.where(hit, disc, 0.0)))
    t = np.where(hit, np.maximum(t, 0.0), np.inf)
    return t


def elastic_velocities(
    p1: np.ndarray, v1: np.ndarray, m1: np.ndarray,
    p2: np.ndarray, v2: np.ndarray, m2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Velocities after a perfectly elastic contact of two discs.

    The impulse acts along the contact normal ``n = (p2 - p1) / |p2 - p1|``;
    momentum and kinetic energy are conserved exactly (up to float rounding).

    Args:
        p1, p2: positions at contact, ``(N, 2)``.
        v1, v2: velocities just before contact, ``(N, 2)``.
        m1, m2: masses, ``(N,)``.

    Returns:
        ``(v1_after, v2_after)``, each ``(N, 2)``.
    """
    n = np.asarray(p2, np.float64) - np.asarray(p1, np.float64)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    m1 = np.asarray(m1, np.float64)[:, None]
    m2 = np.asarray(m2, np.float64)[:, None]
    vrel = np.einsum("ni,ni->n", v1 - v2, n)[:, None]
    j = 2.0 * vrel / (m1 + m2)  # impulse per unit mass product
    return v1 - j * m2 * n, v2 + j * m1 * n


def validate_balls(p0: np.ndarray, v0: np.ndarray, radii: np.ndarray) -> None:
    """Raise :class:`ConfigError` for impossible initial states.

    Checks shapes ``(N, K, 2)`` / ``(N, K, 2)`` / ``(N, K)``, finite values,
    radii > 0, and that no two discs overlap at the start.
    """
    p0 = np.asarray(p0, np.float64)
    v0 = np.asarray(v0, np.float64)
    radii = np.asarray(radii, np.float64)
    if p0.ndim != 3 or p0.shape[-1] != 2 or v0.shape != p0.shape or radii.shape != p0.shape[:2]:
        raise ConfigError(f"ball state shapes must be p0/v0 (N, K, 2) and radii (N, K); got "
                          f"{p0.shape}, {v0.shape}, {radii.shape}")
    if p0.shape[1] not in (1, 2):
        raise ConfigError(f"the exact solver handles 1 or 2 balls per scene, got {p0.shape[1]}")
    if not (np.isfinite(p0).all() and np.isfinite(v0).all() and np.isfinite(radii).all()):
        raise ConfigError("ball positions, velocities and radii must be finite (found NaN or inf)")
    if (radii <= 0).any():
        raise ConfigError(f"ball radius must be > 0, got {radii[radii <= 0][0]:g}")
    if p0.shape[1] == 2:
        gap = np.linalg.norm(p0[:, 1] - p0[:, 0], axis=-1) - radii.sum(-1)
        if (gap < -1e-9).any():
            i = int(np.argmin(gap))
            raise ConfigError(f"balls overlap at the start (scene {i}: centre distance "
                              f"{gap[i] + radii[i].sum():.4g} < r1 + r2 = {radii[i].sum():.4g})")


def simulate_balls(
    p0: np.ndarray,
    v0: np.ndarray,
    radii: np.ndarray,
    times: np.ndarray,
    gravity: tuple[float, float] = (0.0, 0.0),
) -> dict[str, np.ndarray]:
    """Exact trajectories of 1 or 2 discs in free space, sampled at ``times``.

    Args:
        p0: initial centres, ``(N, K, 2)``, world units, ``K in {1, 2}``.
        v0: initial velocities, ``(N, K, 2)``, world units / s.
        radii: radii, ``(N, K)``, world units (> 0).
        times: sample times, ``(T,)``, seconds (>= 0).
        gravity: uniform acceleration applied to every disc, world units / s^2.

    Returns:
        dict with ``pos`` ``(N, T, K, 2)``, ``vel`` ``(N, T, K, 2)`` and
        ``t_contact`` ``(N,)`` (``inf`` when no contact; always ``inf`` for K=1).
        At a sample exactly at the contact time, ``vel`` is the post-contact velocity.
    """
    validate_balls(p0, v0, radii)
    p0 = np.asarray(p0, np.float64)
    v0 = np.asarray(v0, np.float64)
    radii = np.asarray(radii, np.float64)
    t = np.asarray(times, np.float64)
    g = np.asarray(gravity, np.float64)
    n, k = p0.shape[:2]
    tt = t[None, :, None, None]
    pos = p0[:, None] + v0[:, None] * tt + 0.5 * g * tt**2
    vel = v0[:, None] + g * tt
    t_contact = np.full(n, np.inf)
    if k == 1:
        return {"pos": pos, "vel": vel, "t_contact": t_contact}
    if k != 2:
        raise ValueError(f"simulate_balls handles 1 or 2 balls, got K={k}")
    # Gravity acts on both discs equally, so their relative motion is linear.
    t_contact = contact_time(p0[:, 1] - p0[:, 0], v0[:, 1] - v0[:, 0], radii.sum(-1))
    hit = np.isfinite(t_contact)
    if hit.any():
        tc = t_contact[hit][:, None, None]
        pc = p0[hit] + v0[hit] * tc + 0.5 * g * tc**2  # (H, 2, 2)
        vc = v0[hit] + g * tc
        m = masses_from_radii(radii[hit])
        va, vb = elastic_velocities(pc[:, 0], vc[:, 0], m[:, 0], pc[:, 1], vc[:, 1], m[:, 1])
        v_after = np.stack([va, vb], axis=1)  # (H, 2, 2)
        dt = (t[None, :] - t_contact[hit][:, None])[:, :, None, None]  # (H, T, 1, 1)
        after = dt >= 0.0
        pos_after = pc[:, None] + v_after[:, None] * dt + 0.5 * g * dt**2
        vel_after = v_after[:, None] + g * dt
        pos[hit] = np.where(after, pos_after, pos[hit])
        vel[hit] = np.where(after, vel_after, vel[hit])
    return {"pos": pos, "vel": vel, "t_contact": t_contact}


def kinetic_energy(vel: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Total kinetic energy ``sum_k m_k |v_k|^2 / 2``: vel ``(..., K, 2)``, masses ``(..., K)`` broadcastable."""
    return 0.5 * np.sum(masses * np.sum(np.asarray(vel) ** 2, axis=-1), axis=-1)


def momentum(vel: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Total momentum ``sum_k m_k v_k``: vel ``(..., K, 2)`` -> ``(..., 2)``."""
    return np.sum(np.asarray(masses)[..., None] * np.asarray(vel), axis=-2)
