"""Random toys: 1-5 intersecting primitives, a pure function of the seed.

A toy (Learning to Grasp Anything by Playing with Random Toys, 2025) is 1-5
primitives from {sphere, cuboid, cylinder, ring} with random sizes, positions
and orientations, each intersecting one placed before it so the toy is one
rigid body, in one of 4 colours. :func:`toy_spec` draws the abstract spec
(:class:`ToySpec`) from a seed; :func:`toy_body` turns it into the
engine-neutral :class:`~simlab.envs.toygrasp.shapes.BodySpec` both engines
build (a ring becomes :data:`RING_SEGMENTS` capsules, the same geometry in
pybullet and MuJoCo, with no mesh decomposition).

Sizes (metres) keep every primitive graspable by the Panda hand (fingers open
8 cm): sphere radius 1.5-3.2 cm; cuboid half extents 1-4 cm with the smallest
at most 2.5 cm; cylinder radius 1-2.8 cm, half length 1.5-5 cm; ring centre-
line radius 2.5-4 cm, tube radius 0.5-1 cm.

Intersection: primitive k is posed so that a point inside it (an "anchor"
drawn in its own frame) coincides with an anchor inside a random earlier
primitive; the two then share that point.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from simlab.envs.toygrasp.geometry import mat_to_quat, quat_to_mat, random_rotation
from simlab.envs.toygrasp.shapes import BodySpec, Geom, make_body
from simlab.errors import ConfigError

PRIMITIVES = ("sphere", "cuboid", "cylinder", "ring")
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.10, 0.70, 0.20, 1.0),
    "blue": (0.12, 0.25, 0.85, 1.0),
    "yellow": (0.95, 0.80, 0.10, 1.0),
}
MAX_PRIMITIVES = 5
RING_SEGMENTS = 12
"""Capsules per ring."""


@dataclass(frozen=True)
class Primitive:
    """One primitive of a toy, in the toy's frame.

    ``kind`` in :data:`PRIMITIVES`; ``size``: sphere ``(r,)``, cuboid ``(hx, hy, hz)``
    half extents, cylinder ``(r, half_length)`` along local z, ring ``(R, r)``
    centre-line and tube radius, in the local xy plane. ``pos`` (3,) m,
    ``quat`` (w, x, y, z).
    """

    kind: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]


@dataclass(frozen=True)
class ToySpec:
    """A toy: its seed, colour name and primitives."""

    seed: int
    color: str
    primitives: tuple[Primitive, ...]

    def __post_init__(self) -> None:
        validate_toy(self)


def validate_toy(spec: ToySpec) -> None:
    """ConfigError (one line) for an empty toy, an unknown primitive or colour, or a bad size."""
    if not spec.primitives:
        raise ConfigError(f"toy {spec.seed}: needs at least one primitive")
    if len(spec.primitives) > MAX_PRIMITIVES:
        raise ConfigError(f"toy {spec.seed}: at most {MAX_PRIMITIVES} primitives, got {len(spec.primitives)}")
    if spec.color not in COLORS:
        raise ConfigError(f"toy {spec.seed}: unknown colour {spec.color!r}; one of {', '.join(COLORS)}")
    need = {"sphere": 1, "cuboid": 3, "cylinder": 2, "ring": 2}
    for i, p in enumerate(spec.primitives):
        if p.kind not in need:
            raise ConfigError(f"toy {spec.seed}: primitive {i} has unknown kind {p.kind!r}; "
                              f"one of {', '.join(PRIMITIVES)}")
        if len(p.size) != need[p.kind] or not all(np.isfinite(s) and s > 0 for s in p.size):
            raise ConfigError(f"toy {spec.seed}: primitive {i} ({p.kind}) needs {need[p.kind]} finite "
                              f"positive sizes, got {tuple(p.size)}")
        if p.kind == "ring" and p.size[1] >= p.size[0]:
            raise ConfigError(f"toy {spec.seed}: ring {i} tube radius {p.size[1]} must be below its radius {p.size[0]}")
        if not (np.isfinite(p.pos).all() and np.isfinite(p.quat).all() and np.linalg.norm(p.quat) > 0):
            raise ConfigError(f"toy {spec.seed}: primitive {i} has a non-finite pose")


def _draw_size(kind: str, rng: np.random.Generator) -> tuple[float, ...]:
    if kind == "sphere":
        return (float(rng.uniform(0.015, 0.032)),)
    if kind == "cuboid":
        h = rng.uniform(0.01, 0.04, 3)
        h[rng.integers(3)] = rng.uniform(0.01, 0.025)
        return tuple(float(x) for x in h)
    if kind == "cylinder":
        return (float(rng.uniform(0.01, 0.028)), float(rng.uniform(0.015, 0.05)))
    return (float(rng.uniform(0.025, 0.04)), float(rng.uniform(0.005, 0.01)))


def _anchor(kind: str, size: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A point strictly inside the primitive, in its own frame (m)."""
    u = rng.uniform(-0.6, 0.6, 3)
    if kind == "sphere":
        return u / max(1.0, np.linalg.norm(u) / 0.6) * size[0]
    if kind == "cuboid":
        return u * np.asarray(size)
    if kind == "cylinder":
        xy = u[:2] / max(1.0, np.linalg.norm(u[:2]) / 0.6) * size[0]
        return np.array([xy[0], xy[1], u[2] * size[1]])
    phi = rng.uniform(0, 2 * np.pi)
    return np.array([size[0] * np.cos(phi), size[0] * np.sin(phi), 0.0])


@functools.lru_cache(maxsize=4096)
def toy_spec(seed: int) -> ToySpec:
    """The toy of ``seed`` (pure function; ``seed >= 0``)."""
    if seed < 0:
        raise ConfigError(f"toy seeds are non-negative, got {seed}")
    rng = np.random.default_rng([0x70E5, int(seed)])
    n = int(rng.integers(1, MAX_PRIMITIVES + 1))
    color = list(COLORS)[int(rng.integers(len(COLORS)))]
    prims: list[Primitive] = []
    for k in range(n):
        kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
        size = _draw_size(kind, rng)
        rot = random_rotation(rng)
        if k == 0:
            pos = np.zeros(3)
        else:
            j = prims[int(rng.integers(k))]
            target = np.asarray(j.pos) + quat_to_mat(j.quat) @ _anchor(j.kind, j.size, rng)
            pos = target - rot @ _anchor(kind, size, rng)
        prims.append(Primitive(kind, size, tuple(float(x) for x in pos), tuple(float(x) for x in mat_to_quat(rot))))
    return ToySpec(int(seed), color, tuple(prims))


def primitive_geoms(p: Primitive) -> list[Geom]:
    """The engine shapes of one primitive (a ring: :data:`RING_SEGMENTS` capsules)."""
    rot = quat_to_mat(p.quat)
    if p.kind == "sphere":
        return [Geom("sphere", p.size, p.pos, p.quat)]
    if p.kind == "cuboid":
        return [Geom("box", p.size, p.pos, p.quat)]
    if p.kind == "cylinder":
        return [Geom("cylinder", p.size, p.pos, p.quat)]
    big_r, tube = p.size
    th = np.linspace(0, 2 * np.pi, RING_SEGMENTS + 1)
    out = []
    for a, b in itertools.pairwise(th):
        pa = np.array([big_r * np.cos(a), big_r * np.sin(a), 0.0])
        pb = np.array([big_r * np.cos(b), big_r * np.sin(b), 0.0])
        mid, d = (pa + pb) / 2, pb - pa
        z = d / np.linalg.norm(d)
        x = np.array([0.0, 0.0, 1.0])
        local = np.stack([x, np.cross(z, x), z], 1)  # columns: capsule frame axes, z along the segment
        g = Geom("capsule", (tube, float(np.linalg.norm(d)) / 2), tuple(mid), tuple(mat_to_quat(local)))
        out.append(g.moved(np.asarray(p.pos), rot))
    return out


@functools.lru_cache(maxsize=1024)
def toy_body(seed: int) -> BodySpec:
    """The :class:`BodySpec` of toy ``seed`` (geoms in its COM frame; cached)."""
    return spec_body(toy_spec(seed))


def spec_body(spec: ToySpec) -> BodySpec:
    """The :class:`BodySpec` of any (validated) toy spec."""
    validate_toy(spec)
    geoms = [g for p in spec.primitives for g in primitive_geoms(p)]
    return make_body(f"toy-{spec.seed}", geoms, COLORS[spec.color])
