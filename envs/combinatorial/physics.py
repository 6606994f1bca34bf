"""Build a layout in pymunk, simulate it, and return per-frame part poses as arrays.

A real rigid-body engine (pymunk 7 / Chipmunk2D), unlike collision2d's closed
form: stacks, levers, jars and falling bars need contact resolution with
friction. The simulation is deterministic (same layout -> same floats on the
same machine): bodies and shapes are added in layout order and stepped with a
fixed time step.

Units: world units (``WORLD_SIZE`` square, y up, walls on all four sides),
seconds, density 1 per world unit^2 for every dynamic body. Arrays: ``T``
frames, ``K = MAX_PARTS`` part slots (padding has ``valid == False``).
"""

from __future__ import annotations

import numpy as np

from simlab.envs.combinatorial.templates import (
    BOX,
    WORLD_SIZE,
    SceneObject,
    variant_layout,
)
from simlab.errors import ConfigError

GRAVITY: float = 5.0
"""Downward acceleration, world units / s^2 (a drop from the top takes 2 s)."""
FRAME_DT: float = 0.1
"""Seconds between frames."""
SUBSTEPS: int = 20
"""Engine steps per frame (step 5 ms)."""
NUM_FRAMES: int = 32
"""Default frames per video (3.2 s)."""
COND_FRAMES: int = 1
"""Frames a video model is conditioned on in these scenes (the paper's setting)."""
MAX_PARTS: int = 10
"""Most parts of a layout (3 sticks + jar of 3 + 2 bars + 1 + the red ball)."""
FRICTION: float = 0.6
ELASTICITY: float = 0.1
ITERATIONS: int = 30
"""Contact solver iterations per step."""
COLLISION_SLOP: float = 0.002
"""Allowed contact overlap, world units (pymunk's default 0.1 would show as interpenetration)."""
STATE_KEYS: tuple[str, ...] = ("pose", "kind", "size", "color", "body", "type", "valid")
"""Arrays of :func:`simulate` (and of a dataset's stored states)."""


def _add_walls(space) -> None:  # space: pymunk.Space
    import pymunk

    w = WORLD_SIZE
    corners = [(0.0, 0.0), (w, 0.0), (w, w), (0.0, w)]
    for a, b in zip(corners, corners[1:] + corners[:1]):
        # Walls sit outside the world by their radius, so the inner face is the world edge.
        seg = pymunk.Segment(space.static_body, _outset(a, w), _outset(b, w), 1.0)
        seg.friction, seg.elasticity = FRICTION, ELASTICITY
        space.add(seg)


def _outset(p: tuple[float, float], w: float) -> tuple[float, float]:
    return (p[0] + (1.0 if p[0] >= w else -1.0), p[1] + (1.0 if p[1] >= w else -1.0))


def _box_vertices(offset: tuple[float, float], size: tuple[float, float]) -> list[tuple[float, float]]:
    (ox, oy), (hx, hy) = offset, size
    return [(ox - hx, oy - hy), (ox + hx, oy - hy), (ox + hx, oy + hy), (ox - hx, oy + hy)]


def build_space(layout: tuple[SceneObject, ...]):  # -> tuple[pymunk.Space, list[pymunk.Body]]
    """A pymunk space holding the layout's bodies (in layout order) inside four walls."""
    import pymunk

    space = pymunk.Space()
    space.gravity = (0.0, -GRAVITY)
    space.iterations = ITERATIONS
    space.collision_slop = COLLISION_SLOP
    _add_walls(space)
    bodies = []
    for obj in layout:
        body = pymunk.Body(body_type=pymunk.Body.DYNAMIC if obj.dynamic else pymunk.Body.STATIC)
        body.position = obj.position
        body.angle = obj.angle
        shapes = []
        for p in obj.parts:
            if p.kind == BOX:
                s = pymunk.Poly(body, _box_vertices(p.offset, p.size))
            else:
                s = pymunk.Circle(body, p.size[0], p.offset)
            s.friction, s.elasticity = FRICTION, ELASTICITY
            if obj.dynamic:
                s.density = 1.0
            shapes.append(s)
        space.add(body, *shapes)
        bodies.append(body)
    return space, bodies


def part_table(layout: tuple[SceneObject, ...]) -> dict[str, np.ndarray]:
    """Per-part constants padded to ``MAX_PARTS``: ``kind``/``color``/``type`` ``(K,)`` int8,
    ``size`` ``(K, 2)`` float64 (world units), ``body`` ``(K,)`` int16 (index into the layout),
    ``valid`` ``(K,)`` bool, ``offset`` ``(K, 2)`` float64 (body frame, world units)."""
    k = MAX_PARTS
    out = {"kind": np.zeros(k, np.int8), "color": np.zeros(k, np.int8), "type": np.zeros(k, np.int8),
           "size": np.zeros((k, 2)), "body": np.full(k, -1, np.int16), "valid": np.zeros(k, bool),
           "offset": np.zeros((k, 2))}
    i = 0
    for b, obj in enumerate(layout):
        for p in obj.parts:
            if i >= k:
                raise ConfigError(f"layout has more than {k} parts")
            out["kind"][i], out["color"][i], out["type"][i] = p.kind, obj.color, obj.type
            out["size"][i], out["offset"][i] = p.size, p.offset
            out["body"][i], out["valid"][i] = b, True
            i += 1
    return out


def part_poses(body_pos: np.ndarray, body_angle: np.ndarray, parts: dict[str, np.ndarray]) -> np.ndarray:
    """World poses of the parts from body poses.

    Args:
        body_pos: ``(T, B, 2)`` body origins; body_angle: ``(T, B)`` radians.
        parts: :func:`part_table`.

    Returns:
        ``(T, K, 3)`` float64: part centre (x, y) and angle; zeros for padding.
    """
    t = body_pos.shape[0]
    pose = np.zeros((t, MAX_PARTS, 3))
    v = parts["valid"]
    b = parts["body"][v].astype(np.int64)
    ang = body_angle[:, b]
    c, s = np.cos(ang), np.sin(ang)
    off = parts["offset"][v]
    pose[:, v, 0] = body_pos[:, b, 0] + c * off[:, 0] - s * off[:, 1]
    pose[:, v, 1] = body_pos[:, b, 1] + s * off[:, 0] + c * off[:, 1]
    pose[:, v, 2] = ang
    return pose


def simulate(layout: tuple[SceneObject, ...], frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    """Simulate a layout from rest for ``frames`` frames (frame 0 = the layout).

    Returns:
        ``pose`` ``(T, K, 3)`` float64 (part centre x, y in world units, angle in radians)
        and the per-part constants of :func:`part_table` except ``offset``.
    """
    if frames < 1:
        raise ConfigError(f"frames must be >= 1, got {frames}")
    space, bodies = build_space(layout)
    nb = len(bodies)
    pos = np.empty((frames, nb, 2))
    ang = np.empty((frames, nb))
    dt = FRAME_DT / SUBSTEPS
    for f in range(frames):
        if f:
            for _ in range(SUBSTEPS):
                space.step(dt)
        for j, body in enumerate(bodies):
            pos[f, j] = body.position.x, body.position.y
            ang[f, j] = body.angle
    if not np.isfinite(pos).all():
        raise ConfigError("simulation diverged (non-finite body positions)")
    parts = part_table(layout)
    out = {k: v for k, v in parts.items() if k != "offset"}
    out["pose"] = part_poses(pos, ang, parts)
    return out


def simulate_variant(template: int, key: tuple[int, ...] | int, frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    """:func:`simulate` of :func:`~simlab.envs.combinatorial.templates.variant_layout`."""
    return simulate(variant_layout(template, key), frames)


def part_corners(pose: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Corners of box parts: pose ``(..., 3)``, size ``(..., 2)`` -> ``(..., 4, 2)`` world units."""
    c, s = np.cos(pose[..., 2]), np.sin(pose[..., 2])
    sx = np.array([-1.0, 1.0, 1.0, -1.0])
    sy = np.array([-1.0, -1.0, 1.0, 1.0])
    lx = sx * size[..., 0:1]
    ly = sy * size[..., 1:2]
    x = pose[..., 0:1] + c[..., None] * lx - s[..., None] * ly
    y = pose[..., 1:2] + s[..., None] * lx + c[..., None] * ly
    return np.stack([x, y], -1)


def max_penetration(states: dict[str, np.ndarray]) -> float:
    """Largest overlap depth between parts of different bodies over all frames, world units.

    Discs exactly; a box is sampled by a grid of points (an estimate good to ~1% of its size).
    Used by tests: the engine's contacts should keep this near ``COLLISION_SLOP``.
    """
    v = np.flatnonzero(states["valid"])
    worst = 0.0
    pose, size, kind, body = states["pose"], states["size"], states["kind"], states["body"]
    g = np.linspace(-1, 1, 21)
    gx, gy = np.meshgrid(g, g)
    for i in v:
        for j in v:
            if body[i] == body[j] or i == j:
                continue
            # points of part i, depth inside part j
            if kind[i] == BOX:
                lx, ly = gx.ravel() * size[i, 0], gy.ravel() * size[i, 1]
            else:
                r = size[i, 0] * np.sqrt((gx.ravel() ** 2 + gy.ravel() ** 2) / 2)
                th = np.arctan2(gy.ravel(), gx.ravel())
                lx, ly = r * np.cos(th), r * np.sin(th)
            ci, si = np.cos(pose[:, i, 2:3]), np.sin(pose[:, i, 2:3])
            px = pose[:, i, 0:1] + ci * lx - si * ly
            py = pose[:, i, 1:2] + si * lx + ci * ly
            dx, dy = px - pose[:, j, 0:1], py - pose[:, j, 1:2]
            if kind[j] == BOX:
                cj, sj = np.cos(pose[:, j, 2:3]), np.sin(pose[:, j, 2:3])
                qx = np.abs(cj * dx + sj * dy) - size[j, 0]
                qy = np.abs(-sj * dx + cj * dy) - size[j, 1]
                depth = -np.maximum(qx, qy)
            else:
                depth = size[j, 0] - np.hypot(dx, dy)
            worst = max(worst, float(depth.max()))
    return max(worst, 0.0)


def body_speed_max(states: dict[str, np.ndarray], static: bool) -> float:
    """Largest frame-to-frame displacement of any (static or dynamic) part, world units."""
    m = states["valid"] & ((states["color"] == 2) == static)
    if not m.any():
        return 0.0
    d = np.diff(states["pose"][:, m, :2], axis=0)
    return float(np.hypot(d[..., 0], d[..., 1]).max()) if len(d) else 0.0

