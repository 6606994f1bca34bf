"""Collect and read collision2d video datasets (HDF5 shards + manifest, see :mod:`simlab.data`).

Each shard holds a fixed block of video indices: ``pos``/``vel`` ``(n, T, K, 2)``
float64 exact states, ``radii`` ``(n, K)``, ``p0``/``v0``, ``t_contact``, the
scenario parameters (``param_<name>``) and, unless ``store_frames=False``,
``frames`` ``(n, T, H, W, 3)`` uint8 (gzip, lossless). Datasets stored without
frames re-render them in the reader from the exact states, bit-identically
(the renderer is deterministic), so paper-scale sets (3M videos) cost a few
GB of states instead of terabytes of pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab import __version__
from simlab.data import (
    FORMAT_VERSION,
    MANIFEST,
    CollectResult,
    check_shards,
    claim_dataset_dir,
    discard_damaged_shard,
    finalize_manifest,
    open_h5,
    read_h5_array,
    read_manifest,
    read_shard_range,
    shard_name,
    shard_record,
    write_h5_shard,
)
from simlab.envs.collision2d.physics import COND_FRAMES, FRAME_DT, NUM_FRAMES, WORLD_SIZE
from simlab.envs.collision2d.render import render_balls
from simlab.envs.collision2d.scenarios import VideoSpec, num_balls
from simlab.errors import ConfigError, DatasetError

KIND = "simlab.collision2d.videos"
ATTRIBUTES = "attributes"
"""Pseudo-scenario: the attribute scenes of :mod:`simlab.envs.collision2d.attributes`."""


class _AttrSpec:
    """Adapter giving attribute specs the VideoSpec interface used here."""

    def __init__(self, spec) -> None:
        self.spec = spec

    def grid_size(self) -> None:
        return None


def _scenario_balls(scenario: str) -> int:
    return 1 if scenario == ATTRIBUTES else num_balls(scenario)


def _generate(cfg: CollectConfig, start: int, stop: int) -> dict[str, np.ndarray]:
    """Exact states and parameters of videos ``[start, stop)`` (``param_*`` arrays included)."""
    if cfg.scenario == ATTRIBUTES:
        from simlab.envs.collision2d.attributes import AttributeSpec, generate_attribute_states

        st = generate_attribute_states(AttributeSpec(cfg.split, cfg.seed), start, stop)
        names: tuple[str, ...] = ("shape", "color", "r", "v")
    else:
        from simlab.envs.collision2d.scenarios import generate_states

        st = generate_states(cfg.spec(), start, stop)
        names = ("r", "v") if num_balls(cfg.scenario) == 1 else ("r1", "r2", "v1", "v2")
    out = {k: st[k] for k in STATE_KEYS}
    out.update({f"param_{p}": st[p] for p in names})
    if "ood_level" in st:
        out["ood_level"] = st["ood_level"]
    return out


def render_states(scenario: str, states: dict[str, np.ndarray], res: int,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Frames ``(N, T, res, res, 3)`` uint8 of stored states, bit-identical to the collector's."""
    if scenario == ATTRIBUTES:
        from simlab.envs.collision2d.attributes import render_attribute_videos

        return render_attribute_videos({"pos": states["pos"], "radii": states["radii"],
                                        "shape": states["param_shape"], "color": states["param_color"]},
                                       res, out=out)
    return render_balls(states["pos"], states["radii"], res, out=out)
STATE_KEYS = ("pos", "vel", "radii", "p0", "v0", "t_contact", "index")


@dataclass(frozen=True)
class CollectConfig:
    """Everything that determines a collision2d dataset's content."""

    scenario: str = "collision"
    """uniform | collision | oblique | parabola | attributes (one object: shape, colour, size, speed)."""
    split: str = "train"
    """Split name of the scenario (``simlab envs --json`` lists them) or ``ood``."""
    size: int = 1000
    """Number of videos (with ``grid``: at most the grid size; 0 = whole grid)."""
    resolution: int = 64
    """Frame side in pixels (>= 16; 64 default, 128 paper scale)."""
    seed: int = 0
    """Seed of parameters and placement."""
    grid: str | None = None
    """Paper linspace grid (30k | 300k | 3m) instead of random sampling."""
    store_frames: bool = True
    """Store frames (gzip) or only exact states (frames re-rendered on read)."""
    videos_per_shard: int = 4096
    """Videos per shard file (part of the content: fixed for a dataset)."""

    def __post_init__(self) -> None:
        spec = self.spec()  # validates scenario / split / grid / seed
        if self.resolution < 16:
            raise ConfigError(f"resolution must be >= 16 pixels, got {self.resolution}")
        if self.resolution > 1024:
            raise ConfigError(f"resolution must be <= 1024 pixels, got {self.resolution}")
        if self.size < 0 or (self.size == 0 and self.grid is None):
            raise ConfigError(f"size must be >= 1, got {self.size}")
        gs = spec.grid_size()
        if gs is not None and self.size > gs:
            raise ConfigError(f"grid {self.grid!r} of {self.scenario} has {gs} videos; --size {self.size} is larger")
        if self.videos_per_shard < 1:
            raise ConfigError(f"videos_per_shard must be >= 1, got {self.videos_per_shard}")

    def spec(self):  # -> VideoSpec | AttributeSpec
        """The generator spec (validates scenario, split, grid and seed)."""
        if self.scenario == ATTRIBUTES:
            from simlab.envs.collision2d.attributes import AttributeSpec, attribute_split

            if self.grid is not None:
                raise ConfigError("linspace grids exist for the physics scenarios, not for attributes")
            attribute_split(self.split)
            return _AttrSpec(AttributeSpec(self.split, self.seed))
        return VideoSpec(self.scenario, self.split, self.seed, self.grid)

    @property
    def total(self) -> int:
        """Videos in the dataset."""
        gs = self.spec().grid_size()
        return gs if (gs is not None and self.size == 0) else self.size

    def num_shards(self) -> int:
        """Number of shard files."""
        return -(-self.total // self.videos_per_shard)


STATE_BYTES_PER_VIDEO = 1024
"""A lower bound of the stored bytes of one video's exact states (positions, velocities: 32 frames)."""


def check_resources(cfg: CollectConfig, root: Path) -> None:
    """Refuse (ConfigError, one line) a collection whose shard cannot fit in memory or whose
    states alone cannot fit on the disk of ``root``, before anything is written."""
    from simlab.resources import check_disk, check_memory

    per_shard = min(cfg.total, cfg.videos_per_shard)
    frame_bytes = NUM_FRAMES * cfg.resolution ** 2 * 3
    check_memory(per_shard * (2 * frame_bytes + STATE_BYTES_PER_VIDEO) if cfg.store_frames
                 else per_shard * (frame_bytes + STATE_BYTES_PER_VIDEO),
                 f"a shard of {per_shard} videos at {cfg.resolution}px")
    check_disk(cfg.total * STATE_BYTES_PER_VIDEO, root, f"a dataset of {cfg.total} videos")


def _shard_arrays(cfg: CollectConfig, start: int, stop: int, batch: int,
                  buf: np.ndarray | None) -> dict[str, np.ndarray]:
    arrays = _generate(cfg, start, stop)
    if cfg.store_frames:
        n = stop - start
        frames = np.empty((n, NUM_FRAMES, cfg.resolution, cfg.resolution, 3), np.uint8)
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            if buf is None or buf.shape[0] != hi - lo:
                buf = np.empty((hi - lo, *frames.shape[1:]), np.uint8)
            frames[lo:hi] = render_states(cfg.scenario, {k: v[lo:hi] for k, v in arrays.items()},
                                          cfg.resolution, out=buf)
        arrays["frames"] = frames
    return arrays


def _shard_range(cfg: CollectConfig, j: int) -> tuple[int, int]:
    start = j * cfg.videos_per_shard
    return start, min(cfg.total, start + cfg.videos_per_shard)


def collect(cfg: CollectConfig, out: str | Path, shard: tuple[int, int] = (0, 1),
            resume: bool = False, batch: int = 256, progress: bool | None = None) -> CollectResult:
    """Generate the dataset's shards ``j`` with ``j % n == i`` for ``shard=(i, n)``.

    Writes ``collect_config.json`` first, each shard atomically (plus a small
    checksum sidecar), and ``manifest.json`` once every shard of the dataset
    exists (any worker that finishes last writes it). With ``resume``, shards
    already present are skipped; the result is byte-identical to an unbroken run.
    """
    from tqdm import tqdm

    root = Path(out)
    i, n = shard
    check_resources(cfg, root)
    claim_dataset_dir(root, asdict(cfg), resume or n > 1)
    todo = [j for j in range(cfg.num_shards()) if j % n == i]
    res = CollectResult(out=str(root))
    t0 = time.perf_counter()
    attrs = {"format_version": FORMAT_VERSION, "kind": KIND, "config": asdict(cfg)}
    buf: np.ndarray | None = None
    with tqdm(total=sum(min(cfg.total, (j + 1) * cfg.videos_per_shard) - j * cfg.videos_per_shard for j in todo),
              desc=f"collect {cfg.scenario}/{cfg.split}", unit="video", disable=progress is False,
              leave=False, dynamic_ncols=True) as bar:
        for j in todo:
            start, stop = _shard_range(cfg, j)
            path = root / shard_name(j)
            if discard_damaged_shard(root, j):  # damaged after it was written: write it again
                res.rewritten.append(j)
            if path.exists():
                res.skipped.append(j)
            else:
                arrays = _shard_arrays(cfg, start, stop, batch, buf)
                write_h5_shard(path, arrays, {**attrs, "start": start, "stop": stop}, compress={"frames"})
                res.written.append(j)
                res.items_written += stop - start
            shard_record(root, j, start, stop)
            bar.update(stop - start)
    res.seconds = time.perf_counter() - t0
    res.complete = finalize(root, cfg)
    return res


def finalize(root: Path, cfg: CollectConfig) -> bool:
    """Write ``manifest.json`` if every shard exists; returns whether the dataset is complete."""
    return finalize_manifest(root, cfg.num_shards(), lambda j: _shard_range(cfg, j), {
        "kind": KIND,
        "simlab_version": __version__,
        "config": asdict(cfg),
        "count": cfg.total,
        "num_balls": _scenario_balls(cfg.scenario),
        "frames": NUM_FRAMES,
        "cond_frames": COND_FRAMES,
        "frame_dt": FRAME_DT,
        "world_size": WORLD_SIZE,
        "seed_range": [cfg.seed, cfg.seed],
    })


class VideoDataset:
    """Read a collected collision2d dataset.

    Validates the manifest and shard sizes on open (``verify=True`` also
    checks SHA-256 of every shard); frames are read, or rendered from the
    exact states when the dataset was collected with ``store_frames=False``.
    """

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root, KIND)
        check_shards(self.root, self.manifest, verify=verify)
        try:
            self.config = CollectConfig(**self.manifest["config"])
        except (TypeError, ConfigError) as e:
            raise DatasetError(f"{self.root / MANIFEST}: invalid generator config ({e})") from None
        self.shards = self.manifest["shards"]
        self.num_balls = _scenario_balls(self.config.scenario)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def attributes(self) -> bool:
        """An attribute-scene dataset (scored with the attribute parser, not red/blue)."""
        return self.config.scenario == ATTRIBUTES

    @property
    def collision(self) -> bool:
        """Two-ball scenario (post-contact frames are evaluated)."""
        return self.num_balls == 2

    def _read_shard(self, s: dict[str, Any], lo: int, hi: int, frames: bool) -> dict[str, np.ndarray]:
        path = self.root / s["file"]
        with open_h5(path, s["sha256"]) as f:
            if f.attrs.get("kind") != KIND:
                raise DatasetError(f"{path}: not a collision2d shard")
            sel = slice(lo, hi)
            keys = [*STATE_KEYS, *sorted(k for k in f if k.startswith("param_"))]
            out = {k: read_h5_array(f, k, sel) for k in keys}
            if frames:
                if "frames" in f:
                    out["frames"] = read_h5_array(f, "frames", sel)
                else:
                    out["frames"] = self.render(out)
        if len(out["index"]) != hi - lo or (hi > lo and out["index"][0] != s["start"] + lo):
            raise DatasetError(f"{path}: index range does not match the manifest")
        return out

    def render(self, states: dict[str, np.ndarray]) -> np.ndarray:
        """Frames of videos from their exact states (bit-identical to stored frames)."""
        return render_states(self.config.scenario, states, self.config.resolution)

    def load(self, start: int = 0, stop: int | None = None, frames: bool = True) -> dict[str, np.ndarray]:
        """Videos ``[start, stop)`` as one dict of arrays (``frames`` ``(n,T,H,W,3)`` uint8)."""
        parts = read_shard_range(self.root, self.shards, len(self), start, stop,
                                 lambda s, lo, hi: self._read_shard(s, lo, hi, frames))
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def iter_batches(self, batch: int = 256, frames: bool = True) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive batches of videos."""
        for lo in range(0, len(self), batch):
            yield self.load(lo, min(len(self), lo + batch), frames)
