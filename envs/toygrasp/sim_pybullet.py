"""pybullet backend of the toy-grasp scene (DIRECT mode, TinyRenderer).

Builds the shared scene (:mod:`~simlab.envs.toygrasp.scene`): the low-poly
Panda (:mod:`~simlab.envs.toygrasp.panda`) with a fixed base, the table box
and one graspable body from a :class:`~simlab.envs.toygrasp.shapes.BodySpec`
with native shapes (written as a one-link URDF; mesh parts as one
multi-group OBJ, which pybullet loads as a compound). Each instance owns its
own physics client, so several envs can live in one process.

Units: metres, radians, seconds; quaternions (w, x, y, z) at this interface.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np

from simlab.envs.toygrasp import panda, scene
from simlab.envs.toygrasp.deps import import_pybullet
from simlab.envs.toygrasp.geometry import from_xyzw, quat_to_mat, rot_to_rpy, to_xyzw
from simlab.envs.toygrasp.objfile import write_obj_parts
from simlab.envs.toygrasp.shapes import BodySpec

_TMP: list[str] = []


def _tmpdir() -> str:
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="simlab-toygrasp-pb-"))
        atexit.register(shutil.rmtree, _TMP[0], ignore_errors=True)
    return _TMP[0]


_MESH_FILES: dict[str, str] = {}


def _mesh_file(body: BodySpec) -> str | None:
    """One OBJ with the body's mesh parts in the body frame (None if it has none; cached by name)."""
    if body.name in _MESH_FILES:
        return _MESH_FILES[body.name]
    parts = []
    for g in body.geoms:
        if g.kind == "mesh":
            v = np.asarray(g.vertices) @ quat_to_mat(g.quat).T + np.asarray(g.pos)
            parts.append((v, np.asarray(g.faces)))
    if not parts:
        return None
    path = os.path.join(_tmpdir(), f"{body.name.replace('/', '_')}.obj")
    write_obj_parts(path, parts)
    _MESH_FILES[body.name] = path
    return path


def _origin(g) -> str:
    rpy = rot_to_rpy(quat_to_mat(g.quat))
    return (f'<origin xyz="{g.pos[0]:.9g} {g.pos[1]:.9g} {g.pos[2]:.9g}" '
            f'rpy="{rpy[0]:.9g} {rpy[1]:.9g} {rpy[2]:.9g}"/>')


def body_urdf(body: BodySpec, mesh_file: str | None) -> str:
    """URDF text of ``body``: one link, a ``<collision>`` and ``<visual>`` per geom, the mass properties.

    A URDF rather than ``createCollisionShapeArray``: the latter keeps at most 16
    shapes per body (a toy with two rings has 25), the URDF importer has no limit.
    """
    shapes = []
    for g in body.geoms:
        if g.kind == "mesh":
            continue
        if g.kind == "sphere":
            geo = f'<sphere radius="{g.size[0]:.9g}"/>'
        elif g.kind == "box":
            geo = f'<box size="{2 * g.size[0]:.9g} {2 * g.size[1]:.9g} {2 * g.size[2]:.9g}"/>'
        else:
            geo = f'<{g.kind} radius="{g.size[0]:.9g}" length="{2 * g.size[1]:.9g}"/>'
        shapes.append((_origin(g), geo))
    if mesh_file is not None:
        shapes.append(('<origin xyz="0 0 0" rpy="0 0 0"/>', f'<mesh filename="{mesh_file}"/>'))
    r, gcol, b, a = body.rgba
    ixx, iyy, izz = body.inertia
    inertial = (f'<inertial><origin xyz="0 0 0" rpy="0 0 0"/><mass value="{body.mass:.9g}"/>'
                f'<inertia ixx="{ixx:.9g}" ixy="0" ixz="0" iyy="{iyy:.9g}" iyz="0" izz="{izz:.9g}"/></inertial>')
    lines = [f'<robot name="{body.name}"><link name="base">', inertial]
    for origin, geo in shapes:
        lines.append(f"<collision>{origin}<geometry>{geo}</geometry></collision>")
        lines.append(f'<visual>{origin}<geometry>{geo}</geometry>'
                     f'<material name="c"><color rgba="{r:.4g} {gcol:.4g} {b:.4g} {a:.4g}"/></material></visual>')
    lines.append("</link></robot>")
    return "\n".join(lines)


_URDF_FILES: dict[str, str] = {}


def _urdf_file(body: BodySpec) -> str:
    """A per-process temporary URDF of ``body`` (cached by name)."""
    if body.name not in _URDF_FILES:
        path = os.path.join(_tmpdir(), f"{body.name.replace('/', '_')}.urdf")
        with open(path, "w") as f:
            f.write(body_urdf(body, _mesh_file(body)))
        _URDF_FILES[body.name] = path
    return _URDF_FILES[body.name]


class PyBulletSim:
    """The scene in one pybullet DIRECT client.

    Args:
        width, height: image size in pixels.
    """

    name = "pybullet"

    def __init__(self, width: int = 96, height: int = 96) -> None:
        self.p, _ = import_pybullet()
        p = self.p
        self.width, self.height = width, height
        self.cid = p.connect(p.DIRECT)
        p.setGravity(0, 0, -9.81, physicsClientId=self.cid)
        p.setTimeStep(scene.PHYSICS_DT, physicsClientId=self.cid)
        self.robot = p.loadURDF(panda.lowpoly_urdf_path(), useFixedBase=True, physicsClientId=self.cid,
                                flags=p.URDF_ENABLE_CACHED_GRAPHICS_SHAPES)
        names = [p.getJointInfo(self.robot, j, physicsClientId=self.cid)[1].decode()
                 for j in range(p.getNumJoints(self.robot, physicsClientId=self.cid))]
        links = [p.getJointInfo(self.robot, j, physicsClientId=self.cid)[12].decode()
                 for j in range(len(names))]
        self.arm = [names.index(n) for n in panda.ARM_JOINTS]
        self.fingers = [names.index(n) for n in panda.FINGER_JOINTS]
        self.tcp = links.index(panda.TCP_LINK)
        # pybullet ignores the URDF's <mimic>: couple the fingers with a gear constraint (ratio -1)
        gear = p.createConstraint(self.robot, self.fingers[0], self.robot, self.fingers[1], p.JOINT_GEAR,
                                  [1, 0, 0], [0, 0, 0], [0, 0, 0], physicsClientId=self.cid)
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=50, physicsClientId=self.cid)
        for j in range(-1, len(names)):
            p.changeVisualShape(self.robot, j, rgbaColor=scene.ROBOT_RGBA, physicsClientId=self.cid)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=scene.TABLE_HALF, physicsClientId=self.cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=scene.TABLE_HALF, rgbaColor=scene.TABLE_RGBA,
                                  physicsClientId=self.cid)
        self.table = p.createMultiBody(0, col, vis, scene.TABLE_POS, physicsClientId=self.cid)
        p.changeDynamics(self.table, -1, lateralFriction=scene.FRICTION, physicsClientId=self.cid)
        self.obj: int | None = None
        self.distractor: int | None = None
        self.view = p.computeViewMatrix(scene.CAMERA_EYE.tolist(), scene.CAMERA_TARGET.tolist(), [0, 0, 1])
        self.proj = p.computeProjectionMatrixFOV(scene.CAMERA_FOVY, width / height, scene.CAMERA_NEAR,
                                                 scene.CAMERA_FAR)

    # ---- building ------------------------------------------------------------------------
    def load_body(self, body: BodySpec, pos: np.ndarray, quat: np.ndarray) -> None:
        """Replace the graspable object by ``body`` with its COM at ``pos`` (3,), orientation ``quat``."""
        p, c = self.p, self.cid
        if self.obj is not None:
            p.removeBody(self.obj, physicsClientId=c)
        self.obj = p.loadURDF(_urdf_file(body), list(pos), to_xyzw(quat), physicsClientId=c,
                              flags=p.URDF_USE_INERTIA_FROM_FILE)
        p.changeDynamics(self.obj, -1, lateralFriction=scene.FRICTION, spinningFriction=0.001,
                         rollingFriction=0.0001, physicsClientId=c)

    def load_distractor(self, body: BodySpec | None, pos: np.ndarray | None = None,
                        quat: np.ndarray | None = None) -> None:
        """Replace the second (non-target) object by ``body`` at ``pos``/``quat``; None removes it.

        It is drawn and collides like the target, but is not in the target mask.
        """
        p, c = self.p, self.cid
        if self.distractor is not None:
            p.removeBody(self.distractor, physicsClientId=c)
            self.distractor = None
        if body is not None:
            self.distractor = p.loadURDF(_urdf_file(body), list(pos), to_xyzw(quat), physicsClientId=c,
                                         flags=p.URDF_USE_INERTIA_FROM_FILE)
            p.changeDynamics(self.distractor, -1, lateralFriction=scene.FRICTION, spinningFriction=0.001,
                             rollingFriction=0.0001, physicsClientId=c)

    def distractor_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The second object's COM position (3,) m and orientation (w, x, y, z)."""
        pos, orn = self.p.getBasePositionAndOrientation(self.distractor, physicsClientId=self.cid)
        return np.array(pos), from_xyzw(orn)

    def set_camera(self, eye: np.ndarray, target: np.ndarray = scene.CAMERA_TARGET) -> None:
        """Move the camera to ``eye`` (3,) m, looking at ``target`` (3,) m, world z up."""
        self.view = self.p.computeViewMatrix(list(map(float, eye)), list(map(float, target)), [0, 0, 1])

    def reset_robot(self, q: np.ndarray, finger: float) -> None:
        """Teleport the arm to ``q`` (7,) rad, each finger to ``finger`` m, at rest, and hold there."""
        p, c = self.p, self.cid
        for j, qj in zip(self.arm, q):
            p.resetJointState(self.robot, j, float(qj), 0.0, physicsClientId=c)
        for j in self.fingers:
            p.resetJointState(self.robot, j, float(finger), 0.0, physicsClientId=c)
        self.set_targets(q, finger)

    def set_targets(self, q: np.ndarray, finger: float) -> None:
        """Position targets: arm ``q`` (7,) rad, each finger ``finger`` m (torque/force-limited servos)."""
        p, c = self.p, self.cid
        p.setJointMotorControlArray(self.robot, self.arm, p.POSITION_CONTROL, targetPositions=list(map(float, q)),
                                    forces=panda.ARM_FORCE.tolist(), physicsClientId=c)
        p.setJointMotorControlArray(self.robot, self.fingers, p.POSITION_CONTROL, targetPositions=[finger] * 2,
                                    forces=[panda.FINGER_FORCE] * 2, physicsClientId=c)

    # ---- stepping and state --------------------------------------------------------------
    def step(self, n: int) -> None:
        """Advance ``n`` physics steps of :data:`~simlab.envs.toygrasp.scene.PHYSICS_DT`."""
        for _ in range(n):
            self.p.stepSimulation(physicsClientId=self.cid)

    def arm_q(self) -> np.ndarray:
        """Arm joint angles (7,) rad."""
        return np.array([s[0] for s in self.p.getJointStates(self.robot, self.arm, physicsClientId=self.cid)])

    def finger_q(self) -> np.ndarray:
        """Finger joint positions (2,) m (each 0-0.04)."""
        return np.array([s[0] for s in self.p.getJointStates(self.robot, self.fingers, physicsClientId=self.cid)])

    def body_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Object COM position (3,) m and orientation (w, x, y, z)."""
        pos, orn = self.p.getBasePositionAndOrientation(self.obj, physicsClientId=self.cid)
        return np.array(pos), from_xyzw(orn)  # body frame = inertial frame (see shapes.make_body)

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP (``panda_grasptarget``) position (3,) m and rotation (3, 3), from the engine."""
        s = self.p.getLinkState(self.robot, self.tcp, computeForwardKinematics=True, physicsClientId=self.cid)
        return np.array(s[4]), quat_to_mat(from_xyzw(s[5]))

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (H, W, 3) uint8, object mask (H, W) bool)`` from the fixed camera (TinyRenderer)."""
        p = self.p
        _, _, rgba, _, seg = p.getCameraImage(self.width, self.height, self.view, self.proj,
                                              renderer=p.ER_TINY_RENDERER, shadow=0,
                                              physicsClientId=self.cid)
        rgba = np.asarray(rgba, np.uint8).reshape(self.height, self.width, 4)
        seg = np.asarray(seg).reshape(self.height, self.width)
        self.last_seg = seg
        return np.ascontiguousarray(rgba[..., :3]), seg == self.obj

    def object_masks(self) -> list[np.ndarray]:
        """Masks ``(H, W)`` bool of every object body of the last :meth:`render` (``seg == body id``):
        the target first, then the distractor if there is one."""
        seg = getattr(self, "last_seg", None)
        if seg is None:
            raise RuntimeError("object_masks() before render()")
        return [seg == b for b in (self.obj, self.distractor) if b is not None]

    def close(self) -> None:
        """Disconnect the physics client (idempotent)."""
        if self.cid is not None and self.p.isConnected(self.cid):
            self.p.disconnect(self.cid)
        self.cid = None
