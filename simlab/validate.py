"""Checks of user-supplied values that fail with one-line :class:`~simlab.errors.ConfigError`.

Pure functions, independent of envs and of the CLI: each takes the argument's
``name`` (used in the message) and the ``value``, and returns the value
normalised to a plain Python type (``np.int64(3)`` -> ``3``, ``np.bool_(True)``
-> ``True``, ``np.float32(0.5)`` -> ``0.5``) or raises ``ConfigError`` whose
message names the argument and the bad value, on one line, e.g.::

    num_levels must be an integer >= 0, got '5' (str)

Types are checked strictly: a string is never parsed, a float never stands for
an integer (``1.5`` and ``2.0`` are both rejected where an int is expected), and
a ``bool`` never stands for a number (it is a Python ``int`` subclass).

- :func:`check_int`: integers (Python or numpy) in ``[lo, hi]``;
- :func:`check_float`: real numbers (ints too) in a range, finite by default;
- :func:`check_bool`: ``True``/``False`` (numpy bools, and the integers 0 and 1);
- :func:`check_choice`: one of a fixed set of values (e.g. names);
- :func:`check_seed`: an RNG seed, an integer in ``[0, 2**63 - 1]``;
- :func:`check_options`: a ``reset(options=...)`` dict with known keys only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from simlab.errors import ConfigError

MAX_SEED = 2**63 - 1
"""Largest accepted seed (fits an int64 everywhere seeds are stored)."""

_REPR_MAX = 60


def short_repr(value: Any, limit: int = _REPR_MAX) -> str:
    """``repr(value)`` on one line (whitespace runs collapsed), cut to about ``limit`` characters."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (a broken __repr__ must not hide the real error)
        text = f"<{type(value).__name__} object>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any) -> str:
    """``'<repr> (<type>)'`` for error messages: the value and its type, on one line."""
    return f"{short_repr(value)} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    """True for Python and numpy integers, never for bools (Python or numpy)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral)


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _range_text(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """``"in [lo, hi]"``, ``">= lo"``, ``"<= hi"`` or ``""``."""
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_fmt(hi)}"
    return ""


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None, *,
              allow_none: bool = False, hint: str = "") -> int | None:
    """``value`` as a Python ``int`` in ``[lo, hi]`` (bounds optional, inclusive).

    Args:
        name: the argument's name, for the message.
        value: a Python or numpy integer (not a bool, float or string).
        lo, hi: inclusive bounds; ``None`` = unbounded.
        allow_none: also accept ``None`` (returned as is).
        hint: appended to the message in parentheses (e.g. ``"0 = unlimited"``).

    Raises:
        ConfigError: one line, naming ``name`` and the bad value.
    """
    if value is None and allow_none:
        return None
    rng = _range_text(lo, hi)
    what = f"{name} must be {'None or ' if allow_none else ''}an integer{' ' + rng if rng else ''}" \
           f"{f' ({hint})' if hint else ''}"
    if not _is_int(value):
        raise ConfigError(f"{what}, got {describe(value)}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{what}, got {short_repr(v)}")
    return v


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                finite: bool = True, lo_open: bool = False, hi_open: bool = False,
                allow_none: bool = False) -> float | None:
    """``value`` as a Python ``float`` (ints and numpy reals accepted) within the bounds.

    Args:
        name: the argument's name, for the message.
        value: a real number (Python/numpy int or float; not a bool, string or complex).
        lo, hi: bounds (``None`` = unbounded); inclusive unless ``lo_open`` / ``hi_open``.
        finite: reject NaN and +-inf (default). With ``finite=False`` infinities pass
            the bound checks as usual; NaN is always rejected.
        allow_none: also accept ``None`` (returned as is).

    Raises:
        ConfigError: one line, naming ``name`` and the bad value.
    """
    if value is None and allow_none:
        return None
    rng = _range_text(None if lo is None else float(lo), None if hi is None else float(hi), lo_open, hi_open)
    what = (f"{name} must be {'None or ' if allow_none else ''}a {'finite ' if finite else ''}number"
            f"{' ' + rng if rng else ''}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what}, got {describe(value)}")
    try:
        v = float(value)
    except (OverflowError, ValueError, TypeError):  # an int too large for a float
        raise ConfigError(f"{what}, got {short_repr(value)}") from None
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ConfigError(f"{what}, got {short_repr(v)}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(f"{what}, got {short_repr(v)}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ConfigError(f"{what}, got {short_repr(v)}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a Python ``bool``: ``True``/``False``, numpy bools, or the integers 0 and 1.

    Anything else (``"no"``, ``2``, ``None``, ``0.0``) raises a one-line ConfigError: a
    non-bool is never silently taken for its truth value.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_int(value) and int(value) in (0, 1):
        return bool(int(value))
    raise ConfigError(f"{name} must be True or False, got {describe(value)}")


def check_choice(name: str, value: Any, choices: Iterable[Any], *, allow_none: bool = False) -> Any:
    """``value`` if it is one of ``choices`` (compared by type and equality), else a one-line ConfigError.

    Returns the matching element of ``choices``. Values of another type (``1`` for ``"1"``,
    a list) are rejected; strings (``str`` subclasses such as ``numpy.str_`` too) are
    matched exactly (no case folding).
    """
    opts = list(choices)
    if value is None and allow_none:
        return None
    for c in opts:
        same_kind = (isinstance(c, str) and isinstance(value, str)) or type(value) is type(c)
        if same_kind and value == c:
            return c
    listed = ", ".join(c if isinstance(c, str) else repr(c) for c in opts) + (" or None" if allow_none else "")
    raise ConfigError(f"unknown {name} {describe(value)}; choose one of {listed}")


def check_seed(name: str, value: Any, *, allow_none: bool = True) -> int | None:
    """An RNG seed: ``None`` (when allowed) or an integer (Python or numpy) in ``[0, 2**63 - 1]``.

    Raises:
        ConfigError: one line, e.g. ``seed must be a non-negative integer (at most 2**63 - 1), got -1``.
    """
    if value is None and allow_none:
        return None
    what = f"{name} must be {'None or ' if allow_none else ''}a non-negative integer (at most 2**63 - 1)"
    if not _is_int(value):
        raise ConfigError(f"{what}, got {describe(value)}")
    v = int(value)
    if not 0 <= v <= MAX_SEED:
        raise ConfigError(f"{what}, got {short_repr(v)}")
    return v


def check_options(name: str, options: Any, keys: Iterable[str]) -> dict[str, Any]:
    """A ``reset(options=...)`` mapping -> a plain dict; ``None`` -> ``{}``.

    Raises:
        ConfigError: ``options`` is not a mapping, or has a key outside ``keys``.
    """
    if options is None:
        return {}
    allowed = sorted(keys)
    if not isinstance(options, Mapping):
        raise ConfigError(f"{name} must be a dict (keys: {', '.join(allowed) or 'none'}) or None, "
                          f"got {describe(options)}")
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ConfigError(f"unknown {name} key(s) {', '.join(short_repr(k) for k in unknown)}; "
                          f"valid: {', '.join(allowed) or 'none'}")
    return dict(options)
