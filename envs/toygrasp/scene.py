"""The shared scene of both engines: table, camera, timing, workspace (constants, metres/seconds).

The robot base stands at the world origin on the table top (z = 0); objects
are dropped in front of it. Both backends build exactly these numbers.
"""

from __future__ import annotations

import numpy as np

PHYSICS_DT = 1.0 / 240.0
"""s; physics step of both engines."""
SUBSTEPS = 24
"""Physics steps per control step: 10 Hz control."""
CONTROL_DT = PHYSICS_DT * SUBSTEPS
SETTLE_STEPS = 240
"""Physics steps the object falls and settles for at reset (1 s)."""

TABLE_HALF = (0.45, 0.5, 0.02)
TABLE_POS = (0.45, 0.0, -0.02)
"""Table box: half extents and centre (its top is the plane z = 0)."""
TABLE_RGBA = (0.55, 0.42, 0.30, 1.0)
ROBOT_RGBA = (0.92, 0.92, 0.92, 1.0)
FRICTION = 1.0
"""Sliding friction coefficient of the object and the table (the fingers' is 1.0 in the URDF)."""

CAMERA_EYE = np.array([1.0, 0.0, 0.58])
CAMERA_TARGET = np.array([0.45, 0.0, 0.1])
CAMERA_FOVY = 55.0
"""deg; vertical field of view."""
CAMERA_NEAR, CAMERA_FAR = 0.05, 3.0

SPAWN_X = (0.45, 0.62)
SPAWN_Y = (-0.12, 0.12)
"""m; range of the object's drop position (its COM's x, y)."""
DROP_CLEARANCE = 0.005
"""m; gap between the object's lowest point and the table when it is dropped."""

WORKSPACE_LO = np.array([0.25, -0.35, 0.01])
WORKSPACE_HI = np.array([0.80, 0.35, 0.45])
"""m; bounds of the commanded TCP position."""


def camera_axes(eye: np.ndarray = CAMERA_EYE, target: np.ndarray = CAMERA_TARGET) -> tuple[np.ndarray, np.ndarray]:
    """Camera ``right`` and ``up`` unit vectors (3,) for a camera at ``eye`` looking at ``target``, world z up."""
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, fwd)
