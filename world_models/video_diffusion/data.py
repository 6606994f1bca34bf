"""Training batches streamed from a collision2d dataset, and the dataset/model compatibility check.

Only the exact states are held in memory (~2 KB per video); each batch's
frames are rendered from them (bit-identical to stored frames, see
:mod:`simlab.envs.collision2d.dataset`), so a states-only dataset of millions
of videos trains without materialising frames. Batch ``step`` of rank ``r``
is a pure function of ``(seed, step, r)``: a resumed run sees exactly the
batches an unbroken run would, and ranks see different videos.
"""

from __future__ import annotations

import numpy as np

from simlab.errors import DatasetError


def check_compatible(ds, num_frames: int, resolution: int, what: str = "the model") -> None:
    """Raise :class:`DatasetError` (one line) if a :class:`VideoDataset` does not fit the model.

    Args:
        ds: an open ``VideoDataset``.
        num_frames: frames per video the model generates.
        resolution: the model's frame side in pixels.
    """
    frames = int(ds.manifest.get("frames", -1))
    res = int(ds.config.resolution)
    if res != resolution:
        raise DatasetError(f"{ds.root}: {res}px frames, but {what} works at {resolution}px")
    if frames != num_frames:
        raise DatasetError(f"{ds.root}: {frames} frames per video, but {what} has num_frames={num_frames}")
    if len(ds) < 1:
        raise DatasetError(f"{ds.root}: empty dataset")


class TrainStream:
    """Random batches of videos ``(B, T, H, W, 3)`` uint8 from a dataset's states.

    Args:
        ds: an open ``VideoDataset``.
        batch_size: videos per batch (per rank).
        seed: stream seed.
    """

    def __init__(self, ds, batch_size: int, seed: int) -> None:
        self.ds = ds
        self.batch_size = batch_size
        self.seed = seed
        self.states = ds.load(0, len(ds), frames=False)

    def indices(self, step: int, rank: int = 0) -> np.ndarray:
        """Dataset indices ``(B,)`` of batch ``step`` for ``rank`` (sampled with replacement)."""
        rng = np.random.default_rng([self.seed, step, rank, 0x5EED])
        return rng.integers(0, len(self.ds), self.batch_size)

    def frames(self, idx: np.ndarray) -> np.ndarray:
        """Rendered frames ``(len(idx), T, H, W, 3)`` uint8 of videos ``idx``."""
        return self.ds.render({k: v[idx] for k, v in self.states.items()})

    def batch(self, step: int, rank: int = 0) -> np.ndarray:
        """Frames of batch ``step`` for ``rank``: ``(B, T, H, W, 3)`` uint8."""
        return self.frames(self.indices(step, rank))
