"""Behaviour cloning: fit an IMPALA-CNN policy to the actions of an offline dataset.

Reads top to bottom (CleanRL style): :class:`BCConfig` holds every
hyperparameter; :func:`train_bc` loads the data, checks it against the target
env's spaces, trains an :class:`~simlab.policies.saved.ImpalaActor` with
cross-entropy on the dataset's actions, and writes a run directory::

    RUN/config.yaml                  the resolved BCConfig
    RUN/metrics.jsonl                train/loss, train/accuracy, train/epoch (+ eval/...)
    RUN/checkpoints/latest/          policy/ (config.json + model.safetensors),
                                     trainer.safetensors (optimizer moments, torch RNG),
                                     trainer.json (step, epoch, data fingerprint)
    RUN/policy/                      the final policy (simlab.policies.saved format)
    RUN/eval_info.json               evaluation in the real env (when eval_episodes > 0)

Determinism and resume: the weights are initialised from ``seed``; epoch
``e`` visits the data in the order ``default_rng([seed, e]).permutation(N)``,
so the batch of every step is a pure function of (seed, step). A checkpoint
(every epoch, atomically: written beside ``latest`` and swapped in) holds the
weights, the optimizer state and the RNG state, so ``resume=True`` after a
kill ends with the same final weights as an unbroken run (bit for bit on CPU
with the same thread count; CUDA kernels are not bitwise deterministic).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab.config import to_dict
from simlab.data import sha256_file
from simlab.errors import CheckpointError, ConfigError, DatasetError
from simlab.integrity import read_sealed_json, write_sealed_json
from simlab.runs import RunDir
from simlab.training import check_loss, check_weights

FORMAT_VERSION = 1
MINARI_PREFIX = "minari:"


@dataclass
class BCConfig:
    """Behaviour-cloning hyperparameters (one per field; CLI ``key=value`` overrides)."""

    data: str = ""
    """Transition dataset directory (``simlab collect procgen``), or ``minari:<dataset id or path>``."""
    env: str = ""
    """Env id whose spaces the data must fit and where the policy is evaluated (empty: the dataset's)."""
    epochs: int = 10
    """Passes over the dataset (ignored when ``steps`` > 0)."""
    steps: int = 0
    """Total gradient steps (> 0 overrides ``epochs``)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    lr: float = 5e-4
    """Adam learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 0
    """Seed of the weight init, the data order and the evaluation levels."""
    device: str = "auto"
    """auto (cuda if available, else cpu) | cpu | cuda | cuda:N."""
    depths: tuple[int, ...] = (16, 32, 32)
    """Channels of the three IMPALA-CNN stacks."""
    features_dim: int = 256
    """Width of the encoder output (the linear head's input)."""
    preload: bool = True
    """Load all observations into memory (else read each batch from the HDF5 shards)."""
    log_every: int = 50
    """Log train/ metrics every this many steps (and at every epoch end)."""
    eval_episodes: int = 0
    """Episodes per split evaluated in the real env after training (0: no evaluation)."""
    eval_splits: tuple[str, ...] = ("train", "test")
    """Split names to evaluate on (procgen: train, val, test, vis_train, vis_test, hard)."""
    eval_every: int = 0
    """Also evaluate every this many epochs (0: only at the end)."""
    eval_num_envs: int = 16
    """Envs stepped together during evaluation."""
    eval_max_episode_steps: int = 0
    """Shorter evaluation time limit (0: the game's)."""
    eval_deterministic: bool = True
    """Greedy (argmax) actions in evaluation, else sampled from the softmax."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "features_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "log_every", "eval_episodes", "eval_every", "eval_max_episode_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_num_envs < 1:
            raise ConfigError(f"eval_num_envs must be >= 1, got {self.eval_num_envs}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"need lr > 0 and weight_decay >= 0, got lr={self.lr}, "
                              f"weight_decay={self.weight_decay}")
        if not self.depths or any(d < 1 for d in self.depths):
            raise ConfigError(f"depths must be positive channel counts, got {list(self.depths)}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


# ---- data ------------------------------------------------------------------------------------

class _Data:
    """Observations/actions of the training set plus what the checks need."""

    def __init__(self, source: str, actions: np.ndarray, obs: np.ndarray | None, fetch: Any,
                 obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int, env_id: str | None,
                 fingerprint: str) -> None:
        self.source, self.actions, self.obs, self.fetch = source, actions, obs, fetch
        self.obs_shape, self.obs_dtype, self.n_actions = obs_shape, np.dtype(obs_dtype), n_actions
        self.env_id, self.fingerprint = env_id, fingerprint

    def __len__(self) -> int:
        return len(self.actions)

    def batch_obs(self, idx: np.ndarray) -> np.ndarray:
        return self.obs[idx] if self.obs is not None else self.fetch(idx)


def _load_transitions(root: str, preload: bool) -> _Data:
    from simlab.envs.procgen.dataset import TransitionDataset

    ds = TransitionDataset(root)
    actions = ds.load(keys=("actions",))["actions"]
    obs = ds.load(keys=("obs",))["obs"] if preload else None
    return _Data(root, actions, obs, lambda idx: ds.get(idx, keys=("obs",))["obs"], ds.observation_shape,
                 ds.observation_dtype, ds.n_actions, ds.env_id, sha256_file(Path(root) / "manifest.json"))


def _load_minari(ref: str) -> _Data:
    """A Minari dataset by local path or id (never downloaded); all episodes loaded into memory."""
    from gymnasium import spaces

    from simlab.envs.procgen.dataset import import_minari

    minari = import_minari()
    p = Path(ref)
    try:
        if (p / "data").is_dir():
            md = minari.MinariDataset(p / "data")
        else:
            md = minari.load_dataset(ref, download=False)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DatasetError(f"minari dataset {ref!r}: {str(e).splitlines()[0]}") from None
    if not isinstance(md.action_space, spaces.Discrete) or not isinstance(md.observation_space, spaces.Box):
        raise DatasetError(f"minari dataset {ref!r}: BC here needs Box image observations and Discrete "
                           f"actions, got {md.observation_space} / {md.action_space}")
    obs, act = [], []
    for ep in md.iterate_episodes():
        obs.append(np.asarray(ep.observations)[:-1])
        act.append(np.asarray(ep.actions, np.int64))
    actions = np.concatenate(act) if act else np.zeros(0, np.int64)
    env_spec = md.spec.env_spec
    return _Data(f"{MINARI_PREFIX}{ref}", actions, np.concatenate(obs) if obs else None, None,
                 tuple(md.observation_space.shape), md.observation_space.dtype, int(md.action_space.n),
                 env_spec.id if env_spec is not None else None,
                 hashlib.sha256(actions.tobytes()).hexdigest() + f":{md.total_episodes}")


def load_data(cfg: BCConfig) -> _Data:
    """The training data of ``cfg.data``; DatasetError / ConfigError with one line when unusable."""
    if not cfg.data:
        raise ConfigError("BC needs a dataset: set data=<dataset dir> (or data=minari:<id>)")
    if cfg.data.startswith(MINARI_PREFIX):
        data = _load_minari(cfg.data[len(MINARI_PREFIX):])
    else:
        data = _load_transitions(cfg.data, cfg.preload)
    if len(data) == 0:
        raise DatasetError(f"{data.source}: the dataset holds no transitions")
    bad = (data.actions < 0) | (data.actions >= data.n_actions)
    if bad.any():
        raise DatasetError(f"{data.source}: action {data.actions[bad][0]} outside [0, {data.n_actions})")
    return data


def target_env_id(cfg: BCConfig, data: _Data) -> str:
    """The env the policy is for: ``cfg.env`` or the dataset's."""
    env_id = cfg.env or data.env_id
    if not env_id:
        raise ConfigError(f"{data.source} names no env; set env=<env id> (e.g. simlab/Maze-v0)")
    if data.env_id and cfg.env and cfg.env != data.env_id:
        raise ConfigError(f"{data.source} was collected on {data.env_id}, not {cfg.env}")
    return env_id


def check_data_env(data: _Data, env_id: str) -> None:
    """ConfigError unless the data's observation shape/dtype and action count fit ``env_id``."""
    import gymnasium

    import simlab  # noqa: F401  (registers the envs)
    from simlab.envs.procgen.dataset import check_spaces

    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as e:
        raise ConfigError(f"env {env_id!r}: {e}") from None
    try:
        check_spaces(data.source, data.obs_shape, data.obs_dtype, data.n_actions, env)
    finally:
        env.close()


# ---- checkpoints -------------------------------------------------------------------------------

def _swap_in(tmp: Path, final: Path) -> None:
    """Replace directory ``final`` by ``tmp`` so that a complete one always exists (see _recover)."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def _recover(final: Path) -> None:
    """Undo a swap interrupted between its two renames; drop a half-written new checkpoint."""
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.exists():
        os.replace(old, final)
    for p in final.parent.glob(f".{final.name}.new-*"):
        shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(path: Path, model: Any, opt: Any, step: int, epoch: int, meta: dict[str, Any],
                    save_policy_fn: Any = None) -> None:
    """Atomically write a training checkpoint directory at ``path`` (policy + trainer state).

    ``save_policy_fn(dir, model, meta)`` writes the policy part (default:
    :func:`simlab.policies.saved.save_policy`, for an ImpalaActor).
    """
    import torch
    from safetensors.torch import save_file

    from simlab.policies.saved import save_policy

    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (save_policy_fn or save_policy)(tmp / "policy", model, dict(meta))
    sd = opt.state_dict()
    tensors: dict[str, Any] = {"rng.torch": torch.get_rng_state()}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().to("cpu").contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(tensors, str(tmp / "trainer.safetensors"))
    write_sealed_json(tmp / "trainer.json", {
        "format_version": FORMAT_VERSION, "step": step, "epoch": epoch, "optimizer_scalars": scalars,
        "data_fingerprint": meta.get("data_fingerprint"),
        "trainer_sha256": sha256_file(tmp / "trainer.safetensors"),
    })
    _swap_in(tmp, path)


def load_checkpoint(path: Path, model: Any, opt: Any, load_network_fn: Any = None) -> dict[str, Any]:
    """Restore model, optimizer and torch RNG from :func:`save_checkpoint`; returns trainer.json.

    ``load_network_fn(dir)`` returns the saved network of the policy part (default: an
    ImpalaActor through :meth:`simlab.policies.saved.SavedPolicy.load`).
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from simlab.policies.saved import SavedPolicy

    state_path, trainer_path = path / "trainer.json", path / "trainer.safetensors"
    state = read_sealed_json(state_path, CheckpointError, "checkpoint state")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{state_path}: format version {state['format_version']} is newer than this simlab")
    if not trainer_path.exists() or sha256_file(trainer_path) != state.get("trainer_sha256"):
        raise CheckpointError(f"{trainer_path}: missing or differs from {state_path.name} (corrupt)")
    net = (load_network_fn or (lambda d: SavedPolicy.load(d).network))(path / "policy")
    try:
        model.load_state_dict(net.state_dict())
    except RuntimeError as e:
        raise CheckpointError(f"{path / 'policy'}: weights do not fit this config's network "
                              f"({str(e).splitlines()[0]})") from None
    try:
        tensors = load_file(str(trainer_path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{trainer_path}: not a readable safetensors file ({e})") from None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[k] = v
    for key, v in state.get("optimizer_scalars", {}).items():
        pid, k = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return state


# ---- training ---------------------------------------------------------------------------------

def resolve_device(name: str) -> Any:
    """torch.device of ``auto`` / ``cpu`` / ``cuda[:N]``; ConfigError when CUDA is asked for but absent."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}") from None


def _train_step(model: Any, opt: Any, obs: Any, actions: Any, step: int = 0) -> tuple[float, int]:
    """One cross-entropy step; returns (batch mean loss, correct predictions); DivergedError on a NaN loss."""
    import torch.nn.functional as F

    logits = model(obs)
    loss = F.cross_entropy(logits, actions)
    check_loss(loss, step, "bc")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach()), int((logits.detach().argmax(1) == actions).sum())


def _evaluate(cfg: BCConfig, model: Any, env_id: str, out_dir: Path | None) -> dict[str, float]:
    """Evaluate the current weights in the real env; returns ``eval/<split>/<stat>`` metrics."""
    import copy

    from simlab.policies.evaluate import eval_metrics, evaluate
    from simlab.policies.saved import SavedPolicy

    policy = SavedPolicy(copy.deepcopy(model), seed=cfg.seed)
    was_training = model.training
    res = evaluate(policy, env_id, list(cfg.eval_splits), cfg.eval_episodes, seed=cfg.seed,
                   num_envs=cfg.eval_num_envs, out_dir=out_dir,
                   max_episode_steps=cfg.eval_max_episode_steps or None, deterministic=cfg.eval_deterministic)
    model.train(was_training)
    return eval_metrics(res, ("mean_return", "mean_length"))


def train_bc(cfg: BCConfig, out: str | Path, resume: bool = False, progress: bool = True) -> RunDir:
    """Behaviour cloning of an ImpalaActor on ``cfg.data``; writes and returns the run directory.

    Args:
        cfg: hyperparameters (:class:`BCConfig`).
        out: run directory (must be new or empty unless ``resume``).
        resume: continue a killed run from its latest checkpoint (same config required);
            a finished run is left as it is (a missing evaluation is run).
        progress: show a tqdm bar over gradient steps.

    Raises:
        ConfigError: bad config, the data does not fit the env, or a resumed run's config differs.
        DatasetError: the dataset is missing, corrupt or of the wrong kind.
        CheckpointError: the checkpoint to resume from is unreadable or of another dataset.
    """
    import torch
    from tqdm import tqdm

    from simlab.policies.saved import ImpalaActor, save_policy

    data = load_data(cfg)  # validate the data and the env before touching the run directory
    env_id = target_env_id(cfg, data)
    check_data_env(data, env_id)
    device = resolve_device(cfg.device)
    run = RunDir.create(out, cfg, resume=resume)

    n = len(data)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.steps if cfg.steps > 0 else cfg.epochs * steps_per_epoch
    meta = {"trainer": "bc", "env_id": env_id, "data": data.source, "data_fingerprint": data.fingerprint,
            "bc_config": to_dict(cfg)}

    torch.manual_seed(cfg.seed)
    h, w, c = data.obs_shape
    if h != w:
        raise ConfigError(f"{data.source}: ImpalaActor needs square images, got {data.obs_shape}")
    model = ImpalaActor(data.n_actions, c, h, tuple(cfg.depths), cfg.features_dim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    ckpt = run.checkpoint("latest")
    _recover(ckpt)
    start = 0
    if resume and (ckpt / "trainer.json").exists():
        state = load_checkpoint(ckpt, model, opt)
        if state.get("data_fingerprint") != data.fingerprint:
            raise CheckpointError(f"{ckpt}: the checkpoint was trained on different data than {data.source}")
        start = int(state["step"])
        run.truncate_metrics(start)
    elif resume:
        run.truncate_metrics(0)

    model.train()
    t0 = time.perf_counter()
    perm_epoch, perm = -1, np.empty(0, np.int64)
    win_loss, win_correct, win_count = 0.0, 0, 0
    with tqdm(total=total, initial=start, desc="bc", unit="step", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for step in range(start, total):
            epoch, b = divmod(step, steps_per_epoch)
            if epoch != perm_epoch:
                perm_epoch, perm = epoch, np.random.default_rng([cfg.seed, epoch]).permutation(n)
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            obs_t = torch.from_numpy(np.ascontiguousarray(data.batch_obs(idx))).to(device)
            act_t = torch.from_numpy(data.actions[idx]).to(device)
            loss, correct = _train_step(model, opt, obs_t, act_t, step)
            win_loss += loss * len(idx)
            win_correct += correct
            win_count += len(idx)
            bar.update(1)
            done = step + 1
            epoch_end = b == steps_per_epoch - 1 or done == total
            if epoch_end or (cfg.log_every and done % cfg.log_every == 0):
                metrics = {"train/loss": win_loss / win_count, "train/accuracy": win_correct / win_count,
                           "train/epoch": epoch + (b + 1) / steps_per_epoch,
                           "time/steps_per_s": (done - start) / max(1e-9, time.perf_counter() - t0)}
                bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", acc=f"{metrics['train/accuracy']:.3f}")
                win_loss, win_correct, win_count = 0.0, 0, 0
                if epoch_end and cfg.eval_episodes and cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 \
                        and done < total:
                    metrics.update(_evaluate(cfg, model, env_id, None))
                run.log(done, metrics)
            if epoch_end:
                check_weights(model, "bc")
                save_checkpoint(ckpt, model, opt, done, epoch + (b + 1) // steps_per_epoch, meta)

    if not run.stage_done("train"):
        save_policy(run.path / "policy", model, dict(meta))
        last = run.metrics()[-1] if run.metrics() else {}
        run.mark_stage("train", {"steps": total, "loss": last.get("train/loss"),
                                 "accuracy": last.get("train/accuracy")})
    if cfg.eval_episodes and not run.stage_done("eval"):
        metrics = _evaluate(cfg, model, env_id, run.path)
        run.log(total, metrics)
        run.mark_stage("eval", metrics)
    return run
