"""The Franka Panda of ``pybullet_data/franka_panda/panda.urdf``, for both engines.

One robot file serves both engines:

- :func:`lowpoly_urdf_text` rewrites the URDF so that every visual uses the
  collision mesh (3.4k instead of 100k triangles: ~5x faster frames in both
  renderers) and every ``package://`` path is absolute. pybullet loads it from
  a file written once per process (:func:`lowpoly_urdf_path`).
- :func:`mujoco_urdf_text` additionally adds a fixed ``world`` link and the
  ``<mujoco><compiler fusestatic="false" discardvisual="false"/></mujoco>``
  block, so MuJoCo keeps ``panda_link0``, ``panda_hand`` and the TCP
  ``panda_grasptarget`` as bodies; actuators are added by the MuJoCo backend.

Joint targets are clamped to the Panda's *soft* limits (the URDF's
``safety_controller``, also menagerie's limits) in both engines.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from simlab.envs.toygrasp.deps import MissingExtraError, pybullet_data_path

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
TCP_LINK = "panda_grasptarget"
SOFT_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
SOFT_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
"""rad; soft joint limits of the arm (URDF ``safety_controller``)."""
HOME_Q = np.array([0.0, -0.35, 0.0, -2.45, 0.0, 2.1, np.pi / 4])
"""rad; start configuration (hand pointing down above the table)."""
ARM_FORCE = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
"""N m; joint torque limits (URDF ``effort``)."""
FINGER_FORCE = 20.0
"""N per finger (URDF ``effort``)."""
FINGER_OPEN = 0.04
"""m; finger joint travel (each finger), so the hand opens 8 cm."""


def urdf_path() -> Path:
    """Path of pybullet_data's ``franka_panda/panda.urdf``; MissingExtraError if the meshes are absent."""
    root = Path(pybullet_data_path()) / "franka_panda"
    path = root / "panda.urdf"
    if not path.exists():
        raise MissingExtraError(f"{path}: the Panda URDF is missing from pybullet_data; reinstall pybullet")
    for mesh in set(re.findall(r'filename="package://([^"]+)"', path.read_text())):
        if not (root / mesh).exists():
            raise MissingExtraError(f"{root / mesh}: a Panda mesh file is missing; reinstall pybullet")
    return path


def lowpoly_urdf_text() -> str:
    """The Panda URDF with collision meshes as visuals and absolute mesh paths."""
    path = urdf_path()
    text = path.read_text()
    text = text.replace("meshes/visual/", "meshes/collision/")
    return text.replace("package://", f"{path.parent}/")


@functools.lru_cache(maxsize=1)
def lowpoly_urdf_path() -> str:
    """A per-process temporary file holding :func:`lowpoly_urdf_text` (for pybullet's ``loadURDF``)."""
    d = tempfile.mkdtemp(prefix="simlab-panda-")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    out = os.path.join(d, "panda_lowpoly.urdf")
    with open(out, "w") as f:
        f.write(lowpoly_urdf_text())
    return out


def mujoco_urdf_text() -> str:
    """:func:`lowpoly_urdf_text` made loadable by MuJoCo's URDF importer (base fixed at the origin)."""
    text = lowpoly_urdf_text()
    head, rest = text.split('<link name="panda_link0">', 1)
    inject = ('<mujoco><compiler strippath="false" fusestatic="false" discardvisual="false" '
              'balanceinertia="true"/></mujoco>\n'
              '  <link name="world"/>\n'
              '  <joint name="world_joint" type="fixed"><parent link="world"/><child link="panda_link0"/>'
              '<origin xyz="0 0 0" rpy="0 0 0"/></joint>\n')
    return head + inject + '  <link name="panda_link0">' + rest
