"""Validation of discrete action batches, shared by every batched env (real games and dreams)."""

from __future__ import annotations

from typing import Any

import numpy as np

from simlab.errors import ActionError


def check_discrete_actions(actions: Any, n: int, n_actions: int) -> np.ndarray:
    """Validate ``n`` discrete actions -> int64 ``(n,)``; ActionError for a wrong shape, type or range.

    A scalar is accepted for ``n == 1``; integral floats are accepted (NaN, inf and
    fractions are not).
    """
    a = np.asarray(actions)
    if a.shape == () and n == 1:
        a = a.reshape(1)
    if a.shape != (n,):
        raise ActionError(f"expected {n} actions of shape ({n},), got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ActionError(f"actions must be integers in [0, {n_actions}), got {a}")
    elif a.dtype.kind not in "iu":
        raise ActionError(f"actions must be integers in [0, {n_actions}), got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n_actions)
    if bad.any():
        raise ActionError(f"action {a[bad][0]} outside [0, {n_actions})")
    return a
