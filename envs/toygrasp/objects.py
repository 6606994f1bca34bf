"""Unseen test objects from ``pybullet_data``, as engine-neutral bodies.

The ``objects`` split (never used for training) holds the real-ish objects
of pybullet_data (duck, teddy, mug, lego brick, jenga block, domino) and the
100 procedural objects of ``random_urdfs`` whose folder ends in 0 (the test
split of pybullet's KukaDiverseObjectEnv). :func:`object_body` reads an
object's URDF collision elements (meshes with their scale and origin, boxes)
and splits every collision OBJ into its convex ``o`` parts
(:mod:`~simlab.envs.toygrasp.objfile`), so the body is the same compound in
pybullet and MuJoCo. Every object gets the same density as the toys and a
neutral grey-white colour (the toys' colours are a cue of the training
distribution, so unseen objects do not share them).

Names: ``duck``, ``teddy``, ``mug``, ``lego``, ``jenga``, ``domino`` and
``random/NNN`` (NNN = 000, 010, ..., 990).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from simlab.envs.toygrasp.deps import pybullet_data_path
from simlab.envs.toygrasp.geometry import mat_to_quat, rpy_mat
from simlab.envs.toygrasp.objfile import read_obj_parts
from simlab.envs.toygrasp.shapes import BodySpec, Geom, make_body
from simlab.errors import ConfigError

NAMED: dict[str, str] = {
    "duck": "duck_vhacd.urdf",
    "teddy": "teddy_vhacd.urdf",
    "mug": "objects/mug.urdf",
    "lego": "lego/lego.urdf",
    "jenga": "jenga/jenga.urdf",
    "domino": "domino/domino.urdf",
}
RANDOM_TEST = tuple(f"random/{i:03d}" for i in range(0, 1000, 10))
OBJECT_NAMES: tuple[str, ...] = (*NAMED, *RANDOM_TEST)
OBJECT_RGBA = (0.80, 0.78, 0.74, 1.0)


def urdf_of(name: str) -> Path:
    """URDF path of object ``name``; ConfigError (one line) for an unknown name or a missing file."""
    if name in NAMED:
        rel = NAMED[name]
    elif name.startswith("random/") and name[7:].isdigit() and len(name) == 10:
        rel = f"random_urdfs/{name[7:]}/{name[7:]}.urdf"
    else:
        raise ConfigError(f"unknown object {name!r}; known: {', '.join(NAMED)}, random/000 .. random/999")
    path = Path(pybullet_data_path()) / rel
    if not path.exists():
        raise ConfigError(f"{path}: object file not found")
    return path


def _floats(text: str | None, default: str) -> np.ndarray:
    return np.array([float(x) for x in (text or default).split()], np.float64)


def collision_geoms(urdf: Path) -> list[Geom]:
    """Geoms of the first link's ``<collision>`` elements (meshes split into convex parts, boxes)."""
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as e:
        raise ConfigError(f"{urdf}: not valid URDF XML ({e})") from None
    geoms: list[Geom] = []
    for col in root.iter("collision"):
        o = col.find("origin")
        pos = _floats(o.get("xyz") if o is not None else None, "0 0 0")
        rot = rpy_mat(_floats(o.get("rpy") if o is not None else None, "0 0 0"))
        quat = tuple(float(x) for x in mat_to_quat(rot))
        g = col.find("geometry")
        mesh, box = g.find("mesh"), g.find("box")
        if mesh is not None:
            scale = _floats(mesh.get("scale"), "1 1 1")
            if len(scale) == 1:
                scale = np.repeat(scale, 3)
            for v, f in read_obj_parts(urdf.parent / mesh.get("filename")):
                geoms.append(Geom("mesh", (), tuple(pos), quat, v * scale, f))
        elif box is not None:
            geoms.append(Geom("box", tuple(_floats(box.get("size"), "") / 2), tuple(pos), quat))
        else:
            raise ConfigError(f"{urdf}: unsupported collision geometry {[c.tag for c in g]}")
    if not geoms:
        raise ConfigError(f"{urdf}: no collision geometry")
    return geoms


@functools.lru_cache(maxsize=256)
def object_body(name: str) -> BodySpec:
    """The :class:`BodySpec` of unseen object ``name`` (cached)."""
    return make_body(name, collision_geoms(urdf_of(name)), OBJECT_RGBA)
