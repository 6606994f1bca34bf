"""Generalization splits as data.

A :class:`Split` names a region of an environment's parameter space: unions
of intervals for continuous attributes, allowed values for categorical
attributes, combinations of categorical values that are held out or kept, and
level-seed ranges. Every env, collector and evaluator reads the same object,
so "held out" means the same thing everywhere, and a test can check that two
splits are disjoint.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from simlab.errors import ConfigError

Role = Literal["train", "id_test", "ood_test", "comb_test", "val"]
ROLES: tuple[str, ...] = ("train", "id_test", "ood_test", "comb_test", "val")

Intervals = tuple[tuple[float, float], ...]


def _check_intervals(name: str, ivs: Intervals) -> Intervals:
    if len(ivs) == 0:
        raise ConfigError(f"split attribute {name!r}: needs at least one interval")
    out = []
    for lo, hi in ivs:
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ConfigError(f"split attribute {name!r}: bad interval [{lo}, {hi}]")
        out.append((float(lo), float(hi)))
    return tuple(out)


def sample_union(rng: np.random.Generator, ivs: Intervals, n: int) -> np.ndarray:
    """Uniform samples over a union of disjoint intervals, shape ``(n,)``.

    Each interval gets probability proportional to its length (an interval of
    length 0, a point, gets weight as if it had the smallest positive length
    present, so a point-only split still samples).
    """
    lo = np.array([a for a, _ in ivs], dtype=np.float64)
    hi = np.array([b for _, b in ivs], dtype=np.float64)
    w = hi - lo
    if (w <= 0).all():
        w = np.ones_like(w)
    else:
        w = np.where(w > 0, w, w[w > 0].min())
    k = rng.choice(len(ivs), size=n, p=w / w.sum())
    return lo[k] + rng.random(n) * (hi[k] - lo[k])


def in_union(x: np.ndarray, ivs: Intervals) -> np.ndarray:
    """Boolean mask: ``x`` (any shape) lies in one of the closed intervals."""
    x = np.asarray(x, dtype=np.float64)
    m = np.zeros(x.shape, dtype=bool)
    for lo, hi in ivs:
        m |= (x >= lo) & (x <= hi)
    return m


@dataclass(frozen=True)
class Split:
    """One named region of an env's parameter space.

    Attributes:
        name: split name, unique within an env (``"train"``, ``"ood_v1"``...).
        role: what the split is for: train, id_test, ood_test, comb_test, val.
        continuous: attribute -> union of closed intervals it is drawn from.
        categorical: attribute -> allowed values.
        exclude_combos: combinations of values of ``combo_keys`` that are
            never produced (held out for a combinatorial test).
        include_combos: if non-empty, the only combinations produced.
        combo_keys: the categorical attributes the combos refer to, in order.
        seeds: ``(start, count)`` of level seeds; ``count == 0`` = unlimited.
        description: one line for humans.
    """

    name: str
    role: str = "train"
    continuous: dict[str, Intervals] = field(default_factory=dict)
    categorical: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    combo_keys: tuple[str, ...] = ()
    exclude_combos: tuple[tuple[Any, ...], ...] = ()
    include_combos: tuple[tuple[Any, ...], ...] = ()
    seeds: tuple[int, int] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"split {self.name!r}: unknown role {self.role!r} (one of {ROLES})")
        for k, v in self.continuous.items():
            object.__setattr__(self, "continuous", {**self.continuous, k: _check_intervals(k, v)})
        # Accept the JSON form (lists) back: everything hashable is stored as tuples.
        tup = lambda xs: tuple(tuple(x) if isinstance(x, list) else x for x in xs)
        object.__setattr__(self, "categorical", {k: tuple(v) for k, v in self.categorical.items()})
        object.__setattr__(self, "combo_keys", tuple(self.combo_keys))
        object.__setattr__(self, "exclude_combos", tup(self.exclude_combos))
        object.__setattr__(self, "include_combos", tup(self.include_combos))
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(self.seeds))
        for key in self.combo_keys:
            if key not in self.categorical:
                raise ConfigError(f"split {self.name!r}: combo key {key!r} is not categorical")
        if self.seeds is not None and (self.seeds[0] < 0 or self.seeds[1] < 0):
            raise ConfigError(f"split {self.name!r}: seeds must be non-negative, got {self.seeds}")

    # ---- sampling -------------------------------------------------------------
    def allowed_combos(self) -> list[tuple[Any, ...]]:
        """All combinations of ``combo_keys`` values this split produces."""
        if not self.combo_keys:
            return []
        if self.include_combos:
            combos = list(self.include_combos)
        else:
            combos = list(itertools.product(*(self.categorical[k] for k in self.combo_keys)))
        excluded = set(self.exclude_combos)
        return [c for c in combos if c not in excluded]

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Draw ``n`` parameter sets: attribute -> array ``(n,)``."""
        out: dict[str, np.ndarray] = {}
        for k, ivs in self.continuous.items():
            out[k] = sample_union(rng, ivs, n)
        free = [k for k in self.categorical if k not in self.combo_keys]
        for k in free:
            vals = np.asarray(self.categorical[k])
            out[k] = vals[rng.integers(0, len(vals), n)]
        if self.combo_keys:
            combos = self.allowed_combos()
            if not combos:
                raise ConfigError(f"split {self.name!r} holds out every combination")
            pick = rng.integers(0, len(combos), n)
            arr = np.asarray(combos, dtype=object)[pick]
            for i, k in enumerate(self.combo_keys):
                out[k] = np.asarray([row[i] for row in arr]) if n else np.asarray([])
        if self.seeds is not None:
            start, count = self.seeds
            out["seed"] = (start + rng.integers(0, count, n)) if count else (
                start + rng.integers(0, 2**31 - 1 - start, n))
        return out

    def grid(self, counts: dict[str, int]) -> dict[str, np.ndarray]:
        """Cartesian linspace grid over continuous attributes, flattened (C order).

        ``counts[attr]`` points per attribute, spread over the union's total
        length (the paper's ``np.linspace(lo, hi, count)`` for one interval).
        """
        axes = []
        keys = list(counts)
        for k in keys:
            if k not in self.continuous:
                raise ConfigError(f"split {self.name!r}: grid attribute {k!r} is not continuous")
            ivs = self.continuous[k]
            if len(ivs) == 1:
                axes.append(np.linspace(ivs[0][0], ivs[0][1], counts[k]))
            else:
                lens = np.array([b - a for a, b in ivs])
                u = np.linspace(0.0, lens.sum(), counts[k])
                edges = np.concatenate([[0.0], np.cumsum(lens)])
                j = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, len(ivs) - 1)
                axes.append(np.array([ivs[i][0] for i in j]) + (u - edges[j]))
        mesh = np.meshgrid(*axes, indexing="ij")
        return {k: m.ravel() for k, m in zip(keys, mesh)}

    # ---- membership -------------------------------------------------------------
    def contains(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of parameter sets that fall inside this split."""
        if not params:
            raise ConfigError(f"split {self.name!r}: contains() needs at least one attribute")
        n = len(next(iter(params.values())))
        m = np.ones(n, dtype=bool)
        for k, ivs in self.continuous.items():
            m &= in_union(params[k], ivs)
        for k, vals in self.categorical.items():
            m &= np.isin(np.asarray(params[k]), np.asarray(vals))
        if self.combo_keys:
            allowed = set(self.allowed_combos())
            rows = zip(*(np.asarray(params[k]).tolist() for k in self.combo_keys))
            m &= np.array([tuple(r) in allowed for r in rows], dtype=bool)
        if self.seeds is not None and "seed" in params:
            s = np.asarray(params["seed"])
            start, count = self.seeds
            m &= (s >= start) & ((s < start + count) if count else True)
        return m

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for manifests and ``simlab envs --json``)."""
        return json.loads(json.dumps(asdict(self)))
