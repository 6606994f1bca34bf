"""Behaviour cloning of grasps from toy demos: detection pooling vs mean pooling, action chunks.

Reads top to bottom (CleanRL style): :class:`GraspBCConfig` holds every
hyperparameter; :func:`load_grasp_data` reads the successful demos of a
``simlab collect toygrasp`` dataset; :func:`train_grasp_bc` fits a
:class:`~simlab.policies.grasp_net.GraspBCNet` with a squared-error loss on
action chunks (``loss=l1``: the paper's L1, see :class:`GraspBCConfig`) and
writes a run directory::

    RUN/config.yaml                  the resolved GraspBCConfig
    RUN/metrics.jsonl                train/loss (per action dim), train/l1, train/epoch, time/steps_per_s
    RUN/checkpoints/latest/          policy/ (config.json + model.safetensors), trainer state
                                     (the format of :func:`simlab.policies.bc.save_checkpoint`)
    RUN/policy/                      the final policy (:class:`GraspBCPolicy` format)
    RUN/eval/<backend>/eval_info.json  evaluation in the real envs (when eval_episodes > 0), + mp4s

A training sample is demo step ``t``: the frames, masks and proprioception
of steps ``t - context + 1 .. t`` (repeating the demo's first step before
its start) and the expert's actions of steps ``t .. t + chunk - 1``
(repeating the demo's last action after its end: the expert holds the lift).

Determinism and resume are those of :mod:`simlab.policies.bc`: weights from
``seed``; epoch ``e`` visits the samples in ``default_rng([seed, e]).permutation(N)``
order and the image shifts of step ``s`` come from ``default_rng([seed, s, 1])``;
a checkpoint every epoch holds weights, optimizer and torch RNG, so a
resumed run ends with the same weights as an unbroken one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab.config import to_dict
from simlab.data import atomic_path, sha256_file
from simlab.errors import CheckpointError, ConfigError, DatasetError
from simlab.runs import RunDir

FORMAT_VERSION = 1
CLASS_NAME = "GraspBCNet"
PRESETS: dict[str, dict[str, Any]] = {
    "debug": {"steps": 20, "batch_size": 8, "patch": 4, "channels": 8, "hidden": 32, "chunk": 4, "context": 2,
              "execute": 2, "eval_episodes": 0, "log_every": 5, "checkpoint_every": 10},
}
"""Named presets of ``simlab train bc --encoder ...`` (applied in order, before ``key=value`` overrides)."""


@dataclass
class GraspBCConfig:
    """Grasp behaviour-cloning hyperparameters (one per field; CLI ``key=value`` overrides)."""

    data: str = ""
    """A ``simlab collect toygrasp`` dataset directory (only its successful demos are used)."""
    encoder: str = "detpool"
    """detpool (features pooled over the target mask) | meanpool (over the whole image) | slots (one
    detection-pooled slot per object mask, not told which is the target; the goal picks one by
    attention, :mod:`simlab.policies.grasp_slots`; needs a dataset with per-object masks)."""
    toys: int = 0
    """Use only demos of toys ``toy/0 .. toy/toys-1`` (0: every demo; for scaling curves)."""
    max_demos: int = 0
    """Use at most this many successful demos, spread evenly over the objects (0: all; see
    :func:`balanced_subset`)."""
    context: int = 2
    """Frames of history the policy sees (the current one included)."""
    chunk: int = 8
    """Future actions predicted per step (the action chunk)."""
    execute: int = 4
    """Actions of each predicted chunk executed before predicting again (1..chunk)."""
    patch: int = 8
    """Side of a feature cell in pixels (stride of the first conv; 96 px images -> 12 x 12 cells)."""
    channels: int = 48
    """Feature channels."""
    hidden: int = 256
    """Width of the head's hidden layers."""
    loss: str = "mse"
    """mse | l1 (the paper's). L1 fits the conditional median of each action entry; here most lateral
    moves in a chunk are 0 (the expert moves sideways only in its first 2-4 steps), and every L1 head
    we trained learned lateral moves of ~0.1 action units where the expert moved 1.5 (frozen
    encoder, 3,000 steps: mean |dy| 0.13 with L1 vs 1.41 with MSE, expert 1.54; docs/toygrasp.md)."""
    pooled_coords: bool = True
    """Append each feature cell's image coordinates after the convs, so pooling keeps the target's
    position (:mod:`simlab.policies.grasp_net`); false reproduces the first runs' network."""
    shift: int = 4
    """Random image shift augmentation, +-pixels (the same for RGB and mask; 0: off)."""
    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 64
    """Samples per gradient step."""
    lr: float = 1e-3
    """AdamW learning rate (cosine-decayed to 10% over the run)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    seed: int = 0
    """Seed of the weights, the data order, the augmentation and the evaluation episodes."""
    device: str = "cpu"
    """cpu | cuda | cuda:N | auto."""
    log_every: int = 100
    """Log train/ metrics every this many steps."""
    checkpoint_every: int = 500
    """Write the resumable checkpoint every this many steps (and at the end)."""
    eval_episodes: int = 0
    """Episodes per split and engine evaluated after training (0: no evaluation)."""
    eval_splits: tuple[str, ...] = ("toys-test", "objects")
    """Splits to evaluate on (toys-train | toys-test | objects)."""
    eval_backends: tuple[str, ...] = ("pybullet", "mujoco")
    """Engines to evaluate in (the data's engine and the other one: the cross-simulator gap)."""
    eval_videos: int = 2
    """Episodes recorded to mp4 per split and engine."""

    def __post_init__(self) -> None:
        from simlab.policies.grasp_net import ENCODERS

        if self.encoder not in ENCODERS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; one of {', '.join(ENCODERS)}")
        for name in ("context", "chunk", "execute", "patch", "channels", "hidden", "steps", "batch_size",
                     "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("toys", "max_demos", "shift", "eval_episodes", "eval_videos"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.loss not in ("mse", "l1"):
            raise ConfigError(f"unknown loss {self.loss!r}; mse | l1")
        if self.execute > self.chunk:
            raise ConfigError(f"execute ({self.execute}) must be <= chunk ({self.chunk})")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        for b in self.eval_backends:
            if b not in ("pybullet", "mujoco"):
                raise ConfigError(f"unknown eval backend {b!r}; pybullet | mujoco")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


def grasp_bc_config(presets: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()
                    ) -> GraspBCConfig:
    """Defaults <- each named preset of :data:`PRESETS` in order <- each ``key=value`` override."""
    from simlab.config import from_dict, parse_override

    data = to_dict(GraspBCConfig())
    for name in presets:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r} for grasp BC; available: {', '.join(PRESETS)}")
        data.update(PRESETS[name])
    for ov in overrides:
        path, value = parse_override(ov)
        if len(path) != 1 or path[0] not in data:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(data))}")
        data[path[0]] = value
    return from_dict(GraspBCConfig, data)


# ---- data --------------------------------------------------------------------------------------

@dataclass
class GraspData:
    """The steps of the training demos, concatenated (``N`` steps).

    Attributes:
        rgb: ``(N, H, W, 3)`` uint8 frames; mask: ``(N, H, W)`` uint8 target masks (0/255);
        proprio: ``(N, 8)`` float32; actions: ``(N, 5)`` float32 in [-1, 1];
        start, stop: ``(N,)`` int64, the first step and one past the last step of each step's demo;
        goal: ``(N, G)`` float32 goal vectors, or None;
        source, fingerprint, demos, objects: provenance;
        object_masks: ``(N, K, H, W)`` uint8 per-object masks (0/255, image order), or None (not
        loaded, or not in the dataset).
    """

    rgb: np.ndarray
    mask: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    goal: np.ndarray | None
    source: str
    fingerprint: str
    demos: int
    objects: int
    backend: str
    object_masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)

    def context_index(self, idx: np.ndarray, context: int) -> np.ndarray:
        """``(B, context)`` step indices of the history of steps ``idx`` (B,), oldest first."""
        off = np.arange(context - 1, -1, -1)
        return np.maximum(idx[:, None] - off[None], self.start[idx][:, None])

    def chunk_index(self, idx: np.ndarray, chunk: int) -> np.ndarray:
        """``(B, chunk)`` step indices of the actions to predict at steps ``idx`` (B,)."""
        return np.minimum(idx[:, None] + np.arange(chunk)[None], self.stop[idx][:, None] - 1)


def balanced_subset(eps: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """At most ``count`` demos spread evenly over objects: every object's first demo (in dataset
    order), then every object's second, ...; returned in dataset order."""
    by_obj: dict[str, list[int]] = {}
    for i, ep in enumerate(eps):
        by_obj.setdefault(ep["object"], []).append(i)
    order = [ids[r] for r in range(max(map(len, by_obj.values()), default=0)) for ids in by_obj.values()
             if r < len(ids)]
    return [eps[i] for i in sorted(order[:count])]


def load_grasp_data(root: str, toys: int = 0, max_demos: int = 0, object_masks: bool = False) -> GraspData:
    """The successful demos of a toy-grasp dataset: of toys ``toy/0 .. toy/toys-1`` only when
    ``toys`` > 0, at most ``max_demos`` of them (balanced over objects) when > 0; with
    ``object_masks`` also their per-object masks (the slot encoder's input).

    Raises:
        DatasetError: not a toy-grasp dataset, corrupt, no successful demo left after filtering, or
            ``object_masks`` asked of a dataset without them.
    """
    from simlab.envs.toygrasp.dataset import GraspDemos

    if not root:
        raise ConfigError("grasp BC needs a dataset: --data <dir from simlab collect toygrasp>")
    ds = GraspDemos(root)
    eps: list[dict[str, Any]] = []
    for ep in ds.episodes():
        name = ep["object"]
        if ep["success"] and (not toys or (name.startswith("toy/") and int(name[4:]) < toys)):
            eps.append(ep)
    if max_demos:
        eps = balanced_subset(eps, max_demos)
    if not eps:
        raise DatasetError(f"{root}: no successful demo" + (f" of toys 0..{toys - 1}" if toys else ""))
    if object_masks and any(ep.get("object_masks") is None for ep in eps):
        raise DatasetError(f"{root}: no per-object masks (the slots encoder needs a dataset collected with "
                           f"simlab collect toygrasp --object-masks)")
    keep: dict[str, list[np.ndarray]] = {k: [] for k in ("rgb", "mask", "proprio", "actions", "goal",
                                                         "object_masks")}
    bounds, n_steps = [], 0
    for ep in eps:
        n = len(ep["actions"])
        for k in ("rgb", "mask", "proprio", "actions"):
            keep[k].append(ep[k])
        if ep.get("goal") is not None:
            keep["goal"].append(np.repeat(np.asarray(ep["goal"], np.float32)[None], n, 0))
        if object_masks:
            keep["object_masks"].append(ep["object_masks"])
        bounds.append((n_steps, n_steps + n))
        n_steps += n
    if keep["goal"] and len(keep["goal"]) != len(eps):
        raise DatasetError(f"{root}: some demos have a goal and some do not")
    objects = {ep["object"] for ep in eps}
    start = np.concatenate([np.full(b - a, a, np.int64) for a, b in bounds])
    stop = np.concatenate([np.full(b - a, b, np.int64) for a, b in bounds])
    man = sha256_file(Path(root) / "manifest.json")
    fp = hashlib.sha256(f"{man}:{toys}:{max_demos}".encode()).hexdigest()
    return GraspData(np.concatenate(keep["rgb"]), np.concatenate(keep["mask"]),
                     np.concatenate(keep["proprio"]).astype(np.float32),
                     np.concatenate(keep["actions"]).astype(np.float32), start, stop,
                     np.concatenate(keep["goal"]) if keep["goal"] else None, str(root), fp, len(bounds),
                     len(objects), ds.config.backend,
                     np.concatenate(keep["object_masks"]) if object_masks else None)


def shift_images(rgb: np.ndarray, mask: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translate each sample's frames by its own integer shift, edge pixels repeated.

    Args:
        rgb: ``(B, T, H, W, 3)`` uint8; mask: ``(B, T, H, W)`` uint8.
        shifts: ``(B, 2)`` int (dy, dx) in pixels.

    Returns:
        The shifted copies, same shapes (RGB and mask move together).
    """
    b, _, h, w = mask.shape
    out_rgb, out_mask = np.empty_like(rgb), np.empty_like(mask)
    for i in range(b):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        ys = np.clip(np.arange(h) - dy, 0, h - 1)
        xs = np.clip(np.arange(w) - dx, 0, w - 1)
        out_rgb[i] = rgb[i][:, ys][:, :, xs]
        out_mask[i] = mask[i][:, ys][:, :, xs]
    return out_rgb, out_mask


def make_batch(data: GraspData, idx: np.ndarray, context: int, chunk: int, shift: int = 0,
               rng: np.random.Generator | None = None, objects: bool = False) -> dict[str, np.ndarray]:
    """Arrays of the samples at steps ``idx`` (B,): ``rgb (B, T, H, W, 3)``, ``mask (B, T, H, W)``
    (with ``objects``: the per-object masks ``(B, T, K, H, W)`` instead of the target's),
    ``proprio (B, T, 8)``, ``actions (B, chunk, 5)``, ``goal (B, G)`` (if any); ``T = context``."""
    ci = data.context_index(idx, context)
    if objects and data.object_masks is None:
        raise DatasetError(f"{data.source}: per-object masks were not loaded")
    rgb, mask = data.rgb[ci], (data.object_masks[ci] if objects else data.mask[ci])
    if shift and rng is not None:
        b = mask.shape[0]
        rgb, flat = shift_images(rgb, mask.reshape(b, -1, *mask.shape[-2:]),
                                 rng.integers(-shift, shift + 1, (len(idx), 2)))
        mask = flat.reshape(mask.shape)
    out = {"rgb": rgb, "mask": mask, "proprio": data.proprio[ci], "actions": data.actions[data.chunk_index(idx, chunk)]}
    if data.goal is not None:
        out["goal"] = data.goal[idx]
    return out


# ---- saved policy ------------------------------------------------------------------------------

def save_grasp_policy(path: str | Path, network: Any, meta: dict[str, Any] | None = None) -> Path:
    """Write ``network`` (a GraspBCNet) as ``config.json`` (sealed, :mod:`simlab.integrity`) + ``model.safetensors``
    (weights first, so a complete config means complete weights)."""
    from safetensors.torch import save_file

    import simlab
    from simlab.integrity import write_sealed_json
    from simlab.policies.saved import CONFIG_NAME, WEIGHTS_NAME

    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except TypeError as e:
        raise ConfigError(f"save_grasp_policy: metadata must be JSON-serialisable ({e})") from None
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "class": CLASS_NAME})
    n = network.image_size
    write_sealed_json(path / CONFIG_NAME, {
        "format_version": FORMAT_VERSION, "class": CLASS_NAME, "simlab_version": simlab.__version__,
        "observation_space": {"type": "Dict", "rgb": [n, n, 3], "mask": [n, n, 1], "proprio": [8],
                              **({"objects": [network.slots, n, n]} if getattr(network, "slots", 0) else {})},
        "action_space": {"type": "Box", "shape": [5], "low": -1.0, "high": 1.0},
        "network": network.config, "weights_sha256": sha256_file(path / WEIGHTS_NAME), "meta": meta,
    })
    return path


def load_grasp_network(path: str | Path) -> Any:
    """The GraspBCNet of a saved grasp policy; CheckpointError (one line naming the file) if anything is off."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from simlab.policies.grasp_net import GraspBCNet
    from simlab.policies.saved import CONFIG_NAME, WEIGHTS_NAME, read_model_config

    path = Path(path)
    doc = read_model_config(path, {CLASS_NAME: GraspBCNet}, "grasp policy")
    w_path = path / WEIGHTS_NAME
    try:
        net = GraspBCNet(**doc["network"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / CONFIG_NAME}: bad network config {doc['network']!r} ({e})") from None
    if not w_path.exists():
        raise CheckpointError(f"{w_path}: missing weights file")
    if sha256_file(w_path) != doc.get("weights_sha256"):
        raise CheckpointError(f"{w_path}: checksum differs from {CONFIG_NAME} (corrupt or truncated)")
    try:
        state = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{w_path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{w_path}: weights do not match the {CLASS_NAME} in {CONFIG_NAME} "
                              f"({str(e).splitlines()[0]})") from None
    net.meta = doc.get("meta", {})  # type: ignore[attr-defined]
    return net.eval()


class GraspBCPolicy:
    """A trained grasp network as an env policy (one env): history, chunks, ``act(obs) -> (5,)``.

    At each step the current frame is encoded once (its pooled feature is kept);
    when the queue of planned actions is empty the head predicts a chunk from the
    last ``context`` features and proprioceptions (the first frame repeated before
    the episode's start) and the first ``execute`` actions are queued.

    Args:
        network: a :class:`~simlab.policies.grasp_net.GraspBCNet`.
        execute: actions executed per predicted chunk (1..chunk).
        meta: free metadata saved with the policy.
        goal: the goal vector ``(goal_dim,)`` for a goal-conditioned network.
    """

    def __init__(self, network: Any, execute: int = 4, meta: dict[str, Any] | None = None,
                 goal: np.ndarray | None = None) -> None:
        if not 1 <= execute <= network.chunk:
            raise ConfigError(f"execute must be in 1..{network.chunk}, got {execute}")
        self.network = network.to("cpu").eval()
        self.execute, self.meta, self.goal = int(execute), dict(meta or {}), goal
        self.reset()

    @classmethod
    def load(cls, path: str | Path, execute: int | None = None) -> GraspBCPolicy:
        """Load ``RUN/policy`` (or a run directory: its ``policy/``, else its latest checkpoint)."""
        path = Path(path)
        if not (path / "config.json").exists() or (path / "config.yaml").exists():
            for cand in (path / "policy", path / "checkpoints" / "latest" / "policy"):
                if (cand / "config.json").exists():
                    path = cand
                    break
        net = load_grasp_network(path)
        meta = dict(getattr(net, "meta", {}))
        ex = execute if execute is not None else int(meta.get("grasp_bc_config", {}).get("execute", 4))
        return cls(net, min(ex, net.chunk), meta)

    def save(self, path: str | Path) -> None:
        save_grasp_policy(path, self.network, self.meta)

    def reset(self) -> None:
        """Forget the history and the planned actions (episode start)."""
        self.feats: list[Any] = []
        self.props: list[np.ndarray] = []
        self.queue: list[np.ndarray] = []
        self.last_attention: np.ndarray | None = None
        """slots encoder: ``(K,)`` attention over the current frame's slots at the last chunk prediction."""

    def _check(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.network.image_size
        k = getattr(self.network, "slots", 0)
        try:
            rgb, mask, prop = (np.asarray(obs["rgb"]), np.asarray(obs["objects" if k else "mask"]),
                               np.asarray(obs["proprio"], np.float32))
        except (KeyError, TypeError, IndexError):
            raise ConfigError("grasp policy expects a dict observation with rgb, " + (
                "objects (per-object masks: ToyGraspEnv(object_masks=True))" if k else "mask") + ", proprio") from None
        if k:
            if mask.shape != (k, n, n):
                raise ConfigError(f"slot policy expects objects ({k}, {n}, {n}) (one mask per slot), got {mask.shape}")
            if rgb.shape != (n, n, 3) or prop.shape != (8,):
                raise ConfigError(f"grasp policy expects rgb ({n}, {n}, 3), proprio (8,); got {rgb.shape}, {prop.shape}")
            return rgb, mask.astype(np.uint8), prop
        if mask.ndim == 3:
            mask = mask[..., 0]
        if rgb.shape != (n, n, 3) or mask.shape != (n, n) or prop.shape != (8,):
            raise ConfigError(f"grasp policy expects rgb ({n}, {n}, 3), mask ({n}, {n}[, 1]), proprio (8,); got "
                              f"{rgb.shape}, {mask.shape}, {prop.shape}")
        return rgb, mask.astype(np.uint8), prop

    def predict_chunk(self) -> np.ndarray:
        """The chunk ``(chunk, 5)`` from the current history."""
        import torch

        t = self.network.context
        feats = [self.feats[0]] * max(0, t - len(self.feats)) + self.feats[-t:]
        props = [self.props[0]] * max(0, t - len(self.props)) + self.props[-t:]
        with torch.no_grad():
            goal = None if self.goal is None else torch.as_tensor(self.goal, dtype=torch.float32)[None]
            out = self.network.head_forward(torch.stack(feats)[None], torch.from_numpy(np.stack(props))[None], goal)
        att = getattr(self.network, "last_attention", None)
        if getattr(self.network, "slots", 0) and att is not None:
            self.last_attention = att[0, -1].numpy()
        return out[0].numpy()

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        """Action ``(5,)`` float32 in [-1, 1] for the current observation of one env."""
        import torch

        rgb, mask, prop = self._check(obs)
        with torch.no_grad():
            f = self.network.encode(torch.from_numpy(np.ascontiguousarray(rgb))[None],
                                    torch.from_numpy(np.ascontiguousarray(mask))[None])[0]
        self.feats.append(f)
        self.props.append(prop)
        t = self.network.context
        self.feats, self.props = self.feats[-t:], self.props[-t:]
        if not self.queue:
            self.queue = list(self.predict_chunk()[: self.execute])
        return np.clip(self.queue.pop(0), -1.0, 1.0).astype(np.float32)


# ---- training ----------------------------------------------------------------------------------

def train_grasp_bc(cfg: GraspBCConfig, out: str | Path, resume: bool = False, progress: bool = True) -> RunDir:
    """Behaviour cloning of a GraspBCNet on ``cfg.data``; writes and returns the run directory.

    Raises:
        ConfigError: bad config, or a resumed run's config differs.
        DatasetError: the dataset is missing, corrupt, or has no usable demo.
        CheckpointError: the checkpoint to resume from is unreadable or of other data.
    """
    import torch
    from tqdm import tqdm

    from simlab.policies import bc
    from simlab.policies.grasp_net import GraspBCNet

    slots = cfg.encoder == "slots"
    data = load_grasp_data(cfg.data, cfg.toys, cfg.max_demos, object_masks=slots)  # validate before the run dir
    h, w = data.mask.shape[1:]
    if h != w or h % cfg.patch:
        raise ConfigError(f"{data.source}: need square images divisible by patch={cfg.patch}, got {h}x{w}")
    device = bc.resolve_device(cfg.device)
    run = RunDir.create(out, cfg, resume=resume)
    meta = {"trainer": "grasp_bc", "data": data.source, "data_fingerprint": data.fingerprint,
            "data_backend": data.backend, "demos": data.demos, "objects": data.objects, "steps_in_data": len(data),
            "grasp_bc_config": to_dict(cfg)}

    torch.manual_seed(cfg.seed)
    model = GraspBCNet(cfg.encoder, h, cfg.patch, cfg.channels, cfg.context, cfg.chunk, cfg.hidden,
                       0 if data.goal is None else data.goal.shape[1], pooled_coords=cfg.pooled_coords,
                       slots=data.object_masks.shape[1] if slots and data.object_masks is not None else 0)
    model.set_proprio_stats(data.proprio.mean(0), data.proprio.std(0))
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = lambda s: cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * s / cfg.steps)))

    ckpt = run.checkpoint("latest")
    bc._recover(ckpt)
    start = 0
    if resume and (ckpt / "trainer.json").exists():
        state = bc.load_checkpoint(ckpt, model, opt, load_network_fn=load_grasp_network)
        if state.get("data_fingerprint") != data.fingerprint:
            raise CheckpointError(f"{ckpt}: the checkpoint was trained on different data than {data.source}")
        start = int(state["step"])
        run.truncate_metrics(start)
    elif resume:
        run.truncate_metrics(0)

    n = len(data)
    steps_per_epoch = -(-n // cfg.batch_size)
    model.train()
    t0 = time.perf_counter()
    perm_epoch, perm = -1, np.empty(0, np.int64)
    win_loss, win_l1, win_grip, win_count = 0.0, 0.0, 0.0, 0
    with tqdm(total=cfg.steps, initial=start, desc=f"grasp bc ({cfg.encoder})", unit="step", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for step in range(start, cfg.steps):
            epoch, b = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm_epoch, perm = epoch, np.random.default_rng([cfg.seed, epoch]).permutation(n)
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            batch = make_batch(data, idx, cfg.context, cfg.chunk, cfg.shift, np.random.default_rng([cfg.seed, step, 1]),
                               objects=slots)
            t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}
            for g in opt.param_groups:
                g["lr"] = sched(step)
            pred = model(t["rgb"], t["mask"], t["proprio"], t.get("goal"))
            err = (pred - t["actions"]).abs()
            loss = err.mean() if cfg.loss == "l1" else (err ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            win_loss += float(loss.detach()) * len(idx)
            win_l1 += float(err.detach().mean()) * len(idx)
            win_grip += float(((pred[..., 4] > 0) == (t["actions"][..., 4] > 0)).float().mean()) * len(idx)
            win_count += len(idx)
            bar.update(1)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                metrics = {"train/loss": win_loss / win_count, "train/l1": win_l1 / win_count,
                           "train/grip_accuracy": win_grip / win_count,
                           "train/epoch": done / steps_per_epoch, "train/lr": sched(step),
                           "time/steps_per_s": (done - start) / max(1e-9, time.perf_counter() - t0)}
                bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
                win_loss, win_l1, win_grip, win_count = 0.0, 0.0, 0.0, 0
                run.log(done, metrics)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                bc.save_checkpoint(ckpt, model, opt, done, int(done // steps_per_epoch), meta,
                                save_policy_fn=save_grasp_policy)

    if not run.stage_done("train"):
        save_grasp_policy(run.path / "policy", model, meta)
        last = run.metrics()[-1] if run.metrics() else {}
        run.mark_stage("train", {"steps": cfg.steps, "loss": last.get("train/loss"),
                                 "seconds": time.perf_counter() - t0})
    if cfg.eval_episodes and not run.stage_done("eval"):
        run.mark_stage("eval", evaluate_run(run.path, cfg))
    return run


def evaluate_run(run_path: str | Path, cfg: GraspBCConfig, progress: bool = False) -> dict[str, Any]:
    """Evaluate ``RUN/policy`` on ``cfg.eval_splits`` in each of ``cfg.eval_backends``;
    writes ``RUN/eval/<backend>/eval_info.json`` (+ mp4s); returns ``{backend: {split: rate}}``."""
    from simlab.policies.grasp_eval import evaluate_grasp

    run_path = Path(run_path)
    policy = GraspBCPolicy.load(run_path / "policy", execute=cfg.execute)
    out: dict[str, Any] = {}
    for backend in cfg.eval_backends:
        d = run_path / "eval" / backend
        res = evaluate_grasp(policy, backend, list(cfg.eval_splits), cfg.eval_episodes, seed=cfg.seed,
                             resolution=policy.network.image_size,
                             video_dir=d / "videos" if cfg.eval_videos else None,
                             videos_per_split=cfg.eval_videos, out_dir=d, progress=progress,
                             policy_name=f"grasp_bc/{cfg.encoder}:{run_path}")
        out[backend] = {s: {"success_rate": r["success_rate"], "success_ci95": r["success_ci95"],
                            "n_episodes": r["n_episodes"]} for s, r in res.items()}
    return out


# ---- CLI ---------------------------------------------------------------------------------------

def is_grasp_dataset(data: str) -> bool:
    """Whether ``data`` is a directory whose ``manifest.json`` says it holds toy-grasp demos."""
    from simlab.envs.toygrasp.dataset import KIND

    p = Path(data) / "manifest.json"
    if data.startswith("minari:") or not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def train_grasp_bc_cli(data: str, out: str | Path, encoder: str, presets: list[str], overrides: list[str],
                       resume: bool, env: str = "") -> dict[str, Any]:
    """``simlab train bc --encoder ...``: resolve the config, train, evaluate; the CLI's summary dict."""
    from simlab.envs.toygrasp.dataset import ENV_IDS

    cfg = grasp_bc_config(presets, [*overrides, f"data={data}", f"encoder={encoder}"])
    if env and env not in ENV_IDS.values():
        raise ConfigError(f"grasp BC runs on toygrasp demos; --env must be one of {', '.join(ENV_IDS.values())}, "
                          f"got {env!r}")
    if env and is_grasp_dataset(data):
        got = json.loads((Path(data) / "manifest.json").read_text()).get("env_id")
        if got != env:
            raise ConfigError(f"{data} was collected on {got}, not {env}")
    run = train_grasp_bc(cfg, out, resume=resume)
    ev = run.stage_done("eval") or {}
    lines = [f"{b} {s}: success {r['success_rate']:.2f} (95% CI {r['success_ci95'][0]:.2f}-"
             f"{r['success_ci95'][1]:.2f}, {r['n_episodes']} episodes)"
             for b, res in ev.items() if isinstance(res, dict) for s, r in res.items()]
    train = run.stage_done("train") or {}
    return {"run": str(run.path), "encoder": cfg.encoder, "data": cfg.data, "steps": cfg.steps,
            "final_loss": train.get("loss"), "eval": {b: r for b, r in ev.items() if isinstance(r, dict)},
            "eval_lines": lines}
