"""Collect, read and export offline-RL transition datasets of the procgen-like games.

A dataset is a directory of HDF5 shards plus ``manifest.json`` (see
:mod:`simlab.data`); ``kind = "simlab.procgen.transitions"``. Shard ``j``
holds transitions ``[j * transitions_per_shard, ...)`` of the dataset and is
produced by its own :class:`~simlab.envs.procgen.vec.ProcgenVecEnv` batch,
whose level streams and behaviour-policy randomness are seeded from
``(seed, j)``: a shard is a pure function of ``(config, j)``, so
``--shard i/n`` workers, a resumed collection and an unbroken one write
byte-identical files.

Arrays of a shard (``n`` transitions, ``m`` episode segments):

============== ================== =====================================================
``obs``        (n, 64, 64, 3) u8  observation the action was taken in (gzip, lossless)
``actions``    (n,) int64         action taken, in ``[0, 15)``
``rewards``    (n,) float32       reward of the step
``terminations`` (n,) bool        the step ended the episode (goal reached / death)
``truncations`` (n,) bool         the step hit the game's time limit
``level_seed`` (n,) int64         level of the episode (replay: ``reset(options={"level_seed": s})``)
``episode_id`` (n,) int64         dataset index of the episode's first transition (unique)
``final_obs``  (m, 64, 64, 3) u8  observation after each episode segment's last step (gzip)
``hazard_boxes`` (n, K, 4) int16  games with projectiles only (Dodge): boxes ``[x0, y0, x1, y1)``
                                  of every hazard visible in ``obs`` (observation pixels; ``-1``
                                  rows for empty slots), for the world-model hazard-recall
                                  diagnostic; absent from datasets of other games and older ones
============== ================== =====================================================

Transitions are stored slot-major: each env slot's steps are contiguous, so
every episode segment is a contiguous run of equal ``episode_id``. The next
observation of transition ``i`` is ``obs[i + 1]`` inside a segment and the
segment's ``final_obs`` at its end. A segment whose last step is neither
terminated nor truncated was cut by the end of its shard's rollout.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab import __version__
from simlab.data import (
    FORMAT_VERSION,
    RECORD_FILE,
    TRANSITION_KEYS,
    CollectResult,
    ShardedTransitions,
    collect_shards,
    finalize_manifest,
    open_h5,
    read_h5_array,
    sha256_file,
    shard_name,
    shard_record,
)
from simlab.envs.procgen.base import (
    ACTION_DX,
    ACTION_DY,
    DISTRIBUTION_MODES,
    NUM_ACTIONS,
    OBS_SIZE,
    ProcgenOptions,
    parse_levels,
)
from simlab.envs.procgen.vec import GAMES, ProcgenVecEnv
from simlab.errors import ConfigError, DatasetError, SimlabError
from simlab.registry import ENV_SPECS

KIND = "simlab.procgen.transitions"
OBS_SHAPE = (OBS_SIZE, OBS_SIZE, 3)
STEP_KEYS = TRANSITION_KEYS
"""Per-transition arrays of a shard (plus the per-segment ``final_obs``)."""
SCRIPTED_POLICIES = ("random", "random_repeat", "oracle")
ENV_IDS = {s.kwargs["game"]: s.id for s in ENV_SPECS
           if s.vector_entry_point == "simlab.envs.procgen.vec:ProcgenVecEnv"}
"""Registered single-env id of each game (the env a dataset's policies are evaluated in)."""


@dataclass(frozen=True)
class ProcgenCollectConfig:
    """Everything that determines a procgen transition dataset's content."""

    game: str = "maze"
    """maze | coinrun | coinrun_v1 | bigfish | dodge | dodge_v1."""
    levels: str = "0:200"
    """Level seeds ``a:b`` (levels a..b-1) or ``a:`` (unlimited from a)."""
    distribution_mode: str = "easy"
    """easy | hard."""
    transitions: int = 100_000
    """Number of transitions N."""
    policy: str = "random"
    """Behaviour policy: random (uniform over 15 actions), random_repeat (uniform actions held for
    1-10 steps, the World Models / Dream Land data policy), oracle (maze: BFS shortest path), or the
    path of a saved policy / training run, ``RUN@CKPT`` for one of a run's checkpoints (final,
    latest, best, step_<N> or <N>); actions sampled from its softmax. Several saved policies
    separated by commas make a mixed dataset (env slot k follows policy k % count)."""
    seed: int = 0
    """Seed of level streams and policy sampling (shard j uses (seed, j))."""
    num_envs: int = 64
    """Envs stepped together per shard (part of the content)."""
    transitions_per_shard: int = 8192
    """Transitions per shard file (part of the content)."""
    use_backgrounds: bool = True
    """Draw the levels' textured backgrounds (Procgen's ``use_backgrounds``; else plain)."""

    def __post_init__(self) -> None:
        if self.game not in GAMES:
            raise ConfigError(f"unknown game {self.game!r}; choose one of {', '.join(GAMES)}")
        parse_levels(self.levels)
        if self.distribution_mode not in DISTRIBUTION_MODES:
            raise ConfigError(f"unknown distribution_mode {self.distribution_mode!r}; "
                              f"choose one of {', '.join(DISTRIBUTION_MODES)}")
        for name in ("transitions", "num_envs", "transitions_per_shard"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.policy:
            raise ConfigError("policy must be 'random', 'random_repeat', 'oracle' or the path of a saved policy")
        if self.policy == "oracle" and self.game != "maze":
            raise ConfigError(f"policy 'oracle' (BFS solver) exists for maze only, not {self.game!r}")

    @property
    def start_level(self) -> int:
        """Lowest level seed."""
        return parse_levels(self.levels)[0]

    @property
    def num_levels(self) -> int:
        """Number of levels (0 = unlimited)."""
        return parse_levels(self.levels)[1]

    def num_shards(self) -> int:
        """Number of shard files."""
        return -(-self.transitions // self.transitions_per_shard)

    def shard_range(self, j: int) -> tuple[int, int]:
        """Transition index range ``[start, stop)`` of shard ``j``."""
        start = j * self.transitions_per_shard
        return start, min(self.transitions, start + self.transitions_per_shard)

    def options(self, j: int) -> ProcgenOptions:
        """Env options of shard ``j`` (its own level streams, seeded from ``(seed, j)``)."""
        rand_seed = int(np.random.SeedSequence([self.seed, j, 0]).generate_state(1)[0])
        return ProcgenOptions(num_levels=self.num_levels, start_level=self.start_level,
                              distribution_mode=self.distribution_mode, rand_seed=rand_seed,
                              use_backgrounds=self.use_backgrounds)


# ---- behaviour policies -----------------------------------------------------------------

_MOVES = tuple(a for a in range(NUM_ACTIONS)
               if abs(ACTION_DX[a]) + abs(ACTION_DY[a]) == 1)  # LEFT, DOWN, UP, RIGHT


def _maze_distance(board: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """4-connected BFS distance of every free tile to ``goal`` (-1 for walls/unreachable)."""
    dist = np.full(board.shape, -1, np.int32)
    dist[goal] = 0
    q = deque([goal])
    while q:
        r, c = q.popleft()
        for a in _MOVES:
            nr, nc = r + int(ACTION_DY[a]), c + int(ACTION_DX[a])
            if 0 <= nr < board.shape[0] and 0 <= nc < board.shape[1] and board[nr, nc] == 0 \
                    and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                q.append((nr, nc))
    return dist


class MazeOracle:
    """Scripted maze expert: one step along the BFS shortest path to the cheese.

    Reads the engine's state (board, agent, cheese), so it only works with
    maze envs; deterministic given the state (the path in a perfect maze is unique).
    """

    def __init__(self) -> None:
        self._dist: dict[int, np.ndarray] = {}

    def __call__(self, obs: np.ndarray, env: Any) -> np.ndarray:
        g = env.game
        actions = np.full(g.n, 4, np.int64)  # 4 = no-op
        if len(self._dist) > 4096:
            self._dist.clear()
        for i in range(g.n):
            seed = int(g.level_seed[i])
            dist = self._dist.get(seed)
            if dist is None:
                dist = self._dist[seed] = _maze_distance(g.board[i], (int(g.cheese[i, 0]), int(g.cheese[i, 1])))
            r, c = int(g.agent[i, 0]), int(g.agent[i, 1])
            for a in _MOVES:
                nr, nc = r + int(ACTION_DY[a]), c + int(ACTION_DX[a])
                if dist[nr, nc] >= 0 and dist[nr, nc] == dist[r, c] - 1:
                    actions[i] = a
                    break
        return actions


CHECKPOINT_NAMES = ("final", "latest", "best")
"""Named policies of a run directory (besides ``step_<N>`` kept checkpoints)."""


def _policy_dir(path: str | Path) -> Path:
    """The saved-policy directory of one policy reference ``path``.

    ``path`` is a saved-policy directory, a run directory (its final ``policy/`` or, failing
    that, ``checkpoints/latest/policy``, as :func:`evaluate.load_policy`), or ``RUN@CKPT`` with
    ``CKPT`` one of ``final``, ``latest``, ``best``, ``step_<N>`` or ``<N>`` (= ``step_<N>``, a
    checkpoint PPO kept with ``keep_checkpoints=true``). ConfigError (one line) when nothing is there.
    """
    ref = str(path)
    if "@" in ref:
        run_s, ck = ref.rsplit("@", 1)
        run = Path(run_s)
        if not (run / "config.yaml").exists() and not (run / "checkpoints").is_dir():
            raise ConfigError(f"policy {ref!r}: {run} is not a run directory")
        ck = f"step_{ck}" if ck.isdigit() else ck
        d = run / "policy" if ck == "final" else run / "checkpoints" / ck / "policy"
        if not (d / "config.json").exists():
            kept = sorted((p.parent.parent.name for p in (run / "checkpoints").glob("*/policy/config.json")),
                          key=lambda n: (not n.startswith("step_"), int(n[5:]) if n[5:].isdigit() else 0, n))
            if (run / "policy" / "config.json").exists():
                kept.append("final")
            raise ConfigError(f"policy {ref!r}: no checkpoint {ck!r} in {run} (it has: {', '.join(kept) or 'none'})")
        return d
    p = Path(path)
    for d in (p, p / "policy", p / "checkpoints" / "latest" / "policy"):
        if (d / "config.json").exists():
            return d
    raise ConfigError(f"policy {ref!r} is not 'random', 'random_repeat', 'oracle', a saved policy directory "
                      "(config.json + model.safetensors), a run directory with one, or RUN@CHECKPOINT")


def policy_refs(policy: str) -> list[str]:
    """The saved-policy references of a ``policy`` value: one, or several separated by commas
    (a mixed dataset: env slot ``k`` of every shard follows policy ``k % len(refs)``)."""
    return [r.strip() for r in policy.split(",") if r.strip()]


def _policy_fingerprint(cfg: ProcgenCollectConfig) -> str | None:
    """SHA-256 of the saved behaviour policies' weights (they decide the data, not the path);
    several policies: their digests joined by commas."""
    if cfg.policy in SCRIPTED_POLICIES:
        return None
    digests = []
    for ref in policy_refs(cfg.policy):
        w = _policy_dir(ref) / "model.safetensors"
        if not w.exists():
            raise ConfigError(f"policy {ref!r}: missing {w}")
        digests.append(sha256_file(w))
    return ",".join(digests)


class RepeatRandom:
    """Uniform random actions, each held for a uniform 1-10 steps per slot (World Models' data policy)."""

    def __init__(self, rng: np.random.Generator, max_repeat: int = 10) -> None:
        self.rng, self.max_repeat = rng, max_repeat
        self.action: np.ndarray | None = None
        self.left: np.ndarray | None = None

    def __call__(self, obs: np.ndarray, env: Any) -> np.ndarray:
        n = len(obs)
        if self.action is None or len(self.action) != n:
            self.action = np.zeros(n, np.int64)
            self.left = np.zeros(n, np.int64)
        new = self.left <= 0
        k = int(new.sum())
        if k:
            self.action[new] = self.rng.integers(0, NUM_ACTIONS, size=k)
            self.left[new] = self.rng.integers(1, self.max_repeat + 1, size=k)
        self.left -= 1
        return self.action.copy()


def _make_policy(cfg: ProcgenCollectConfig, j: int) -> Callable[[np.ndarray, Any], np.ndarray]:
    """The behaviour policy of shard ``j``: ``(obs (N,64,64,3), env) -> actions (N,)``."""
    rng = np.random.default_rng([cfg.seed, j, 1])
    if cfg.policy == "random":
        return lambda obs, env: rng.integers(0, NUM_ACTIONS, size=len(obs), dtype=np.int64)
    if cfg.policy == "random_repeat":
        return RepeatRandom(rng)
    if cfg.policy == "oracle":
        return MazeOracle()
    from simlab.policies.saved import SavedPolicy

    pols = [SavedPolicy.load(_policy_dir(ref)) for ref in policy_refs(cfg.policy)]
    for pol in pols:
        pol.rng = rng  # actions sampled from the policy's softmax with the shard's stream
    if len(pols) == 1:
        return lambda obs, env: pols[0].act(obs, deterministic=False)

    def mixed(obs: np.ndarray, env: Any) -> np.ndarray:
        """Slot ``k`` follows policy ``k % len(pols)`` (each policy sees only its own slots)."""
        act = np.empty(len(obs), np.int64)
        for i, pol in enumerate(pols):
            act[i::len(pols)] = pol.act(obs[i::len(pols)], deterministic=False)
        return act

    return mixed


# ---- collection ---------------------------------------------------------------------------

def rollout_shard(cfg: ProcgenCollectConfig, j: int) -> dict[str, np.ndarray]:
    """The arrays of shard ``j`` (see the module docstring); a pure function of ``(cfg, j)``."""
    start, stop = cfg.shard_range(j)
    count, n = stop - start, cfg.num_envs
    spe = -(-count // n)  # steps per env slot
    lengths = np.clip(count - np.arange(n) * spe, 0, spe)  # slot k keeps its first lengths[k] steps
    env = ProcgenVecEnv(cfg.game, n, options=cfg.options(j))
    policy = _make_policy(cfg, j)
    obs_b = np.empty((spe, n, *OBS_SHAPE), np.uint8)
    act_b = np.empty((spe, n), np.int64)
    rew_b = np.empty((spe, n), np.float32)
    term_b = np.empty((spe, n), bool)
    trunc_b = np.empty((spe, n), bool)
    seed_b = np.empty((spe, n), np.int64)
    boxes_of = getattr(env.game, "hazard_boxes", None)
    box_b = [] if boxes_of is not None else None
    finals: list[dict[int, np.ndarray]] = [{} for _ in range(n)]  # slot -> {step: next obs at segment end}
    obs, info = env.reset()
    for t in range(spe):
        obs_b[t], seed_b[t] = obs, info["level_seed"]
        if box_b is not None:
            box_b.append(boxes_of())  # the game state that obs shows
        act_b[t] = policy(obs, env)
        obs, rew_b[t], term_b[t], trunc_b[t], info = env.step(act_b[t])
        done = term_b[t] | trunc_b[t]
        for k in np.flatnonzero((done | (lengths - 1 == t)) & (lengths > t)):
            finals[k][t] = info["final_obs"][k] if done[k] else obs[k].copy()
    env.close()

    out: dict[str, list[np.ndarray]] = {k: [] for k in (*STEP_KEYS, "final_obs")}
    if box_b is not None:
        boxes = np.stack(box_b)  # (spe, n, K, 4)
        out["hazard_boxes"] = []
    base = 0
    for k in range(n):
        ln = int(lengths[k])
        if ln == 0:
            continue
        done = term_b[:ln, k] | trunc_b[:ln, k]
        first = np.concatenate([[True], done[:-1]])  # a segment starts at t=0 and after each done
        seg_start = np.maximum.accumulate(np.where(first, np.arange(ln), 0))
        out["obs"].append(obs_b[:ln, k])
        out["actions"].append(act_b[:ln, k])
        out["rewards"].append(rew_b[:ln, k])
        out["terminations"].append(term_b[:ln, k])
        out["truncations"].append(trunc_b[:ln, k])
        out["level_seed"].append(seed_b[:ln, k])
        out["episode_id"].append(start + base + seg_start)
        out["final_obs"].append(np.stack([finals[k][t] for t in sorted(finals[k])]))
        if box_b is not None:
            out["hazard_boxes"].append(boxes[:ln, k])
        base += ln
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    assert len(arrays["final_obs"]) == len(np.unique(arrays["episode_id"]))
    return arrays


def _episodes_in(path: Path) -> dict[str, int]:
    """Extra shard-record field: episode segments in the shard."""
    with open_h5(path) as f:
        return {"episodes": int(f["final_obs"].shape[0]) if "final_obs" in f else 0}


def _collect_record(cfg: ProcgenCollectConfig) -> dict[str, Any]:
    """What must match for two runs to write the same dataset (config + behaviour-policy weights)."""
    return {"config": asdict(cfg), "policy_sha256": _policy_fingerprint(cfg)}


TRANSITION_OVERHEAD = 64
"""Bytes per transition besides its frame (action, reward, flags, level seed, episode id; each
held twice while a shard is assembled), rounded up."""


def check_resources(cfg: ProcgenCollectConfig, root: Path, resume: bool = False) -> None:
    """Refuse (ConfigError, one line naming the figure) a collection that cannot fit, before any
    env is built or anything is written.

    Memory of one shard (:func:`rollout_shard`): the ``(steps per slot, num_envs)`` frame buffer
    (>= the shard's transitions), its concatenated copy, one final frame per slot, the
    per-transition scalars, and ``num_envs`` x 8 frames for the batched env's observation and
    render buffers and a saved policy's float input. Disk: every transition's 64x64x3 uint8 frame
    at :data:`simlab.resources.MIN_GZIP_RATIO` (gzip is assumed to shrink frames at most 10x, so
    the figure is a lower bound and a refusal is certain), less what a resumed collection has
    already written.
    """
    from simlab.resources import FRAME_BYTES, MIN_GZIP_RATIO, bytes_under, check_disk, check_memory

    per_shard = min(cfg.transitions, cfg.transitions_per_shard)
    n = cfg.num_envs
    buffered = -(-per_shard // n) * n
    check_memory((buffered + per_shard + n) * FRAME_BYTES + 2 * per_shard * TRANSITION_OVERHEAD
                 + 8 * n * FRAME_BYTES,
                 f"a shard of {per_shard} transitions with {n} envs (64x64x3 frames)")
    need = cfg.transitions * FRAME_BYTES * MIN_GZIP_RATIO - (bytes_under(root) if resume else 0)
    check_disk(need, root, f"a dataset of {cfg.transitions} transitions (64x64x3 frames, gzip)")


def collect_procgen(cfg: ProcgenCollectConfig, out: str | Path, shard: tuple[int, int] = (0, 1),
                    resume: bool = False, progress: bool = True) -> CollectResult:
    """Roll out ``cfg.policy`` and write shards ``j`` with ``j % n == i`` for ``shard=(i, n)``.

    Writes ``collect_config.json`` first, each shard atomically (plus a small
    checksum sidecar) and ``manifest.json`` once every shard exists (the
    worker that finishes last writes it). With ``resume`` (implied for
    ``n > 1`` workers sharing ``out``) finished shards are skipped, so a killed
    collection resumed is byte-identical to an unbroken one. A request this machine cannot
    hold is refused first (:func:`check_resources`), with nothing written.
    """
    root = Path(out)
    check_resources(cfg, root, resume or shard[1] > 1)
    return collect_shards(root, cfg, shard, resume, _collect_record(cfg),
                          {"format_version": FORMAT_VERSION, "kind": KIND, "config": asdict(cfg)},
                          lambda j, tick: rollout_shard(cfg, j), {"obs", "final_obs"}, _episodes_in,
                          lambda: finalize(root, cfg), f"collect {cfg.game} {cfg.levels} ({cfg.policy})", "step",
                          progress)


def finalize(root: str | Path, cfg: ProcgenCollectConfig) -> bool:
    """Write ``manifest.json`` if every shard exists; returns whether the dataset is complete."""
    root = Path(root)
    if not all((root / shard_name(j)).exists() for j in range(cfg.num_shards())):
        return False
    episodes = sum(shard_record(root, j, *cfg.shard_range(j), extra=_episodes_in)["episodes"]
                   for j in range(cfg.num_shards()))
    rec = json.loads((root / RECORD_FILE).read_text())
    return finalize_manifest(root, cfg.num_shards(), cfg.shard_range, {
        "kind": KIND,
        "simlab_version": __version__,
        "config": asdict(cfg),
        "policy_sha256": rec["policy_sha256"],
        "env_id": ENV_IDS[cfg.game],
        "count": cfg.transitions,
        "episodes": int(episodes),
        "observation_shape": list(OBS_SHAPE),
        "observation_dtype": "uint8",
        "n_actions": NUM_ACTIONS,
        "start_level": cfg.start_level,
        "num_levels": cfg.num_levels,
    }, extra=_episodes_in)


# ---- reading --------------------------------------------------------------------------------

def check_spaces(source: str | Path, observation_shape: tuple[int, ...], observation_dtype: Any,
                 n_actions: int, env: Any) -> None:
    """ConfigError (one line) unless ``env`` observes ``observation_shape``/``dtype`` images and has
    ``Discrete(n_actions)`` actions. ``env``: a gymnasium ``Env`` or ``VectorEnv`` (single-env spaces)."""
    from gymnasium import spaces

    obs_space = getattr(env, "single_observation_space", None)
    obs_space = env.observation_space if obs_space is None else obs_space
    act_space = getattr(env, "single_action_space", None)
    act_space = env.action_space if act_space is None else act_space
    name = getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
    shape, dtype = tuple(observation_shape), np.dtype(observation_dtype)
    if not isinstance(obs_space, spaces.Box) or tuple(obs_space.shape) != shape \
            or np.dtype(obs_space.dtype) != dtype:
        got = (f"{tuple(obs_space.shape)} {np.dtype(obs_space.dtype)}" if isinstance(obs_space, spaces.Box)
               else type(obs_space).__name__)
        raise ConfigError(f"dataset {source} has observations {shape} {dtype} but env {name} observes {got}")
    if not isinstance(act_space, spaces.Discrete) or int(act_space.n) != n_actions:
        got = f"Discrete({act_space.n})" if isinstance(act_space, spaces.Discrete) else repr(act_space)
        raise ConfigError(f"dataset {source} has Discrete({n_actions}) actions but env {name} has {got}")


class TransitionDataset(ShardedTransitions):
    """Read a collected procgen transition dataset.

    Validates the manifest (kind, format version, config) and every shard's
    size on open (``verify=True`` also checks SHA-256); shard contents are
    checked against the manifest when read. Errors are :class:`DatasetError`
    naming the file. Opening, ``len``, ``load``, ``get`` and ``episodes`` are
    :class:`simlab.data.ShardedTransitions`'; ``load`` and ``get`` read only the
    requested transitions of each shard.
    """

    kind = KIND
    label = "procgen"
    config_class = ProcgenCollectConfig
    step_keys = STEP_KEYS

    def _parse_manifest(self, man: dict[str, Any]) -> None:
        self.observation_shape = tuple(int(v) for v in man["observation_shape"])
        self.observation_dtype = np.dtype(man["observation_dtype"])
        self.n_actions = int(man["n_actions"])

    def __repr__(self) -> str:
        return (f"TransitionDataset({str(self.root)!r}: {len(self)} transitions, {self.num_episodes} episodes, "
                f"{self.config.game} levels {self.config.levels}, policy {self.config.policy})")

    # ---- validation ---------------------------------------------------------------------------
    def check_env_compat(self, env: Any) -> None:
        """ConfigError (one line) unless ``env``'s observation shape/dtype and action count match.

        ``env`` is a gymnasium ``Env`` or ``VectorEnv`` (its single-env spaces are compared).
        """
        check_spaces(self.root, self.observation_shape, self.observation_dtype, self.n_actions, env)

    # ---- reading -----------------------------------------------------------------------------
    def _read(self, s: dict[str, Any], sel: Any, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Only the selected items of each array (HDF5 partial reads), checked against the manifest."""
        with self._open(s) as f:
            out = {k: read_h5_array(f, k, sel) for k in keys}
        n = len(range(*sel.indices(s["stop"] - s["start"]))) if isinstance(sel, slice) else len(sel)
        for k, v in out.items():
            if len(v) != n or (k == "obs" and v.shape[1:] != self.observation_shape):
                raise DatasetError(f"{self.root / s['file']}: array {k!r} has shape {v.shape}, "
                                   "inconsistent with the manifest")
        return out

    def iter_batches(self, batch_size: int = 1024,
                     keys: tuple[str, ...] = STEP_KEYS) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive batches of transitions."""
        for lo in range(0, len(self), batch_size):
            yield self.load(lo, min(len(self), lo + batch_size), keys)


# ---- Minari export ---------------------------------------------------------------------------

@contextlib.contextmanager
def _minari_root(root: str | Path | None) -> Iterator[None]:
    """Point ``MINARI_DATASETS_PATH`` at ``root`` for the duration (restored afterwards)."""
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def import_minari():  # -> module
    """Import minari or raise a one-line SimlabError saying how to install it."""
    try:
        import minari
    except ImportError:
        raise SimlabError("Minari export needs the 'minari' package: pip install minari") from None
    return minari


def check_minari_id(dataset_id: str, minari_root: str | Path | None = None) -> Path:
    """Where a new Minari dataset ``dataset_id`` would be written, checked before any data is
    collected: Minari's own parser accepts the id as ``(namespace/)name-v<version>`` and no dataset
    exists there yet. ConfigError (one line) otherwise."""
    import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ConfigError(f"--minari {dataset_id!r} is not a Minari dataset id: use (namespace/)name-v<version>, "
                          "e.g. simlab/maze-random-v0") from None
    with _minari_root(minari_root):
        from minari.storage.datasets_root_dir import get_dataset_path

        path = Path(get_dataset_path(dataset_id))
    if path.exists():
        raise ConfigError(f"Minari dataset {dataset_id!r} already exists at {path}; choose another id")
    return path


def export_minari(dataset_dir: str | Path, dataset_id: str, minari_root: str | Path | None = None,
                  progress: bool = False) -> Path:
    """Convert a transition dataset to a Minari dataset (Farama's offline-RL format); returns its path.

    Every episode segment becomes one Minari episode (observations T+1,
    actions T, ...; ``options={"level_seed": s}`` replays its level).
    Segments cut by the end of a shard's rollout are stored with
    ``truncations[-1] = True``, as Minari expects every episode to end. Images
    are stored raw (``jpeg_encoding=False``: lossless). ``minari_root``
    (default: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``) is a local
    directory; nothing is downloaded.
    """
    minari = import_minari()
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer
    from tqdm import tqdm

    check_minari_id(dataset_id, minari_root)
    ds = TransitionDataset(dataset_dir)
    obs_space = spaces.Box(0, 255, ds.observation_shape, ds.observation_dtype)
    act_space = spaces.Discrete(ds.n_actions)
    cfg = ds.config

    def buffers() -> Iterator[EpisodeBuffer]:
        for ep in tqdm(ds.episodes(), total=ds.num_episodes, desc="export minari", unit="episode",
                       disable=not progress, leave=False):
            trunc = ep["truncations"].copy()
            trunc[-1] |= ep["cut"]
            yield EpisodeBuffer(observations=ep["observations"], actions=ep["actions"],
                                rewards=ep["rewards"], terminations=ep["terminations"], truncations=trunc,
                                options={"level_seed": int(ep["level_seed"][0])})

    with _minari_root(minari_root):
        from minari.storage.datasets_root_dir import get_dataset_path

        path = Path(get_dataset_path(dataset_id))
        if path.exists():
            raise ConfigError(f"Minari dataset {dataset_id!r} already exists at {path}; choose another id")
        chunk: list[EpisodeBuffer] = []
        made = None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module=r"minari(\.|$)")
                for buf in buffers():
                    chunk.append(buf)
                    if len(chunk) == 256:
                        made = _flush(minari, made, chunk, dataset_id, obs_space, act_space, cfg)
                        chunk = []
                if chunk or made is None:
                    made = _flush(minari, made, chunk, dataset_id, obs_space, act_space, cfg)
        except BaseException:
            if path.exists():
                import shutil

                shutil.rmtree(path)
            raise
    return path


def _env_spec(cfg: ProcgenCollectConfig) -> Any:
    """Gymnasium EnvSpec of the dataset's env and level range (so Minari can recreate it)."""
    import dataclasses

    import gymnasium

    import simlab  # noqa: F401  (registers the envs)

    spec = gymnasium.spec(ENV_IDS[cfg.game])
    return dataclasses.replace(spec, kwargs={**spec.kwargs, "num_levels": cfg.num_levels,
                                             "start_level": cfg.start_level,
                                             "distribution_mode": cfg.distribution_mode})


def _flush(minari: Any, made: Any, chunk: list[Any], dataset_id: str, obs_space: Any, act_space: Any,
           cfg: ProcgenCollectConfig) -> Any:
    """Create the Minari dataset from the first chunk of episodes, then append later chunks."""
    if made is None:
        return minari.create_dataset_from_buffers(
            dataset_id, chunk, env=_env_spec(cfg), observation_space=obs_space, action_space=act_space,
            algorithm_name=f"simlab collect procgen (policy: {cfg.policy})", author="simlab",
            description=(f"simlab {cfg.game} ({cfg.distribution_mode}, levels {cfg.levels}) transitions "
                         f"from policy {cfg.policy}, seed {cfg.seed}; env {ENV_IDS[cfg.game]}"),
            jpeg_encoding=False)
    made.update_dataset_from_buffer(chunk)
    return made
