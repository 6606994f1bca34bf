"""The batched engine of simlab's procgen-like games.

OpenAI Procgen's level protocol: each episode picks a level seed uniformly
from ``[start_level, start_level + num_levels)`` (``num_levels=0``:
unlimited) and the level (layout, difficulty, colours, background) is a pure
function of that seed and the distribution mode. Observations are 64x64x3
uint8; actions are ``Discrete(15)`` with Procgen's button combinations.

Why a hand-written engine: Procgen is C++ stepping one env at a time behind a
Python call. Here all N envs of a batch live in numpy arrays and step
together, with no Python loop over envs in the step (loops run only over the
few envs that reset). A game subclasses :class:`BatchedGame` and writes
three vectorised methods (``_load_levels``, ``_step``, ``_render``).

Randomness: level seeds come from one RNG stream per batch slot
(``default_rng([rand_seed, slot])``), so slot 0 of any batch and a single env
with the same ``rand_seed`` see the same levels; in-level randomness (enemy
spawns...) comes from :func:`hash_uniform` of (level seed, step, stream), so
it is a pure function of the level and the time step, independent of the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simlab.actions import check_discrete_actions
from simlab.errors import ConfigError
from simlab.splits import Split
from simlab.validate import check_bool, check_choice, check_int, check_seed

OBS_SIZE = 64
NUM_ACTIONS = 15
COMBOS: tuple[tuple[str, ...], ...] = (
    ("LEFT", "DOWN"), ("LEFT",), ("LEFT", "UP"), ("DOWN",), (), ("UP",),
    ("RIGHT", "DOWN"), ("RIGHT",), ("RIGHT", "UP"), ("D",), ("A",), ("W",), ("S",), ("Q",), ("E",),
)
"""Procgen's 15 button combinations (index = action)."""
ACTION_DX = np.array([-1 if "LEFT" in c else (1 if "RIGHT" in c else 0) for c in COMBOS], np.int64)
ACTION_DY = np.array([1 if "DOWN" in c else (-1 if "UP" in c else 0) for c in COMBOS], np.int64)
"""Per-action movement in image coordinates (row grows downwards: UP is dy = -1)."""
DISTRIBUTION_MODES = ("easy", "hard")
LEVEL_SEED_LIMIT = 2**31 - 1
"""Level seeds lie in ``[0, LEVEL_SEED_LIMIT)`` (Procgen's 31-bit seeds): ``start_level +
num_levels <= LEVEL_SEED_LIMIT``, and ``num_levels=0`` draws from ``[start_level, LEVEL_SEED_LIMIT)``."""
MAX_NUM_ENVS = 16384
"""Largest batch a :class:`BatchedGame` accepts (a bound on memory: frames alone are 12 KiB per env)."""

BACKGROUND_FAMILIES = ("plain", "stripes", "checker", "dots")
PALETTES = ("warm", "cool", "earth", "neon")
"""Visual factors of a level (derived from its seed), used by the combinatorial visual split."""

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 finaliser (uint64 -> uint64), a well-mixed integer hash."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def hash_uniform(seed: np.ndarray, step: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1) as a pure function of (level seed, step, stream); broadcasts."""
    s = np.asarray(seed, np.uint64)
    t = np.asarray(step, np.uint64)
    with np.errstate(over="ignore"):
        h = _splitmix64(_splitmix64(s * np.uint64(0x100000001B3) ^ np.uint64(stream)) ^ t)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def visual_factors(level_seed: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Background family and palette ids of levels (pure functions of the seed)."""
    u = hash_uniform(np.asarray(level_seed), 0, 0xB6)
    v = hash_uniform(np.asarray(level_seed), 0, 0xA1)
    return (u * len(BACKGROUND_FAMILIES)).astype(np.int64), (v * len(PALETTES)).astype(np.int64)


VISUAL_HELD_OUT: tuple[tuple[str, str], ...] = (
    ("plain", "neon"), ("stripes", "earth"), ("checker", "cool"), ("dots", "warm"),
)
"""Background x palette combinations held out of the visual-train split (a Latin square:
every background and every palette still appears in training)."""


def standard_splits() -> dict[str, Split]:
    """The splits shared by every game (Procgen + "Generalization Gap in Offline RL" protocol)."""
    vis = {"background": BACKGROUND_FAMILIES, "palette": PALETTES}
    keys = ("background", "palette")
    return {s.name: s for s in (
        Split("train", "train", seeds=(0, 200), description="levels 0-199 (easy)"),
        Split("val", "val", seeds=(200, 50), description="levels 200-249"),
        Split("test", "ood_test", seeds=(250, 0), description="levels 250+ (unlimited)"),
        Split("vis_train", "train", categorical=vis, combo_keys=keys, exclude_combos=VISUAL_HELD_OUT,
              seeds=(0, 200), description="levels 0-199 without the held-out background x palette combos"),
        Split("vis_test", "comb_test", categorical=vis, combo_keys=keys, include_combos=VISUAL_HELD_OUT,
              seeds=(250, 0), description="levels 250+ whose background x palette combo was held out"),
        Split("hard", "ood_test", seeds=(250, 0), description="hard distribution mode: OOD dynamics/layouts"),
    )}


@dataclass(frozen=True)
class ProcgenOptions:
    """Procgen's env options.

    Every field is type- and range-checked on construction (one-line ConfigError naming it):
    integers must be Python or numpy integers (not strings, floats or bools), level seeds are
    31-bit (``start_level + num_levels <= 2**31 - 1``), ``rand_seed`` is in ``[0, 2**63 - 1]``,
    ``use_backgrounds`` a bool (numpy bools and 0/1 too). Numpy values are stored as plain
    Python values.
    """

    num_levels: int = 0
    """Number of distinct levels (0 = unlimited)."""
    start_level: int = 0
    """Lowest level seed."""
    distribution_mode: str = "easy"
    """easy | hard."""
    use_backgrounds: bool = True
    """Draw textured backgrounds (else black)."""
    rand_seed: int = 0
    """Seed of the level-seed streams."""
    visual_split: str | None = None
    """Optional split name (vis_train / vis_test) restricting background x palette combos."""

    def __post_init__(self) -> None:
        # type- and range-check every field (one-line ConfigError naming it); numpy scalars
        # are normalised to plain Python values (the dataclass is frozen: object.__setattr__)
        start = check_int("start_level", self.start_level, 0, LEVEL_SEED_LIMIT - 1)
        num = check_int("num_levels", self.num_levels, 0, LEVEL_SEED_LIMIT - start,
                        hint=f"0 = unlimited; start_level + num_levels <= {LEVEL_SEED_LIMIT}")
        mode = check_choice("distribution_mode", self.distribution_mode, DISTRIBUTION_MODES)
        bg = check_bool("use_backgrounds", self.use_backgrounds)
        seed = check_seed("rand_seed", self.rand_seed, allow_none=False)
        vis = check_choice("visual_split", self.visual_split, ("vis_train", "vis_test"), allow_none=True)
        for name, v in (("start_level", start), ("num_levels", num), ("distribution_mode", mode),
                        ("use_backgrounds", bg), ("rand_seed", seed), ("visual_split", vis)):
            object.__setattr__(self, name, v)


def parse_levels(text: str) -> tuple[int, int]:
    """``"a:b"`` -> ``(start_level=a, num_levels=b - a)``; ``"a:"`` -> unlimited levels from ``a`` (0).

    ConfigError for a malformed range, a negative start or an empty/negative range.
    """
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0])
        stop = None if parts[1].strip() == "" else int(parts[1])
    except ValueError:
        raise ConfigError(f"levels must look like a:b (levels a..b-1) or a: (unlimited from a), "
                          f"got {text!r}") from None
    if start < 0:
        raise ConfigError(f"levels {text!r}: the first level must be >= 0")
    if stop is None:
        return start, 0
    if stop - start < 0:
        raise ConfigError(f"levels {text!r}: num_levels = {stop - start} < 0 (need a <= b)")
    if stop == start:
        raise ConfigError(f"levels {text!r} is empty; use {start}: for unlimited levels from {start}")
    return start, stop - start


def level_range_split(text: str) -> tuple[int, int] | None:
    """``"levels:a:b"`` -> ``(a, b - a)`` (``"levels:a:"`` -> ``(a, 0)``, unlimited); None for other names."""
    if not text.startswith("levels:"):
        return None
    return parse_levels(text[len("levels:"):])


def check_split_name(split: str) -> None:
    """ConfigError unless ``split`` is a standard split or an explicit ``levels:a:b`` range."""
    if level_range_split(split) is None and split not in standard_splits():
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(standard_splits())} "
                          "or levels:a:b")


def options_for_split(split: str, **kw: Any) -> ProcgenOptions:
    """ProcgenOptions that realise a named standard split (``train``, ``test``, ``hard``...).

    ``levels:a:b`` names an explicit range of level seeds [a, b) (e.g. the 10
    levels a small dataset was collected on).
    """
    rng = level_range_split(split)
    if rng is not None:
        return ProcgenOptions(start_level=rng[0], num_levels=rng[1], **kw)
    check_split_name(split)
    splits = standard_splits()
    s = splits[split]
    start, count = s.seeds or (0, 0)
    mode = "hard" if split == "hard" else kw.pop("distribution_mode", "easy")
    vis = split if split.startswith("vis_") else None
    return ProcgenOptions(num_levels=count, start_level=start, distribution_mode=mode, visual_split=vis, **kw)


class LevelSampler:
    """One RNG stream per slot drawing level seeds under the options' protocol."""

    def __init__(self, opts: ProcgenOptions, num_slots: int, first_slot: int = 0) -> None:
        self.opts = opts
        self.rngs = [np.random.default_rng([opts.rand_seed, first_slot + i]) for i in range(num_slots)]
        self._allowed: set[tuple[int, int]] | None = None
        if opts.visual_split is not None:
            s = standard_splits()[opts.visual_split]
            self._allowed = {(BACKGROUND_FAMILIES.index(b), PALETTES.index(p)) for b, p in s.allowed_combos()}

    def draw(self, slot: int) -> int:
        """Next level seed of a slot."""
        rng = self.rngs[slot]
        for _ in range(10_000):
            if self.opts.num_levels == 0:
                seed = self.opts.start_level + int(rng.integers(0, LEVEL_SEED_LIMIT - self.opts.start_level))
            else:
                seed = self.opts.start_level + int(rng.integers(0, self.opts.num_levels))
            if self._allowed is None:
                return seed
            b, p = visual_factors(seed)
            if (int(b), int(p)) in self._allowed:
                return seed
        raise ConfigError("no level in the requested range has an allowed background x palette combination")


def check_actions(actions: Any, n: int) -> np.ndarray:
    """Validate a batch of discrete actions -> int64 ``(n,)``; ActionError otherwise."""
    return check_discrete_actions(actions, n, NUM_ACTIONS)


class BatchedGame:
    """State of N envs of one game, stepped together.

    Subclasses set :attr:`name`, :attr:`max_steps` and implement
    ``_load_levels(idx, seeds)`` (write the levels of ``seeds`` into slots
    ``idx``), ``_step(actions) -> (reward (N,) float32, done (N,) bool)``
    (advance every slot by one step) and ``_render(out)`` (write
    ``(N, 64, 64, 3)`` uint8 observations). ``self.level_seed`` ``(N,)`` and
    ``self.t`` ``(N,)`` (step within the episode) are kept by the base class.
    """

    name: ClassVar[str] = ""
    max_steps: ClassVar[int] = 1000
    """Episode length limit (truncation)."""
    mirror_actions: ClassVar[tuple[int, ...] | None] = None
    """For a game whose rules are left-right symmetric: the action a mirrored agent takes for each
    action (a permutation of the 15, e.g. LEFT <-> RIGHT), so a horizontally flipped episode with
    these actions is as likely an episode as the original (world models may train on both).
    None: not symmetric (CoinRun's goal is always to the right)."""
    partial_render: ClassVar[bool] = False
    """Whether ``_render(out, idx)`` can draw only the slots ``idx`` (the vector env redraws the
    slots that start new episodes; a game without it redraws every slot)."""

    def __init__(self, num_envs: int, opts: ProcgenOptions) -> None:
        num_envs = check_int("num_envs", num_envs, 1, MAX_NUM_ENVS)
        if not isinstance(opts, ProcgenOptions):
            raise ConfigError(f"options must be a ProcgenOptions, got {type(opts).__name__}")
        self.n = num_envs
        self.opts = opts
        self.hard = opts.distribution_mode == "hard"
        self.level_seed = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)

    def load(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        """Start fresh episodes of the given levels in slots ``idx``."""
        idx = np.asarray(idx, np.int64)
        seeds = np.asarray(seeds, np.int64)
        self.level_seed[idx] = seeds
        self.t[idx] = 0
        self._load_levels(idx, seeds)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every slot one step: ``(reward (N,) float32, terminated (N,) bool)``."""
        r, d = self._step(actions)
        self.t += 1
        return r, d

    def render(self, out: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Observations ``(N, 64, 64, 3)`` uint8 written into ``out``; with ``idx``, at least the slots
        ``idx`` (only those where the game's ``_render`` takes them: :attr:`partial_render`)."""
        if idx is not None and self.partial_render:
            self._render(out, idx)
        else:
            self._render(out)
        return out

    def render_large(self, i: int, size: int = 512) -> np.ndarray:
        """A bigger frame of slot ``i`` for videos (nearest-neighbour upscale by default)."""
        obs = np.empty((self.n, OBS_SIZE, OBS_SIZE, 3), np.uint8)
        self._render(obs)
        f = max(1, size // OBS_SIZE)
        return obs[i].repeat(f, 0).repeat(f, 1)

    # ---- to implement ------------------------------------------------------------------
    def _load_levels(self, idx: np.ndarray, seeds: np.ndarray) -> None:
        raise NotImplementedError

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _render(self, out: np.ndarray) -> None:
        raise NotImplementedError


PALETTE_COLORS: dict[str, np.ndarray] = {
    # per palette: background base, background accent, wall/platform, hazard
    "warm": np.array([[92, 40, 28], [140, 70, 40], [200, 120, 60], [230, 40, 40]], np.uint8),
    "cool": np.array([[20, 40, 90], [40, 80, 140], [90, 150, 210], [230, 60, 200]], np.uint8),
    "earth": np.array([[40, 60, 30], [80, 100, 50], [150, 120, 70], [220, 90, 30]], np.uint8),
    "neon": np.array([[30, 10, 50], [90, 20, 120], [40, 220, 160], [250, 240, 40]], np.uint8),
}


def background_images(seeds: np.ndarray, use_backgrounds: bool, size: int = OBS_SIZE) -> np.ndarray:
    """Backgrounds of levels, ``(n, size, size, 3)`` uint8: family pattern x palette colours.

    Without backgrounds the image is black (Procgen's ``use_backgrounds=False``).
    """
    seeds = np.asarray(seeds, np.int64)
    n = len(seeds)
    out = np.zeros((n, size, size, 3), np.uint8)
    if not use_backgrounds or n == 0:
        return out
    fam, pal = visual_factors(seeds)
    yy, xx = np.mgrid[0:size, 0:size]
    patterns = np.stack([
        np.zeros((size, size), bool),                       # plain
        (yy // 4) % 2 == 0,                                 # stripes
        ((yy // 8) + (xx // 8)) % 2 == 0,                   # checker
        ((yy % 8) < 2) & ((xx % 8) < 2),                    # dots
    ])
    cols = np.stack([PALETTE_COLORS[p] for p in PALETTES])  # (P, 4, 3)
    accent = patterns[fam]  # (n, size, size)
    base = cols[pal, 0][:, None, None, :]
    acc = cols[pal, 1][:, None, None, :]
    out[:] = np.where(accent[..., None], acc, base)
    return out


def palette_of(seeds: np.ndarray) -> np.ndarray:
    """Palette colour table ``(n, 4, 3)`` uint8 of levels (base, accent, wall, hazard)."""
    _, pal = visual_factors(np.asarray(seeds, np.int64))
    return np.stack([PALETTE_COLORS[p] for p in PALETTES])[pal]


def blit_masks(frames: np.ndarray, y: np.ndarray, x: np.ndarray, mask: np.ndarray,
               color: np.ndarray, active: np.ndarray | None = None) -> None:
    """Paint a sprite mask at integer pixel positions into a batch of frames, in place.

    Args:
        frames: ``(N, H, W, 3)`` uint8.
        y, x: top-left pixel of the sprite per frame ``(N,)`` (may be partly off-frame).
        mask: ``(h, w)`` bool sprite shape, shared by all frames.
        color: ``(3,)`` or ``(N, 3)`` uint8.
        active: optional ``(N,)`` bool; inactive frames are skipped.
    """
    n, hgt, wid, _ = frames.shape
    mh, mw = mask.shape
    yy = np.asarray(y, np.int64)[:, None, None] + np.arange(mh)[None, :, None]
    xx = np.asarray(x, np.int64)[:, None, None] + np.arange(mw)[None, None, :]
    ok = mask[None] & (yy >= 0) & (yy < hgt) & (xx >= 0) & (xx < wid)
    if active is not None:
        ok &= np.asarray(active, bool)[:, None, None]
    f, r, c = np.nonzero(ok)
    col = np.broadcast_to(np.asarray(color, np.uint8), (n, 3))
    frames[f, yy[f, r, 0], xx[f, 0, c]] = col[f]
