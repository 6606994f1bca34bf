"""Divergence guards shared by every simlab trainer.

A NaN or infinite loss stops training with one line (:class:`DivergedError`,
exit 2 at the CLI) before anything is saved, so the last good checkpoint on
disk stays the newest and no NaN weights are ever written.
"""

from __future__ import annotations

import math
from typing import Any

from simlab.errors import DivergedError

HINT = "training diverged (try a lower learning rate); stopped before saving, the last good checkpoint is kept"


def check_loss(loss: Any, step: int, what: str) -> float:
    """``float(loss)`` (a tensor or number); DivergedError when it is NaN or infinite."""
    value = float(loss.detach() if hasattr(loss, "detach") else loss)
    if not math.isfinite(value):
        raise DivergedError(f"{what}: loss is {value} at step {step}; {HINT}")
    return value


def check_weights(module: Any, what: str) -> None:
    """DivergedError when any parameter of the torch ``module`` is NaN or infinite."""
    import torch

    for name, p in module.named_parameters():
        if not bool(torch.isfinite(p).all()):
            raise DivergedError(f"{what}: parameter {name!r} is not finite; {HINT}")
