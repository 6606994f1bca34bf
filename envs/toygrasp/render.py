"""A picture of toys: each one resting on the table, seen close up, tiled into one PNG (``simlab render-toys``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simlab.errors import ConfigError

MAX_TOYS = 256


def parse_seeds(text: str) -> list[int]:
    """``"a:b"`` (seeds a..b-1) or ``"1,5,9"`` -> 1..MAX_TOYS seeds in 0..2**32-1; ConfigError otherwise."""
    from simlab.cli_options import int_selection

    return int_selection(text, "--seeds", 0, 2**32, MAX_TOYS)


def toy_images(names: list[str], resolution: int = 128) -> np.ndarray:
    """``(len(names), resolution, resolution, 3)`` uint8: each object dropped on the table (pybullet), close up."""
    from simlab.envs.toygrasp import scene
    from simlab.envs.toygrasp.sim_pybullet import PyBulletSim
    from simlab.envs.toygrasp.splits import body_of

    sim = PyBulletSim(resolution, resolution)
    p = sim.p
    out = []
    try:
        for name in names:
            body = body_of(name)
            sim.load_body(body, np.array([0.55, 0.0, body.half_height + scene.DROP_CLEARANCE]),
                          np.array([1.0, 0.0, 0.0, 0.0]))
            sim.step(scene.SETTLE_STEPS)
            pos = sim.body_pose()[0]
            sim.view = p.computeViewMatrix([pos[0] + 0.17, pos[1] + 0.07, pos[2] + 0.14], pos.tolist(), [0, 0, 1])
            out.append(sim.render()[0])
    finally:
        sim.close()
    return np.stack(out)


def render_toys(seeds: list[int], out: str | Path, resolution: int = 128) -> Path:
    """Write a grid PNG of toys ``seeds`` (row-major, up to 8 per row); returns the path."""
    from PIL import Image

    from simlab.data import atomic_path

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must end in .png, got {out}")
    imgs = toy_images([f"toy/{s}" for s in seeds], resolution)
    cols = min(8, len(imgs))
    rows = -(-len(imgs) // cols)
    grid = np.full((rows * resolution, cols * resolution, 3), 255, np.uint8)
    for k, im in enumerate(imgs):
        r, c = divmod(k, cols)
        grid[r * resolution:(r + 1) * resolution, c * resolution:(c + 1) * resolution] = im
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return out
