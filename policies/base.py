"""The policy interface every simlab policy implements, whatever trained it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """``act`` maps a batch of observations to a batch of actions; ``save``/``load`` use plain files.

    Observations are batched on the leading axis (``(B, *obs_shape)``) and so
    are actions (``(B,)`` for discrete spaces, ``(B, *act_shape)`` for boxes).
    Saved policies are a directory with ``config.json`` and ``model.safetensors``
    (no pickles).
    """

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray: ...

    def save(self, path: str | Path) -> None: ...
