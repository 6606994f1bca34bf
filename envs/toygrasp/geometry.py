"""Rotations and rigid transforms, pure numpy.

Conventions: quaternions are ``(w, x, y, z)`` (MuJoCo's order; pybullet uses
``(x, y, z, w)``, converted with :func:`to_xyzw` / :func:`from_xyzw`), rotation
matrices are ``(3, 3)`` mapping body to world, lengths are metres, angles radians.
"""

from __future__ import annotations

import numpy as np


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a unit quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix ``(3, 3)`` (Shepperd's method)."""
    m = np.asarray(m, np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def axis_angle_mat(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of ``angle`` (rad) about ``axis`` (any non-zero length)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def rpy_mat(rpy: np.ndarray) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes x, y, z) -> rotation matrix ``Rz(y) Ry(p) Rx(r)``."""
    r, p, y = rpy
    return axis_angle_mat([0, 0, 1], y) @ axis_angle_mat([0, 1, 0], p) @ axis_angle_mat([1, 0, 0], r)


def rot_to_rpy(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> URDF roll-pitch-yaw ``(3,)`` (inverse of :func:`rpy_mat`)."""
    m = np.asarray(m, np.float64)
    pitch = float(np.arcsin(np.clip(-m[2, 0], -1.0, 1.0)))
    if abs(m[2, 0]) < 1 - 1e-9:
        roll = float(np.arctan2(m[2, 1], m[2, 2]))
        yaw = float(np.arctan2(m[1, 0], m[0, 0]))
    else:  # gimbal lock: put everything in yaw
        roll = 0.0
        yaw = float(np.arctan2(-m[0, 1], m[1, 1]))
    return np.array([roll, pitch, yaw])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix ``(3, 3)`` (normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    return quat_to_mat(q / np.linalg.norm(q))


def to_xyzw(q: np.ndarray) -> list[float]:
    """``(w, x, y, z)`` -> pybullet's ``[x, y, z, w]``."""
    return [float(q[1]), float(q[2]), float(q[3]), float(q[0])]


def from_xyzw(q: tuple[float, ...] | list[float]) -> np.ndarray:
    """pybullet's ``(x, y, z, w)`` -> ``(w, x, y, z)``."""
    return np.array([q[3], q[0], q[1], q[2]], np.float64)


def transform(points: np.ndarray, pos: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Points ``(N, 3)`` in a frame with origin ``pos`` and rotation ``mat`` -> parent frame ``(N, 3)``."""
    return np.asarray(points) @ np.asarray(mat).T + np.asarray(pos)


def yaw_of(mat: np.ndarray) -> float:
    """Heading (rad) of a rotation's x axis projected on the horizontal plane."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))
