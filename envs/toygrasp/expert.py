"""Scripted expert: an antipodal top-down grasp planned from the object's known geometry.

The env knows the object (its interior sample points in the world frame,
:meth:`~simlab.envs.toygrasp.env.ToyGraspEnv.object_points`). At the first
step of an episode :func:`plan_grasp` scores candidate grasps (a centre in
the horizontal plane x a hand heading): the fingers (pads
:data:`PAD_HALF_WIDTH` wide) close along the heading's closing axis over the
points in the pads' slab that lie above the fingertips; a grasp is feasible
when that extent fits the opening with a margin and both contact faces are
nearly square to the closing axis (the antipodal condition in the horizontal
plane, faces estimated across the pads' width), and the best one minimises
``width + 2 * distance from the COM + 0.02 * face slope``.
:class:`ScriptedExpert` then follows waypoints with bounded actions: above
the grasp (10 cm), down, close (4 steps), lift 16 cm at 2 cm per step, hold.

Its success rate per split and engine is the ceiling printed beside every
policy (:mod:`~simlab.envs.toygrasp.ceiling` measures it; ``docs/results.md``
has the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.envs.toygrasp import scene
from simlab.envs.toygrasp.env import MOVE_SCALE, YAW_LIMIT, YAW_SCALE

PAD_HALF_WIDTH = 0.011
"""m; half width of a finger pad along the hand's x axis."""
MAX_WIDTH = 0.06
"""m; widest extent grasped (the hand opens 8 cm; 1 cm per side is left for tracking errors)."""
FINGER_DEPTH = 0.02
"""m; the TCP goes to the COM's height, but at least this far below the object's top (and not below
:data:`MIN_TCP_Z`)."""
HAND_CLEARANCE = 0.04
"""m; the TCP stays at most this far below the object's top, so the palm (~4.5 cm above the TCP)
clears it."""
MIN_TCP_Z = 0.012
"""m; lowest TCP height (fingertips just above the table)."""
COM_WEIGHT = 2.0
"""Score penalty per metre between the grasp centre and the COM (off-centre grasps slip and twist)."""
MAX_TILT = 0.58
"""Steepest contact face accepted (|ds/dx|, tan 30 deg): with friction 1 a steeper face squeezes out."""
TILT_WEIGHT = 0.02
"""Score penalty (m) per unit of face slope."""
TILT_BINS = 4
LIFT = 0.16
"""m; how high the expert lifts (success needs 10 cm)."""
LIFT_SPEED = 0.5
"""Action units (2 cm per step): a slow lift, so the object is not thrown out of the fingers when the arm
stops."""
N_YAWS = 16
N_CENTRES = 24


@dataclass(frozen=True)
class Grasp:
    """A planned top-down grasp: TCP position (3,) m, heading rad, width m (inf if none was feasible)."""

    pos: np.ndarray
    yaw: float
    width: float

    @property
    def feasible(self) -> bool:
        return bool(np.isfinite(self.width))


def closing_axis(yaw: float) -> np.ndarray:
    """Horizontal unit vector (3,) along which the fingers close at hand heading ``yaw``."""
    return np.array([-np.sin(yaw), np.cos(yaw), 0.0])


def _side_tilt(xs: np.ndarray, ss: np.ndarray) -> float:
    """Largest slope |ds/dx| of the two contact faces across the pads (x: along the pad, s: closing axis).

    The slab is cut into :data:`TILT_BINS` bins along the pad; the faces are the
    per-bin minimum and maximum of ``s``; a slope of 0 means faces square to the
    closing axis (antipodal), 1 means 45 degrees (a corner).
    """
    edges = np.linspace(-PAD_HALF_WIDTH, PAD_HALF_WIDTH, TILT_BINS + 1)
    b = np.clip(np.searchsorted(edges, xs) - 1, 0, TILT_BINS - 1)
    centres, lo, hi = [], [], []
    for k in range(TILT_BINS):
        m = b == k
        if m.any():
            centres.append(xs[m].mean())
            lo.append(ss[m].min())
            hi.append(ss[m].max())
    if len(centres) < 2 or np.ptp(centres) < 1e-4:
        return float("inf")
    return float(max(abs(np.polyfit(centres, lo, 1)[0]), abs(np.polyfit(centres, hi, 1)[0])))


def plan_grasp(points: np.ndarray, max_width: float = MAX_WIDTH, max_tilt: float = MAX_TILT) -> Grasp:
    """Best top-down antipodal grasp of a body given by interior points ``(N, 3)`` (world frame, m).

    When no candidate meets the limits the result has ``width = inf`` and is a blind
    grasp at the COM with heading 0 (the expert still tries it; it succeeds now and then).
    """
    top = float(points[:, 2].max())
    com = points.mean(0)
    z = max(MIN_TCP_Z, min(top - FINGER_DEPTH, float(com[2])), top - HAND_CLEARANCE)
    stride = max(1, len(points) // N_CENTRES)
    centres = np.concatenate([com[None, :2], points[::stride, :2]])
    best = Grasp(np.array([com[0], com[1], z]), 0.0, float("inf"))
    best_score = np.inf
    reach = points[points[:, 2] >= z - 0.012]  # what the fingers (tips ~7 mm below the TCP) sweep
    for yaw in np.linspace(-YAW_LIMIT, YAW_LIMIT, N_YAWS, endpoint=False):
        c = closing_axis(yaw)
        x = np.array([c[1], -c[0], 0.0])
        for ctr in centres:
            d = reach[:, :2] - ctr
            xs = d @ x[:2]
            slab = np.abs(xs) <= PAD_HALF_WIDTH
            if slab.sum() < 3:
                continue
            s = d[slab] @ c[:2]
            lo, hi = float(s.min()), float(s.max())
            width = hi - lo
            if width > max_width:
                continue
            tilt = _side_tilt(xs[slab], s)
            if tilt > max_tilt:
                continue
            centre = ctr + c[:2] * (lo + hi) / 2
            score = width + COM_WEIGHT * float(np.linalg.norm(centre - com[:2])) + TILT_WEIGHT * tilt
            if score < best_score:
                best_score = score
                best = Grasp(np.array([centre[0], centre[1], z]), float(yaw), width)
    return best


class ScriptedExpert:
    """Waypoint follower of :func:`plan_grasp` for one :class:`ToyGraspEnv` (call :meth:`act` each step).

    Args:
        env: the env (or a wrapper of it); its state is read, never changed.
    """

    def __init__(self, env) -> None:  # env: gymnasium.Env wrapping a ToyGraspEnv
        self.env = env.unwrapped
        self.grasp: Grasp | None = None
        self.phase = 0
        self.count = 0

    def reset(self) -> None:
        """Forget the plan (called automatically at an episode's first step)."""
        self.grasp, self.phase, self.count = None, 0, 0

    def _waypoints(self) -> list[tuple[np.ndarray, float, bool, int]]:
        g = self.grasp
        above = g.pos + [0.0, 0.0, 0.10]
        lift = np.array([g.pos[0], g.pos[1], min(scene.WORKSPACE_HI[2], g.pos[2] + LIFT)])
        # (TCP target, yaw, closed, extra steps to wait once reached, speed limit in action units)
        return [(above, g.yaw, False, 0, 1.0), (g.pos, g.yaw, False, 0, 1.0), (g.pos, g.yaw, True, 4, 1.0),
                (lift, g.yaw, True, 10**6, LIFT_SPEED)]

    def act(self, obs: object = None) -> np.ndarray:
        """Action (5,) float32 for the env's current state."""
        env = self.env
        if env.steps == 0 and (self.grasp is None or self.count > 0 or self.phase > 0):
            self.reset()
        if self.grasp is None:
            self.grasp = plan_grasp(env.object_points())
        wps = self._waypoints()
        target, yaw, closed, wait, speed = wps[min(self.phase, len(wps) - 1)]
        delta = (target - env.tcp_target) / MOVE_SCALE
        dyaw = (yaw - env.yaw_target) / YAW_SCALE
        if np.abs(delta).max() < 1e-3 and abs(dyaw) < 1e-3:
            self.count += 1
            if self.count > wait and self.phase < len(wps) - 1:
                self.phase, self.count = self.phase + 1, 0
        a = np.concatenate([np.clip(delta, -speed, speed), [np.clip(dyaw, -1, 1)], [1.0 if closed else -1.0]])
        return a.astype(np.float32)
