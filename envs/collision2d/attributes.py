"""Attribute scenes for the priority probe (Kang et al. 2024, Sec. 5).

The paper found that when a video model meets an unseen combination of
attributes it keeps them in the order **color > size > velocity > shape**: it
keeps the colour first and gives up the shape first. This module makes the
scenes to measure that, and the parser that scores a model's videos.

Scene: one object in uniform horizontal motion, as the ``uniform`` scenario,
with four attributes:

- ``shape``: one of :data:`SHAPES` (``disc``, ``square``, ``ring``,
  ``triangle``), drawn by :func:`render.render_shapes`;
- ``color``: one of :data:`PALETTE` (8 saturated colours, each with one
  channel at 0, so a fully covered pixel is 255 away from the white
  background in that channel and the paper's ``> 127`` threshold applies);
- ``r``: the disc radius in :data:`ID_R` (other shapes get the disc's area,
  except the ring, see :data:`AREA_FACTOR`);
- ``v``: the speed in :data:`ID_V`.

Splits (data, :func:`attribute_splits`), every one drawing ``r`` from
``ID_R`` and ``v`` from ``ID_V``; sizes and speeds enter combinations
through three equal-width bins, categorical attributes ``r_bin``
(:data:`R_BINS`: small / medium / large) and ``v_bin`` (:data:`V_BINS`:
slow / medium / fast). When a split has a bin attribute, the generator puts
the continuous draw into the chosen bin by the affine map of ``ID_R`` (or
``ID_V``) onto it, so ``r`` is uniform inside the bin.

- ``train`` / ``id``: every shape x colour, full ranges.
- ``shape_color_train`` / ``shape_color_test``: a Latin-square holdout of
  (shape, colour): colour ``c`` (index in :data:`COLOR_NAMES`) is held out
  for shape ``s`` when ``c % 4 == s``; 8 of 32 combinations
  (:data:`SHAPE_COLOR_HELD_OUT`). Every shape keeps 6 colours and every
  colour 3 shapes in training.
- ``size_velocity_train`` / ``size_velocity_test``: a cyclic Latin square
  on the 3 x 3 (r_bin, v_bin) grid, (r_bin i, v_bin i + 1 mod 3) held out
  (:data:`SIZE_VELOCITY_HELD_OUT`); shape and colour are free.
- ``pair_<a>_<b>_train`` / ``pair_<a>_<b>_test`` for each of the 6 pairs of
  the attributes color / size / velocity / shape (the paper's design): each
  attribute takes two well separated values (:data:`PAIR_VALUES`: red/blue,
  small/large, slow/fast, disc/square); training has only the two
  "diagonal" combinations ``(a1, b1), (a2, b2)``, the test the two others
  ``(a1, b2), (a2, b1)``. An attribute outside the pair is fixed (colour
  red, shape disc) or keeps its full range (size, velocity). On a test video
  the model must give up one of the two attributes to reproduce a training
  combination; which one it keeps is the priority (:data:`PRIORITY`).

Train and test of every probe are disjoint, and every value an attribute
takes in a test split also appears in its training split.

Placement reuses :func:`scenarios.place` with the bounding radius
``SHAPE_REACH * r`` instead of ``r``: squares and triangles reach beyond the
disc radius (the triangle up to 1.56 r from its centre), and with the bounding
radius every shape is fully in view at the start and for at least
``MIN_VISIBLE_FRAMES`` frames.

Determinism: as :func:`scenarios.generate_states`, videos are drawn in chunks
of :data:`CHUNK` from ``default_rng([seed, crc32("attributes/" + split), chunk])``
so any sharding of the index range gives identical videos.

Parser (:func:`parse_attributes`), per frame, for one object on a plain
background:

- object pixels (the mask): largest channel difference from the background
  above 127, i.e. coverage > 0.5, the pixels whose centres lie inside the
  shape for the renderer's anti-aliasing (the paper's thresholds);
- colour: alpha-weighted majority vote of the mask pixels' nearest palette
  colours, each pixel first un-blended from the background
  (``bg + (pixel - bg) / alpha``, ``alpha`` = largest channel difference
  / 255), so a half red, half blue object is red or blue, never purple;
- centre and area from the anti-aliased coverage (``alpha`` summed over the
  mask's bounding box grown by a pixel, faint noise below
  :data:`COVERAGE_FLOOR` ignored): sub-pixel accurate, so the paper-style
  velocity error of ground-truth videos at 64 px stays below ~0.02 (a binary
  mask's centroid jumps when a square's edge crosses a pixel centre and
  gives up to 0.15). ``radius = sqrt(coverage / pi)`` in world units (the
  area-equivalent radius) and ``size = radius / sqrt(AREA_FACTOR[shape])``,
  the disc radius the renderer was given, for the parsed shape. The centre
  is the shape's centroid, y up;
- shape, from three numbers, in this order:

  1. ring: ``center_fill``, the fraction of the pixel centres within
     ``0.4 r_eq`` of the mask centroid that are object pixels, is below 0.5.
     The ring's hole (radius ``0.6 r`` = ``0.75 r_eq``) makes it 0; the other
     shapes contain their centroid: 1.
  2. triangle: ``skewness``, the larger absolute skewness of the coverage's
     x and y marginals, exceeds 0.25: 0.57 for a triangle (any of the four
     axis-aligned orientations), 0 for the symmetric shapes.
  3. square: ``squareness``, ``sum c (x^4 + y^4) / sum c (x^2 + y^2)^2``
     about the centroid (``c`` the coverage), is below 0.70: 9/14 = 0.643
     for an axis-aligned square, 3/4 for every shape whose order of rotational
     symmetry does not divide 4 (disc, ring; the triangle's is 3).
  4. otherwise: disc.

  The features are moments of the anti-aliased coverage, so they degrade
  gracefully under blur and noise, unlike bounding-box fill ratios or corner
  pixels of a binary mask. Measured on the renderer's shapes over ``ID_R``
  (300 videos): exact at 32, 64 and 128 px; at 64 px also exact after a
  3x3 box blur plus Gaussian noise (sigma 8), where the closest classes stay
  apart (squareness square <= 0.68 vs others >= 0.73, skewness triangle >=
  0.40 vs others <= 0.05).

:func:`attribute_consistency` scores videos against ground truth over the
frames after the conditioning frames in which the object is fully in view.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from simlab.envs.collision2d.parse import fill_missing, velocity_error
from simlab.envs.collision2d.physics import (
    COND_FRAMES,
    NUM_FRAMES,
    WORLD_SIZE,
    frame_times,
    simulate_balls,
)
from simlab.envs.collision2d.render import RING_WIDTH, SHAPES, render_shapes
from simlab.envs.collision2d.scenarios import CHUNK, ID_R, ID_V, place
from simlab.errors import ConfigError
from simlab.splits import Split

__all__ = [
    "AREA_FACTOR",
    "COLOR_NAMES",
    "PAIR_VALUES",
    "PALETTE",
    "PALETTE_RGB",
    "PRIORITY",
    "R_BINS",
    "SHAPES",
    "SHAPE_COLOR_HELD_OUT",
    "SHAPE_REACH",
    "SIZE_VELOCITY_HELD_OUT",
    "V_BINS",
    "AttributeSpec",
    "attribute_consistency",
    "attribute_split",
    "attribute_splits",
    "fully_visible",
    "generate_attribute_states",
    "parse_attributes",
    "probe_pairs",
    "render_attribute_videos",
    "split_params",
]

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "blue": (0, 0, 255),
    "green": (0, 160, 0),
    "yellow": (255, 230, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 230, 230),
    "orange": (255, 120, 0),
    "purple": (120, 0, 200),
}
"""Object colours: saturated, each with a channel at 0, pairwise >= 110 apart in RGB."""
COLOR_NAMES: tuple[str, ...] = tuple(PALETTE)
"""Colour ids (index = id)."""
PALETTE_RGB: np.ndarray = np.array([PALETTE[c] for c in COLOR_NAMES], dtype=np.uint8)
"""``(len(PALETTE), 3)`` uint8, row = colour id."""

PRIORITY: tuple[str, ...] = ("color", "size", "velocity", "shape")
"""The paper's finding: attributes a model keeps first come first."""

AREA_FACTOR: dict[str, float] = {
    "disc": 1.0, "square": 1.0, "ring": 1.0 - (1.0 - RING_WIDTH) ** 2, "triangle": 1.0,
}
"""Rendered area / (pi r^2) per shape. The ring has outer radius ``r`` and a
hole of radius ``(1 - RING_WIDTH) r``, so only 64% of the disc's area."""

SHAPE_REACH: float = 1.6
"""Every shape lies within ``SHAPE_REACH * r`` of its centre along x and y
(the renderer draws nothing beyond: its patch reach)."""

_R_EDGES = np.linspace(ID_R[0][0], ID_R[0][1], 4)
_V_EDGES = np.linspace(ID_V[0][0], ID_V[0][1], 4)
_BIN_NAMES_R = ("small", "medium", "large")
_BIN_NAMES_V = ("slow", "medium", "fast")
R_BINS: dict[str, tuple[float, float]] = {
    k: (float(_R_EDGES[i]), float(_R_EDGES[i + 1])) for i, k in enumerate(_BIN_NAMES_R)}
"""Radius bins: three equal parts of ``ID_R``."""
V_BINS: dict[str, tuple[float, float]] = {
    k: (float(_V_EDGES[i]), float(_V_EDGES[i + 1])) for i, k in enumerate(_BIN_NAMES_V)}
"""Speed bins: three equal parts of ``ID_V``."""

SHAPE_COLOR_HELD_OUT: tuple[tuple[str, str], ...] = (
    ("disc", "red"), ("disc", "magenta"),
    ("square", "blue"), ("square", "cyan"),
    ("ring", "green"), ("ring", "orange"),
    ("triangle", "yellow"), ("triangle", "purple"),
)
"""(shape, colour) held out of ``shape_color_train``: colour id ``c`` for shape id ``s`` when ``c % 4 == s``."""
SIZE_VELOCITY_HELD_OUT: tuple[tuple[str, str], ...] = (
    ("small", "medium"), ("medium", "fast"), ("large", "slow"),
)
"""(r_bin, v_bin) held out of ``size_velocity_train``: bin ``i`` with bin ``i + 1 mod 3``."""

PAIR_VALUES: dict[str, tuple[str, str]] = {
    "color": ("red", "blue"), "size": ("small", "large"),
    "velocity": ("slow", "fast"), "shape": ("disc", "square"),
}
"""The two values each attribute takes in the pairwise probes."""
_KEY = {"color": "color", "size": "r_bin", "velocity": "v_bin", "shape": "shape"}
_FIXED = {"color": ("red",), "shape": ("disc",)}

SIZE_TOL: float = 0.1
"""Default size tolerance of :func:`attribute_consistency`, world units."""
VELOCITY_TOL: float = 0.2
"""Default velocity tolerance of :func:`attribute_consistency`, world units / s."""

# Shape classifier thresholds (see the module docstring).
HOLE_PROBE: float = 0.4
"""Radius of the hole probe around the centroid, in area-equivalent radii."""
RING_CENTER_FILL: float = 0.5
"""Below this object fraction of the hole probe: ring."""
TRIANGLE_SKEWNESS: float = 0.25
"""Above this |skewness| of the coverage along x or y: triangle (0.57 exact, 0 for the others)."""
SQUARE_ANISO: float = 0.70
"""Below this ``squareness`` (3/4 for rotation-symmetric shapes, 9/14 for a square): square."""
COVERAGE_FLOOR: int = 24
"""Ink below this (of 255) is not counted in the coverage (compression noise)."""


# ---- splits ---------------------------------------------------------------------
def _pair_splits(a: str, b: str) -> list[Split]:
    (a1, a2), (b1, b2) = PAIR_VALUES[a], PAIR_VALUES[b]
    ka, kb = _KEY[a], _KEY[b]
    cat = {ka: (a1, a2), kb: (b1, b2)}
    for attr, vals in _FIXED.items():
        if attr not in (a, b):
            cat[attr] = vals
    cont = {"r": ID_R, "v": ID_V}
    name = f"pair_{a}_{b}"
    return [
        Split(f"{name}_train", "train", cont, cat, (ka, kb), include_combos=((a1, b1), (a2, b2)),
              description=f"{a} x {b} probe: only ({a1}, {b1}) and ({a2}, {b2})"),
        Split(f"{name}_test", "comb_test", cont, cat, (ka, kb), include_combos=((a1, b2), (a2, b1)),
              description=f"{a} x {b} probe: the held-out ({a1}, {b2}) and ({a2}, {b1})"),
    ]


def probe_pairs() -> list[tuple[str, str]]:
    """The attribute pairs of the ``pair_<a>_<b>`` probes, in :data:`PRIORITY` order."""
    return list(combinations(PRIORITY, 2))


def attribute_splits() -> dict[str, Split]:
    """Named splits of the attribute scenes (see the module docstring)."""
    cont = {"r": ID_R, "v": ID_V}
    both = {"shape": SHAPES, "color": COLOR_NAMES}
    bins = {"r_bin": tuple(R_BINS), "v_bin": tuple(V_BINS)}
    s = [
        Split("train", "train", cont, both, description="every shape and colour, ID ranges"),
        Split("id", "id_test", cont, both, description="every shape and colour, fresh samples"),
        Split("shape_color_train", "train", cont, both, ("shape", "color"),
              exclude_combos=SHAPE_COLOR_HELD_OUT,
              description="Latin-square (shape, colour) holdout: training part"),
        Split("shape_color_test", "comb_test", cont, both, ("shape", "color"),
              include_combos=SHAPE_COLOR_HELD_OUT,
              description="Latin-square (shape, colour) holdout: the held-out combinations"),
        Split("size_velocity_train", "train", cont, {**both, **bins}, ("r_bin", "v_bin"),
              exclude_combos=SIZE_VELOCITY_HELD_OUT,
              description="Latin-square (size bin, speed bin) holdout: training part"),
        Split("size_velocity_test", "comb_test", cont, {**both, **bins}, ("r_bin", "v_bin"),
              include_combos=SIZE_VELOCITY_HELD_OUT,
              description="Latin-square (size bin, speed bin) holdout: the held-out combinations"),
    ]
    for a, b in probe_pairs():
        s.extend(_pair_splits(a, b))
    return {x.name: x for x in s}


def attribute_split(name: str) -> Split:
    """One split by name; :class:`ConfigError` for an unknown name."""
    splits = attribute_splits()
    if name not in splits:
        raise ConfigError(f"unknown attribute split {name!r}; choose one of {', '.join(splits)}")
    return splits[name]


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges[1:-1], np.asarray(x, np.float64), side="right")


def split_params(states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameters of generated videos as a :class:`Split` sees them.

    ``shape`` and ``color`` as names, ``r``, ``v``, and the bins ``r_bin`` /
    ``v_bin``, so ``split.contains(split_params(states))`` works for every split.
    """
    return {
        "shape": np.asarray(SHAPES)[np.asarray(states["shape"], np.int64)],
        "color": np.asarray(COLOR_NAMES)[np.asarray(states["color"], np.int64)],
        "r": np.asarray(states["r"], np.float64),
        "v": np.asarray(states["v"], np.float64),
        "r_bin": np.asarray(_BIN_NAMES_R)[_bin_index(states["r"], _R_EDGES)],
        "v_bin": np.asarray(_BIN_NAMES_V)[_bin_index(states["v"], _V_EDGES)],
    }


# ---- generation -------------------------------------------------------------------
@dataclass(frozen=True)
class AttributeSpec:
    """What to generate: split name and seed."""

    split: str = "train"
    seed: int = 0

    def __post_init__(self) -> None:
        attribute_split(self.split)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


def _into_bin(x: np.ndarray, full: tuple[float, float], labels: np.ndarray,
              bins: dict[str, tuple[float, float]]) -> np.ndarray:
    """Map draws uniform on ``full`` affinely into each one's bin (half-open, as the labels)."""
    lo = np.array([bins[str(b)][0] for b in labels])
    hi = np.array([bins[str(b)][1] for b in labels])
    frac = (x - full[0]) / (full[1] - full[0])
    out = lo + frac * (hi - lo)
    last = hi >= full[1]
    return np.where(last, np.minimum(out, hi), np.minimum(out, np.nextafter(hi, -np.inf)))


def _ids(names: np.ndarray, table: tuple[str, ...]) -> np.ndarray:
    lookup = {k: i for i, k in enumerate(table)}
    return np.array([lookup[str(x)] for x in names], dtype=np.int64)


def _chunk(spec: AttributeSpec, split: Split, c: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([spec.seed, zlib.crc32(f"attributes/{spec.split}".encode()), c])
    p = split.sample(rng, CHUNK)
    r = np.asarray(p["r"], np.float64)
    v = np.asarray(p["v"], np.float64)
    if "r_bin" in p:
        r = _into_bin(r, ID_R[0], p["r_bin"], R_BINS)
    if "v_bin" in p:
        v = _into_bin(v, ID_V[0], p["v_bin"], V_BINS)
    # Place the bounding disc of every shape, then give back the true radius.
    placed = place("uniform", {"r": SHAPE_REACH * r, "v": v}, rng)
    return {"shape": _ids(p["shape"], SHAPES), "color": _ids(p["color"], COLOR_NAMES),
            "r": r, "v": v, "p0": placed["p0"], "v0": placed["v0"], "radii": r[:, None]}


def generate_attribute_states(spec: AttributeSpec, start: int, stop: int,
                              num_frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    """Parameters, placement and exact trajectories of videos ``[start, stop)``.

    Returns: ``shape`` / ``color`` ``(N,)`` int64 ids into :data:`SHAPES` /
    :data:`COLOR_NAMES`, ``r`` / ``v`` ``(N,)``, ``p0`` / ``v0`` ``(N, 1, 2)``,
    ``radii`` ``(N, 1)``, ``pos`` / ``vel`` ``(N, T, 1, 2)``, ``t_contact``
    ``(N,)`` (inf) and ``index`` ``(N,)`` int64. Video ``i`` depends only on
    ``(seed, split, i)``.
    """
    if start < 0 or stop < start:
        raise ConfigError(f"bad video range [{start}, {stop})")
    split = attribute_split(spec.split)
    parts: list[dict[str, np.ndarray]] = []
    if stop > start:
        for c in range(start // CHUNK, (stop - 1) // CHUNK + 1):
            full = _chunk(spec, split, c)
            lo = max(start - c * CHUNK, 0)
            hi = min(stop - c * CHUNK, CHUNK)
            part = {k: v[lo:hi] for k, v in full.items()}
            part["index"] = np.arange(c * CHUNK + lo, c * CHUNK + hi, dtype=np.int64)
            parts.append(part)
    if not parts:
        parts = [{"shape": np.zeros(0, np.int64), "color": np.zeros(0, np.int64),
                  "r": np.zeros(0), "v": np.zeros(0), "p0": np.zeros((0, 1, 2)),
                  "v0": np.zeros((0, 1, 2)), "radii": np.zeros((0, 1)),
                  "index": np.zeros(0, np.int64)}]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out.update(simulate_balls(out["p0"], out["v0"], out["radii"], frame_times(num_frames)))
    return out


def render_attribute_videos(states: dict[str, np.ndarray], res: int,
                            out: np.ndarray | None = None) -> np.ndarray:
    """Frames ``(N, T, res, res, 3)`` uint8 of generated states (white background)."""
    if int(res) != res or res <= 0:
        raise ConfigError(f"res must be a positive integer, got {res!r}")
    colors = PALETTE_RGB[np.asarray(states["color"], np.int64)][:, None, :]
    shapes = np.asarray(states["shape"], np.int64)[:, None]
    return render_shapes(states["pos"], states["radii"], colors, res, shapes=shapes, out=out)


# ---- parsing ----------------------------------------------------------------------
def _parse_chunk(f: np.ndarray, background: int) -> dict[str, np.ndarray]:
    nf, h, w, _ = f.shape
    yc = np.arange(h) + 0.5  # pixel centres
    xc = np.arange(w) + 0.5
    bg = np.int16(background)
    chans = [np.abs(f[..., c].astype(np.int16) - bg) for c in range(3)]
    ink = np.maximum(np.maximum(chans[0], chans[1]), chans[2])  # (F, H, W), 0..255
    mask = ink > 127
    rows = mask.sum(axis=2, dtype=np.int64)  # (F, H): object pixels per row
    cols = mask.sum(axis=1, dtype=np.int64)  # (F, W)
    area = rows.sum(axis=1).astype(np.float64)
    has = area > 0
    # Coverage of the mask's bounding box grown by one pixel (faint noise ignored).
    rany, cany = rows > 0, cols > 0
    top = np.argmax(rany, axis=1)
    bottom = h - 1 - np.argmax(rany[:, ::-1], axis=1)
    left = np.argmax(cany, axis=1)
    right = w - 1 - np.argmax(cany[:, ::-1], axis=1)
    row_in = (yc[None] >= top[:, None] - 0.5) & (yc[None] <= bottom[:, None] + 1.5) & has[:, None]
    col_in = (xc[None] >= left[:, None] - 0.5) & (xc[None] <= right[:, None] + 1.5)
    cov = np.where(ink > COVERAGE_FLOOR, ink.astype(np.float32) / np.float32(255), np.float32(0))
    rows_c = np.einsum("fyx,fx->fy", cov, col_in.astype(np.float32)) * row_in  # (F, H)
    cols_c = np.einsum("fyx,fy->fx", cov, row_in.astype(np.float32)) * col_in  # (F, W)
    coverage = rows_c.sum(axis=1, dtype=np.float64)
    cz = np.where(has, coverage, 1.0)
    cy = (rows_c @ yc) / cz
    cx = (cols_c @ xc) / cz
    # Central moments of the coverage about its centroid.
    ddy = yc[None, :] - cy[:, None]  # (F, H)
    ddx = xc[None, :] - cx[:, None]  # (F, W)

    def mom(marg: np.ndarray, dd: np.ndarray, k: int) -> np.ndarray:
        return (marg * dd ** k).sum(axis=1) / cz

    sxy = np.einsum("fyx,fy,fx->f", cov, (ddy ** 2 * row_in).astype(np.float32),
                    (ddx ** 2 * col_in).astype(np.float32), dtype=np.float64) / cz
    x2, y2, x4, y4 = mom(cols_c, ddx, 2), mom(rows_c, ddy, 2), mom(cols_c, ddx, 4), mom(rows_c, ddy, 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        aniso = np.where(has, (x4 + y4) / (x4 + y4 + 2 * sxy), np.nan)
        gamma = np.where(has, np.maximum(np.abs(mom(cols_c, ddx, 3)) / x2 ** 1.5,
                                         np.abs(mom(rows_c, ddy, 3)) / y2 ** 1.5), np.nan)
    # Hole probe: object fraction of the pixel centres within rho of the mask centroid.
    my = (rows @ yc) / np.where(has, area, 1.0)
    mx = (cols @ xc) / np.where(has, area, 1.0)
    rho = np.maximum(HOLE_PROBE * np.sqrt(area / np.pi), 0.75)
    fi, yi, xi = np.nonzero(mask)  # object pixels, sorted by frame
    near = (yi + 0.5 - my[fi]) ** 2 + (xi + 0.5 - mx[fi]) ** 2 <= rho[fi] ** 2
    near_obj = np.bincount(fi, weights=near, minlength=nf)
    dy = yc[None, :] - my[:, None]  # pixel centres in the probe disc, row by row
    s = np.sqrt(np.maximum(rho[:, None] ** 2 - dy ** 2, 0.0))
    x_lo = np.maximum(np.ceil(mx[:, None] - s - 0.5), 0)
    x_hi = np.minimum(np.floor(mx[:, None] + s - 0.5), w - 1)
    n_near = np.where(dy ** 2 <= rho[:, None] ** 2, np.maximum(x_hi - x_lo + 1, 0), 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        center_fill = np.where(has & (n_near > 0), near_obj / n_near, np.nan)
    shape = np.where(center_fill < RING_CENTER_FILL, 2,
                     np.where(gamma > TRIANGLE_SKEWNESS, 3, np.where(aniso < SQUARE_ANISO, 1, 0)))
    shape = np.where(has, shape, -1)
    # Colour: alpha-weighted vote of the un-blended pixels' nearest palette colours.
    alpha = ink[fi, yi, xi].astype(np.float64) / 255.0
    pix = background + (f[fi, yi, xi].astype(np.float64) - background) / alpha[:, None]  # (M, 3)
    pal = PALETTE_RGB.astype(np.float64)
    lab = np.argmin(((pix[:, None, :] - pal[None]) ** 2).sum(-1), axis=1)
    npal = len(pal)
    votes = np.bincount(fi * npal + lab, weights=alpha, minlength=nf * npal).reshape(nf, npal)
    color = np.where(has, np.argmax(votes, axis=1), -1)
    nan = np.nan
    return {"area": area, "coverage": coverage, "cx": np.where(has, cx, nan),
            "cy": np.where(has, cy, nan), "center_fill": center_fill, "skewness": gamma,
            "squareness": aniso, "shape": shape, "color": color}


def parse_attributes(frames: np.ndarray, world: float = WORLD_SIZE,
                     background: int = 255) -> dict[str, np.ndarray]:
    """Parse the one object of each frame (see the module docstring).

    Args:
        frames: ``(N, T, H, W, 3)`` uint8.
        world: side of the world square, world units.
        background: grey level of the background.

    Returns:
        ``color`` / ``shape`` ``(N, T)`` int64 ids into :data:`COLOR_NAMES` /
        :data:`SHAPES` (-1 where no object is found); ``center`` ``(N, T, 2)``
        world (x, y up; NaN without an object), the coverage centroid;
        ``radius`` ``(N, T)`` area-equivalent radius ``sqrt(coverage / pi)``
        and ``size`` ``(N, T)`` the disc radius for the parsed shape
        (radius / sqrt(AREA_FACTOR)), world units; ``area`` ``(N, T)`` mask
        pixels and ``coverage`` ``(N, T)`` summed coverage, pixels; and the
        classifier's features ``center_fill``, ``skewness``, ``squareness``
        ``(N, T)``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ConfigError(f"frames must be uint8 (N, T, H, W, 3), got {frames.dtype} {frames.shape}")
    n, t, h, w, _ = frames.shape
    flat = frames.reshape(n * t, h, w, 3)
    step = max(1, (1 << 20) // max(h * w, 1))
    parts = [_parse_chunk(flat[lo:lo + step], background) for lo in range(0, n * t, step)]
    if not parts:
        parts = [_parse_chunk(np.zeros((0, h, w, 3), np.uint8), background)]
    p = {k: np.concatenate([x[k] for x in parts]).reshape(n, t) for k in parts[0]}
    sx, sy = world / w, world / h
    factor = np.sqrt(np.array([AREA_FACTOR[s] for s in SHAPES]))
    radius = np.sqrt(p["coverage"] / np.pi) * sx
    with np.errstate(invalid="ignore"):
        size = np.where(p["shape"] >= 0, radius / factor[np.maximum(p["shape"], 0)], np.nan)
    return {
        "color": p["color"].astype(np.int64), "shape": p["shape"].astype(np.int64),
        "center": np.stack([p["cx"] * sx, world - p["cy"] * sy], axis=-1),
        "radius": np.where(p["area"] > 0, radius, np.nan), "size": size, "area": p["area"],
        "coverage": p["coverage"],
        "center_fill": p["center_fill"], "skewness": p["skewness"], "squareness": p["squareness"],
    }


def fully_visible(pos: np.ndarray, radii: np.ndarray, world: float = WORLD_SIZE) -> np.ndarray:
    """``(N, T)`` frames in which the object (any shape) lies fully inside the world.

    Args:
        pos: ``(N, T, 1, 2)`` or ``(N, T, 2)`` centres; radii ``(N, 1)`` or ``(N,)``.
    """
    pos = np.asarray(pos, np.float64)
    if pos.ndim == 4:
        pos = pos[:, :, 0]
    reach = SHAPE_REACH * np.asarray(radii, np.float64).reshape(-1)[:, None]
    x, y = pos[..., 0], pos[..., 1]
    return (x - reach >= 0) & (x + reach <= world) & (y - reach >= 0) & (y + reach <= world)


def _mode(ids: np.ndarray, mask: np.ndarray, num: int) -> np.ndarray:
    """Most frequent id per row over masked entries (-1 = no object counts too); -1 if none."""
    n = ids.shape[0]
    counts = np.zeros((n, num + 1))
    rows = np.repeat(np.arange(n), ids.shape[1]).reshape(ids.shape)
    np.add.at(counts, (rows[mask], ids[mask] + 1), 1.0)
    return np.where(counts.sum(1) > 0, np.argmax(counts, axis=1) - 1, -1)


def attribute_consistency(frames: np.ndarray, states: dict[str, np.ndarray],
                          cond_frames: int = COND_FRAMES, size_tol: float = SIZE_TOL,
                          velocity_tol: float = VELOCITY_TOL,
                          world: float = WORLD_SIZE) -> dict[str, np.ndarray]:
    """Which attributes of each video match its ground truth.

    Frames evaluated: index ``>= cond_frames`` (the generated ones) in which
    the ground-truth object is fully in view (:func:`fully_visible`).

    - colour / shape: the most frequent parsed value over the evaluated
      frames (a frame without an object votes "none") equals the truth;
    - size: ``|median parsed size - r| <= size_tol``;
    - velocity: the paper's error, ``|mean v_hat - mean v|`` over the
      evaluated frames (absent objects placed as the paper's parser does),
      ``<= velocity_tol``. Unlike the paper, the step from the last
      conditioning frame is left out: there a model that changes the shape or
      size moves the pixel centroid, which is not motion.

    Args:
        frames: ``(N, T, H, W, 3)`` uint8 (generated or ground truth).
        states: from :func:`generate_attribute_states` (``shape``, ``color``,
            ``r``, ``pos``, ``radii``).

    Returns:
        ``(N,)`` arrays: ``color_ok``, ``shape_ok``, ``size_ok``,
        ``velocity_ok``, ``consistent`` (all four) bool; ``color_pred`` /
        ``shape_pred`` the parsed ids (-1 none); ``color_frac`` /
        ``shape_frac`` fraction of evaluated frames that match;
        ``size_error``, ``velocity_error``; ``evaluated`` frame counts.
        Videos without evaluated frames are not ok (NaN errors and fractions).
    """
    frames = np.asarray(frames)
    pos = np.asarray(states["pos"], np.float64)
    n, t = frames.shape[:2]
    if pos.shape[:2] != (n, t):
        raise ConfigError(f"frames {frames.shape[:2]} and states {pos.shape[:2]} differ in (N, T)")
    parsed = parse_attributes(frames, world)
    vis = fully_visible(pos, states["radii"], world)
    idx = np.arange(t)[None, :]
    ev = vis & (idx >= cond_frames)
    cnt = ev.sum(axis=1)
    gt_color = np.asarray(states["color"], np.int64)
    gt_shape = np.asarray(states["shape"], np.int64)
    out: dict[str, np.ndarray] = {"evaluated": cnt}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, gt, num in (("color", gt_color, len(COLOR_NAMES)), ("shape", gt_shape, len(SHAPES))):
            pred = _mode(parsed[name], ev, num)
            out[f"{name}_pred"] = pred
            out[f"{name}_frac"] = np.where(cnt > 0, ((parsed[name] == gt[:, None]) & ev).sum(1) / cnt,
                                           np.nan)
            out[f"{name}_ok"] = (cnt > 0) & (pred == gt)
        sizes = np.where(ev, parsed["size"], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(sizes, axis=1) if n else np.zeros(0)
        out["size_error"] = np.abs(med - np.asarray(states["r"], np.float64))
        out["size_ok"] = out["size_error"] <= size_tol
        center = fill_missing(parsed["center"][:, :, None], collision=False, world=world)
        verr = velocity_error(center, pos, ev[..., None]) if n else np.zeros(0)
        out["velocity_error"] = verr
        out["velocity_ok"] = verr <= velocity_tol
    out["consistent"] = out["color_ok"] & out["shape_ok"] & out["size_ok"] & out["velocity_ok"]
    return out
