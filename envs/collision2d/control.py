"""Collision2D control task: knock the blue ball into the target with the red ball.

## Description

A ``10 x 10`` world (:data:`~simlab.envs.collision2d.physics.WORLD_SIZE`
world units, y up) closed by 4 walls holds a red ball, which the agent pushes,
a blue ball, and a circular target region. The goal is to knock the blue ball
into the target. The physics is the exact, closed-form physics of the
collision video testbed (:mod:`simlab.envs.collision2d.physics`): discs of
equal density (mass ``m = r**2``), perfectly elastic ball-ball and ball-wall
contacts, no gravity, no friction (optional exponential ``damping``).

Each step lasts :data:`~simlab.envs.collision2d.physics.FRAME_DT` = 0.1 s of
simulated time and is integrated *event by event*, without sub-stepping: the
earliest of the ball-ball contact (:func:`ball_contact_time`) and the 4
wall contacts of each ball (:func:`wall_contact_times`) is found in closed
form, both balls move linearly to it, the elastic response is applied
(:func:`~simlab.envs.collision2d.physics.elastic_velocities` for the two
balls, reflection of the normal velocity component for a wall), and this
repeats until the step's time is used up (:func:`advance_balls`). With zero
actions and no damping, kinetic energy is conserved to float rounding over an
episode, and momentum is conserved in ball-ball contacts; a contact at any
relative speed, however slow, bounces.

## Action Space

``Box(-1, 1, (2,), float32)``: a 2D impulse on the red ball, as a fraction of
``max_impulse`` (mass x world units / s), applied at the start of the step.
The red ball's velocity changes by ``action * max_impulse / m1`` with
``m1 = r1**2``, so a heavy (large) red ball accelerates less. The impulse
cannot push the red ball above ``max_speed`` (its speed after the impulse is
scaled down to ``max(max_speed, speed before)``: the agent's motor limit;
collisions are never capped, so energy is conserved exactly). An action
that is NaN or inf, has a shape other than ``(2,)``, or lies outside
``[-1, 1]`` by more than ``1e-6`` raises :class:`~simlab.errors.ActionError`
(it is never clipped silently).

## Observation Space

``obs_mode="pixels"`` (default): ``Box(0, 255, (resolution, resolution, 3),
uint8)``, an RGB frame on a white background drawn with
:func:`~simlab.envs.collision2d.render.render_shapes`: the target as a green
``(0, 160, 0)`` ring (outer radius = target radius), then the red ball
``(255, 0, 0)``, then the blue ball ``(0, 0, 255)``: the same colours as the
video testbed, so :mod:`simlab.envs.collision2d.parse` still finds the balls.

``obs_mode="state"``: ``Box(low, high, (13,), float32)``, the vector
``[x1, y1, vx1, vy1, x2, y2, vx2, vy2, r1, r2, tx, ty, tr]`` (index 1 = red,
2 = blue, ``t`` = target centre and radius) where positions and radii are
divided by the world size (so lie in ``[0, 1]``) and velocities by
``max_speed``, each component clipped to ``[-VEL_OBS_CLIP, VEL_OBS_CLIP]``
= ``[-4, 4]`` (collisions are not speed-capped, so a ball can exceed
``max_speed``; beyond ``4 * max_speed`` only after repeated rams).

## Rewards

Dense potential-based shaping plus a success bonus. With the potential
``phi = -(d_bt + approach_weight * d_rb)``, where ``d_bt`` is the distance
from the blue centre to the target centre and ``d_rb`` the distance between
the ball centres (world units), the reward of a step is
``phi(s') - phi(s)`` plus ``success_bonus`` (default 10) when the blue ball's
centre lies in the target (``d_bt <= tr``) after the step.

## Starting State

Radii ``r1`` (red), ``r2`` (blue) and the target radius ``target_r`` are drawn
from the chosen split (:attr:`Collision2DEnv.splits`). The target centre is
uniform in ``[tr, 10 - tr]^2`` (fully inside the world). Ball centres are
drawn by rejection sampling (with ``self.np_random``, at most
``PLACE_ROUNDS x PLACE_BATCH`` candidates): red anywhere inside the world,
blue at least ``BLUE_WALL_MARGIN`` from every wall, the balls at least
``START_CLEARANCE`` apart (surface to surface), and each ball at least
``START_CLEARANCE`` outside the target disc. Both balls start at rest.

``reset(options={"state": {...}})`` sets the start state instead (for tests
and scripted experiments); any subset of these keys, the rest drawn as above:
``"radii"`` ``(2,)`` world units, ``"target"`` ``(3,)`` = ``(tx, ty, tr)``,
``"pos"`` ``(2, 2)`` ball centres (row 0 red, row 1 blue), ``"vel"``
``(2, 2)`` world units / s (default zeros). With ``"pos"`` but no
``"target"`` the target is drawn uniformly, without the clearance check.
Given values are validated
(finite, positive radii, balls inside the world and not overlapping, target
inside the world) and raise :class:`~simlab.errors.ConfigError`; they need not
lie in the split. :meth:`Collision2DEnv.get_state` returns the same dict.

## Episode End

Terminates when the blue ball's centre is inside the target (success).
Truncated after 200 steps by the registered ``TimeLimit``
(``simlab/Collision2D-v0``).

``info`` (reset and step): ``is_success`` (bool), ``dist_blue_target`` and
``dist_red_blue`` (centre distances, world units), ``ball_contacts`` and
``wall_contacts`` (contact events during the step; 0 at reset).

## Arguments

``gymnasium.make("simlab/Collision2D-v0", split="train", obs_mode="pixels",
resolution=64, render_mode=None, render_resolution=256, max_impulse=2.0,
max_speed=8.0, damping=0.0, success_bonus=10.0, approach_weight=0.1,
max_events=64)``; see :class:`Collision2DEnv`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from simlab.envs.collision2d.physics import (
    FRAME_DT,
    WORLD_SIZE,
    contact_time,
    elastic_velocities,
    masses_from_radii,
    validate_balls,
)
from simlab.envs.collision2d.render import BLUE, RED, render_shapes
from simlab.envs.collision2d.scenarios import ID_R, OOD_R
from simlab.errors import ActionError, ConfigError, ResetNeededError
from simlab.registry import RenderModes
from simlab.splits import Intervals, Split
from simlab.validate import (
    check_choice,
    check_float,
    check_int,
    check_options,
    check_seed,
    describe,
)

TARGET_COLOR: tuple[int, int, int] = (0, 160, 0)
"""Colour of the target ring: neither red nor blue under the parser's thresholds."""
TARGET_R: Intervals = ((1.0, 1.5),)
"""Target radius range of every split, world units."""
START_CLEARANCE: float = 0.25
"""Minimum start gap between the balls and between each ball and the target disc, world units."""
BLUE_WALL_MARGIN: float = 0.5
"""Minimum start gap between the blue ball and every wall, world units."""
PLACE_ROUNDS: int = 32
"""Rejection sampling: target draws at most."""
PLACE_BATCH: int = 128
"""Rejection sampling: ball-position candidates per target draw."""
VEL_OBS_CLIP: float = 4.0
"""State observation: velocities / max_speed are clipped to +-this."""
ACTION_TOL: float = 1e-6
"""Actions may exceed [-1, 1] by this much (float rounding) and are then clipped."""
OBS_MODES: tuple[str, ...] = ("pixels", "state")
MIN_RESOLUTION: int = 16
MAX_RESOLUTION: int = 4096
"""Observation and render frames are ``resolution x resolution`` with a side in [16, 4096] pixels."""
MAX_EVENTS_LIMIT: int = 1_000_000
"""Largest ``max_events`` (contacts handled per step)."""
MAX_MAGNITUDE: float = 1e6
"""Bound on the magnitude of the float arguments (impulse, speed, damping, reward weights): far beyond
any meaningful value, small enough that the physics and rewards stay finite."""
STATE_DIM: int = 13
"""Length of the ``obs_mode="state"`` vector."""


# ---- pure event-driven physics ---------------------------------------------------------


def wall_contact_times(
    pos: np.ndarray, vel: np.ndarray, radii: np.ndarray, world: float = WORLD_SIZE,
) -> np.ndarray:
    """Time until each ball touches the wall it moves toward, per axis.

    Along axis ``a`` a ball with ``vel[a] > 0`` hits the wall ``world`` when
    ``pos[a] + r == world``, one with ``vel[a] < 0`` the wall ``0`` when
    ``pos[a] - r == 0``. A ball already touching or beyond that wall gets 0.

    Args:
        pos: ball centres ``(K, 2)``, world units.
        vel: ball velocities ``(K, 2)``, world units / s.
        radii: ``(K,)`` world units.
        world: side of the square world, world units.

    Returns:
        ``(K, 2)`` times in seconds, ``>= 0``; ``inf`` where the velocity
        component is zero.
    """
    pos = np.asarray(pos, np.float64)
    vel = np.asarray(vel, np.float64)
    r = np.asarray(radii, np.float64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = (world - r - pos) / vel
        t_lo = (r - pos) / vel
    t = np.where(vel > 0.0, t_hi, np.where(vel < 0.0, t_lo, np.inf))
    return np.maximum(t, 0.0)


def ball_contact_time(pos: np.ndarray, vel: np.ndarray, radii: np.ndarray) -> float:
    """Time until two balls touch while approaching (``inf`` if never).

    Args:
        pos: centres ``(2, 2)``, world units.
        vel: velocities ``(2, 2)``, world units / s.
        radii: ``(2,)`` world units.

    Returns:
        Seconds, ``>= 0`` (0 for overlapping, approaching balls).
    """
    pos = np.asarray(pos, np.float64)
    vel = np.asarray(vel, np.float64)
    r = np.asarray(radii, np.float64)
    return float(contact_time((pos[1] - pos[0])[None], (vel[1] - vel[0])[None], r[None].sum(-1))[0])


def damped_duration(duration: float, damping: float) -> float:
    """Distance-equivalent duration of ``duration`` seconds under linear damping.

    With ``v(t) = v0 exp(-c t)`` a ball travels ``v0 (1 - exp(-c t)) / c``, so
    damped motion is undamped motion along the same path for the shorter
    time ``s = (1 - exp(-c t)) / c``. Both balls decay at the same rate and
    every contact response is linear in the velocities, so the whole
    event-driven step can run undamped for ``s`` and the velocities be scaled
    by ``exp(-c t)`` at the end: exact, in closed form.

    Args:
        duration: seconds, ``>= 0``.
        damping: decay rate ``c``, 1 / s, ``>= 0`` (0 = no damping).

    Returns:
        Seconds.
    """
    if damping == 0.0:
        return float(duration)
    return float(-math.expm1(-damping * duration) / damping)


def advance_balls(
    pos: np.ndarray,
    vel: np.ndarray,
    radii: np.ndarray,
    duration: float,
    world: float = WORLD_SIZE,
    damping: float = 0.0,
    max_events: int = 64,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Exact, event-driven motion of two balls in the walled world for ``duration``.

    Repeats: find the earliest contact (ball-ball or any ball-wall), move both
    balls linearly to it, apply the elastic response; until the time is used
    up or ``max_events`` contacts were handled (then the rest of the time is
    linear motion, and balls that left the world are put back on the wall
    with their outward velocity reflected; that only happens in pathological
    pile-ups).

    Args:
        pos: centres ``(2, 2)``, world units (row 0 red, row 1 blue).
        vel: velocities ``(2, 2)``, world units / s.
        radii: ``(2,)`` world units; masses are ``r**2``.
        duration: seconds, ``>= 0``.
        world: side of the square world, world units.
        damping: per-second linear velocity decay rate (see :func:`damped_duration`).
        max_events: cap on contacts handled in this call.

    Returns:
        ``(pos, vel, ball_contacts, wall_contacts)``: new ``(2, 2)`` float64
        arrays (the inputs are not modified) and the numbers of contacts.
    """
    p = np.array(pos, dtype=np.float64)
    v = np.array(vel, dtype=np.float64)
    r = np.asarray(radii, np.float64)
    m = masses_from_radii(r)
    remaining = damped_duration(duration, damping)
    n_ball = n_wall = 0
    capped = True
    for _ in range(max_events):
        t_ball = ball_contact_time(p, v, r)
        t_walls = wall_contact_times(p, v, r, world)
        kw = int(np.argmin(t_walls))
        t_wall = float(t_walls.flat[kw])
        t_event = min(t_ball, t_wall)
        if not t_event < remaining:
            capped = False
            break
        p += v * t_event
        remaining -= t_event
        if t_ball <= t_wall:
            va, vb = elastic_velocities(p[0:1], v[0:1], m[0:1], p[1:2], v[1:2], m[1:2])
            v[0], v[1] = va[0], vb[0]
            n_ball += 1
        else:
            k, axis = divmod(kw, 2)
            # Exactly on the wall (removes rounding drift), normal component reversed.
            p[k, axis] = world - r[k] if v[k, axis] > 0.0 else r[k]
            v[k, axis] = -v[k, axis]
            n_wall += 1
    p += v * remaining
    if capped:
        lo, hi = r[:, None], world - r[:, None]
        out = ((p < lo) & (v < 0.0)) | ((p > hi) & (v > 0.0))
        v = np.where(out, -v, v)
        p = np.clip(p, lo, hi)
    if damping != 0.0:
        v *= math.exp(-damping * duration)
    return p, v, n_ball, n_wall


def kinetic_energy_of(vel: np.ndarray, radii: np.ndarray) -> float:
    """Total kinetic energy ``sum m |v|^2 / 2`` of balls ``vel (K, 2)``, ``radii (K,)``."""
    m = masses_from_radii(radii)
    return float(0.5 * np.sum(m * np.sum(np.asarray(vel, np.float64) ** 2, axis=-1)))


# ---- the env ---------------------------------------------------------------------------


def _splits() -> dict[str, Split]:
    def mk(name: str, role: str, r1: Intervals, r2: Intervals, desc: str) -> Split:
        return Split(name, role, {"r1": r1, "r2": r2, "target_r": TARGET_R}, description=desc)

    s = [
        mk("train", "train", ID_R, ID_R, "ID radii (and masses) of both balls, for training"),
        mk("id", "id_test", ID_R, ID_R, "ID radii, fresh episodes"),
        mk("ood_r1", "ood_test", OOD_R, ID_R, "red ball radius (and mass) OOD"),
        mk("ood_r2", "ood_test", ID_R, OOD_R, "blue ball radius (and mass) OOD"),
        mk("ood", "ood_test", OOD_R, OOD_R, "both radii (and masses) OOD"),
    ]
    return {x.name: x for x in s}


class Collision2DEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """Push the red ball so that it knocks the blue ball into the target (see module docstring).

    Args:
        split: name of a split in :attr:`splits` (``train``, ``id``,
            ``ood_r1``, ``ood_r2``, ``ood``) the start radii are drawn from.
        obs_mode: ``"pixels"`` (``(resolution, resolution, 3)`` uint8) or
            ``"state"`` (``(13,)`` float32).
        resolution: side of pixel observations, pixels, an integer in ``[16, 4096]``.
        render_mode: ``None`` or ``"rgb_array"``.
        render_resolution: side of :meth:`render` frames, pixels, in ``[16, 4096]``.
        max_impulse: impulse of a unit action, mass x world units / s, in ``(0, 1e6]``.
        max_speed: speed the agent's impulse cannot exceed and the velocity
            scale of state observations, world units / s, in ``(0, 1e6]``.
        damping: per-second linear velocity decay rate ``c``
            (``v(t) = v0 exp(-c t)``), 1 / s, in ``[0, 1e6]``.
        success_bonus: reward added on success, in ``[-1e6, 1e6]``.
        approach_weight: weight of the red-to-blue distance in the shaping potential,
            in ``[-1e6, 1e6]``.
        max_events: cap on contacts handled per step, an integer in ``[1, 10**6]``.

    Every argument is type- and range-checked (numpy scalars are accepted; strings,
    bools for numbers, NaN and inf are not): a one-line :class:`~simlab.errors.ConfigError`
    names the argument and the bad value; so does an unknown argument. :meth:`step` and
    :meth:`render` before the first :meth:`reset` raise :class:`~simlab.errors.ResetNeededError`;
    ``reset(seed=...)`` takes a Python or numpy integer >= 0.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RenderModes(["rgb_array"]), "render_fps": 10}

    splits: ClassVar[dict[str, Split]] = _splits()
    """Generalization splits over ``r1`` (red), ``r2`` (blue) and ``target_r``, world units."""

    def __init__(
        self,
        split: str = "train",
        obs_mode: str = "pixels",
        resolution: int = 64,
        render_mode: str | None = None,
        render_resolution: int = 256,
        max_impulse: float = 2.0,
        max_speed: float = 8.0,
        damping: float = 0.0,
        success_bonus: float = 10.0,
        approach_weight: float = 0.1,
        max_events: int = 64,
        **unknown: Any,
    ) -> None:
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(f"unknown Collision2D argument(s) {names}; valid: split, obs_mode, resolution, "
                              "render_mode, render_resolution, max_impulse, max_speed, damping, "
                              "success_bonus, approach_weight, max_events")
        split = check_choice("split", split, self.splits)
        obs_mode = check_choice("obs_mode", obs_mode, OBS_MODES)
        resolution = check_int("resolution", resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        render_resolution = check_int("render_resolution", render_resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        render_mode = check_choice("render_mode", render_mode, self.metadata["render_modes"], allow_none=True)
        max_impulse = check_float("max_impulse", max_impulse, 0.0, MAX_MAGNITUDE, lo_open=True)
        max_speed = check_float("max_speed", max_speed, 0.0, MAX_MAGNITUDE, lo_open=True)
        damping = check_float("damping", damping, 0.0, MAX_MAGNITUDE)
        success_bonus = check_float("success_bonus", success_bonus, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        approach_weight = check_float("approach_weight", approach_weight, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        max_events = check_int("max_events", max_events, 1, MAX_EVENTS_LIMIT)

        self.split: Split = self.splits[split]
        self.obs_mode = obs_mode
        self.resolution = int(resolution)  # type: ignore[arg-type]
        self.render_mode = render_mode
        self.render_resolution = int(render_resolution)  # type: ignore[arg-type]
        self.max_impulse = float(max_impulse)  # type: ignore[arg-type]
        self.max_speed = float(max_speed)  # type: ignore[arg-type]
        self.damping = float(damping)  # type: ignore[arg-type]
        self.success_bonus = float(success_bonus)  # type: ignore[arg-type]
        self.approach_weight = float(approach_weight)  # type: ignore[arg-type]
        self.max_events = int(max_events)  # type: ignore[arg-type]
        self._needs_reset = True
        self.world = WORLD_SIZE
        self.dt = FRAME_DT

        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        if obs_mode == "pixels":
            self.observation_space = spaces.Box(0, 255, (self.resolution, self.resolution, 3), np.uint8)
        else:
            c = VEL_OBS_CLIP
            low = np.array([0, 0, -c, -c, 0, 0, -c, -c, 0, 0, 0, 0, 0], np.float32)
            high = np.array([1, 1, c, c, 1, 1, c, c, 1, 1, 1, 1, 1], np.float32)
            self.observation_space = spaces.Box(low, high, (STATE_DIM,), np.float32)

        # State (float64, world units / seconds); set by reset().
        self._pos = np.zeros((2, 2))
        self._vel = np.zeros((2, 2))
        self._radii = np.ones(2)
        self._target = np.array([WORLD_SIZE / 2, WORLD_SIZE / 2, 1.0])
        self._colors = np.array([TARGET_COLOR, RED, BLUE], np.uint8)
        self._shapes = np.array([[2, 0, 0]])  # ring, disc, disc

    # ---- gymnasium API -----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; see the module docstring for ``options={"state": {...}}``.

        Returns:
            ``(obs, info)``: the observation (see Observation Space) and the info dict.
        """
        seed = check_seed("seed", seed)
        opts = check_options("options", options, ("state",))
        state = opts.get("state")
        if state is not None and not isinstance(state, dict):
            raise ConfigError(f"options['state'] must be a dict (keys pos, vel, radii, target) or None, "
                              f"got {describe(state)}")
        super().reset(seed=seed)
        given = dict(state or {})
        unknown = set(given) - {"pos", "vel", "radii", "target"}
        if unknown:
            raise ConfigError(f"unknown keys in options['state']: {sorted(unknown)}; "
                              "use pos, vel, radii, target")
        params = self.split.sample(self.np_random, 1)
        radii = np.array([params["r1"][0], params["r2"][0]])
        if "radii" in given:
            radii = self._as_array(given["radii"], (2,), "radii")
        target_r = float(params["target_r"][0])
        target = None
        if "target" in given:
            target = self._as_array(given["target"], (3,), "target")
            target_r = float(target[2])
        if "pos" in given:
            pos = self._as_array(given["pos"], (2, 2), "pos")
            if target is None:
                target = self._sample_target(target_r)
        else:
            target, pos = self._place(radii, target_r, target)
        vel = np.zeros((2, 2)) if "vel" not in given else self._as_array(given["vel"], (2, 2), "vel")
        self._check_state(pos, vel, radii, target)
        self._pos, self._vel, self._radii, self._target = pos, vel, radii, target
        self._needs_reset = False
        return self._obs(), self._info(0, 0)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the impulse ``action * max_impulse`` to the red ball, then simulate 0.1 s.

        Args:
            action: ``(2,)`` in ``[-1, 1]``; raises :class:`ActionError` otherwise.

        Returns:
            ``(obs, reward, terminated, truncated, info)``; ``truncated`` is
            always False here (the ``TimeLimit`` wrapper truncates).

        Raises:
            ResetNeededError: before the first :meth:`reset`.
        """
        if self._needs_reset:
            raise ResetNeededError("call reset() before step() (the env has no state yet)")
        a = self._check_action(action)
        phi0 = self._potential()
        if a[0] != 0.0 or a[1] != 0.0:
            v_old = self._vel[0].copy()
            v_new = v_old + a * (self.max_impulse / self._radii[0] ** 2)
            speed = math.hypot(v_new[0], v_new[1])
            limit = max(self.max_speed, math.hypot(v_old[0], v_old[1]))
            if speed > limit:
                v_new *= limit / speed
            self._vel[0] = v_new
        self._pos, self._vel, n_ball, n_wall = advance_balls(
            self._pos, self._vel, self._radii, self.dt, self.world, self.damping, self.max_events)
        success = self._success()
        reward = self._potential() - phi0 + (self.success_bonus if success else 0.0)
        return self._obs(), float(reward), bool(success), False, self._info(n_ball, n_wall)

    def render(self) -> np.ndarray | None:
        """RGB frame ``(render_resolution, render_resolution, 3)`` uint8 for ``render_mode="rgb_array"``.

        Returns ``None`` (with a warning) when the env was made without a render mode;
        ResetNeededError before :meth:`reset`.
        """
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; "
                                  "make the env with render_mode='rgb_array'")
            return None
        if self._needs_reset:
            raise ResetNeededError("call reset() before render() (the env has no state yet)")
        return self._frame(self.render_resolution)

    def close(self) -> None:
        """Nothing to release (no windows, no files); safe to call repeatedly."""

    # ---- state access ------------------------------------------------------------------

    def get_state(self) -> dict[str, np.ndarray]:
        """Copy of the state in the ``options={"state": ...}`` format.

        Returns:
            ``pos`` ``(2, 2)`` and ``vel`` ``(2, 2)`` (world units, world units / s;
            row 0 red, row 1 blue), ``radii`` ``(2,)``, ``target`` ``(3,)`` =
            ``(tx, ty, tr)``, all float64.
        """
        return {"pos": self._pos.copy(), "vel": self._vel.copy(), "radii": self._radii.copy(),
                "target": self._target.copy()}

    # ---- internals ---------------------------------------------------------------------

    @staticmethod
    def _as_array(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        try:
            raw = np.asarray(x)
            if raw.dtype.kind not in "iuf":  # strings, bools, objects, complex: never converted silently
                raise TypeError(f"got {describe(x)}")
            arr = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as e:
            raise ConfigError(f"options['state'][{name!r}] is not numeric: {' '.join(str(e).split())}") from None
        if arr.shape != shape:
            raise ConfigError(f"options['state'][{name!r}] must have shape {shape}, got {arr.shape}")
        return arr

    def _check_state(self, pos: np.ndarray, vel: np.ndarray, radii: np.ndarray,
                     target: np.ndarray) -> None:
        validate_balls(pos[None], vel[None], radii[None])
        w = self.world
        if ((pos < radii[:, None] - 1e-9) | (pos > w - radii[:, None] + 1e-9)).any():
            raise ConfigError(f"balls must lie inside the {w:g} x {w:g} world "
                              f"(centre within r of no wall); got pos {pos.tolist()}, radii {radii.tolist()}")
        if not np.isfinite(target).all() or target[2] <= 0:
            raise ConfigError(f"target must be finite (tx, ty, tr) with tr > 0, got {target.tolist()}")
        if not ((0 <= target[:2]) & (target[:2] <= w)).all():
            raise ConfigError(f"target centre must lie in the world, got {target[:2].tolist()}")

    def _sample_target(self, tr: float) -> np.ndarray:
        c = tr + self.np_random.random(2) * (self.world - 2 * tr)
        return np.array([c[0], c[1], tr])

    def _place(self, radii: np.ndarray, tr: float,
               target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rejection-sample ball centres (and the target, unless given): ``(target (3,), pos (2, 2))``."""
        w, g = self.world, START_CLEARANCE
        r1, r2 = float(radii[0]), float(radii[1])
        lo2, hi2 = r2 + BLUE_WALL_MARGIN, w - r2 - BLUE_WALL_MARGIN
        if hi2 < lo2:
            lo2 = hi2 = w / 2
        for _ in range(PLACE_ROUNDS):
            tgt = target if target is not None else self._sample_target(tr)
            p1 = r1 + self.np_random.random((PLACE_BATCH, 2)) * (w - 2 * r1)
            p2 = lo2 + self.np_random.random((PLACE_BATCH, 2)) * (hi2 - lo2)
            ok = np.linalg.norm(p2 - p1, axis=-1) >= r1 + r2 + g
            ok &= np.linalg.norm(p1 - tgt[:2], axis=-1) >= tgt[2] + r1 + g
            ok &= np.linalg.norm(p2 - tgt[:2], axis=-1) >= tgt[2] + r2 + g
            if ok.any():
                i = int(np.argmax(ok))
                return tgt.copy(), np.stack([p1[i], p2[i]])
        raise ConfigError(f"could not place balls of radii {radii.tolist()} clear of a target of radius "
                          f"{tr:g} after {PLACE_ROUNDS * PLACE_BATCH} tries")

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            raw = np.asarray(action)
            if raw.dtype.kind not in "iuf":  # strings, bools, objects, complex: never converted silently
                raise TypeError
            a = np.array(raw, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ActionError(f"action must be numeric (2 real numbers in [-1, 1]), got {describe(action)}") from None
        if a.shape != (2,):
            raise ActionError(f"action must have shape (2,), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ActionError(f"action must be finite, got {a.tolist()}")
        if (np.abs(a) > 1.0 + ACTION_TOL).any():
            raise ActionError(f"action must lie in [-1, 1], got {a.tolist()}")
        return np.clip(a, -1.0, 1.0)

    def _distances(self) -> tuple[float, float]:
        p, t = self._pos, self._target
        d_bt = math.hypot(p[1, 0] - t[0], p[1, 1] - t[1])
        d_rb = math.hypot(p[1, 0] - p[0, 0], p[1, 1] - p[0, 1])
        return d_bt, d_rb

    def _potential(self) -> float:
        d_bt, d_rb = self._distances()
        return -(d_bt + self.approach_weight * d_rb)

    def _success(self) -> bool:
        return self._distances()[0] <= self._target[2]

    def _info(self, n_ball: int, n_wall: int) -> dict[str, Any]:
        d_bt, d_rb = self._distances()
        return {"is_success": bool(d_bt <= self._target[2]), "dist_blue_target": d_bt,
                "dist_red_blue": d_rb, "ball_contacts": int(n_ball), "wall_contacts": int(n_wall)}

    def _frame(self, res: int) -> np.ndarray:
        centers = np.concatenate([self._target[None, :2], self._pos])[None, None]  # (1, 1, 3, 2)
        radii = np.concatenate([self._target[2:3], self._radii])[None]  # (1, 3)
        return render_shapes(centers, radii, self._colors, res, shapes=self._shapes, world=self.world)[0, 0]

    def _obs(self) -> np.ndarray:
        if self.obs_mode == "pixels":
            return self._frame(self.resolution)
        w, s, c = self.world, self.max_speed, VEL_OBS_CLIP
        p, v = self._pos / w, np.clip(self._vel / s, -c, c)
        vec = np.array([p[0, 0], p[0, 1], v[0, 0], v[0, 1], p[1, 0], p[1, 1], v[1, 0], v[1, 1],
                        self._radii[0] / w, self._radii[1] / w, *(self._target / w)], np.float32)
        return np.clip(vec, self.observation_space.low, self.observation_space.high)
