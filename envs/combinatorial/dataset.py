"""Collect and read combinatorial-scene video datasets (HDF5 shards + manifest, see :mod:`simlab.data`).

Each shard holds a fixed block of video indices: the exact states
(``pose`` ``(n, T, K, 3)`` float64; per-part ``kind``, ``size``, ``color``,
``body``, ``type``, ``valid``), ``template`` ``(n,)`` and ``index`` ``(n,)``,
and ``frames`` ``(n, T, H, W, 3)`` uint8 (gzip, lossless). The reader's
:meth:`CombinatorialDataset.render` re-renders frames from states
bit-identically, so :class:`simlab.world_models.video_diffusion.data.TrainStream`
streams batches from it as it does from a collision2d dataset.
"""

from __future__ import annotations

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
    collect_shards,
    finalize_manifest,
    open_h5,
    read_h5_array,
    read_manifest,
    read_shard_range,
)
from simlab.envs.combinatorial.physics import COND_FRAMES, FRAME_DT, STATE_KEYS, simulate_variant
from simlab.envs.combinatorial.render import check_resolution, render_videos
from simlab.envs.combinatorial.templates import (
    WORLD_SIZE,
    split_templates,
    video_key,
    video_template,
)
from simlab.errors import ConfigError, DatasetError

KIND = "simlab.combinatorial.videos"
SHARD_KEYS: tuple[str, ...] = (*STATE_KEYS, "template", "index")
"""Arrays of every shard besides ``frames``."""


@dataclass(frozen=True)
class CombinatorialConfig:
    """Everything that determines a combinatorial-scene dataset's content."""

    split: str = "train"
    """train | test_in (unseen variants of the training templates) | test_out (held-out templates)."""
    size: int = 1000
    """Number of videos (templates in turn, so each template gets size / templates)."""
    resolution: int = 32
    """Frame side in pixels: 32, 64 or 128."""
    frames: int = 32
    """Frames per video (0.1 s apart)."""
    seed: int = 0
    """Seed of the variants (train and test_in draw from disjoint streams of it)."""
    train_templates: int = 30
    """6, 30 or 60: the training templates (for train and test_in)."""
    videos_per_shard: int = 1024
    """Videos per shard file (part of the content: fixed for a dataset)."""

    def __post_init__(self) -> None:
        split_templates(self.split, self.train_templates)  # validates split and train_templates
        check_resolution(self.resolution)
        for name in ("size", "frames", "videos_per_shard"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.frames < 2:
            raise ConfigError(f"frames must be >= 2, got {self.frames}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")

    def num_shards(self) -> int:
        """Number of shard files."""
        return -(-self.size // self.videos_per_shard)

    def shard_range(self, j: int) -> tuple[int, int]:
        """Video indices ``[start, stop)`` of shard ``j``."""
        start = j * self.videos_per_shard
        return start, min(self.size, start + self.videos_per_shard)


def generate_states(cfg: CombinatorialConfig, start: int, stop: int) -> dict[str, np.ndarray]:
    """Exact states of videos ``[start, stop)`` stacked on a leading axis, plus ``template``, ``index``."""
    rows = []
    for i in range(start, stop):
        t = video_template(cfg.split, cfg.train_templates, i)
        st = simulate_variant(t, video_key(cfg.split, cfg.seed, i), cfg.frames)
        st["template"], st["index"] = np.int16(t), np.int64(i)
        rows.append(st)
    return {k: np.stack([r[k] for r in rows]) for k in SHARD_KEYS}


def _rollout(cfg: CombinatorialConfig, j: int, tick: Any) -> dict[str, np.ndarray]:
    start, stop = cfg.shard_range(j)
    parts = []
    for lo in range(start, stop, 64):
        hi = min(stop, lo + 64)
        parts.append(generate_states(cfg, lo, hi))
        tick(hi - lo)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in SHARD_KEYS}
    arrays["frames"] = render_videos(arrays, cfg.resolution)
    return arrays


def _manifest_fields(cfg: CombinatorialConfig) -> dict[str, Any]:
    return {
        "kind": KIND,
        "simlab_version": __version__,
        "config": asdict(cfg),
        "count": cfg.size,
        "frames": cfg.frames,
        "cond_frames": COND_FRAMES,
        "frame_dt": FRAME_DT,
        "world_size": WORLD_SIZE,
        "templates": list(split_templates(cfg.split, cfg.train_templates)),
        "seed_range": [cfg.seed, cfg.seed],
    }


def collect_combinatorial(out: str | Path, split: str, size: int, resolution: int = 32, frames: int = 32,
                          seed: int = 0, train_templates: int = 30, resume: bool = False,
                          progress: bool = True, shard: tuple[int, int] = (0, 1),
                          videos_per_shard: int = 1024) -> CollectResult:
    """Simulate, render and write ``size`` videos of ``split`` to ``out``.

    Shards are written atomically; with ``resume`` finished shards are skipped and the
    result is byte-identical to an unbroken run; ``shard=(i, n)`` writes shards
    ``j % n == i`` (the manifest is written by whichever worker completes the set).
    ConfigError (one line) for an unknown split, a bad size, resolution or template count.
    """
    cfg = CombinatorialConfig(split=split, size=size, resolution=resolution, frames=frames, seed=seed,
                              train_templates=train_templates, videos_per_shard=videos_per_shard)
    root = Path(out)
    return collect_shards(
        root, cfg, shard, resume, record={"config": asdict(cfg)},
        attrs={"format_version": FORMAT_VERSION, "kind": KIND, "config": asdict(cfg)},
        rollout=lambda j, tick: _rollout(cfg, j, tick), compress={"frames"}, extra=None,
        finalize=lambda: finalize_manifest(root, cfg.num_shards(), cfg.shard_range, _manifest_fields(cfg)),
        desc=f"collect combinatorial/{split}", unit="video", progress=progress)


class CombinatorialDataset:
    """Read a collected combinatorial-scene dataset.

    The same reading interface as :class:`simlab.envs.collision2d.dataset.VideoDataset`
    (``manifest``, ``config.resolution``, ``len``, ``load``, ``render``, ``iter_batches``),
    so the video-diffusion trainer's ``TrainStream`` and ``check_compatible`` accept it.
    """

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root, KIND)
        check_shards(self.root, self.manifest, verify=verify)
        try:
            self.config = CombinatorialConfig(**self.manifest["config"])
        except (TypeError, ConfigError) as e:
            raise DatasetError(f"{self.root / MANIFEST}: invalid generator config ({e})") from None
        self.shards = self.manifest["shards"]

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def cond_frames(self) -> int:
        """Frames a model is conditioned on (1 in these scenes)."""
        return int(self.manifest.get("cond_frames", COND_FRAMES))

    def _read_shard(self, s: dict[str, Any], lo: int, hi: int, frames: bool) -> dict[str, np.ndarray]:
        path = self.root / s["file"]
        with open_h5(path, s["sha256"]) as f:
            if f.attrs.get("kind") != KIND:
                raise DatasetError(f"{path}: not a combinatorial shard")
            sel = slice(lo, hi)
            out = {k: read_h5_array(f, k, sel) for k in SHARD_KEYS}
            if frames:
                out["frames"] = read_h5_array(f, "frames", sel)
        if len(out["index"]) != hi - lo or (hi > lo and out["index"][0] != s["start"] + lo):
            raise DatasetError(f"{path}: index range does not match the manifest")
        return out

    def render(self, states: dict[str, np.ndarray]) -> np.ndarray:
        """Frames ``(N, T, H, W, 3)`` uint8 of videos from their states (bit-identical to stored frames)."""
        return render_videos(states, self.config.resolution)

    def load(self, start: int = 0, stop: int | None = None, frames: bool = True) -> dict[str, np.ndarray]:
        """Videos ``[start, stop)`` as one dict of arrays (``frames`` ``(n, T, H, W, 3)`` uint8)."""
        parts = read_shard_range(self.root, self.shards, len(self), start, stop,
                                 lambda s, lo, hi: self._read_shard(s, lo, hi, frames))
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def iter_batches(self, batch: int = 256, frames: bool = True):
        """Consecutive batches of videos (dicts as :meth:`load`)."""
        for lo in range(0, len(self), batch):
            yield self.load(lo, min(len(self), lo + batch), frames)


def open_dataset(root: str | Path, verify: bool = False):  # -> VideoDataset | CombinatorialDataset
    """Open a collision2d or combinatorial dataset by the kind its manifest names."""
    man = read_manifest(root)
    if man["kind"] == KIND:
        return CombinatorialDataset(root, verify)
    from simlab.envs.collision2d.dataset import VideoDataset

    return VideoDataset(root, verify)
