"""MuJoCo backend of the toy-grasp scene (EGL software rendering, shadows and MSAA off).

The robot is pybullet_data's Panda URDF compiled by MuJoCo's URDF importer
(:func:`~simlab.envs.toygrasp.panda.mujoco_urdf_text`); this module adds
through ``MjSpec`` what the URDF lacks: position servos for the seven arm
joints and for each finger (both fingers are commanded, as in pybullet, and
the URDF's ``<mimic>``, imported as an equality constraint, couples them, as
pybullet's gear constraint does), gravity compensation of the arm, the table,
a camera with the same pose and field of view as pybullet's, and the
graspable body with its native shapes and explicit mass properties (one mesh
geom per convex part). Robot-robot contacts are off, as in pybullet.

A new object means a new model: the base spec is parsed once per process and
copied per body; compiled models are cached per body name.

Units: metres, radians, seconds; quaternions (w, x, y, z).
"""

from __future__ import annotations

import functools

import numpy as np

from simlab.envs.toygrasp import panda, scene
from simlab.envs.toygrasp.deps import import_mujoco
from simlab.envs.toygrasp.geometry import mat_to_quat
from simlab.envs.toygrasp.shapes import BodySpec
from simlab.errors import SimlabError

ARM_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
"""N m/rad; arm servo stiffness (menagerie's Panda)."""
FINGER_KP = 500.0
"""N/m; finger servo stiffness."""
ARM_KV = 0.05 * ARM_KP
"""N m s/rad; arm servo damping (tuned: TCP tracking error 3.9 mm mean vs pybullet's 3.4 mm on a test motion)."""
JOINT_DAMPING = 1.0
"""N m s/rad; passive arm joint damping (menagerie's value)."""
ARMATURE = 0.1
"""kg m^2; arm joint armature (menagerie's value)."""
NOSLIP_ITERATIONS = 3
"""MuJoCo's no-slip solver passes: without them a held toy creeps out of the soft finger contacts
within a second."""
OBJECT = "object"
OBJECT_SOLREF = (0.01, 1.0)
OBJECT_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)
"""Contact parameters of the object: stiffer than MuJoCo's default (0.02 s), which let the 20 N
fingers sink >1 cm into a light toy and squeeze it out."""
OBJECT_ROLLING = 0.002
"""m; rolling friction of the object (contacts with condim 6). With none (condim 3) a toy with a round
side keeps rolling on the table for seconds, where pybullet's (rolling friction 1e-4) stops it."""


def _base_spec():  # -> mujoco.MjSpec
    mj = import_mujoco()
    spec = mj.MjSpec.from_string(panda.mujoco_urdf_text())
    spec.option.timestep = scene.PHYSICS_DT
    spec.option.integrator = mj.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mj.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.option.noslip_iterations = NOSLIP_ITERATIONS
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.55, 0.55, 0.55]
    for b in spec.bodies:
        if b.name.startswith("panda_"):
            b.gravcomp = 1.0
    for g in spec.geoms:
        g.rgba = list(scene.ROBOT_RGBA)
        if g.contype or g.conaffinity:
            g.contype, g.conaffinity = 1, 0  # robot touches table and object, not itself
            g.group = 3  # collision copy: not drawn (the visual geom uses the same mesh)
            g.friction = [scene.FRICTION, 0.1, 0.0001]
    for name, kp, kv, force in zip(panda.ARM_JOINTS, ARM_KP, ARM_KV, panda.ARM_FORCE):
        j = spec.joint(name)
        j.damping = [JOINT_DAMPING, 0.0, 0.0]
        j.armature = ARMATURE
        spec.add_actuator(name=name, target=name, trntype=mj.mjtTrn.mjTRN_JOINT,
                          gaintype=mj.mjtGain.mjGAIN_FIXED, biastype=mj.mjtBias.mjBIAS_AFFINE,
                          gainprm=[kp] + [0] * 9, biasprm=[0, -kp, -kv] + [0] * 7,
                          forcelimited=True, forcerange=[-force, force])
    for name in panda.FINGER_JOINTS:
        spec.joint(name).damping = [10.0, 0.0, 0.0]
        spec.add_actuator(name=name, target=name, trntype=mj.mjtTrn.mjTRN_JOINT,
                          gaintype=mj.mjtGain.mjGAIN_FIXED, biastype=mj.mjtBias.mjBIAS_AFFINE,
                          gainprm=[FINGER_KP] + [0] * 9, biasprm=[0, -FINGER_KP, 0] + [0] * 7,
                          forcelimited=True, forcerange=[-panda.FINGER_FORCE, panda.FINGER_FORCE])
    world = spec.worldbody
    world.add_geom(name="table", type=mj.mjtGeom.mjGEOM_BOX, size=list(scene.TABLE_HALF), pos=list(scene.TABLE_POS),
                   rgba=list(scene.TABLE_RGBA), friction=[scene.FRICTION, 0.005, 0.0001])
    right, up = scene.camera_axes()
    cam_rot = np.stack([right, up, np.cross(right, up)], 1)  # MuJoCo cameras look along their -z
    world.add_camera(name="cam", pos=scene.CAMERA_EYE.tolist(), fovy=scene.CAMERA_FOVY,
                     quat=mat_to_quat(cam_rot).tolist())
    return spec


@functools.lru_cache(maxsize=1)
def base_spec():  # -> mujoco.MjSpec
    """The scene without an object (parsed once per process; copy before editing)."""
    return _base_spec()


def add_body(spec, body: BodySpec, pos: np.ndarray, quat: np.ndarray) -> None:
    """Add ``body`` as a free body named :data:`OBJECT` to ``spec`` (geoms in the COM frame)."""
    mj = import_mujoco()
    b = spec.worldbody.add_body(name=OBJECT, pos=list(pos), quat=list(quat))
    b.add_freejoint(name=OBJECT)
    b.explicitinertial = True
    b.mass = body.mass
    b.ipos = [0.0, 0.0, 0.0]
    b.iquat = list(body.inertia_quat)
    b.inertia = list(body.inertia)
    kinds = {"sphere": mj.mjtGeom.mjGEOM_SPHERE, "box": mj.mjtGeom.mjGEOM_BOX,
             "cylinder": mj.mjtGeom.mjGEOM_CYLINDER, "capsule": mj.mjtGeom.mjGEOM_CAPSULE,
             "mesh": mj.mjtGeom.mjGEOM_MESH}
    for k, g in enumerate(body.geoms):
        kw = {"type": kinds[g.kind], "pos": list(g.pos), "quat": list(g.quat), "rgba": list(body.rgba),
              "friction": [scene.FRICTION, 0.005, OBJECT_ROLLING], "condim": 6, "contype": 1, "conaffinity": 1,
              "solref": list(OBJECT_SOLREF), "solimp": list(OBJECT_SOLIMP)}
        if g.kind == "mesh":
            mesh = f"{OBJECT}_part{k}"
            spec.add_mesh(name=mesh, uservert=np.asarray(g.vertices, np.float64).ravel().tolist())
            b.add_geom(meshname=mesh, **kw)
        else:
            size = list(g.size) + [0.0] * (3 - len(g.size))
            b.add_geom(size=size, **kw)


def _renderer(model, height: int, width: int):  # -> mujoco.Renderer
    """``mujoco.Renderer``; a one-line SimlabError when no headless OpenGL backend was selected."""
    mj = import_mujoco()
    try:
        return mj.Renderer(model, height, width)
    except mj.FatalError as e:
        raise SimlabError(f"MuJoCo cannot render ({str(e).splitlines()[0][:120]}); set MUJOCO_GL=egl (or osmesa) "
                          "in the environment before mujoco is first imported") from None


class MuJoCoSim:
    """The scene in MuJoCo, rendered with ``mujoco.Renderer`` (``MUJOCO_GL=egl``).

    Args:
        width, height: image size in pixels.
    """

    name = "mujoco"

    def __init__(self, width: int = 96, height: int = 96) -> None:
        self.mj = import_mujoco()
        self.width, self.height = width, height
        self.model = None
        self.data = None
        self.renderer = None
        self._models: dict[str, object] = {}

    def _compile(self, body: BodySpec):
        if body.name not in self._models:
            spec = base_spec().copy()
            add_body(spec, body, np.zeros(3), np.array([1.0, 0, 0, 0]))
            m = spec.compile()
            m.light_castshadow[:] = 0
            if len(self._models) >= 16:
                self._models.pop(next(iter(self._models)))
            self._models[body.name] = m
        return self._models[body.name]

    # ---- building ------------------------------------------------------------------------
    def load_body(self, body: BodySpec, pos: np.ndarray, quat: np.ndarray) -> None:
        """Switch to the model holding ``body``, its COM at ``pos`` (3,) and orientation ``quat``."""
        mj = self.mj
        m = self._compile(body)
        if m is not self.model:
            self.model = m
            self.data = mj.MjData(m)
            if self.renderer is not None:
                self.renderer.close()
            self.renderer = _renderer(m, self.height, self.width)
            self.cam = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, "cam")
            self.arm_qadr = np.array([m.jnt_qposadr[mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, n)]
                                      for n in panda.ARM_JOINTS])
            self.finger_qadr = np.array([m.jnt_qposadr[mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, n)]
                                         for n in panda.FINGER_JOINTS])
            self.act_arm = np.array([mj.mj_name2id(m, mj.mjtObj.mjOBJ_ACTUATOR, n) for n in panda.ARM_JOINTS])
            self.act_fingers = np.array([mj.mj_name2id(m, mj.mjtObj.mjOBJ_ACTUATOR, n)
                                         for n in panda.FINGER_JOINTS])
            self.obj_body = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, OBJECT)
            self.obj_qadr = m.jnt_qposadr[mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, OBJECT)]
            self.obj_geoms = np.flatnonzero(m.geom_bodyid == self.obj_body)
            self.tcp = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, panda.TCP_LINK)
        q_arm, q_f = (self.data.qpos[self.arm_qadr].copy(), self.data.qpos[self.finger_qadr].copy())
        mj.mj_resetData(self.model, self.data)
        self.data.qpos[self.arm_qadr] = q_arm
        self.data.qpos[self.finger_qadr] = q_f
        self.data.qpos[self.obj_qadr:self.obj_qadr + 3] = pos
        self.data.qpos[self.obj_qadr + 3:self.obj_qadr + 7] = np.asarray(quat) / np.linalg.norm(quat)
        self.data.ctrl[self.act_arm] = q_arm
        self.data.ctrl[self.act_fingers] = q_f
        mj.mj_forward(self.model, self.data)

    def reset_robot(self, q: np.ndarray, finger: float) -> None:
        """Teleport the arm to ``q`` (7,) rad, each finger to ``finger`` m, at rest, and hold there."""
        d = self.data
        d.qpos[self.arm_qadr] = q
        d.qpos[self.finger_qadr] = finger
        d.qvel[:] = 0.0
        self.set_targets(q, finger)
        self.mj.mj_forward(self.model, d)

    def set_targets(self, q: np.ndarray, finger: float) -> None:
        """Position targets: arm ``q`` (7,) rad, each finger ``finger`` m.

        A closed command (``finger <= 0``) targets ``-FINGER_OPEN``, so the finger servo
        pushes with its full 20 N whatever the object's width (like pybullet's motor,
        which reaches its force limit at once); a target of 0 would squeeze a 2 cm toy
        with only 500 N/m x 1 cm = 5 N.
        """
        self.data.ctrl[self.act_arm] = q
        self.data.ctrl[self.act_fingers] = finger if finger > 0 else -panda.FINGER_OPEN

    # ---- stepping and state --------------------------------------------------------------
    def step(self, n: int) -> None:
        """Advance ``n`` physics steps."""
        self.mj.mj_step(self.model, self.data, nstep=n)

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self.arm_qadr].copy()

    def finger_q(self) -> np.ndarray:
        return self.data.qpos[self.finger_qadr].copy()

    def body_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Object COM position (3,) m and orientation (w, x, y, z)."""
        a = self.obj_qadr
        return self.data.qpos[a:a + 3].copy(), self.data.qpos[a + 3:a + 7].copy()

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) m and rotation (3, 3), from the engine."""
        self.mj.mj_kinematics(self.model, self.data)
        return self.data.xpos[self.tcp].copy(), self.data.xmat[self.tcp].reshape(3, 3).copy()

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (H, W, 3) uint8, object mask (H, W) bool)``: one RGB and one segmentation pass."""
        r = self.renderer
        r.update_scene(self.data, camera=self.cam)
        rgb = r.render().copy()
        r.enable_segmentation_rendering()
        try:
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        mask = (seg[..., 1] == int(self.mj.mjtObj.mjOBJ_GEOM)) & np.isin(seg[..., 0], self.obj_geoms)
        self.last_mask = mask
        return rgb, mask

    def object_masks(self) -> list[np.ndarray]:
        """Masks ``(H, W)`` bool of every object of the last :meth:`render` (MuJoCo scenes hold one:
        the target)."""
        mask = getattr(self, "last_mask", None)
        if mask is None:
            raise RuntimeError("object_masks() before render()")
        return [mask]

    def close(self) -> None:
        """Free the renderer (idempotent)."""
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
