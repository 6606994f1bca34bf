"""Wavefront OBJ files split into parts: one part per ``o`` (or ``g``) group.

The collision OBJs of pybullet_data's objects (V-HACD output) hold several
convex parts as ``o`` groups. pybullet treats such a file as a compound, but
MuJoCo's importer (and trimesh) merge it into one mesh, i.e. one convex hull,
so a handle or a hole would be filled. :func:`read_obj_parts` splits it, and
:func:`write_obj_parts` writes parts back as one multi-group OBJ (the
compound pybullet loads).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simlab.errors import ConfigError


def read_obj_parts(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Parts ``[(vertices (V, 3), faces (F, 3) int)]`` of an OBJ, faces triangulated as fans.

    Each part holds only the vertices its faces use (re-indexed). A file
    without groups is one part. ConfigError naming the file if it is missing or
    holds no faces.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: mesh file not found")
    verts: list[list[float]] = []
    groups: list[list[list[int]]] = [[]]
    for line in path.read_text(errors="replace").splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "v":
            verts.append([float(x) for x in tok[1:4]])
        elif tok[0] in ("o", "g"):
            if groups[-1]:
                groups.append([])
        elif tok[0] == "f":
            idx = [int(t.split("/")[0]) for t in tok[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            groups[-1].extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    v_all = np.asarray(verts, np.float64)
    parts = []
    for faces in groups:
        if not faces:
            continue
        f = np.asarray(faces, np.int64)
        used, inv = np.unique(f, return_inverse=True)
        parts.append((v_all[used], inv.reshape(-1, 3)))
    if not parts:
        raise ConfigError(f"{path}: no faces in mesh file")
    return parts


def write_obj_parts(path: str | Path, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write ``[(vertices (V, 3), faces (F, 3))]`` as one OBJ with an ``o`` group per part."""
    lines = []
    base = 1
    for k, (v, f) in enumerate(parts):
        lines.append(f"o part{k}")
        lines.extend(f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in v)
        lines.extend(f"f {a + base} {b + base} {c + base}" for a, b, c in f)
        base += len(v)
    Path(path).write_text("\n".join(lines) + "\n")
