"""Scripted-expert grasp demonstrations as sharded HDF5 (``simlab collect toygrasp``).

A dataset is a directory of HDF5 shards plus ``manifest.json`` (see
:mod:`simlab.data`); ``kind = "simlab.toygrasp.demos"``. Demo ``d`` grasps
object ``objects[d * len(objects) // demos]`` of the split (for
``toys-train`` the first ``toys`` toy seeds, so each toy gets ``demos /
toys`` consecutive demos, and MuJoCo compiles one model per toy) from a
reset seeded by ``(seed, d)``; shard ``j`` holds demos ``[j * demos_per_shard,
...)`` rolled out in a fresh env. A shard is therefore a pure function of
``(config, j)``: ``--shard i/n`` workers, a resumed collection and an
unbroken one write byte-identical files. Every attempt is stored, with its
``success`` flag (failed attempts included; filter on it for BC).

Arrays of a shard (``n`` steps, ``m`` demos; each demo's steps contiguous):

=============== ==================== ================================================
``rgb``         (n, H, W, 3) uint8   camera frame the action was taken in (gzip)
``mask``        (n, H, W) uint8      target object's mask, 0/255 (gzip)
``proprio``     (n, 8) float32       7 arm joint angles (rad), gripper width (m)
``actions``     (n, 5) float32       expert action (dx, dy, dz, dyaw, grip) in [-1, 1] (the label;
                                     with ``noise`` > 0 the executed action had DART noise added)
``rewards``     (n,) float32         1 on the success step
``terminations`` (n,) bool           the step ended the demo with success
``truncations`` (n,) bool            the step hit the 50-step limit
``demo_id``     (n,) int64           dataset index of the demo
``demo_start``  (m,) int64           first step of each demo in the shard
``demo_length`` (m,) int64           steps of each demo
``success``     (m,) bool            lifted >= 10 cm and held 1 s
``object``      (m,) bytes (S32)     object name (``toy/17``, ``duck``, ...)
``reset_seed``  (m,) int64           seed passed to ``env.reset`` (replays the start)
``goal``        (m, 2) float32       shortcut scene only: target colour one-hot [red, blue]
``view_y``      (m,) float32         shortcut scene only: camera eye y, m
``swapped``     (m,) bool            shortcut scene only: the other sub-dataset's task
``object_masks`` (n, K, H, W) uint8  with ``object_masks=True`` only: one mask per object on the
                                     table, 0/255, in image order (the env's ``objects``
                                     observation, K = 2; gzip)
=============== ==================== ================================================

``scene="shortcut"`` (:mod:`~simlab.envs.toygrasp.shortcut`) records the
shortcut probe's fragmented dataset: two recoloured toys per demo, the task
and camera viewpoint tied to the sub-dataset (pybullet only).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab import __version__
from simlab.data import (
    FORMAT_VERSION,
    CollectResult,
    check_shards,
    collect_shards,
    finalize_manifest,
    open_h5,
    read_h5_array,
    read_manifest,
    shard_name,
    shard_record,
)
from simlab.envs.toygrasp.env import BACKENDS
from simlab.envs.toygrasp.splits import SPLIT_NAMES, TRAIN_TOYS, split_objects
from simlab.errors import ConfigError, DatasetError

KIND = "simlab.toygrasp.demos"
ENV_IDS = {"pybullet": "simlab/ToyGrasp-v0", "mujoco": "simlab/ToyGraspMJ-v0"}
MAX_STEPS = 50
STEP_KEYS = ("rgb", "mask", "proprio", "actions", "rewards", "terminations", "truncations", "demo_id")
DEMO_KEYS = ("demo_start", "demo_length", "success", "object", "reset_seed")
OPTIONAL_DEMO_KEYS = ("goal", "view_y", "swapped")
"""Shortcut scene only: target colour one-hot (m, 2) [red, blue], camera eye y (m,) m, task swapped (m,)."""
OPTIONAL_STEP_KEYS = ("object_masks",)
"""With ``object_masks=True`` only: per-object masks (n, K, H, W) uint8 (absent in older datasets)."""


@dataclass(frozen=True)
class GraspCollectConfig:
    """Everything that determines a toy-grasp demo dataset's content."""

    backend: str = "pybullet"
    """pybullet | mujoco."""
    split: str = "toys-train"
    """Object set: toys-train | toys-test | objects."""
    toys: int = TRAIN_TOYS
    """Training toys (toy seeds 0..toys-1) when split is toys-train."""
    demos: int = 2500
    """Number of demos (attempts) D."""
    seed: int = 0
    """Seed of the reset streams (demo d resets with a seed drawn from (seed, d))."""
    resolution: int = 96
    """Image side in pixels."""
    demos_per_shard: int = 50
    """Demos per shard file (part of the content)."""
    scene: str = "single"
    """single (one object) | shortcut (two toys, red and blue, two camera viewpoints: the fragmented
    dataset of the shortcut probe, :mod:`~simlab.envs.toygrasp.shortcut`; pybullet, toys-train only)."""
    overlap: float = 0.0
    """shortcut scene: fraction of demos whose task is the other sub-dataset's (0-1)."""
    view_aug: bool = False
    """shortcut scene: draw each demo's camera viewpoint at random between the two views."""
    noise: float = 0.0
    """DART noise (Laskey et al. 2017): std, in action units, of Gaussian noise added to the executed
    move and yaw while the expert approaches the grasp (:func:`dart_action`); the recorded label stays
    the expert's action, so the demos show how the expert corrects a hand that is off course. 0: off."""
    object_masks: bool = False
    """Also record one mask per object on the table (``object_masks``, the env's ``objects``
    observation), the input of the slot encoder (:mod:`simlab.policies.grasp_slots`)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; one of {', '.join(BACKENDS)}")
        if self.split not in SPLIT_NAMES:
            raise ConfigError(f"unknown toygrasp split {self.split!r}; one of {', '.join(SPLIT_NAMES)}")
        for name in ("toys", "demos", "demos_per_shard"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 16 <= self.resolution <= 512:
            raise ConfigError(f"--resolution must be in 16..512, got {self.resolution}")
        split_objects(self.split, self.toys)  # validates toys
        if self.scene not in ("single", "shortcut"):
            raise ConfigError(f"unknown scene {self.scene!r}; single | shortcut")
        if self.scene == "shortcut" and (self.backend != "pybullet" or self.split != "toys-train"
                                         or self.toys < 2):
            raise ConfigError("the shortcut scene needs --backend pybullet, --split toys-train and --toys >= 2")
        if not 0.0 <= self.overlap <= 1.0:
            raise ConfigError(f"--overlap must be in [0, 1], got {self.overlap}")
        if not 0.0 <= self.noise <= 1.0:  # also refuses NaN
            raise ConfigError(f"--noise must be in [0, 1] action units, got {self.noise}")

    def num_shards(self) -> int:
        return -(-self.demos // self.demos_per_shard)

    def record(self) -> dict[str, Any]:
        """The fields written to ``collect_config.json``, shard attributes and the manifest.

        ``noise`` (``object_masks``) is left out when 0 (false), so datasets collected before the
        field existed stay byte-identical to (and resumable by) this code; a reader fills the
        default back in.
        """
        rec = asdict(self)
        if not self.noise:
            del rec["noise"]
        if not self.object_masks:
            del rec["object_masks"]
        return rec

    def shard_range(self, j: int) -> tuple[int, int]:
        """Demo index range ``[start, stop)`` of shard ``j``."""
        start = j * self.demos_per_shard
        return start, min(self.demos, start + self.demos_per_shard)

    def demo(self, d: int) -> tuple[str, int]:
        """``(object name, reset seed)`` of demo ``d``."""
        objects = split_objects(self.split, self.toys)
        seed = int(np.random.SeedSequence([self.seed, d]).generate_state(1)[0])
        return objects[d * len(objects) // self.demos], seed

    def reset_options(self, d: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(env reset options, extra demo fields)`` of demo ``d`` (the shortcut scene's task and view)."""
        name, _ = self.demo(d)
        if self.scene == "single":
            return {"object": name}, {}
        from simlab.envs.toygrasp.shortcut import shortcut_demo

        objects = split_objects(self.split, self.toys)
        return shortcut_demo(self.seed, d, name, objects, self.overlap, self.view_aug)


DART_MIN_DISTANCE = 0.5
"""Action units (2 cm): no noise once the expert's commanded move is this small, so it settles exactly
on its waypoint (its phase advances only when it is within 1e-3 of it)."""


def dart_action(action: np.ndarray, phase: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """The action executed for expert ``action`` (5,) under DART noise.

    Gaussian noise of std ``noise`` (action units) is added to the move (dx, dy, dz) and yaw while
    the expert approaches (``phase`` < 2: above the grasp, then down) and is still at least
    :data:`DART_MIN_DISTANCE` from its waypoint; the gripper command is never perturbed. The env
    integrates commanded moves exactly, so the expert's next action corrects the deviation: that
    correction is what the policy learns from. Returns a new array in [-1, 1]; ``noise = 0`` returns
    ``action`` unchanged (and draws nothing from ``rng``).
    """
    if noise <= 0.0 or phase >= 2 or np.abs(action[:3]).max() < DART_MIN_DISTANCE:
        return action
    out = action.copy()
    out[:4] = np.clip(out[:4] + rng.normal(0.0, noise, 4), -1.0, 1.0)
    return out.astype(np.float32)


def rollout_shard(cfg: GraspCollectConfig, j: int, on_demo: Any = None) -> dict[str, np.ndarray]:
    """The arrays of shard ``j`` (module docstring), from a fresh env and the scripted expert."""
    from simlab.envs.toygrasp.env import ToyGraspEnv
    from simlab.envs.toygrasp.expert import ScriptedExpert

    env = ToyGraspEnv(cfg.backend, split=cfg.split, train_toys=cfg.toys, resolution=cfg.resolution,
                      object_masks=cfg.object_masks)
    expert = ScriptedExpert(env)
    steps: dict[str, list[Any]] = {k: [] for k in (*STEP_KEYS, *(OPTIONAL_STEP_KEYS if cfg.object_masks else ()))}
    demos: dict[str, list[Any]] = {k: [] for k in DEMO_KEYS}
    try:
        for d in range(*cfg.shard_range(j)):
            name, seed = cfg.demo(d)
            options, extra = cfg.reset_options(d)
            obs, info = env.reset(seed=seed, options=options)
            noise_rng = np.random.default_rng([cfg.seed, d, 0xDA27])
            start = len(steps["actions"])
            for t in range(MAX_STEPS):
                a = expert.act(obs)
                nxt, r, term, _, info = env.step(dart_action(a, expert.phase, noise_rng, cfg.noise))
                trunc = not term and t == MAX_STEPS - 1
                for k, v in (("rgb", obs["rgb"]), ("mask", obs["mask"][..., 0]), ("proprio", obs["proprio"]),
                             ("actions", a), ("rewards", np.float32(r)), ("terminations", term),
                             ("truncations", trunc), ("demo_id", d)):
                    steps[k].append(v)
                if cfg.object_masks:
                    steps["object_masks"].append(obs["objects"])
                obs = nxt
                if term:
                    break
            for k, v in (("demo_start", start), ("demo_length", len(steps["actions"]) - start),
                         ("success", bool(info["is_success"])), ("object", name.encode()), ("reset_seed", seed)):
                demos[k].append(v)
            for k, v in extra.items():
                demos.setdefault(k, []).append(v)
            if on_demo is not None:
                on_demo()
    finally:
        env.close()
    dtypes = {"rgb": np.uint8, "mask": np.uint8, "proprio": np.float32, "actions": np.float32,
              "rewards": np.float32, "terminations": bool, "truncations": bool, "demo_id": np.int64,
              "demo_start": np.int64, "demo_length": np.int64, "success": bool, "object": "S32",
              "reset_seed": np.int64, "goal": np.float32, "view_y": np.float32, "swapped": bool,
              "object_masks": np.uint8}
    out = {k: np.asarray(v, dtypes[k]) for k, v in {**steps, **demos}.items()}
    return out


def _demos_in(path: Path) -> dict[str, int]:
    with open_h5(path) as f:
        return {"demos": int(f["success"].shape[0]), "successes": int(np.sum(f["success"][()])),
                "steps": int(f["actions"].shape[0])}


STEP_OVERHEAD = 1024
"""Bytes per recorded step besides its frames while a shard is assembled: proprio (32), action
(20), reward, flags and demo id, each a numpy object in a Python list (~100 B apiece), rounded up."""


def check_resources(cfg: GraspCollectConfig, root: Path, resume: bool = False) -> None:
    """Refuse (ConfigError, one line naming the figure) a collection that cannot fit, before the
    simulator is started or anything is written.

    Memory of one shard (:func:`rollout_shard`): ``demos_per_shard`` demos of up to
    :data:`MAX_STEPS` steps, each an RGB frame and a mask at ``resolution``, held once in the
    per-step lists and once in the stacked arrays, plus :data:`STEP_OVERHEAD` per step. Disk: at
    least :data:`~simlab.envs.toygrasp.env.HOLD_STEPS` steps per demo (a success needs that many;
    failures run all 50) of RGB frames at :data:`simlab.resources.MIN_GZIP_RATIO` (gzip assumed to
    shrink frames at most 10x; masks not counted), a lower bound so a refusal is certain, less what
    a resumed collection has already written.
    """
    from simlab.envs.toygrasp.env import HOLD_STEPS, MAX_OBJECTS
    from simlab.resources import MIN_GZIP_RATIO, bytes_under, check_disk, check_memory

    per_shard = min(cfg.demos, cfg.demos_per_shard)
    rgb = cfg.resolution ** 2 * 3
    frame = rgb + cfg.resolution ** 2 * (1 + (MAX_OBJECTS if cfg.object_masks else 0))  # + the uint8 mask(s)
    check_memory(per_shard * MAX_STEPS * (2 * frame + STEP_OVERHEAD),
                 f"a shard of {per_shard} demos at {cfg.resolution}px (up to {MAX_STEPS} steps each)")
    need = cfg.demos * HOLD_STEPS * rgb * MIN_GZIP_RATIO - (bytes_under(root) if resume else 0)
    check_disk(need, root, f"a dataset of {cfg.demos} demos at {cfg.resolution}px (gzip)")


def collect_toygrasp(cfg: GraspCollectConfig, out: str | Path, shard: tuple[int, int] = (0, 1),
                     resume: bool = False, progress: bool = True) -> CollectResult:
    """Roll out the scripted expert and write shards ``j`` with ``j % n == i`` for ``shard=(i, n)``.

    ``collect_config.json`` first, each shard atomically (temp file + rename),
    ``manifest.json`` once every shard exists. With ``resume`` (implied for
    ``n > 1``) finished shards are skipped. A request this machine cannot hold is refused
    first (:func:`check_resources`), with nothing written.
    """
    root = Path(out)
    check_resources(cfg, root, resume or shard[1] > 1)
    return collect_shards(root, cfg, shard, resume, {"config": cfg.record()},
                          {"format_version": FORMAT_VERSION, "kind": KIND, "config": cfg.record()},
                          lambda j, tick: rollout_shard(cfg, j, on_demo=lambda: tick(1)), {"rgb", "mask", "object_masks"},
                          _demos_in, lambda: finalize(root, cfg),
                          f"collect toygrasp {cfg.split} ({cfg.backend})", "demo", progress)


def finalize(root: str | Path, cfg: GraspCollectConfig) -> bool:
    """Write ``manifest.json`` if every shard exists; returns whether the dataset is complete."""
    root = Path(root)
    if not all((root / shard_name(j)).exists() for j in range(cfg.num_shards())):
        return False
    recs = [shard_record(root, j, *cfg.shard_range(j), extra=_demos_in) for j in range(cfg.num_shards())]
    return finalize_manifest(root, cfg.num_shards(), cfg.shard_range, {
        "kind": KIND,
        "simlab_version": __version__,
        "config": cfg.record(),
        "env_id": ENV_IDS[cfg.backend],
        "count": cfg.demos,
        "successes": int(sum(r["successes"] for r in recs)),
        "steps": int(sum(r["steps"] for r in recs)),
    }, extra=_demos_in)


class GraspDemos:
    """Reader of a toy-grasp demo dataset (manifest and shard sizes checked on open)."""

    def __init__(self, root: str | Path, verify: bool = False) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root, KIND)
        try:
            self.config = GraspCollectConfig(**self.manifest["config"])
        except (KeyError, TypeError, ConfigError) as e:
            raise DatasetError(f"{self.root / 'manifest.json'}: invalid toygrasp manifest ({e})") from None
        check_shards(self.root, self.manifest, verify=verify)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def success_rate(self) -> float:
        return self.manifest["successes"] / max(1, len(self))

    def shard(self, k: int) -> dict[str, np.ndarray]:
        """Every array of the ``k``-th shard listed in the manifest."""
        s = self.manifest["shards"][k]
        with open_h5(self.root / s["file"]) as f:
            if f.attrs.get("kind") != KIND:
                raise DatasetError(f"{self.root / s['file']}: not a {KIND} shard")
            optional = (*OPTIONAL_DEMO_KEYS, *OPTIONAL_STEP_KEYS)
            return {name: read_h5_array(f, name) for name in (*STEP_KEYS, *DEMO_KEYS, *optional)
                    if name in f or name not in optional}

    def episodes(self):  # -> Iterator[dict[str, Any]]
        """Every demo in order: per-step arrays sliced to the demo, plus ``success``, ``object``, ``demo_id``."""
        for k in range(len(self.manifest["shards"])):
            a = self.shard(k)
            for e, (lo, ln) in enumerate(zip(a["demo_start"], a["demo_length"])):
                ep = {key: a[key][lo:lo + ln] for key in (*STEP_KEYS, *OPTIONAL_STEP_KEYS) if key in a}
                ep.update(success=bool(a["success"][e]), object=a["object"][e].decode(),
                          demo_id=int(a["demo_id"][lo]), reset_seed=int(a["reset_seed"][e]))
                ep.update({key: a[key][e] for key in OPTIONAL_DEMO_KEYS if key in a})
                yield ep

    def __repr__(self) -> str:
        return (f"GraspDemos({str(self.root)!r}, demos={len(self)}, backend={self.config.backend}, "
                f"split={self.config.split}, success={self.success_rate:.1%})")


def summary_json(res: CollectResult, cfg: GraspCollectConfig) -> dict[str, Any]:
    """The CLI's summary of one collection run."""
    man = json.loads((Path(res.out) / "manifest.json").read_text()) if res.complete else {}
    return {"out": res.out, "demos": cfg.demos, "backend": cfg.backend, "split": cfg.split,
            "shards_written": len(res.written), "shards_skipped": len(res.skipped), "complete": res.complete,
            "seconds": round(res.seconds, 3), "successes": man.get("successes"),
            "demos_per_second": round(res.items_written / res.seconds, 3)
            if res.seconds > 0 and res.items_written else None}
