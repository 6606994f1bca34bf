"""Object types, the 70 templates, template splits and variant layouts (pure functions).

A *template* is a red ball plus 4 of the 8 object types (``C(8, 4) = 70``,
numbered in the order of ``itertools.combinations(range(8), 4)``). A
*variant* of a template is one layout: every object's position, size and
angle jittered by a random generator seeded from integers only, so a layout is
a pure function of ``(template, key)``.

Units: world units (the world is ``WORLD_SIZE`` x ``WORLD_SIZE``, y up, the
floor at ``y = 0``); angles in radians, counter-clockwise.

Splits (fixed, independent of any user seed): 10 held-out test templates
(``test_out``) and nested training sets of 6 ⊂ 30 ⊂ 60 templates, disjoint from
them. ``test_in`` holds unseen variants of the training templates (another
random stream than ``train``), ``test_out`` variants of the held-out ones.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from simlab.errors import ConfigError

WORLD_SIZE: float = 10.0
"""Side of the square world, world units (walls on all four sides, invisible)."""

OBJECT_TYPES: tuple[str, ...] = (
    "ball_small",       # dynamic gray ball, r ~ 0.55
    "ball_large",       # dynamic gray ball, r ~ 0.95
    "static_ball",      # static black ball, r ~ 0.8
    "dynamic_bar",      # dynamic gray bar in the air, 3.2 x 0.5, tilted
    "standing_bars",    # two dynamic gray bars standing on the floor, 0.5 x 2.2
    "static_bar",       # static black bar (a platform), 3.6 x 0.5, tilted
    "jar",              # dynamic gray U-shaped jar on the floor, 2.0 wide, 1.5 high
    "standing_sticks",  # three dynamic gray sticks standing on the floor, 0.36 x 1.6
)
"""The 8 object types; a type's id is its index."""
NUM_TYPES: int = len(OBJECT_TYPES)
STATIC_TYPES: frozenset[int] = frozenset({2, 5})
"""Types whose bodies never move (drawn black)."""
RED_BALL_TYPE: int = -1
"""Type id of the red ball (in every template)."""

RED, GRAY, BLACK = 0, 1, 2
"""Colour classes: the red ball, dynamic objects, static objects."""
DISC, BOX = 0, 1
"""Part kinds: a disc (size ``(r, r)``) or a box (size = half extents ``(hx, hy)`` in the body frame)."""

TEMPLATES: tuple[tuple[int, int, int, int], ...] = tuple(itertools.combinations(range(NUM_TYPES), 4))
"""The 70 templates: sorted 4-tuples of object type ids."""
NUM_TEMPLATES: int = len(TEMPLATES)

SPLITS: tuple[str, ...] = ("train", "test_in", "test_out")
"""``train``; ``test_in``: unseen variants of the training templates; ``test_out``: held-out templates."""
TRAIN_SIZES: tuple[int, ...] = (6, 30, 60)
"""Allowed numbers of training templates (the paper's three settings)."""
NUM_TEST_TEMPLATES: int = 10
SPLIT_SEED: int = 20241104
"""Seed of the template permutation behind the splits (fixed: splits are data)."""
_SPLIT_CODE = {"train": 0, "test_in": 1, "test_out": 2}

MIN_GAP: float = 0.5
"""Clearance between objects' bounding boxes in a layout, world units (> sqrt(2) pixels at
32 px, so objects are separate 8-connected components in the first frame)."""
JITTER: float = 0.1
"""Relative size jitter of a variant (lengths scaled by ``U(1 - JITTER, 1 + JITTER)``)."""


@dataclass(frozen=True)
class Part:
    """One collision shape of a body (rendered as one disc or box)."""

    kind: int
    """DISC or BOX."""
    offset: tuple[float, float]
    """Centre in the body frame, world units."""
    size: tuple[float, float]
    """Disc: ``(r, r)``; box: half extents ``(hx, hy)`` in the body frame; world units."""


@dataclass(frozen=True)
class SceneObject:
    """One rigid body of a layout."""

    type: int
    """Object type id (``RED_BALL_TYPE`` for the red ball)."""
    dynamic: bool
    color: int
    """RED, GRAY or BLACK."""
    position: tuple[float, float]
    """Body origin in the world, world units."""
    angle: float
    """Body angle, radians."""
    parts: tuple[Part, ...]


def _check_template(template: int) -> None:
    if isinstance(template, bool) or not isinstance(template, (int, np.integer)) \
            or not 0 <= template < NUM_TEMPLATES:
        raise ConfigError(f"unknown template {template!r}: templates are 0..{NUM_TEMPLATES - 1}")


def template_types(template: int) -> tuple[int, int, int, int]:
    """Object type ids of ``template`` (0..69)."""
    _check_template(template)
    return TEMPLATES[int(template)]


def _split_order() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(test templates, training templates in the order the nested sets take them).

    The first permutation (seeds ``SPLIT_SEED, SPLIT_SEED + 1, ...``) whose 6-template
    training set contains all 8 object types: out-of-template tests recombine
    seen objects, as in the paper, at every training size.
    """
    for s in itertools.count(SPLIT_SEED):
        perm = np.random.default_rng(s).permutation(NUM_TEMPLATES)
        test, train = perm[:NUM_TEST_TEMPLATES], perm[NUM_TEST_TEMPLATES:]
        if len({t for i in train[:TRAIN_SIZES[0]] for t in TEMPLATES[i]}) == NUM_TYPES:
            return tuple(sorted(int(i) for i in test)), tuple(int(i) for i in train)
    raise AssertionError("unreachable")


_TEST, _TRAIN_ORDER = _split_order()


def check_train_templates(train_templates: int) -> None:
    """ConfigError unless ``train_templates`` is 6, 30 or 60."""
    if train_templates not in TRAIN_SIZES:
        raise ConfigError(f"train_templates must be one of {', '.join(map(str, TRAIN_SIZES))}, "
                          f"got {train_templates!r}")


def split_templates(split: str, train_templates: int = 30) -> tuple[int, ...]:
    """Sorted template ids of ``split`` (``train`` and ``test_in`` share theirs)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    check_train_templates(train_templates)
    if split == "test_out":
        return _TEST
    return tuple(sorted(_TRAIN_ORDER[:train_templates]))


def video_key(split: str, seed: int, index: int) -> tuple[int, int, int]:
    """Random-generator entropy of video ``index`` of ``split`` (splits draw from disjoint streams)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be >= 0, got {seed}, {index}")
    return (int(seed), _SPLIT_CODE[split], int(index))


def video_template(split: str, train_templates: int, index: int) -> int:
    """Template of video ``index`` of a split: the split's templates in turn (balanced)."""
    ts = split_templates(split, train_templates)
    return ts[index % len(ts)]


# ---- layouts ------------------------------------------------------------------------------
def _aabb(obj: SceneObject) -> tuple[float, float, float, float]:
    """Axis-aligned bounding box ``(x0, y0, x1, y1)`` of an object, world units."""
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    xs, ys = [], []
    for p in obj.parts:
        ox = obj.position[0] + c * p.offset[0] - s * p.offset[1]
        oy = obj.position[1] + s * p.offset[0] + c * p.offset[1]
        if p.kind == DISC:
            ex = ey = p.size[0]
        else:
            ex = abs(c) * p.size[0] + abs(s) * p.size[1]
            ey = abs(s) * p.size[0] + abs(c) * p.size[1]
        xs += [ox - ex, ox + ex]
        ys += [oy - ey, oy + ey]
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], gap: float = MIN_GAP) -> bool:
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _ball(t: int, color: int, dynamic: bool, r: float, x: float, y: float) -> SceneObject:
    return SceneObject(t, dynamic, color, (x, y), 0.0, (Part(DISC, (0.0, 0.0), (r, r)),))


def _box(t: int, color: int, dynamic: bool, hx: float, hy: float, x: float, y: float,
         angle: float) -> SceneObject:
    return SceneObject(t, dynamic, color, (x, y), angle, (Part(BOX, (0.0, 0.0), (hx, hy)),))


def _jar(x: float, w: float, h: float, t: float) -> SceneObject:
    """U-shaped jar standing on the floor; body origin at the middle of its base's bottom edge."""
    parts = (Part(BOX, (0.0, t / 2), (w / 2, t / 2)),
             Part(BOX, (-(w / 2 - t / 2), h / 2), (t / 2, h / 2)),
             Part(BOX, (w / 2 - t / 2, h / 2), (t / 2, h / 2)))
    return SceneObject(6, True, GRAY, (x, 0.0), 0.0, parts)


def _object_group(t: int, rng: np.random.Generator, x: float) -> list[SceneObject]:
    """Bodies of object type ``t`` centred near ``x`` (floor types) with jittered sizes.

    Air objects draw their own height; the caller rejects overlapping groups.
    """
    j = lambda: float(rng.uniform(1 - JITTER, 1 + JITTER))
    y = float(rng.uniform(2.5, 7.5))
    if t == 0:
        return [_ball(0, GRAY, True, 0.55 * j(), x, y)]
    if t == 1:
        return [_ball(1, GRAY, True, 0.95 * j(), x, y)]
    if t == 2:
        return [_ball(2, BLACK, False, 0.8 * j(), x, float(rng.uniform(2.0, 6.0)))]
    if t == 3:
        return [_box(3, GRAY, True, 1.6 * j(), 0.25, x, y, float(rng.uniform(-0.35, 0.35)))]
    if t == 4:
        hy, gap = 1.1 * j(), float(rng.uniform(1.0, 1.6))
        return [_box(4, GRAY, True, 0.25, hy, x + dx, hy, 0.0) for dx in (-gap / 2, gap / 2)]
    if t == 5:
        return [_box(5, BLACK, False, 1.8 * j(), 0.25, x, float(rng.uniform(2.0, 6.0)),
                     float(rng.uniform(-0.4, 0.4)))]
    if t == 6:
        return [_jar(x, 2.0 * j(), 1.5 * j(), 0.36)]
    if t == 7:
        hy, gap = 0.8 * j(), float(rng.uniform(0.86, 1.1))
        return [_box(7, GRAY, True, 0.18, hy, x + dx, hy, 0.0) for dx in (-gap, 0.0, gap)]
    raise ConfigError(f"unknown object type {t!r}: types are 0..{NUM_TYPES - 1}")


def _inside(box: tuple[float, float, float, float], margin: float = 0.05) -> bool:
    return box[0] >= margin and box[1] >= -1e-9 and box[2] <= WORLD_SIZE - margin \
        and box[3] <= WORLD_SIZE - margin


def variant_layout(template: int, key: tuple[int, ...] | int) -> tuple[SceneObject, ...]:
    """Layout of one variant of ``template``: the template's bodies then the red ball.

    Args:
        template: template id, 0..69.
        key: integers seeding the variant's random generator (see :func:`video_key`).

    Returns:
        The bodies, none overlapping (bounding boxes ``MIN_GAP`` apart), all inside the
        world; the red ball last, above one of the other objects, so it hits something.
    """
    types = template_types(template)
    rng = np.random.default_rng(list(np.atleast_1d(np.asarray(key, np.int64))) + [0xC0B1])
    while True:  # rejection: a fresh draw of the whole layout until it fits
        placed: list[SceneObject] = []
        boxes: list[tuple[float, float, float, float]] = []
        ok = True
        for t in types:
            for _ in range(50):
                group = _object_group(t, rng, float(rng.uniform(0.5, WORLD_SIZE - 0.5)))
                gb = [_aabb(o) for o in group]
                if all(_inside(b) for b in gb) and not any(_overlaps(b, c) for b in gb for c in boxes):
                    placed += group
                    boxes += gb
                    break
            else:
                ok = False
                break
        if not ok:
            continue
        target = boxes[int(rng.integers(len(boxes)))]
        for _ in range(50):
            r = 0.55 * float(rng.uniform(1 - JITTER, 1 + JITTER))
            x = float(np.clip((target[0] + target[2]) / 2 + rng.uniform(-0.8, 0.8), 0.2 + r, WORLD_SIZE - 0.2 - r))
            red = _ball(RED_BALL_TYPE, RED, True, r, x, float(rng.uniform(7.8, 9.3)))
            b = _aabb(red)
            if _inside(b) and not any(_overlaps(b, c) for c in boxes):
                return (*placed, red)
