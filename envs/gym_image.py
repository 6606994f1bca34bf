"""Image gymnasium envs that are not simlab procgen games (``CarRacing-v3``, the World Models benchmark).

What the Dream Land stages need from such an env, with the same interfaces as the procgen side:

- :func:`check_image_env`: make the env (locally, no network) and describe it
  (:class:`ImageEnvInfo`); ConfigError (one line) for an unknown id, non-image
  observations or an action space that is neither Discrete nor Box.
- :func:`preprocess_frames`: raw frames ``(N, H, W, 3)`` uint8 -> world-model frames
  ``(N, 64, 64, 3)`` uint8. CarRacing: the bottom 12 rows (the dashboard) are cropped
  away first (World Models: ``obs[:84]``), then the 84 x 96 image is resized to 64 x 64;
  other envs: plain resize. Resizing is PIL's bilinear filter, which on downscaling
  widens its support to the scale factor (an antialiased, area-like average).
- :func:`collect_gym`: World Models-style random rollouts written as HDF5 shards +
  ``manifest.json`` (:mod:`simlab.data`), read back with :class:`GymTransitionDataset`,
  whose :meth:`~GymTransitionDataset.episodes` yields the same dicts as
  :meth:`simlab.envs.procgen.dataset.TransitionDataset.episodes`.
- :func:`evaluate_gym`: a policy acting on preprocessed frames in the real env, over
  named splits of track/level seeds, with the result layout of
  :func:`simlab.policies.evaluate.evaluate`.

Dataset layout (``kind = "simlab.gym_image.transitions"``). Shard ``j`` holds transitions
``[j * transitions_per_shard, ...)`` and is a pure function of ``(config, j)``: its env
seeds (drawn uniformly from ``[seed_start, seed_start + seed_count)``) and its behaviour
policy's randomness come from ``numpy.random.default_rng([seed, j, 0 | 1])``, so a resumed
collection writes the same bytes as an unbroken one. Episodes run one after another in a
single env (CarRacing is not vectorised); the shard's last episode is cut when the shard is
full. Arrays of a shard (``n`` transitions, ``m`` episode segments):

================ ======================== =================================================
``obs``          (n, 64, 64, 3) uint8     preprocessed frame the action was taken in (gzip)
``actions``      (n,) int64 or (n, d) f32 action taken (Discrete id, or Box vector)
``rewards``      (n,) float32             reward of the step
``terminations`` (n,) bool                the env terminated the episode
``truncations``  (n,) bool                time limit (the env's or ``max_episode_steps``)
``level_seed``   (n,) int64               ``env.reset(seed=...)`` of the episode (CarRacing: the track)
``episode_id``   (n,) int64               dataset index of the episode's first transition
``final_obs``    (m, 64, 64, 3) uint8     frame after each segment's last step (gzip)
================ ======================== =================================================

Behaviour policies (``policy=``): ``"random"`` (default): Box actions follow a Brownian
motion clipped to the Box (ctallec's World Models reimplementation, ``dt = 1/50``):
``a_0 ~ U(low, high)``, ``a_{t+1} = clip(a_t + sqrt(dt) * (high - low) / 2 * N(0, I))``
(for a ``[-1, 1]`` dimension exactly ``a_t + sqrt(dt) * N(0, 1)``); Discrete actions are
uniform ids held for a uniform 1-10 steps (as the procgen ``random_repeat`` data).
``"uniform"``: an independent uniform action every step.

Usage::

    from simlab.envs.gym_image import collect_gym, GymTransitionDataset, evaluate_gym
    collect_gym("CarRacing-v3", "runs/car/data", transitions=50_000, seeds=(0, 1000))
    ds = GymTransitionDataset("runs/car/data")
    for ep in ds.episodes(): ...   # observations (T+1, 64, 64, 3), actions (T, 3) float32, ...
    res = evaluate_gym(agent, "CarRacing-v3", {"train": (0, 1000), "test": (100_000, 100)}, episodes=10)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from simlab import __version__
from simlab.actions import (
    action_space_from_json,
    action_space_to_json,
    check_box_actions,
    check_discrete_actions,
)
from simlab.data import (
    FORMAT_VERSION,
    TRANSITION_KEYS,
    CollectResult,
    ShardedTransitions,
    claim_dataset_dir,
    finalize_manifest,
    open_h5,
    shard_name,
    shard_record,
    write_h5_shard,
)
from simlab.errors import ConfigError, DatasetError

KIND = "simlab.gym_image.transitions"
FRAME_SIZE = 64
"""Side of a preprocessed (world-model) frame."""
OBS_SHAPE = (FRAME_SIZE, FRAME_SIZE, 3)
CARRACING_DASHBOARD_ROWS = 12
"""Rows at the bottom of a 96-row CarRacing frame that show the dashboard (cropped away)."""
STEP_KEYS = TRANSITION_KEYS
"""Per-transition arrays of a shard (plus the per-segment ``final_obs``)."""
POLICIES = ("random", "uniform")
BROWNIAN_DT = 1.0 / 50.0
"""Time step of the Brownian-motion random policy for Box actions."""
MAX_REPEAT = 10
"""The discrete random policy holds each action for 1..MAX_REPEAT steps."""


# ---- env checks -----------------------------------------------------------------------------

class ActionSpaceInfo:
    """``continuous`` / ``n_actions`` / ``action_dim`` of an object's ``action_space``
    (``Discrete(n)`` or a 1-D float32 ``Box``)."""

    action_space: spaces.Space

    @property
    def continuous(self) -> bool:
        """True for Box actions."""
        return isinstance(self.action_space, spaces.Box)

    @property
    def n_actions(self) -> int:
        """Discrete action count (0 for Box actions)."""
        return 0 if self.continuous else int(self.action_space.n)  # type: ignore[attr-defined]

    @property
    def action_dim(self) -> int:
        """Box dimension ``d`` (0 for Discrete actions)."""
        return int(self.action_space.shape[0]) if self.continuous else 0  # type: ignore[index]


@dataclass(frozen=True)
class ImageEnvInfo(ActionSpaceInfo):
    """What :func:`check_image_env` found out about an env."""

    env_id: str
    observation_shape: tuple[int, int, int]
    """Raw frame shape ``(H, W, 3)`` (uint8)."""
    action_space: spaces.Space
    """``Discrete(n)`` or a float32 ``Box(low, high, (d,))`` with finite bounds."""
    max_episode_steps: int | None
    """The env's registered time limit (None: none)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-able description (the action space as :func:`simlab.actions.action_space_to_json`)."""
        return {"env_id": self.env_id, "observation_shape": list(self.observation_shape),
                "action_space": action_space_to_json(self.action_space),
                "max_episode_steps": self.max_episode_steps}


def is_car_racing(env_id: str) -> bool:
    """True for gymnasium's CarRacing ids (``CarRacing-v3`` and other versions)."""
    return str(env_id).rsplit("/", 1)[-1].startswith("CarRacing")


def make_env(env_id: str, **kwargs: Any) -> Any:
    """``gymnasium.make(env_id, **kwargs)`` (simlab's ids registered too), errors as one-line ConfigErrors."""
    import os

    import gymnasium
    from gymnasium.error import DependencyNotInstalled
    from gymnasium.error import Error as GymError

    import simlab  # noqa: F401  (registers simlab/... ids)

    # Headless: pygame-rendered envs (CartPole, CarRacing) would otherwise print SDL's
    # "error: XDG_RUNTIME_DIR is invalid" to stderr on a machine without a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"env id must be a non-empty string, got {env_id!r}")
    try:
        return gymnasium.make(env_id, **kwargs)
    except DependencyNotInstalled as e:
        hint = " (pip install 'simlab[box2d]')" if is_car_racing(env_id) else ""
        raise ConfigError(f"env {env_id!r} needs a package that is not installed{hint}: "
                          f"{str(e).splitlines()[0] if str(e) else e!r}") from None
    except GymError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"unknown or unavailable env id {env_id!r} ({msg})") from None
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(f"env {env_id!r} cannot be made: {str(e).splitlines()[0] if str(e) else e!r}") from None


def _describe(env: Any, env_id: str) -> ImageEnvInfo:
    obs = env.observation_space
    if not (isinstance(obs, spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) == 3 and obs.shape[2] == 3):
        raise ConfigError(f"env {env_id!r}: observations are not images (uint8 H x W x 3), got {obs}")
    act = env.action_space
    if isinstance(act, spaces.Discrete):
        if int(act.start) != 0:
            raise ConfigError(f"env {env_id!r}: Discrete actions must start at 0, got {act}")
        space: spaces.Space = spaces.Discrete(int(act.n))
    elif isinstance(act, spaces.Box):
        space = action_space_from_json(action_space_to_json(act))  # finite 1-D float32 Box
    else:
        raise ConfigError(f"env {env_id!r}: actions must be Discrete or Box, got {type(act).__name__}")
    spec = getattr(env, "spec", None)
    limit = getattr(spec, "max_episode_steps", None)
    return ImageEnvInfo(env_id, (int(obs.shape[0]), int(obs.shape[1]), 3), space,
                        None if limit is None else int(limit))


def check_image_env(env_id: str) -> ImageEnvInfo:
    """Make ``env_id`` (no network, no reset) and describe it.

    Returns:
        :class:`ImageEnvInfo`: raw observation shape, action space (``Discrete(n)`` or a
        float32 ``Box`` with finite bounds), registered time limit.

    Raises:
        ConfigError: (one line) unknown id or missing dependency; "observations are not
            images" unless observations are uint8 ``(H, W, 3)``; actions neither Discrete
            (starting at 0) nor a 1-D Box with finite bounds.
    """
    env = make_env(env_id)
    try:
        return _describe(env, env_id)
    finally:
        env.close()


# ---- preprocessing ----------------------------------------------------------------------------

def preprocess_frames(frames: np.ndarray, env_id: str, size: int = FRAME_SIZE) -> np.ndarray:
    """Raw env frames -> world-model frames.

    Args:
        frames: uint8 ``(N, H, W, 3)`` (a single ``(H, W, 3)`` frame is accepted too and
            gives ``(size, size, 3)``).
        env_id: CarRacing ids drop the bottom ``round(H * 12 / 96)`` rows (the dashboard:
            ``obs[:84]`` of a 96 x 96 frame) before resizing; every other env is resized whole.
        size: output side (64).

    Returns:
        uint8 ``(N, size, size, 3)``; PIL bilinear resize (antialiased when downscaling),
        skipped when the (cropped) frames already have that size. Pure function.

    Raises:
        ConfigError: frames not uint8 with 3 channels.
    """
    from PIL import Image

    f = np.asarray(frames)
    single = f.ndim == 3
    if single:
        f = f[None]
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or f.shape[1] < 1 or f.shape[2] < 1:
        raise ConfigError(f"frames must be uint8 (N, H, W, 3), got {f.dtype} {f.shape}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ConfigError(f"size must be a positive integer, got {size!r}")
    if is_car_racing(env_id):
        keep = f.shape[1] - round(f.shape[1] * CARRACING_DASHBOARD_ROWS / 96)
        f = f[:, :max(1, keep)]
    if f.shape[1:3] == (size, size):
        out = np.ascontiguousarray(f).copy()
    else:
        out = np.empty((f.shape[0], size, size, 3), np.uint8)
        for i in range(f.shape[0]):
            img = Image.fromarray(np.ascontiguousarray(f[i]), mode="RGB")
            out[i] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out[0] if single else out


# ---- behaviour policies --------------------------------------------------------------------------

class RandomActions:
    """The behaviour policies of :func:`collect_gym` for one action space (see the module docstring).

    ``reset()`` at every episode start, then ``__call__() -> action``: an int id or a float32 ``(d,)``.
    """

    def __init__(self, space: spaces.Space, policy: str, rng: np.random.Generator) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"unknown behaviour policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.space, self.policy, self.rng = space, policy, rng
        self.box = isinstance(space, spaces.Box)
        if self.box:
            self.low = np.asarray(space.low, np.float64)
            self.high = np.asarray(space.high, np.float64)
        self.current: Any = None
        self.left = 0

    def _uniform(self) -> Any:
        if self.box:
            return self.rng.uniform(self.low, self.high)
        return int(self.rng.integers(0, int(self.space.n)))  # type: ignore[attr-defined]

    def reset(self) -> None:
        self.current, self.left = None, 0

    def __call__(self) -> Any:
        if self.policy == "uniform" or self.current is None:
            self.current = self._uniform()
            if not self.box:
                self.left = int(self.rng.integers(1, MAX_REPEAT + 1))
        elif self.box:  # Brownian motion, clipped to the Box
            step = np.sqrt(BROWNIAN_DT) * (self.high - self.low) / 2 * self.rng.standard_normal(self.low.shape)
            self.current = np.clip(self.current + step, self.low, self.high)
        elif self.left <= 0:  # a new id held for 1..MAX_REPEAT steps
            self.current = int(self.rng.integers(0, int(self.space.n)))  # type: ignore[attr-defined]
            self.left = int(self.rng.integers(1, MAX_REPEAT + 1))
        if self.box:
            return np.asarray(self.current, np.float32)
        self.left -= 1
        return int(self.current)


# ---- collection ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GymCollectConfig:
    """Everything that determines a :func:`collect_gym` dataset's content."""

    env_id: str = "CarRacing-v3"
    """gymnasium id of an image env (see :func:`check_image_env`)."""
    transitions: int = 10_000
    """Number of transitions N."""
    seed_start: int = 0
    """First env seed (CarRacing: track) of the collection."""
    seed_count: int = 1000
    """Episodes use seeds drawn uniformly from ``[seed_start, seed_start + seed_count)``."""
    policy: str = "random"
    """Behaviour policy: ``random`` (Brownian Box actions / held discrete ids) or ``uniform``."""
    seed: int = 0
    """Seed of the env-seed draws and of the behaviour policy (shard j uses (seed, j))."""
    max_episode_steps: int | None = None
    """Optional cap: episodes are truncated after this many steps (on top of the env's limit)."""
    transitions_per_shard: int = 4096
    """Transitions per shard file (part of the content)."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ConfigError(f"env_id must be a non-empty string, got {self.env_id!r}")
        for name, lowest in (("transitions", 1), ("seed_count", 1), ("transitions_per_shard", 1),
                             ("seed_start", 0), ("seed", 0), ("max_episode_steps", 1)):
            v = getattr(self, name)
            if v is None and name == "max_episode_steps":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lowest:
                none = "None or " if name == "max_episode_steps" else ""
                raise ConfigError(f"{name} must be {none}an integer >= {lowest}, got {v!r}")
            object.__setattr__(self, name, int(v))  # plain ints (JSON)
        if self.policy not in POLICIES:
            raise ConfigError(f"unknown behaviour policy {self.policy!r}; choose one of {', '.join(POLICIES)}")

    def num_shards(self) -> int:
        """Number of shard files."""
        return -(-self.transitions // self.transitions_per_shard)

    def shard_range(self, j: int) -> tuple[int, int]:
        """Transition index range ``[start, stop)`` of shard ``j``."""
        start = j * self.transitions_per_shard
        return start, min(self.transitions, start + self.transitions_per_shard)


def rollout_shard(cfg: GymCollectConfig, j: int, bar: Any = None) -> dict[str, np.ndarray]:
    """The arrays of shard ``j`` (see the module docstring); a pure function of ``(cfg, j)``.

    Every shard makes its own env (no simulator state carried over between shards).
    ``bar``: optional tqdm bar, advanced by one per transition.
    """
    start, stop = cfg.shard_range(j)
    count = stop - start
    env = make_env(cfg.env_id)
    try:
        info = _describe(env, cfg.env_id)
        seeds_rng = np.random.default_rng([cfg.seed, j, 0])
        policy = RandomActions(info.action_space, cfg.policy, np.random.default_rng([cfg.seed, j, 1]))
        obs_l, act_l, rew_l, term_l, trunc_l, seed_l, id_l, final_l = [], [], [], [], [], [], [], []
        n = 0
        while n < count:
            level = cfg.seed_start + int(seeds_rng.integers(0, cfg.seed_count))
            obs, _ = env.reset(seed=level)
            policy.reset()
            frame = preprocess_frames(obs, cfg.env_id)
            ep_start, t = n, 0
            while True:
                a = policy()
                obs_l.append(frame)
                act_l.append(a)
                obs, r, term, trunc, _ = env.step(a)
                t += 1
                n += 1
                trunc = bool(trunc) or (cfg.max_episode_steps is not None and t >= cfg.max_episode_steps)
                term = bool(term)
                trunc = trunc and not term
                rew_l.append(float(r))
                term_l.append(term)
                trunc_l.append(trunc)
                seed_l.append(level)
                id_l.append(start + ep_start)
                frame = preprocess_frames(obs, cfg.env_id)
                if bar is not None:
                    bar.update(1)
                if term or trunc or n >= count:
                    final_l.append(frame)
                    break
    finally:
        env.close()
    box = info.continuous
    return {
        "obs": np.stack(obs_l),
        "actions": np.stack(act_l).astype(np.float32) if box else np.asarray(act_l, np.int64),
        "rewards": np.asarray(rew_l, np.float32),
        "terminations": np.asarray(term_l, bool),
        "truncations": np.asarray(trunc_l, bool),
        "level_seed": np.asarray(seed_l, np.int64),
        "episode_id": np.asarray(id_l, np.int64),
        "final_obs": np.stack(final_l),
    }


def _episodes_in(path: Path) -> dict[str, int]:
    with open_h5(path) as f:
        return {"episodes": int(f["final_obs"].shape[0]) if "final_obs" in f else 0}


def collect_gym(env_id: str, out_dir: str | Path, transitions: int, seeds: tuple[int, int] = (0, 1000),
                policy: str = "random", seed: int = 0, resume: bool = True, progress: bool = True,
                max_episode_steps: int | None = None, transitions_per_shard: int = 4096,
                shard: tuple[int, int] = (0, 1)) -> CollectResult:
    """Roll out a random behaviour policy in ``env_id`` and write a transition dataset.

    Args:
        env_id: an image gymnasium env (``"CarRacing-v3"``; see :func:`check_image_env`).
        out_dir: dataset directory (``manifest.json`` + ``shards/``).
        transitions: number of transitions N (``len(GymTransitionDataset(out_dir))``).
        seeds: ``(first, count)``: episodes reset with seeds drawn uniformly from
            ``[first, first + count)`` (CarRacing: the training tracks).
        policy: ``"random"`` (Brownian Box actions / discrete ids held 1-10 steps) or
            ``"uniform"`` (see the module docstring).
        seed: seeds the seed draws and the policy; the dataset is a pure function of the arguments.
        resume: continue a collection in ``out_dir`` (finished shards are kept; the same
            arguments are required); False refuses a directory that already holds a dataset.
        progress: tqdm bar over transitions.
        max_episode_steps: optional cap on episode length (truncation).
        transitions_per_shard: shard size (part of the content).
        shard: ``(i, n)``: this worker writes shards ``j`` with ``j % n == i``.

    Returns:
        :class:`simlab.data.CollectResult` (``complete`` once every shard and the manifest exist).

    Raises:
        ConfigError: bad arguments, an unknown/non-image env id, or a directory holding another dataset.
    """
    from tqdm import tqdm

    try:
        first, count = (int(v) for v in seeds)
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be (first, count), got {seeds!r}") from None
    cfg = GymCollectConfig(env_id=env_id, transitions=transitions, seed_start=first, seed_count=count,
                           policy=policy, seed=seed, max_episode_steps=max_episode_steps,
                           transitions_per_shard=transitions_per_shard)
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < n and n >= 1")
    info = check_image_env(env_id)
    root = Path(out_dir)
    claim_dataset_dir(root, {"config": asdict(cfg)}, resume or n > 1)
    todo = [j for j in range(cfg.num_shards()) if j % n == i]
    res = CollectResult(out=str(root))
    t0 = time.perf_counter()
    attrs = {"format_version": FORMAT_VERSION, "kind": KIND, "config": asdict(cfg)}
    missing = [j for j in todo if not (root / shard_name(j)).exists()]
    total = sum(cfg.shard_range(j)[1] - cfg.shard_range(j)[0] for j in missing)
    with tqdm(total=total, desc=f"collect {env_id} ({policy})", unit="step", disable=not progress,
              leave=False, dynamic_ncols=True) as bar:
        for j in todo:
            start, stop = cfg.shard_range(j)
            path = root / shard_name(j)
            if not path.exists():
                arrays = rollout_shard(cfg, j, bar=bar)
                write_h5_shard(path, arrays, {**attrs, "shard": j, "start": start, "stop": stop},
                               compress={"obs", "final_obs"})
                res.written.append(j)
                res.items_written += stop - start
            else:
                res.skipped.append(j)
            shard_record(root, j, start, stop, extra=_episodes_in)
    res.seconds = time.perf_counter() - t0
    res.complete = _finalize(root, cfg, info)
    return res


def _finalize(root: Path, cfg: GymCollectConfig, info: ImageEnvInfo) -> bool:
    if not all((root / shard_name(j)).exists() for j in range(cfg.num_shards())):
        return False
    episodes = sum(shard_record(root, j, *cfg.shard_range(j), extra=_episodes_in)["episodes"]
                   for j in range(cfg.num_shards()))
    return finalize_manifest(root, cfg.num_shards(), cfg.shard_range, {
        "kind": KIND,
        "simlab_version": __version__,
        "config": asdict(cfg),
        "env_id": cfg.env_id,
        "count": cfg.transitions,
        "episodes": int(episodes),
        "observation_shape": list(OBS_SHAPE),
        "observation_dtype": "uint8",
        "raw_observation_shape": list(info.observation_shape),
        "preprocess": ("crop bottom 12/96 rows (dashboard), PIL bilinear resize to 64x64"
                       if is_car_racing(cfg.env_id) else "PIL bilinear resize to 64x64"),
        "action_space": action_space_to_json(info.action_space),
        "n_actions": info.n_actions,
        "action_dim": info.action_dim,
    }, extra=_episodes_in)


# ---- reading -------------------------------------------------------------------------------------

class GymTransitionDataset(ShardedTransitions, ActionSpaceInfo):
    """Read a :func:`collect_gym` dataset (same reading interface as ``TransitionDataset``).

    Validates the manifest and every shard's size on open (``verify=True`` also checks
    SHA-256); errors are :class:`DatasetError` naming the file. Opening, ``len``, ``load``,
    ``get`` and ``episodes`` are :class:`simlab.data.ShardedTransitions`'; every shard touched
    is read whole and its array shapes checked (these datasets are small). ``episodes()``
    yields ``actions`` int64 ``(T,)`` or float32 ``(T, d)``.

    Attributes:
        action_space: ``Discrete(n)`` or float32 ``Box``; ``continuous``, ``n_actions``
        (0 for Box), ``action_dim`` (0 for Discrete); ``config``: the :class:`GymCollectConfig`.
    """

    kind = KIND
    label = "gym-image"
    config_class = GymCollectConfig
    step_keys = STEP_KEYS

    def _parse_manifest(self, man: dict[str, Any]) -> None:
        self.action_space = action_space_from_json(man["action_space"])
        self.observation_shape = tuple(int(v) for v in man["observation_shape"])

    def __repr__(self) -> str:
        c = self.config
        return (f"GymTransitionDataset({str(self.root)!r}: {len(self)} transitions, {self.num_episodes} episodes, "
                f"{c.env_id} seeds {c.seed_start}:{c.seed_start + c.seed_count}, policy {c.policy})")

    def _read_all(self, s: dict[str, Any]) -> dict[str, np.ndarray]:
        """The whole shard, its array shapes checked against the manifest."""
        d = super()._read_all(s)
        n = s["stop"] - s["start"]
        act_shape = (n, self.action_dim) if self.continuous else (n,)
        if any(len(d[k]) != n for k in STEP_KEYS) or d["obs"].shape[1:] != self.observation_shape \
                or d["actions"].shape != act_shape:
            raise DatasetError(f"{self.root / s['file']}: array shapes inconsistent with the manifest")
        return d


# ---- evaluation in the real env ------------------------------------------------------------------

def split_seeds(first: int, count: int, episodes: int, seed: int = 0) -> np.ndarray:
    """Env seeds of ``episodes`` evaluation episodes from ``[first, first + count)``: distinct
    (drawn without replacement) while ``episodes <= count``, else every seed once per round,
    each round in a new order. Deterministic in ``(first, count, seed)``; int64 ``(episodes,)``."""
    rng = np.random.default_rng([int(seed), int(first), int(count)])
    if episodes <= count:
        return first + rng.choice(count, size=episodes, replace=False).astype(np.int64)
    rounds = [rng.permutation(count) for _ in range(-(-episodes // count))]
    return first + np.concatenate(rounds)[:episodes].astype(np.int64)


def _check_splits(splits: Any) -> dict[str, tuple[int, int]]:
    if not isinstance(splits, dict) or not splits:
        raise ConfigError(f"splits must be a non-empty dict name -> (first seed, count), got {splits!r}")
    out = {}
    for name, rng in splits.items():
        try:
            first, count = (int(v) for v in rng)
        except (TypeError, ValueError):
            raise ConfigError(f"split {name!r}: expected (first seed, count), got {rng!r}") from None
        if first < 0 or count < 1:
            raise ConfigError(f"split {name!r}: need first seed >= 0 and count >= 1, got {rng!r}")
        out[str(name)] = (first, count)
    return out


def _to_env_action(a: Any, space: spaces.Space) -> Any:
    """One policy action (``(1, d)``/``(d,)`` floats or ``(1,)``/scalar id) checked against ``space``."""
    if isinstance(space, spaces.Box):
        return check_box_actions(a, 1, space.low, space.high)[0]
    return int(check_discrete_actions(np.asarray(a).reshape(-1), 1, int(space.n))[0])  # type: ignore[attr-defined]


def evaluate_gym(policy: Any, env_id: str, splits: dict[str, tuple[int, int]], episodes: int, seed: int = 0,
                 max_episode_steps: int | None = None, video_dir: str | Path | None = None,
                 videos_per_split: int = 1, out_dir: str | Path | None = None, deterministic: bool = True,
                 fps: float = 50.0, progress: bool = False) -> dict[str, dict[str, Any]]:
    """Evaluate ``policy`` in the real image env ``env_id`` over named splits of env seeds.

    One env, stepped sequentially; episode ``k`` of a split is reset with seed
    ``split_seeds(first, count, episodes, seed)[k]`` (CarRacing: the track).

    Args:
        policy: ``act(frames uint8 (1, 64, 64, 3)) -> actions`` on :func:`preprocess_frames`
            frames: ``(1,)`` ids for Discrete envs, ``(1, d)`` (or ``(d,)``) floats inside the
            Box for Box envs (a :class:`simlab.policies.cmaes.WorldModelAgent`). ``policy.reset()``
            is called before every episode when it exists.
        env_id: an image env id (see :func:`check_image_env`).
        splits: ``{name: (first seed, count)}``, e.g. ``{"train": (0, 1000), "test": (100_000, 100)}``.
        episodes: episodes per split.
        seed: picks the seeds of each split (same seed -> same tracks).
        max_episode_steps: optional cap on episode length (truncation), on top of the env's limit.
        video_dir: write ``<split>_<k>.mp4`` of the first ``videos_per_split`` episodes of each
            split (raw env frames, e.g. CarRacing's 96 x 96 with the dashboard) and, when
            ``out_dir`` is None, ``eval_info.json`` there.
        videos_per_split: episodes recorded per split when ``video_dir`` is given.
        out_dir: where to write ``eval_info.json`` (default ``video_dir``; neither: not written).
        deterministic: False calls ``policy.act(obs, deterministic=False)``.
        fps: video frame rate (CarRacing runs at 50 fps).
        progress: a tqdm bar over episodes (all splits) on stderr.

    Returns:
        ``{split: {"mean_return", "std_return", "ci95", "success_rate" (None: no success rule),
        "mean_length", "n_episodes", "episodes": [{"split", "episode", "seed", "level_seed"
        (= seed), "return", "length", "terminated", "truncated"[, "video"]}]}}``, as
        :func:`simlab.policies.evaluate.evaluate` (whose ``format_table`` prints it).

    Raises:
        ConfigError: bad arguments or env id. ActionError: the policy returned an invalid action.
    """
    from simlab.data import write_json_atomic
    from simlab.policies.evaluate import EVAL_INFO, summarize
    from simlab.policies.evaluate import FORMAT_VERSION as EVAL_FORMAT

    sp = _check_splits(splits)
    if isinstance(episodes, bool) or int(episodes) != episodes or episodes < 1:
        raise ConfigError(f"episodes must be an integer >= 1, got {episodes!r}")
    if max_episode_steps is not None and (int(max_episode_steps) != max_episode_steps or max_episode_steps < 1):
        raise ConfigError(f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}")
    n_videos = max(0, int(videos_per_split)) if video_dir is not None else 0
    env = make_env(env_id)
    result: dict[str, dict[str, Any]] = {}
    per_episode: list[dict[str, Any]] = []
    reset_hook = getattr(policy, "reset", None)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sp) * int(episodes), desc=f"eval {env_id}", unit="ep", disable=not progress,
               dynamic_ncols=True)
    try:
        info = _describe(env, env_id)
        for split, (first, count) in sp.items():
            eps: list[dict[str, Any]] = []
            for k, s in enumerate(split_seeds(first, count, int(episodes), seed).tolist()):
                if callable(reset_hook):
                    reset_hook()
                obs, _ = env.reset(seed=int(s))
                frames = [obs] if k < n_videos else None
                ret, length, term, trunc = 0.0, 0, False, False
                while not (term or trunc):
                    x = preprocess_frames(obs[None], env_id)
                    a = policy.act(x) if deterministic else policy.act(x, deterministic=False)
                    obs, r, term, trunc, _ = env.step(_to_env_action(a, info.action_space))
                    ret += float(r)
                    length += 1
                    term = bool(term)
                    trunc = (bool(trunc) or (max_episode_steps is not None and length >= max_episode_steps)) \
                        and not term
                    if frames is not None:
                        frames.append(obs)
                ep: dict[str, Any] = {"split": split, "episode": k, "seed": int(s), "level_seed": int(s),
                                      "return": ret, "length": length, "terminated": term, "truncated": trunc}
                if frames is not None:
                    from simlab.video import write_mp4

                    p = Path(video_dir) / f"{split}_{k}.mp4"  # type: ignore[arg-type]
                    write_mp4(p, np.stack(frames), fps=fps)
                    ep["video"] = str(p)
                eps.append(ep)
                bar.update(1)
                bar.set_postfix(split=split, ret=f"{ret:.1f}")
            result[split] = {
                **summarize([e["return"] for e in eps]),
                "success_rate": None,
                "mean_length": float(np.mean([e["length"] for e in eps])),
                "n_episodes": len(eps),
                "episodes": eps,
            }
            per_episode.extend(eps)
    finally:
        env.close()
        bar.close()
    info_dir = out_dir if out_dir is not None else video_dir
    if info_dir is not None:
        write_json_atomic(Path(info_dir) / EVAL_INFO, {
            "format_version": EVAL_FORMAT,
            "simlab_version": __version__,
            "env_id": env_id,
            "seed": seed,
            "episodes_per_split": int(episodes),
            "splits": {k: list(v) for k, v in sp.items()},
            "max_episode_steps": max_episode_steps,
            "per_episode": per_episode,
            "aggregated": {s: {k: v for k, v in r.items() if k != "episodes"} for s, r in result.items()},
        })
    return result
