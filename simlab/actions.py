"""Validation of action batches (discrete ids and continuous Box vectors), shared by every batched
env (real games and dreams), and the JSON form of action spaces."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from simlab.errors import ActionError, ConfigError


def check_discrete_actions(actions: Any, n: int, n_actions: int) -> np.ndarray:
    """Validate ``n`` discrete actions -> int64 ``(n,)``; ActionError for a wrong shape, type or range.

    A scalar is accepted for ``n == 1``; integral floats are accepted (NaN, inf and
    fractions are not).
    """
    a = _as_array(actions)
    if a.shape == () and n == 1:
        a = a.reshape(1)
    if a.shape != (n,):
        raise ActionError(f"expected {n} actions of shape ({n},), got shape {a.shape}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise ActionError(f"actions must be integers in [0, {n_actions}), got {_one_line(a)}")
    elif a.dtype.kind not in "iu":
        raise ActionError(f"actions must be integers in [0, {n_actions}), got dtype {a.dtype}")
    bad = (a < 0) | (a >= n_actions)  # range first: casting huge floats/uint64 to int64 would wrap
    if bad.any():
        raise ActionError(f"action {a[bad][0]} outside [0, {n_actions})")
    return a.astype(np.int64)


def _as_array(actions: Any) -> np.ndarray:
    """``np.asarray(actions)``; ActionError (one line) for ragged or otherwise unconvertible input."""
    try:
        return np.asarray(actions)
    except (TypeError, ValueError, OverflowError):
        raise ActionError(f"actions must be a number or an array of numbers, got {type(actions).__name__}") from None


def _one_line(a: np.ndarray, limit: int = 80) -> str:
    text = " ".join(np.array2string(np.asarray(a), threshold=8).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- continuous (Box) action spaces ----------------------------------------------------------------

def check_box(space: Any, what: str = "action space") -> Any:
    """``space`` as a float32 ``gymnasium.spaces.Box`` of shape ``(d,)`` with finite bounds, low <= high.

    ConfigError (one line) otherwise. Returns a new float32 Box with the same bounds.
    """
    if not isinstance(space, spaces.Box):
        raise ConfigError(f"{what} must be a gymnasium.spaces.Box, got {type(space).__name__}")
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if low.ndim != 1 or low.shape[0] < 1:
        raise ConfigError(f"{what} must be a 1-D Box (d,), got shape {tuple(space.shape)}")
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ConfigError(f"{what} needs finite bounds, got low={low.tolist()} high={high.tolist()}")
    if (low > high).any():
        raise ConfigError(f"{what} has low > high: low={low.tolist()} high={high.tolist()}")
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def check_box_actions(actions: Any, n: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Validate ``n`` continuous actions -> float32 ``(n, d)``; ActionError for a wrong shape, a
    non-numeric dtype, NaN/inf, or a value outside ``[low, high]`` (``d = len(low)``).

    A single action ``(d,)`` is accepted for ``n == 1``.
    """
    d = int(np.shape(low)[0])
    a = _as_array(actions)
    if a.shape == (d,) and n == 1:
        a = a.reshape(1, d)
    if a.shape != (n, d):
        raise ActionError(f"expected {n} continuous actions of shape ({n}, {d}), got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise ActionError(f"continuous actions must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ActionError("continuous actions contain NaN or inf")
    bad = (a < low) | (a > high)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ActionError(f"action component {int(j)} = {float(a[i, j]):.6g} outside "
                          f"[{float(low[j]):.6g}, {float(high[j]):.6g}]")
    return a


def action_space_to_json(space: Any) -> dict[str, Any]:
    """JSON form of a Discrete or 1-D Box action space: ``{"type": "Discrete", "n"}`` or
    ``{"type": "Box", "shape": [d], "dtype": "float32", "low": [...], "high": [...]}``."""
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, spaces.Box):
        box = check_box(space)
        return {"type": "Box", "shape": [int(box.shape[0])], "dtype": "float32",
                "low": [float(v) for v in box.low], "high": [float(v) for v in box.high]}
    raise ConfigError(f"action space must be Discrete or Box, got {type(space).__name__}")


def action_space_from_json(doc: Any) -> Any:
    """Inverse of :func:`action_space_to_json`; ConfigError for anything else."""
    if not isinstance(doc, dict) or doc.get("type") not in ("Discrete", "Box"):
        raise ConfigError(f"not a Discrete/Box action space description: {doc!r}")
    try:
        if doc["type"] == "Discrete":
            n = doc["n"]
            if isinstance(n, bool) or int(n) != n or n < 1:
                raise ValueError(f"n={n!r}")
            return spaces.Discrete(int(n))
        low = np.asarray(doc["low"], np.float64)
        high = np.asarray(doc["high"], np.float64)
        if low.shape != high.shape:
            raise ValueError("low and high differ in shape")
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"bad action space description {doc!r} ({e})") from None
    return check_box(spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32))
