"""Forward kinematics, Jacobian and inverse kinematics of a URDF joint chain, pure numpy.

The env's action is an end-effector delta, so both engines need IK. It is done
here, once, from the URDF itself (joint origins and axes), so pybullet and
MuJoCo get identical joint targets for identical commands; tests check this
FK against both engines' own (to ~1e-6 m).

Shapes: ``q`` (7,) rad; poses are ``(pos (3,), rot (3, 3))`` in the robot base
frame; the Jacobian is ``(6, 7)`` (linear rows first, then angular).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from simlab.envs.toygrasp.geometry import rpy_mat


@dataclass(frozen=True)
class Chain:
    """Serial chain from the base link to ``tip``: per joint a fixed origin and, if movable, an axis."""

    origins: tuple[np.ndarray, ...]
    """(4, 4) transform of each joint's origin in its parent link's frame."""
    axes: tuple[np.ndarray | None, ...]
    """Unit axis (3,) of each revolute joint, None for fixed joints."""

    @staticmethod
    def from_urdf(text: str, base: str, tip: str) -> Chain:
        """Parse the joints from ``base`` to ``tip`` of a URDF (prismatic joints are not supported)."""
        root = ET.fromstring(text)
        by_child = {j.find("child").get("link"): j for j in root.iter("joint")}
        joints = []
        link = tip
        while link != base:
            j = by_child[link]
            joints.append(j)
            link = j.find("parent").get("link")
        origins, axes = [], []
        for j in reversed(joints):
            o = j.find("origin")
            t = np.eye(4)
            if o is not None:
                t[:3, :3] = rpy_mat(np.array([float(x) for x in o.get("rpy", "0 0 0").split()]))
                t[:3, 3] = [float(x) for x in o.get("xyz", "0 0 0").split()]
            origins.append(t)
            if j.get("type") == "revolute":
                a = np.array([float(x) for x in j.find("axis").get("xyz").split()])
                axes.append(a / np.linalg.norm(a))
            else:
                axes.append(None)
        return Chain(tuple(origins), tuple(axes))

    @property
    def dof(self) -> int:
        return sum(a is not None for a in self.axes)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tip pose ``(pos (3,), rot (3, 3))`` at joint angles ``q`` (dof,)."""
        t, _, _ = self._walk(q)
        return t[:3, 3].copy(), t[:3, :3].copy()

    def _walk(self, q: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        links, tip = self._compact
        rot, pos = np.eye(3), np.zeros(3)
        pts, ax = [], []
        for k, (o_rot, o_pos, a, k1, k2) in enumerate(links):
            pos = pos + rot @ o_pos
            rot = rot @ o_rot
            pts.append(pos)
            ax.append(rot @ a)
            s, c = np.sin(q[k]), np.cos(q[k])
            rot = rot + s * (rot @ k1) + (1.0 - c) * (rot @ k2)  # rot @ Rodrigues(a, q_k)
        t = np.eye(4)
        t[:3, 3] = pos + rot @ tip[:3, 3]
        t[:3, :3] = rot @ tip[:3, :3]
        return t, pts, ax

    @property
    def _compact(self) -> tuple[list[tuple[np.ndarray, ...]], np.ndarray]:
        """Per revolute joint ``(origin rot, origin pos, axis, K, K^2)`` with the fixed joints before it
        folded in, and the fixed transform after the last one (cached)."""
        cache = self.__dict__.get("_compact_cache")
        if cache is None:
            links, acc = [], np.eye(4)
            for o, a in zip(self.origins, self.axes):
                acc = acc @ o
                if a is not None:
                    k1 = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
                    links.append((acc[:3, :3].copy(), acc[:3, 3].copy(), a, k1, k1 @ k1))
                    acc = np.eye(4)
            cache = (links, acc)
            object.__setattr__(self, "_compact_cache", cache)
        return cache

    def jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pos (3,), rot (3, 3), J (6, dof))`` of the tip at ``q``."""
        t, pts, ax = self._walk(q)
        p = t[:3, 3]
        a = np.array(ax)
        r = p - np.array(pts)
        jac = np.empty((6, len(ax)))
        jac[0] = a[:, 1] * r[:, 2] - a[:, 2] * r[:, 1]  # cross(a, p - o), written out (np.cross is slow on 3-vectors)
        jac[1] = a[:, 2] * r[:, 0] - a[:, 0] * r[:, 2]
        jac[2] = a[:, 0] * r[:, 1] - a[:, 1] * r[:, 0]
        jac[3:] = a.T
        return p.copy(), t[:3, :3].copy(), jac


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) rotating ``current`` onto ``target`` (both (3, 3), world frame)."""
    r = target @ current.T
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))
    v = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    s = np.sin(angle)
    if s < 1e-6:
        if angle < 1e-6:
            return 0.5 * v
        # 180 degrees: axis from the diagonal
        axis = np.sqrt(np.maximum((np.diag(r) + 1) / 2, 0))
        i = int(np.argmax(axis))
        axis = r[:, i] / np.linalg.norm(r[:, i]) if np.linalg.norm(r[:, i]) > 0 else axis
        return axis * angle
    return v * angle / (2 * s)


def ik(chain: Chain, pos: np.ndarray, rot: np.ndarray, q0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
       rest: np.ndarray, iters: int = 30, damping: float = 1e-2, tol: float = 2e-4) -> np.ndarray:
    """Damped-least-squares IK from ``q0`` to the tip pose ``(pos, rot)``, within ``[lower, upper]``.

    A null-space term pulls the redundant degree of freedom towards ``rest``.
    Returns joint angles (dof,) rad (the best found if it does not converge).
    """
    q = np.clip(np.asarray(q0, np.float64), lower, upper)
    eye = np.eye(chain.dof)
    reg = damping ** 2 * np.eye(6)
    for _ in range(iters):
        p, r, jac = chain.jacobian(q)
        err = np.concatenate([pos - p, rotation_error(rot, r)])
        if np.linalg.norm(err[:3]) < tol and np.linalg.norm(err[3:]) < 5 * tol:
            break
        j_pinv = np.linalg.solve(jac @ jac.T + reg, jac).T  # J^T (J J^T + lambda^2 I)^-1
        dq = j_pinv @ err + (eye - j_pinv @ jac) @ (0.1 * (rest - q))
        q = np.clip(q + dq, lower, upper)
    return q
