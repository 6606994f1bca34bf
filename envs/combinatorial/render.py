"""Rasterise part poses into uint8 frames: white background, static black, dynamic gray, red ball.

Why hand-written: datasets may store only states and re-render frames in the
training loader, so rendering must be bit-exactly reproducible and fast for
whole videos at once; a numpy inside-test over the pixel grid draws every part
of every frame in a few array operations, where drawing libraries (PIL, pygame)
draw one polygon per call and anti-alias differently across versions.

No anti-aliasing, on purpose: a pixel takes a part's colour iff its centre
lies inside the part, so every pixel is exactly one of four palette colours and
the abnormality detector's colour classes are exact on ground truth. Parts of
width >= 1 pixel stay 8-connected at any angle (the thinnest parts are 0.36
world units = 1.15 px at 32 px).

Coordinates: world (x, y), y up, the square ``[0, WORLD_SIZE]^2`` fills the
frame; pixel (row, col) has its centre at
``x = (col + 0.5) * s, y = WORLD_SIZE - (row + 0.5) * s`` with ``s = WORLD_SIZE / res``.
"""

from __future__ import annotations

import numpy as np

from simlab.envs.combinatorial.templates import BLACK, BOX, GRAY, RED, WORLD_SIZE
from simlab.errors import ConfigError

WHITE_RGB: tuple[int, int, int] = (255, 255, 255)
PALETTE: np.ndarray = np.array([(255, 0, 0), (128, 128, 128), (0, 0, 0)], np.uint8)
"""RGB of the colour classes RED, GRAY, BLACK (index = class)."""
DRAW_ORDER: tuple[int, ...] = (BLACK, GRAY, RED)
"""Static parts first, then dynamic, then the red ball on top."""
RESOLUTIONS: tuple[int, ...] = (32, 64, 128)
"""Supported frame sides, pixels."""


def check_resolution(res: int) -> None:
    """ConfigError unless ``res`` is 32, 64 or 128."""
    if isinstance(res, bool) or res not in RESOLUTIONS:
        raise ConfigError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))} pixels, got {res!r}")


def pixel_centres(res: int) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates of pixel centres: x ``(1, res)`` and y ``(res, 1)``."""
    s = WORLD_SIZE / res
    c = (np.arange(res) + 0.5) * s
    return c[None, :], (WORLD_SIZE - c)[:, None]


def part_mask(pose: np.ndarray, kind: int, size: np.ndarray, res: int) -> np.ndarray:
    """Pixels whose centre lies inside one part, in every frame: pose ``(T, 3)`` -> ``(T, res, res)`` bool."""
    px, py = pixel_centres(res)
    dx = px[None] - pose[:, 0, None, None]
    dy = py[None] - pose[:, 1, None, None]
    if kind == BOX:
        c, s = np.cos(pose[:, 2])[:, None, None], np.sin(pose[:, 2])[:, None, None]
        return (np.abs(c * dx + s * dy) <= size[0]) & (np.abs(-s * dx + c * dy) <= size[1])
    return dx * dx + dy * dy <= size[0] * size[0]


def render_video(states: dict[str, np.ndarray], res: int) -> np.ndarray:
    """Frames ``(T, res, res, 3)`` uint8 of one video's states (:func:`~.physics.simulate`)."""
    check_resolution(res)
    pose = np.asarray(states["pose"])
    out = np.full((pose.shape[0], res, res, 3), 255, np.uint8)
    for color in DRAW_ORDER:
        for k in np.flatnonzero(states["valid"] & (states["color"] == color)):
            out[part_mask(pose[:, k], int(states["kind"][k]), states["size"][k], res)] = PALETTE[color]
    return out


def render_videos(states: dict[str, np.ndarray], res: int, out: np.ndarray | None = None) -> np.ndarray:
    """Batched :func:`render_video`: states with a leading ``N`` axis -> ``(N, T, res, res, 3)`` uint8."""
    check_resolution(res)
    n, t = states["pose"].shape[:2]
    if out is None:
        out = np.empty((n, t, res, res, 3), np.uint8)
    for i in range(n):
        out[i] = render_video({k: states[k][i] for k in ("pose", "kind", "size", "color", "valid")}, res)
    return out


__all__ = [
    "BLACK",
    "GRAY",
    "PALETTE",
    "RED",
    "RESOLUTIONS",
    "check_resolution",
    "part_mask",
    "pixel_centres",
    "render_video",
    "render_videos",
]
