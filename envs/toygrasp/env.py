"""ToyGrasp: pick up a random toy (or an unseen object) with a Franka Panda, in pybullet or MuJoCo.

Description:
    The Panda of pybullet_data (the same URDF in both engines) stands at the
    origin of a table whose top is the plane z = 0. At reset one object of
    the split (a random toy, or an unseen pybullet_data object) is dropped at
    a random position and heading in front of the robot and settles for
    1 s; the hand starts open, pointing down, 30 cm above the table. The
    agent moves the tool centre point (TCP, ``panda_grasptarget``, between the
    fingertips) in Cartesian space, turns the hand about the vertical and
    opens or closes the gripper. Inverse kinematics (numpy, from the URDF:
    identical joint targets in both engines) turns the commanded TCP pose
    into joint position targets for the servos, and the physics runs 24 steps
    of 1/240 s per action (10 Hz control).
Action Space:
    ``Box(-1, 1, (5,), float32)``: ``(dx, dy, dz, dyaw, grip)``. The commanded
    TCP position moves by ``(dx, dy, dz) * 0.04`` m (clipped to the workspace
    x 0.25-0.8, y -0.35-0.35, z 0.01-0.45 m), its heading by ``dyaw * 0.3``
    rad (clipped to +-pi/2); ``grip > 0`` closes the fingers (20 N each),
    otherwise they open to 8 cm. An action that is NaN/inf, of another
    shape, or outside ``[-1, 1]`` by more than 1e-6 raises
    :class:`~simlab.errors.ActionError` (never clipped silently).
Observation Space:
    ``Dict``: ``rgb`` ``Box(0, 255, (H, W, 3), uint8)`` from a fixed camera
    in front of the robot (96 x 96 by default); ``mask`` ``Box(0, 1, (H, W),
    1), uint8)``, 255 where the target object is visible, else 0; ``proprio``
    ``Box(-4, 4, (8,), float32)``: the 7 arm joint angles (rad) and the
    gripper width (m, 0-0.08). With ``object_masks=True`` also ``objects``
    ``Box(0, 255, (MAX_OBJECTS, H, W), uint8)``: one mask per object on the
    table (target and distractor alike; ``seg == body id``), in image order
    (:func:`position_order`: mask centroid column u ascending, then row v;
    empty masks, e.g. hidden or absent objects, last and all zero), so the
    order never says which object is the target.
Rewards:
    1 on the step the task succeeds, else 0.
Starting State:
    Object from the split chosen with ``self.np_random`` (or
    ``options={"object": name}``), COM at x in [0.45, 0.62], y in [-0.12,
    0.12] m, heading uniform, dropped 5 mm above the table. More options
    (pybullet only, for the shortcut probe): ``color`` recolours the target
    (a toy colour name), ``distractor`` (an object name) adds a second,
    non-target object (recoloured by ``distractor_color``); then both COMs are
    drawn as one i.i.d. pair over x in [0.45, 0.62], y in [-0.2, 0.2] m, at
    their extents at least 4 cm apart (so position never tells which is the target); the
    distractor's height is reported as ``info["distractor_lift"]``
    (m above its rest height), and ``camera_eye`` (3,) m moves the camera
    (still looking at the same point).
Episode End:
    Terminated when the object's COM has been >= 10 cm above its resting
    height for 1 s (10 consecutive control steps): ``info["is_success"]``.
    Truncated after 50 steps by the registered ``TimeLimit``.
Arguments:
    ``backend`` (``"pybullet"`` | ``"mujoco"``), ``split`` (``toys-train`` |
    ``toys-test`` | ``objects``), ``train_toys`` (size of ``toys-train``),
    ``resolution`` (image side, px), ``render_mode`` (``"rgb_array"``),
    ``object_masks`` (add the ``objects`` observation; default off).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simlab.envs.toygrasp import panda, scene
from simlab.envs.toygrasp.geometry import axis_angle_mat, quat_to_mat, transform
from simlab.envs.toygrasp.kinematics import Chain, ik
from simlab.envs.toygrasp.splits import (
    SPLIT_NAMES,
    TRAIN_TOYS,
    body_of,
    split_objects,
    toygrasp_splits,
)
from simlab.errors import ActionError, ConfigError
from simlab.registry import RenderModes

BACKENDS = ("pybullet", "mujoco")
MOVE_SCALE = 0.04
"""m of TCP motion per unit action."""
YAW_SCALE = 0.3
"""rad of hand rotation per unit action."""
YAW_LIMIT = np.pi / 2
LIFT_HEIGHT = 0.10
"""m; success height of the object's COM above its resting height."""
HOLD_STEPS = 10
"""Control steps (1 s) the object must stay lifted."""
HOME_TCP = np.array([0.43, 0.0, 0.30])
ACTION_TOL = 1e-6
DOWN = np.diag([1.0, -1.0, -1.0])
"""TCP rotation pointing down with heading 0 (fingers close along world y)."""


SEPARATION = 0.04
"""m; least gap between the horizontal extents of the target and a distractor."""
TWO_OBJECT_SPAWN_Y = (-0.2, 0.2)
"""m; y range of a distractor's COM (wider than the target's, to leave room)."""


def recolored(body: Any, color: str | None) -> Any:
    """``body`` in one of the toy colours (``red``, ``green``, ``blue``, ``yellow``); None: unchanged."""
    if color is None:
        return body
    import dataclasses

    from simlab.envs.toygrasp.toys import COLORS

    if color not in COLORS:
        raise ConfigError(f"unknown colour {color!r}; one of {', '.join(COLORS)}")
    return dataclasses.replace(body, name=f"{body.name}@{color}", rgba=COLORS[color])


def _radius(body: Any) -> float:
    """m; largest horizontal distance of the body's points from its COM (any heading)."""
    return float(np.linalg.norm(np.asarray(body.points)[:, :2], axis=1).max())


def tcp_rotation(yaw: float) -> np.ndarray:
    """Rotation (3, 3) of a downward TCP with heading ``yaw`` (rad)."""
    return axis_angle_mat([0, 0, 1], yaw) @ DOWN


def make_sim(backend: str, resolution: int):  # -> PyBulletSim | MuJoCoSim
    """The engine backend of the scene; ConfigError for an unknown name."""
    if backend == "pybullet":
        from simlab.envs.toygrasp.sim_pybullet import PyBulletSim

        return PyBulletSim(resolution, resolution)
    if backend == "mujoco":
        from simlab.envs.toygrasp.sim_mujoco import MuJoCoSim

        return MuJoCoSim(resolution, resolution)
    raise ConfigError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")



MAX_OBJECTS = 2
"""Object masks in the ``objects`` observation (target + at most one distractor)."""


def position_order(masks: np.ndarray) -> np.ndarray:
    """The image order of object masks: ``(K, H, W)`` -> ``(K,)`` int indices.

    Sorted by the mask centroid's column u (px) ascending, ties by its row v ascending;
    empty masks last (in their input order). The slot encoder uses the same rule
    (:func:`simlab.policies.grasp_slots.slot_order`).
    """
    m = np.asarray(masks) > 0
    area = m.sum((1, 2))
    ys, xs = np.arange(m.shape[1]), np.arange(m.shape[2])
    u = np.where(area > 0, (m.sum(1) * xs).sum(1) / np.maximum(area, 1), np.inf)
    v = np.where(area > 0, (m.sum(2) * ys).sum(1) / np.maximum(area, 1), np.inf)
    return np.lexsort((np.arange(len(m)), v, u))


RESET_OPTIONS = ("object", "color", "distractor", "distractor_color", "camera_eye")
"""Keys ``reset(options=...)`` accepts (others are a one-line ConfigError)."""

class ToyGraspEnv(gym.Env):
    """Toy grasping with the Panda; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RenderModes(["rgb_array"]), "render_fps": 10}
    splits = toygrasp_splits()

    def __init__(self, backend: str = "pybullet", split: str = "toys-train", train_toys: int = TRAIN_TOYS,
                 resolution: int = 96, render_mode: str | None = None, object_masks: bool = False) -> None:
        from simlab.validate import check_choice, check_int

        backend = check_choice("backend", backend, BACKENDS)
        render_mode = check_choice("render_mode", render_mode, ("rgb_array",), allow_none=True)
        resolution = check_int("resolution", resolution, 16, 512)
        split = check_choice("split", split, SPLIT_NAMES)
        train_toys = check_int("train_toys", train_toys, 1, 100_000)
        self.backend, self.split, self.resolution, self.render_mode = backend, split, resolution, render_mode
        self.objects = split_objects(split, train_toys)
        self.chain = Chain.from_urdf(panda.lowpoly_urdf_text(), "panda_link0", panda.TCP_LINK)
        self.action_space = spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.object_masks = bool(object_masks)
        obs_spaces = {
            "rgb": spaces.Box(0, 255, (resolution, resolution, 3), np.uint8),
            "mask": spaces.Box(0, 255, (resolution, resolution, 1), np.uint8),
            "proprio": spaces.Box(-4.0, 4.0, (8,), np.float32),
        }
        if self.object_masks:
            obs_spaces["objects"] = spaces.Box(0, 255, (MAX_OBJECTS, resolution, resolution), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.sim = make_sim(backend, resolution)
        self._frame: np.ndarray | None = None
        self.object_name = ""
        self.distractor_name = ""

    # ---- episode ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        from simlab.validate import check_options, check_seed

        super().reset(seed=check_seed("seed", seed))
        options = check_options("options", options, RESET_OPTIONS)
        rng = self.np_random
        name = options.get("object")
        pick = int(rng.integers(len(self.objects)))
        name = self.objects[pick] if name is None else str(name)
        body = recolored(body_of(name), options.get("color"))
        x, y = rng.uniform(*scene.SPAWN_X), rng.uniform(*scene.SPAWN_Y)
        yaw = rng.uniform(-np.pi, np.pi)
        quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        self.body, self.object_name = body, name
        distractor = self._two_object_options(options)
        if distractor is not None:  # both positions from one symmetric draw: position never tells the target
            (x, y), d_xy = self._two_positions(body, distractor, rng)
        self.sim.load_body(body, np.array([x, y, body.half_height + scene.DROP_CLEARANCE]), quat)
        self._place_distractor(options, rng, distractor, d_xy if distractor is not None else None)
        self.q_target = panda.HOME_Q.copy()  # IK seed
        self.q_target = self._ik(HOME_TCP, 0.0)
        self.sim.reset_robot(self.q_target, panda.FINGER_OPEN)
        self.sim.step(scene.SETTLE_STEPS)
        self.tcp_target, self.yaw_target, self.closed = HOME_TCP.copy(), 0.0, False
        self.rest_z = float(self.sim.body_pose()[0][2])
        self.distractor_rest_z = float(self.sim.distractor_pose()[0][2]) if self.distractor_name else 0.0
        self.lifted_steps, self.steps = 0, 0
        obs = self._obs()
        return obs, self._info(False)

    def step(self, action: np.ndarray):
        a = self._check_action(action)
        self.tcp_target = np.clip(self.tcp_target + a[:3] * MOVE_SCALE, scene.WORKSPACE_LO, scene.WORKSPACE_HI)
        self.yaw_target = float(np.clip(self.yaw_target + a[3] * YAW_SCALE, -YAW_LIMIT, YAW_LIMIT))
        self.closed = bool(a[4] > 0)
        self.q_target = self._ik(self.tcp_target, self.yaw_target)
        self.sim.set_targets(self.q_target, 0.0 if self.closed else panda.FINGER_OPEN)
        self.sim.step(scene.SUBSTEPS)
        self.steps += 1
        lift = float(self.sim.body_pose()[0][2]) - self.rest_z
        self.lifted_steps = self.lifted_steps + 1 if lift >= LIFT_HEIGHT else 0
        success = self.lifted_steps >= HOLD_STEPS
        return self._obs(), float(success), success, False, self._info(success, lift)

    def render(self) -> np.ndarray | None:
        """The last camera frame ``(H, W, 3)`` uint8 (``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            return None
        return None if self._frame is None else self._frame.copy()

    def close(self) -> None:
        if getattr(self, "sim", None) is not None:
            self.sim.close()
            self.sim = None

    # ---- helpers ---------------------------------------------------------------------------
    def _ik(self, pos: np.ndarray, yaw: float) -> np.ndarray:
        return ik(self.chain, pos, tcp_rotation(yaw), self.q_target, panda.SOFT_LOWER, panda.SOFT_UPPER,
                  panda.HOME_Q)

    def _obs(self) -> dict[str, np.ndarray]:
        rgb, mask = self.sim.render()
        self._frame = rgb
        proprio = np.concatenate([self.sim.arm_q(), [self.sim.finger_q().sum()]]).astype(np.float32)
        obs = {"rgb": rgb, "mask": mask[..., None].astype(np.uint8) * np.uint8(255),
               "proprio": np.clip(proprio, -4.0, 4.0)}
        if self.object_masks:
            objs = np.zeros((MAX_OBJECTS, *mask.shape), np.uint8)
            found = np.stack(self.sim.object_masks()).astype(np.uint8) * np.uint8(255)
            objs[:len(found)] = found[position_order(found)]
            obs["objects"] = objs
        return obs

    def _info(self, success: bool, lift: float = 0.0) -> dict[str, Any]:
        info = {"is_success": bool(success), "object": self.object_name, "lift": lift,
                "lifted_steps": self.lifted_steps, "backend": self.backend}
        if self.distractor_name:
            info["distractor"] = self.distractor_name
            info["distractor_lift"] = (float(self.sim.distractor_pose()[0][2]) - self.distractor_rest_z
                                       if self.steps else 0.0)
        return info

    # ---- two-object scenes (the shortcut probe; pybullet only) -----------------------------
    def _two_object_options(self, options: dict[str, Any]) -> Any:
        """Check the two-object options, point the camera (default pose unless ``camera_eye``);
        returns the distractor's body (recoloured) or None."""
        two = options.get("distractor") is not None or options.get("camera_eye") is not None
        if two and self.backend != "pybullet":
            raise ConfigError("two-object scenes and camera moves (the shortcut probe) are pybullet-only")
        if self.backend != "pybullet":
            return None
        eye = options.get("camera_eye")
        eye = scene.CAMERA_EYE if eye is None else np.asarray(eye, np.float64)
        if eye.shape != (3,) or not np.isfinite(eye).all():
            raise ConfigError(f"camera_eye must be 3 finite numbers (m), got {options.get('camera_eye')!r}")
        self.sim.set_camera(eye)
        name = options.get("distractor")
        return None if name is None else recolored(body_of(str(name)), options.get("distractor_color"))

    def _two_positions(self, target: Any, distractor: Any, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
        """COM positions ``(2,)`` m of target and distractor: drawn as an i.i.d. uniform pair over
        x in SPAWN_X, y in :data:`TWO_OBJECT_SPAWN_Y`, redrawn until their horizontal extents are
        :data:`SEPARATION` apart (a symmetric law: where a toy lies says nothing of which is the target)."""
        gap = _radius(target) + _radius(distractor) + SEPARATION
        for _ in range(1000):
            a, b = (np.array([rng.uniform(*scene.SPAWN_X), rng.uniform(*TWO_OBJECT_SPAWN_Y)]) for _ in range(2))
            if np.linalg.norm(a - b) >= gap:
                return a, b
        raise ConfigError(f"no room for two objects this large ({gap:.3f} m apart) on the table")

    def _place_distractor(self, options: dict[str, Any], rng: np.random.Generator, body: Any,
                          xy: np.ndarray | None) -> None:
        """Drop the distractor ``body`` at ``xy`` (2,) m with a random heading; remove it when None."""
        self.distractor_name = ""
        if self.backend != "pybullet":
            return
        if body is None:
            self.sim.load_distractor(None)
            return
        yaw = rng.uniform(-np.pi, np.pi)
        quat = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        self.sim.load_distractor(body, np.array([*xy, body.half_height + scene.DROP_CLEARANCE]), quat)
        self.distractor_name = str(options["distractor"])

    def _check_action(self, action: Any) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ActionError(f"action must be numeric, got {action!r}") from None
        if a.shape != (5,):
            raise ActionError(f"action must have shape (5,), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ActionError(f"action must be finite, got {a.tolist()}")
        if (np.abs(a) > 1.0 + ACTION_TOL).any():
            raise ActionError(f"action must lie in [-1, 1], got {a.tolist()}")
        return np.clip(a, -1.0, 1.0)

    # ---- planner access (the scripted expert knows the geometry) ---------------------------
    def object_points(self) -> np.ndarray:
        """The object's interior sample points in the world frame, ``(N, 3)`` m."""
        pos, quat = self.sim.body_pose()
        return transform(self.body.points, pos, quat_to_mat(quat))


class ToyGraspMJEnv(ToyGraspEnv):
    """:class:`ToyGraspEnv` in MuJoCo (``simlab/ToyGraspMJ-v0``)."""

    def __init__(self, split: str = "toys-train", train_toys: int = TRAIN_TOYS, resolution: int = 96,
                 render_mode: str | None = None, backend: str = "mujoco", object_masks: bool = False) -> None:
        super().__init__(backend=backend, split=split, train_toys=train_toys, resolution=resolution,
                         render_mode=render_mode, object_masks=object_masks)
