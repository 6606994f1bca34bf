"""Scenarios, splits and the batched video generator of the collision testbed.

Scenarios (Kang et al. 2024, "How Far is Video Generation from World Model"):

- ``uniform``: one red ball in uniform horizontal motion.
- ``collision``: a red and a blue ball on one horizontal line, moving towards
  each other; a perfectly elastic head-on collision after frame ~4 with at
  least 8 frames after it (when the speeds allow).
- ``oblique``: as ``collision`` but ball 2 is offset vertically by an impact
  parameter, so the collision is a 2D oblique one.
- ``parabola``: one red ball thrown horizontally under gravity (0, -2.5).

Parameters per video: ``r``/``v`` (one ball) or ``r1, r2, v1, v2`` (two balls);
speeds are magnitudes (ball 1 moves right, ball 2 left). Placement (start
positions, heights, impact parameter) is random and derived from the seed.

Determinism: the parameters and placement of video ``i`` depend only on
``(seed, scenario, split, i)``: videos are drawn in fixed chunks of
:data:`CHUNK` from ``default_rng([seed, tag, chunk])``, so any sharding of
the index range produces identical videos.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from simlab.envs.collision2d.physics import (
    FRAME_DT,
    NUM_FRAMES,
    PARABOLA_GRAVITY,
    WORLD_SIZE,
    frame_times,
    simulate_balls,
)
from simlab.errors import ConfigError
from simlab.splits import Intervals, Split

SCENARIOS: tuple[str, ...] = ("uniform", "collision", "oblique", "parabola")
CHUNK: int = 1024
"""Videos per RNG chunk (fixed: changing it changes every dataset)."""

ID_R: Intervals = ((0.7, 1.5),)
ID_V: Intervals = ((1.0, 4.0),)
OOD_R: Intervals = ((0.3, 0.6), (1.5, 2.0))
OOD_V: Intervals = ((0.0, 0.8), (4.5, 6.0))
GAP_TRAIN_V: Intervals = ((1.0, 1.5), (3.5, 4.0))
GAP_TEST_V: Intervals = ((1.5, 3.5),)

MIN_VISIBLE_FRAMES = 8
"""Uniform/parabola: frames the ball stays fully in view at least (when possible)."""
MIN_PRE_FRAMES = 4
"""Collision: frames before contact (when the speeds allow)."""
MIN_POST_FRAMES = 8
"""Collision: frames after contact (when the speeds allow)."""
EDGE = 0.5
"""Margin between a ball and the top/bottom of the world at the start, world units."""

GRIDS: dict[str, dict[str, dict[str, int]]] = {
    # The paper's training-set linspace grids.
    "uniform": {"30k": {"v": 300, "r": 100}, "300k": {"v": 1000, "r": 300}, "3m": {"v": 3000, "r": 1000}},
    "parabola": {"30k": {"v": 300, "r": 100}, "300k": {"v": 1000, "r": 300}, "3m": {"v": 3000, "r": 1000}},
    "collision": {
        "30k": {"r1": 8, "r2": 8, "v1": 21, "v2": 21},
        "300k": {"r1": 14, "r2": 14, "v1": 41, "v2": 41},
        "3m": {"r1": 26, "r2": 26, "v1": 71, "v2": 71},
    },
}
GRIDS["oblique"] = GRIDS["collision"]


def num_balls(scenario: str) -> int:
    """1 for uniform/parabola, 2 for collision/oblique."""
    check_scenario(scenario)
    return 2 if scenario in ("collision", "oblique") else 1


def check_scenario(scenario: str) -> None:
    """Raise :class:`ConfigError` for an unknown scenario."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")


def _one_ball_splits() -> dict[str, Split]:
    s = [
        Split("train", "train", {"r": ID_R, "v": ID_V}, description="ID ranges, for training"),
        Split("id", "id_test", {"r": ID_R, "v": ID_V}, description="ID ranges, fresh samples"),
        Split("ood_r", "ood_test", {"r": OOD_R, "v": ID_V}, description="radius OOD"),
        Split("ood_v", "ood_test", {"r": ID_R, "v": OOD_V}, description="speed OOD"),
        Split("ood_rv", "ood_test", {"r": OOD_R, "v": OOD_V}, description="radius and speed OOD"),
        Split("gap_train", "train", {"r": ID_R, "v": GAP_TRAIN_V},
              description="case-based probe: speeds on both sides of a gap"),
        Split("gap_test", "ood_test", {"r": ID_R, "v": GAP_TEST_V},
              description="case-based probe: speeds inside the gap"),
    ]
    return {x.name: x for x in s}


def _two_ball_splits() -> dict[str, Split]:
    def mk(name: str, role: str, ood: set[str], desc: str, v: Intervals | None = None) -> Split:
        rng = {"r1": OOD_R if "r1" in ood else ID_R, "r2": OOD_R if "r2" in ood else ID_R,
               "v1": OOD_V if "v1" in ood else (v or ID_V), "v2": OOD_V if "v2" in ood else (v or ID_V)}
        return Split(name, role, rng, description=desc)

    s = [
        mk("train", "train", set(), "ID ranges, for training"),
        mk("id", "id_test", set(), "ID ranges, fresh samples"),
        # The paper's six collision OOD levels.
        mk("ood_r1", "ood_test", {"r1"}, "level 1: r1 OOD"),
        mk("ood_v1", "ood_test", {"v1"}, "level 2: v1 OOD"),
        mk("ood_r1r2", "ood_test", {"r1", "r2"}, "level 3: r1 and r2 OOD"),
        mk("ood_v1v2", "ood_test", {"v1", "v2"}, "level 4: v1 and v2 OOD"),
        mk("ood_r1v1", "ood_test", {"r1", "v1"}, "level 5: r1 and v1 OOD"),
        mk("ood_all", "ood_test", {"r1", "r2", "v1", "v2"}, "level 6: all four OOD"),
        mk("gap_train", "train", set(), "case-based probe: speeds on both sides of a gap", GAP_TRAIN_V),
        mk("gap_test", "ood_test", set(), "case-based probe: speeds inside the gap", GAP_TEST_V),
    ]
    return {x.name: x for x in s}


def scenario_splits(scenario: str) -> dict[str, Split]:
    """Named splits of a scenario (see module docstring)."""
    return _two_ball_splits() if num_balls(scenario) == 2 else _one_ball_splits()


MIXTURES: dict[str, tuple[str, ...]] = {
    "ood_one": ("ood_r", "ood_v", "ood_rv"),
    "ood_two": ("ood_r1", "ood_v1", "ood_r1r2", "ood_v1v2", "ood_r1v1", "ood_all"),
}


def split_names(scenario: str) -> list[str]:
    """Every split name a scenario accepts, including the ``ood`` mixture of all OOD levels."""
    return [*scenario_splits(scenario), "ood"]


def _ood_levels(scenario: str) -> tuple[str, ...]:
    return MIXTURES["ood_two" if num_balls(scenario) == 2 else "ood_one"]


def _tag(*names: str) -> int:
    return zlib.crc32("/".join(names).encode())


@dataclass(frozen=True)
class VideoSpec:
    """What to generate: scenario, split, seed, optional paper grid."""

    scenario: str
    split: str = "train"
    seed: int = 0
    grid: str | None = None

    def __post_init__(self) -> None:
        check_scenario(self.scenario)
        if self.split not in split_names(self.scenario):
            raise ConfigError(
                f"unknown split {self.split!r} for scenario {self.scenario!r}; "
                f"choose one of {', '.join(split_names(self.scenario))}")
        if self.grid is not None:
            if self.grid not in GRIDS[self.scenario]:
                raise ConfigError(f"unknown grid {self.grid!r}; choose one of {', '.join(GRIDS[self.scenario])}")
            if self.split == "ood":
                raise ConfigError("a linspace grid needs a single split, not the 'ood' mixture")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")

    def grid_size(self) -> int | None:
        """Number of grid points (None without a grid)."""
        if self.grid is None:
            return None
        return int(np.prod(list(GRIDS[self.scenario][self.grid].values())))


def _grid_params(spec: VideoSpec) -> dict[str, np.ndarray]:
    split = scenario_splits(spec.scenario)[spec.split]
    counts = GRIDS[spec.scenario][spec.grid]  # type: ignore[index]
    g = split.grid(counts)
    perm = np.random.default_rng([spec.seed, _tag("grid", spec.scenario, spec.split, spec.grid or "")]).permutation(
        len(next(iter(g.values()))))
    return {k: v[perm] for k, v in g.items()}


def _chunk_params(spec: VideoSpec, chunk: int, rng: np.random.Generator,
                  grid: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    lo = chunk * CHUNK
    if grid is not None:
        n_total = len(next(iter(grid.values())))
        hi = min(lo + CHUNK, n_total)
        return {k: v[lo:hi] for k, v in grid.items()}
    splits = scenario_splits(spec.scenario)
    if spec.split != "ood":
        return splits[spec.split].sample(rng, CHUNK)
    levels = _ood_levels(spec.scenario)
    which = rng.integers(0, len(levels), CHUNK)
    per = [splits[name].sample(rng, CHUNK) for name in levels]
    out = {k: np.choose(which, [p[k] for p in per]) for k in per[0]}
    out["ood_level"] = which
    return out


def place(scenario: str, params: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random start placement for given parameters.

    Returns ``p0`` ``(N, K, 2)``, ``v0`` ``(N, K, 2)``, ``radii`` ``(N, K)``.
    """
    W = WORLD_SIZE
    if num_balls(scenario) == 1:
        r = np.asarray(params["r"], np.float64)
        v = np.asarray(params["v"], np.float64)
        n = len(r)
        min_dist = MIN_VISIBLE_FRAMES * v * FRAME_DT + r
        max_init = W - min_dist
        max_init = np.where(max_init < r, r + 0.5 * rng.random(n), max_init)
        x0 = r + rng.random(n) * (max_init - r)
        if scenario == "parabola":
            y0 = 6.0 + rng.random(n) * np.maximum(W - EDGE - r - 6.0, 0.0)
        else:
            y0 = r + EDGE + rng.random(n) * (W - 2 * EDGE - 2 * r)
        p0 = np.stack([x0, y0], -1)[:, None]
        v0 = np.stack([v, np.zeros(n)], -1)[:, None]
        return {"p0": p0, "v0": v0, "radii": r[:, None]}
    r1 = np.asarray(params["r1"], np.float64)
    r2 = np.asarray(params["r2"], np.float64)
    v1 = np.asarray(params["v1"], np.float64)
    v2 = np.asarray(params["v2"], np.float64)
    n = len(r1)
    rs = r1 + r2
    vs = v1 + v2
    span = FRAME_DT * vs
    u_dist = rng.random(n)
    u_x = rng.random(n)
    if scenario == "oblique":
        b = (rng.random(n) * 2 - 1) * 0.7 * rs  # impact parameter
    else:
        b = np.zeros(n)
    # With an impact parameter b the discs touch at x-distance sqrt(rs^2 - b^2),
    # so the pre/post-contact frame counts are planned with that distance.
    c = np.sqrt(rs**2 - b**2)
    max_pre = np.minimum((NUM_FRAMES - MIN_POST_FRAMES) * span + c, W - rs)
    min_pre = np.minimum(MIN_PRE_FRAMES * span + c, max_pre)
    dist = min_pre + u_dist * (max_pre - min_pre)  # centre distance along x
    x1 = r1 + u_x * (W - r2 - dist - r1)
    x2 = x1 + dist
    rmax = np.maximum(r1, r2)
    lo = rmax + EDGE + np.abs(b) / 2
    hi = W - rmax - EDGE - np.abs(b) / 2
    ym = lo + rng.random(n) * np.maximum(hi - lo, 0.0)
    p0 = np.stack([np.stack([x1, ym - b / 2], -1), np.stack([x2, ym + b / 2], -1)], 1)
    v0 = np.stack([np.stack([v1, np.zeros(n)], -1), np.stack([-v2, np.zeros(n)], -1)], 1)
    return {"p0": p0, "v0": v0, "radii": np.stack([r1, r2], -1)}


def gravity(scenario: str) -> tuple[float, float]:
    """Gravity of a scenario, world units / s^2."""
    return PARABOLA_GRAVITY if scenario == "parabola" else (0.0, 0.0)


def generate_states(spec: VideoSpec, start: int, stop: int,
                    num_frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    """Parameters, placement and exact trajectories of videos ``[start, stop)``.

    Returns a dict of float64 arrays: the scenario parameters (``(N,)`` each),
    ``p0``/``v0`` ``(N, K, 2)``, ``radii`` ``(N, K)``, ``pos``/``vel``
    ``(N, T, K, 2)``, ``t_contact`` ``(N,)`` and ``index`` ``(N,)`` (int64).
    """
    if start < 0 or stop < start:
        raise ConfigError(f"bad video range [{start}, {stop})")
    size = spec.grid_size()
    if size is not None and stop > size:
        raise ConfigError(f"grid {spec.grid!r} has {size} videos; asked for up to {stop}")
    grid = _grid_params(spec) if spec.grid is not None else None
    tag = _tag(spec.scenario, spec.split, spec.grid or "random")
    parts: list[dict[str, np.ndarray]] = []
    for c in range(start // CHUNK, (stop - 1) // CHUNK + 1 if stop > start else start // CHUNK):
        rng = np.random.default_rng([spec.seed, tag, c])
        params = _chunk_params(spec, c, rng, grid)
        placed = place(spec.scenario, params, rng)
        lo = max(start - c * CHUNK, 0)
        hi = min(stop - c * CHUNK, CHUNK)
        part = {k: np.asarray(v)[lo:hi] for k, v in {**params, **placed}.items()}
        part["index"] = np.arange(c * CHUNK + lo, c * CHUNK + hi, dtype=np.int64)
        parts.append(part)
    if not parts:
        k = num_balls(spec.scenario)
        empty = {"p0": np.zeros((0, k, 2)), "v0": np.zeros((0, k, 2)), "radii": np.zeros((0, k)),
                 "index": np.zeros(0, np.int64)}
        parts = [empty]
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    sim = simulate_balls(out["p0"], out["v0"], out["radii"], frame_times(num_frames), gravity(spec.scenario))
    out.update(sim)
    return out
