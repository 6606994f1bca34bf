"""Batched, deterministic, anti-aliased rendering of 2D shapes to uint8 frames.

Why hand-written: the generator must render millions of 32-frame videos per
hour on one core, bit-exactly the same every time (datasets may store only
states and re-render frames in the data loader). Drawing libraries (PIL, cairo,
pygame) draw one shape per call from Python; here every shape of every frame of
every video is drawn in a handful of numpy operations over small patches.

Anti-aliasing: pixel coverage is ``clip(0.5 - sdf, 0, 1)`` where ``sdf`` is
the signed distance (in pixels) from the pixel centre to the shape boundary
(negative inside). A pixel whose centre lies on the boundary gets coverage 0.5,
so the paper's colour thresholds (channel > 127) select exactly the pixels
whose centres are inside the shape, and ``sqrt(area / pi)`` is an unbiased
radius estimate for discs.

Coordinates: world (x, y) with y up, the world square ``[0, world]^2`` maps to
``res x res`` pixels; image row 0 is the top of the world.
"""

from __future__ import annotations

import math

import numpy as np

from simlab.envs.collision2d.physics import WORLD_SIZE

RED: tuple[int, int, int] = (255, 0, 0)
BLUE: tuple[int, int, int] = (0, 0, 255)
BALL_COLORS: np.ndarray = np.array([RED, BLUE], dtype=np.uint8)
"""Colours of ball 1 and ball 2 in the physics videos."""

SHAPES: tuple[str, ...] = ("disc", "square", "ring", "triangle")
"""Shape ids used by :func:`render_shapes` (index = id)."""

RING_WIDTH: float = 0.4
"""Ring thickness as a fraction of its outer radius."""


def world_to_pixel(xy: np.ndarray, res: int, world: float = WORLD_SIZE) -> np.ndarray:
    """World (x, y) -> continuous pixel (col, row) coordinates; ``(..., 2)`` -> ``(..., 2)``."""
    s = res / world
    xy = np.asarray(xy, np.float64)
    return np.stack([xy[..., 0] * s, (world - xy[..., 1]) * s], axis=-1)


def _sdf(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance in pixels for each shape id; dx, dy ``(M, P, P)``, r ``(M, 1, 1)``."""
    d = np.sqrt(dx * dx + dy * dy)
    out = d - r  # disc
    if (shape != 0).any():
        sq = np.maximum(np.abs(dx), np.abs(dy)) - r * (math.sqrt(math.pi) / 2)  # same area as disc
        ring = np.abs(d - r * (1 - RING_WIDTH / 2)) - r * RING_WIDTH / 2
        # Equilateral triangle pointing up, circumradius chosen so the area equals the disc's.
        rt = r * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
        k = math.sqrt(3.0)
        px = np.abs(dx)
        py = -dy  # image rows grow downwards; triangle apex up
        # Standard equilateral-triangle SDF (Quilez), side = rt * sqrt(3).
        side = rt * k
        px2 = px - side / 2
        py2 = py + side / (2 * k)
        flip = px2 + k * py2 > 0
        qx = np.where(flip, (px2 - k * py2) / 2, px2)
        qy = np.where(flip, (-k * px2 - py2) / 2, py2)
        qx = qx - np.clip(qx, -side, 0.0)
        tri = -np.sqrt(qx * qx + qy * qy) * np.sign(qy)
        sh = shape[:, None, None]
        out = np.where(sh == 1, sq, out)
        out = np.where(sh == 2, ring, out)
        out = np.where(sh == 3, tri, out)
    return out


_CHUNK_PIXELS = 1 << 17
"""Patch pixels per rendering chunk (keeps float32 temporaries in L2 cache)."""


def _paint(
    windows: np.ndarray, fidx: np.ndarray, pix: np.ndarray, r_px: np.ndarray,
    col: np.ndarray, sh: np.ndarray | None, p: int, res: int, work: dict[str, np.ndarray],
) -> None:
    """Blend one shape into each of the frames ``fidx`` in place.

    ``windows`` is the strided (F, H-p+1, W-p+1, 3, p, p) view of the frames;
    ``pix`` ``(M, 2)`` pixel centres (col, row); ``r_px`` ``(M,)``; ``col`` ``(M, 3)``.
    ``work`` holds preallocated float32 buffers: fresh large temporaries cost
    page faults on every call, which dominated the run time on VMs.
    """
    ar = np.arange(p, dtype=np.float32) + np.float32(0.5)
    m = len(fidx)
    # Patch origin: clipped into the frame so every in-frame pixel of the
    # shape lies inside the patch; shapes fully outside give zero coverage.
    x0 = np.clip(np.floor(pix[:, 0]).astype(np.int64) - p // 2, 0, res - p)
    y0 = np.clip(np.floor(pix[:, 1]).astype(np.int64) - p // 2, 0, res - p)
    dx = (x0[:, None].astype(np.float32) + ar[None, :]) - pix[:, 0:1].astype(np.float32)
    dy = (y0[:, None].astype(np.float32) + ar[None, :]) - pix[:, 1:2].astype(np.float32)
    alpha = work["alpha"][:m]
    a3 = alpha.reshape(m, p, p)
    if sh is None or not sh.any():
        np.add(np.square(dy)[:, :, None], np.square(dx)[:, None, :], out=a3)
        np.sqrt(alpha, out=alpha)
        alpha -= r_px[:, None]
    else:
        dxx = np.broadcast_to(dx[:, None, :], (m, p, p))
        dyy = np.broadcast_to(dy[:, :, None], (m, p, p))
        a3[...] = _sdf(sh, dxx, dyy, r_px[:, None, None])
    np.subtract(np.float32(0.5), alpha, out=alpha)  # coverage = 0.5 - sdf, clipped
    np.clip(alpha, 0.0, 1.0, out=alpha)
    block = (fidx, y0, x0)  # windows[block] is (M, 3, p, p): whole blocks, no per-pixel indices
    under = work["under"][:m]
    under[...] = windows[block].reshape(m, 3, p * p)
    res_ = work["out"][:m]
    for c in range(3):  # per channel: long contiguous inner loops
        np.subtract(col[:, c:c + 1], under[:, c], out=res_[:, c])
    res_ *= alpha[:, None, :]
    res_ += under
    res_ += np.float32(0.5)
    np.floor(res_, out=res_)
    windows[block] = res_.astype(np.uint8).reshape(m, 3, p, p)


def render_shapes(
    centers: np.ndarray,
    radii: np.ndarray,
    colors: np.ndarray,
    res: int,
    shapes: np.ndarray | None = None,
    world: float = WORLD_SIZE,
    background: int = 255,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Render K shapes per frame over N videos of T frames.

    Args:
        centers: ``(N, T, K, 2)`` world coordinates (x, y up).
        radii: ``(N, K)`` world units (disc radius; squares and triangles have the
            disc's area; a ring is the disc with a hole, 64% of its area).
        colors: ``(K, 3)`` or ``(N, K, 3)`` uint8 RGB.
        res: output side in pixels (square frames).
        shapes: ``(N, K)`` shape ids into :data:`SHAPES`; ``None`` means discs.
        world: side of the world square, world units.
        background: grey level of the background (255 = white).
        out: optional ``(N, T, res, res, 3)`` uint8 buffer to render into
            (overwritten). Reusing one buffer across batches avoids the page
            faults of a fresh allocation, which cost more than the drawing.

    Returns:
        ``(N, T, res, res, 3)`` uint8 frames. Shape ``k`` is painted over
        shapes ``< k``. Fully deterministic (float32 arithmetic, fixed order).
    """
    centers = np.asarray(centers, np.float64)
    n, t, k = centers.shape[:3]
    radii = np.asarray(radii, np.float64)
    colors = np.asarray(colors, np.uint8)
    if colors.ndim == 2:
        colors = np.broadcast_to(colors, (n, k, 3))
    if out is None:
        out = np.empty((n, t, res, res, 3), dtype=np.uint8)
    elif out.shape != (n, t, res, res, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(n, t, res, res, 3)}, got {out.dtype} {out.shape}")
    out.fill(background)
    frames = out.reshape(n * t, res, res, 3)
    if n == 0 or t == 0 or k == 0:
        return out
    scale = res / world
    r_px_all = radii * scale
    # Patch side covering the shape plus the anti-aliasing margin. Squares and
    # triangles of a disc's area reach 1.25 r and 1.56 r from their centre.
    reach = 1.0 if shapes is None or not np.any(np.isin(shapes, (1, 3))) else 1.6
    p = int(min(res, 2 * math.ceil(reach * float(r_px_all.max())) + 3))
    # windows[f, y, x] is the (3, p, p) block of frame f whose top-left pixel is
    # (y, x): a strided view, so a fancy index on (f, y, x) copies whole blocks
    # instead of scattering pixel by pixel (10x faster than flat indices).
    windows = np.lib.stride_tricks.sliding_window_view(frames, (p, p), axis=(1, 2), writeable=True)
    pix_all = world_to_pixel(centers, res, world).reshape(n * t, k, 2)  # (F, K, 2) col,row
    r_frame = np.repeat(r_px_all, t, axis=0).astype(np.float32)  # (F, K)
    col_frame = np.repeat(colors, t, axis=0).astype(np.float32)  # (F, K, 3)
    sh_frame = None if shapes is None else np.repeat(np.asarray(shapes), t, axis=0)
    # Work on chunks of frames small enough for the temporaries to stay in
    # cache; every operation is elementwise, so chunking cannot change a bit.
    chunk = max(1, _CHUNK_PIXELS // (p * p))
    work = {
        "alpha": np.empty((chunk, p * p), np.float32),
        "under": np.empty((chunk, 3, p * p), np.float32),
        "out": np.empty((chunk, 3, p * p), np.float32),
    }
    for lo in range(0, n * t, chunk):
        hi = min(n * t, lo + chunk)
        fidx = np.arange(lo, hi)
        for j in range(k):
            _paint(windows, fidx, pix_all[lo:hi, j], r_frame[lo:hi, j], col_frame[lo:hi, j],
                   None if sh_frame is None else sh_frame[lo:hi, j], p, res, work)
    return out


def render_balls(
    pos: np.ndarray, radii: np.ndarray, res: int, world: float = WORLD_SIZE,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Physics videos: ball 1 red, ball 2 blue, white background.

    Args:
        pos: ``(N, T, K, 2)`` ball centres in world units, ``K in {1, 2}``.
        radii: ``(N, K)`` world units.
        res: frame side in pixels.
        out: optional reusable output buffer (see :func:`render_shapes`).

    Returns:
        ``(N, T, res, res, 3)`` uint8.
    """
    k = pos.shape[2]
    return render_shapes(pos, radii, BALL_COLORS[:k], res, world=world, out=out)
