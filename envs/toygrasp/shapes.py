"""Engine-neutral description of one graspable rigid body, and its mass properties.

A :class:`BodySpec` is what both backends build natively: a list of
:class:`Geom` (sphere, box, cylinder, capsule or a convex mesh part), a colour,
and mass properties computed here from the geometry, so a toy or an unseen
object has the same shape, mass and inertia in pybullet and in MuJoCo.

Frames and units: every geom pose is relative to the body frame, which is the
body's centre of mass, with its axes along the principal axes of inertia; lengths in metres, masses in kilograms, inertia in
kg m^2 about the COM, diagonal in the principal frame ``inertia_quat``
(w, x, y, z). Cylinders and capsules lie along their local z axis; ``size`` is
sphere ``(r,)``, box ``(hx, hy, hz)`` half extents, cylinder / capsule
``(r, half_length)`` (a capsule's half length excludes its caps), mesh ``()``
with ``vertices (V, 3)`` (in the geom frame) and ``faces (F, 3)`` of one
convex part.

Mass properties come from a voxel grid: the cell centres inside the union of
the geoms (overlaps counted once) at a fixed density. The grid is fine
enough (at most :data:`GRID_CELLS` cells along the longest side, at least
:data:`MIN_SPACING`) for the volume to be within a few per cent of the
analytic one (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simlab.envs.toygrasp.geometry import mat_to_quat, quat_to_mat, transform
from simlab.errors import ConfigError

KINDS = ("sphere", "box", "cylinder", "capsule", "mesh")
DENSITY = 400.0
"""kg/m^3 of every body (light plastic; a 5 cm cube weighs 50 g)."""
GRID_CELLS = 56
MIN_SPACING = 0.0015
"""m; voxel size floor of the mass-property grid."""
MAX_POINTS = 2048
"""Interior points kept per body for planners (the expert)."""


@dataclass(frozen=True)
class Geom:
    """One collision/visual shape of a body (see the module docstring for ``size``)."""

    kind: str
    size: tuple[float, ...]
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    vertices: np.ndarray | None = field(default=None, compare=False, repr=False)
    faces: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown geom kind {self.kind!r}; one of {', '.join(KINDS)}")
        need = {"sphere": 1, "box": 3, "cylinder": 2, "capsule": 2, "mesh": 0}[self.kind]
        if len(self.size) != need:
            raise ConfigError(f"{self.kind} needs {need} size values, got {len(self.size)}")
        if not all(np.isfinite(s) and s > 0 for s in self.size):
            raise ConfigError(f"{self.kind} sizes must be finite and positive, got {tuple(self.size)}")
        if self.kind == "mesh":
            v = np.asarray(self.vertices, np.float64) if self.vertices is not None else np.zeros((0, 3))
            if v.ndim != 2 or v.shape[1] != 3 or len(v) < 4 or not np.isfinite(v).all():
                raise ConfigError(f"a mesh part needs at least 4 finite vertices (V, 3), got shape {v.shape}")
            if np.ptp(v, axis=0).min() <= 0:
                raise ConfigError("a mesh part must have a positive extent along every axis")

    def moved(self, pos: np.ndarray, mat: np.ndarray) -> Geom:
        """This geom with its pose composed under the transform ``(pos, mat)``."""
        p = transform(np.asarray(self.pos)[None], pos, mat)[0]
        q = mat_to_quat(np.asarray(mat) @ quat_to_mat(self.quat))
        return Geom(self.kind, self.size, tuple(p), tuple(q), self.vertices, self.faces)

    def local_points_inside(self, p: np.ndarray) -> np.ndarray:
        """Boolean ``(N,)``: points ``(N, 3)`` given in the geom frame lie inside the shape."""
        if self.kind == "sphere":
            return (p * p).sum(1) <= self.size[0] ** 2
        if self.kind == "box":
            return (np.abs(p) <= np.asarray(self.size)).all(1)
        if self.kind == "cylinder":
            r, h = self.size
            return ((p[:, :2] ** 2).sum(1) <= r * r) & (np.abs(p[:, 2]) <= h)
        if self.kind == "capsule":
            r, h = self.size
            z = np.clip(p[:, 2], -h, h)
            return (p[:, 0] ** 2 + p[:, 1] ** 2 + (p[:, 2] - z) ** 2) <= r * r
        return _inside_convex(np.asarray(self.vertices), self.faces, p)

    def local_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds ``(lo (3,), hi (3,))`` of the shape in its own frame."""
        if self.kind == "sphere":
            h = np.full(3, self.size[0])
        elif self.kind == "box":
            h = np.asarray(self.size, np.float64)
        elif self.kind == "cylinder":
            h = np.array([self.size[0], self.size[0], self.size[1]])
        elif self.kind == "capsule":
            h = np.array([self.size[0], self.size[0], self.size[1] + self.size[0]])
        else:
            v = np.asarray(self.vertices)
            return v.min(0), v.max(0)
        return -h, h

    def world_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact axis-aligned bounds ``(lo (3,), hi (3,))`` of the posed shape in the body frame."""
        pos, rot = np.asarray(self.pos, np.float64), quat_to_mat(self.quat)
        if self.kind == "sphere":
            h = np.full(3, self.size[0])
        elif self.kind in ("cylinder", "capsule"):
            r, half = self.size
            axis = rot[:, 2]
            h = half * np.abs(axis) + (r if self.kind == "capsule" else r * np.sqrt(np.clip(1 - axis ** 2, 0, 1)))
        elif self.kind == "box":
            h = np.abs(rot) @ np.asarray(self.size, np.float64)
        else:
            v = transform(np.asarray(self.vertices), pos, rot)
            return v.min(0), v.max(0)
        return pos - h, pos + h


def _inside_convex(vertices: np.ndarray, faces: np.ndarray | None, p: np.ndarray) -> np.ndarray:
    """Points ``(N, 3)`` inside the convex polytope of ``vertices`` with triangles ``faces``.

    Each face plane is oriented away from the vertex centroid, so the winding of
    the faces does not matter.
    """
    if faces is None or len(faces) == 0:
        raise ConfigError("a mesh part needs faces to test points against")
    c = vertices.mean(0)
    a, b, d = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    n = np.cross(b - a, d - a)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12
    n, a = n[ok] / norm[ok, None], a[ok]
    off = ((c - a) * n).sum(1)
    n = np.where(off[:, None] > 0, -n, n)  # outward
    return ((p @ n.T) - (a * n).sum(1) <= 1e-9).all(1)


@dataclass(frozen=True)
class MassProperties:
    """Mass properties of a body and interior sample points.

    ``com`` (3,) m and ``points`` (N, 3) m are in the frame the geoms were given
    in; ``inertia`` (3,) kg m^2 are principal moments about the COM along the
    columns of ``axes`` (3, 3); ``volume`` m^3.
    """

    volume: float
    mass: float
    com: np.ndarray
    inertia: np.ndarray
    axes: np.ndarray
    points: np.ndarray


def mass_properties(geoms: list[Geom] | tuple[Geom, ...], density: float = DENSITY,
                    max_points: int = MAX_POINTS) -> MassProperties:
    """Volume, mass, COM and principal inertia of the union of ``geoms`` (voxel grid; pure).

    Returns interior points too: at most ``max_points`` voxel centres, a
    deterministic random subset.
    """
    if not geoms:
        raise ConfigError("a body needs at least one geom")
    bounds = [g.world_bounds() for g in geoms]
    lo = np.min([b[0] for b in bounds], 0)
    hi = np.max([b[1] for b in bounds], 0)
    h = max(MIN_SPACING, float((hi - lo).max()) / GRID_CELLS)
    axes = [np.arange(lo[i] + h / 2, hi[i], h) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    inside = np.zeros(len(grid), bool)
    for g, (glo, ghi) in zip(geoms, bounds):
        sel = np.flatnonzero(~inside & (grid >= glo).all(1) & (grid <= ghi).all(1))
        if len(sel):
            local = (grid[sel] - np.asarray(g.pos)) @ quat_to_mat(g.quat)
            inside[sel[g.local_points_inside(local)]] = True
    pts = grid[inside]
    if len(pts) == 0:
        raise ConfigError("the body's geoms enclose no volume at the mass-property grid's resolution")
    cell_mass = density * h ** 3
    com = pts.mean(0)
    r = pts - com
    inertia = cell_mass * ((r * r).sum() * np.eye(3) - r.T @ r)
    inertia += np.eye(3) * cell_mass * len(pts) * h * h / 6.0  # each cell's own inertia (cube: m h^2 / 6)
    moments, vecs = np.linalg.eigh(inertia)
    if np.linalg.det(vecs) < 0:
        vecs[:, 2] *= -1
    if len(pts) > max_points:  # an unbiased, deterministic subset
        keep = np.sort(np.random.default_rng(0).choice(len(pts), max_points, replace=False))
        pts_kept = pts[keep]
    else:
        pts_kept = pts.copy()
    return MassProperties(volume=float(len(pts) * h ** 3), mass=float(cell_mass * len(pts)), com=com,
                          inertia=moments, axes=vecs, points=pts_kept)


@dataclass(frozen=True)
class BodySpec:
    """A graspable body ready to build in either engine.

    Attributes:
        name: e.g. ``"toy-17"`` or ``"duck"``.
        geoms: shapes, posed in the COM frame.
        rgba: colour (4,) in [0, 1].
        mass: kg.
        inertia: principal moments (3,) kg m^2 about the COM.
        inertia_quat: principal frame (w, x, y, z) in the body frame.
        points: interior sample points (N, 3) m in the body frame (for planners).
        half_height: m; how far below the COM the body reaches at identity orientation.
    """

    name: str
    geoms: tuple[Geom, ...]
    rgba: tuple[float, float, float, float]
    mass: float
    inertia: tuple[float, float, float]
    inertia_quat: tuple[float, float, float, float]
    """Always the identity: :func:`make_body` puts the body frame on the principal axes."""
    points: np.ndarray = field(compare=False, repr=False)
    half_height: float = 0.0


def make_body(name: str, geoms: list[Geom], rgba: tuple[float, float, float, float],
              density: float = DENSITY) -> BodySpec:
    """Compute mass properties and re-express ``geoms`` in the principal frame at the COM.

    The body frame is then the inertial frame (``inertia_quat`` is the identity),
    so neither engine has to handle a rotated inertial frame (pybullet reports
    the pose of the inertial frame, not of the link frame).
    """
    mp = mass_properties(geoms, density)
    rot_t = mp.axes.T  # body (principal) frame <- given frame
    moved = tuple(g.moved(-rot_t @ mp.com, rot_t) for g in geoms)
    pts = (mp.points - mp.com) @ mp.axes
    lo = min(g.world_bounds()[0][2] for g in moved)
    return BodySpec(name=name, geoms=moved, rgba=tuple(float(c) for c in rgba), mass=mp.mass,
                    inertia=tuple(float(x) for x in np.maximum(mp.inertia, 1e-9)),
                    inertia_quat=(1.0, 0.0, 0.0, 0.0), points=pts, half_height=float(-lo))
