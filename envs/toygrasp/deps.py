"""Lazy imports of the physics engines of the ``grasp`` extra.

pybullet and mujoco are optional (``pip install 'simlab[grasp]'``) and heavy,
so nothing imports them at ``import simlab``; the backends call
:func:`import_pybullet` / :func:`import_mujoco` when an env is built. A missing
package (or a Python too new for pybullet's wheels, which stop at CPython 3.11)
becomes one :class:`MissingExtraError` line naming the extra.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from simlab.errors import SimlabError

EXTRA = "grasp"


class MissingExtraError(SimlabError, ImportError):
    """An optional engine of the ``grasp`` extra is not installed."""


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        hint = ""
        if name.startswith("pybullet") and sys.version_info >= (3, 12):
            hint = (f" (pybullet ships wheels only for CPython <= 3.11; this is "
                    f"{sys.version_info.major}.{sys.version_info.minor})")
        raise MissingExtraError(f"toy grasping needs {name!r}, which is not importable ({e}); "
                                f"install the extra: pip install 'simlab[{EXTRA}]'{hint}") from None


def import_pybullet() -> tuple[ModuleType, ModuleType]:
    """``(pybullet, pybullet_data)``; MissingExtraError if absent.

    pybullet prints ``pybullet build time: ...`` to stderr (C level) when first imported;
    that line is silenced here.
    """
    if "pybullet" not in sys.modules:
        fd = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                try:
                    _import("pybullet")
                finally:
                    os.dup2(fd, 2)
        finally:
            os.close(fd)
    return _import("pybullet"), _import("pybullet_data")


def import_mujoco() -> ModuleType:
    """``mujoco`` with headless EGL rendering selected; MissingExtraError if absent.

    MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is first imported
    (default: glfw, which needs a display). Here ``MUJOCO_GL=egl`` is set unless
    the user chose one. If mujoco was already imported with the default while
    there is no display (e.g. by a test's ``importorskip``), its renderer's
    context class is switched to EGL, the software backend that works here
    with nothing to install; a backend the user chose is never changed.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    mj = _import("mujoco")
    try:
        from mujoco.rendering.classic import gl_context
    except ImportError:  # a mujoco without the classic renderer module layout
        return mj
    if getattr(gl_context, "_MUJOCO_GL", None) == "" and not os.environ.get("DISPLAY") \
            and "OpenGL" not in sys.modules:
        os.environ["PYOPENGL_PLATFORM"] = "egl"
        from mujoco.egl import GLContext

        gl_context.GLContext = GLContext
        gl_context._MUJOCO_GL = "egl"
    return mj


def pybullet_data_path() -> str:
    """Directory of the ``pybullet_data`` package (the Panda URDF and the unseen objects)."""
    return _import("pybullet_data").getDataPath()
