"""PPO (stable-baselines3, MlpPolicy) trained inside a dream env on ``[z, h]`` observations.

The alternative to World Models' CMA-ES controller: an MLP actor-critic trained
by PPO on a batched dream (``DreamVecEnv``: gymnasium 1.x ``VectorEnv`` with
same-step autoreset, float32 ``[z, h]`` observations, Discrete actions),
plugged into SB3 through :class:`simlab.sb3.SB3VecEnv`. With a :class:`RunDir`::

    RUN/metrics.jsonl                          ppo/<key> for every SB3 logger key (train/,
                                               rollout/, time/ namespaces folded into ppo/)
    RUN/checkpoints/dream_ppo/sb3_model.zip    SB3's own checkpoint, used only to resume
    RUN/checkpoints/dream_ppo/policy/          the exported actor (config.json + diffusion_pytorch_model.safetensors)
    RUN/checkpoints/dream_ppo/state.json       num_timesteps and config of the checkpoint (written last)
    RUN/dream_policy/                          the final exported actor
    RUN/stages/dream_ppo.json                  completion record

The exported actor (:class:`MlpActor`: the policy MLP and its action head) loads
without SB3 through :meth:`DreamPolicy.load`; it acts on ``[z, h]``, so in the
real env wrap it with the world model in :class:`simlab.policies.cmaes.WorldModelAgent`.

Usage::

    from simlab.policies.dream_ppo import DreamPPOConfig, train_dream_ppo
    policy, info = train_dream_ppo(lambda n, s: model.as_vec_env(n, seed=s), DreamPPOConfig(), run)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from torch import nn

from simlab.config import to_dict
from simlab.data import atomic_dir, recover_dir
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import (
    read_sealed_json,
    verify_dir_digests,
    write_dir_digests,
    write_sealed_json,
)
from simlab.policies.cmaes import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    LogFn,
    MakeEnv,
    drop_stale_metrics,
    load_tensor_dir,
    save_tensor_dir,
)
from simlab.policies.saved import sample_from_logits
from simlab.training import check_weights

SB3_ZIP = "sb3_model.zip"
STATE = "state.json"
CHECKPOINT = "dream_ppo"
FINAL_DIR = "dream_policy"
RESUMABLE_CHANGES = frozenset({"total_timesteps", "checkpoint_every", "device", "torch_threads"})
"""DreamPPOConfig keys that may differ when resuming (they do not change the learning problem)."""
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class DreamPPOConfig:
    """PPO on a dream env (defaults: SB3's PPO defaults with a batched env)."""

    num_envs: int = 64
    """Parallel dream episodes in the batch."""
    n_steps: int = 128
    """Steps per env per rollout (rollout size = num_envs * n_steps)."""
    total_timesteps: int = 2_000_000
    """Dream steps to train for, summed over envs (a resumed run may raise it)."""
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """PPO clip range of the policy ratio."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Gradient norm clipping."""
    n_epochs: int = 4
    """Optimisation epochs per rollout."""
    batch_size: int = 1024
    """Minibatch size (at most the rollout size)."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer widths of the policy MLP (the value MLP has the same, separate layers)."""
    activation: str = "tanh"
    """Hidden activation: tanh | relu."""
    seed: int = 0
    """Seed of torch/numpy in SB3 and of the dream env."""
    device: str = "cpu"
    """Torch device of the PPO networks: cpu | cuda | cuda:N | auto (small MLPs are fastest on cpu)."""
    torch_threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    checkpoint_every: int = 100_000
    """Checkpoint every this many dream steps (0 = only at the end); needs a run directory."""

    def __post_init__(self) -> None:
        for k in ("num_envs", "n_steps", "n_epochs", "batch_size"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key {k!r} must be >= 1, got {getattr(self, k)}")
        for k in ("total_timesteps", "checkpoint_every", "torch_threads", "seed"):
            if getattr(self, k) < 0:
                raise ConfigError(f"config key {k!r} must be >= 0, got {getattr(self, k)}")
        if self.batch_size > self.num_envs * self.n_steps:
            raise ConfigError(f"batch_size {self.batch_size} exceeds the rollout size "
                              f"num_envs * n_steps = {self.num_envs * self.n_steps}")
        for k in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ConfigError(f"config key {k!r} must be in [0, 1], got {getattr(self, k)}")
        if not (self.lr > 0 and self.clip > 0):
            raise ConfigError("lr and clip must be > 0")
        if any(w < 1 for w in self.net_arch):
            raise ConfigError(f"net_arch must be positive layer widths, got {self.net_arch}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


# ---- the exported actor --------------------------------------------------------------------------
class MlpActor(nn.Module):
    """``(B, in_dim)`` float -> ``(B, n_actions)`` logits: hidden layers (``net_arch``, activation) + linear head.

    The same layers as SB3's ``MlpPolicy`` actor (``mlp_extractor.policy_net`` then ``action_net``).
    """

    def __init__(self, in_dim: int, n_actions: int, net_arch: list[int] | tuple[int, ...] = (64, 64),
                 activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.in_dim, self.n_actions = int(in_dim), int(n_actions)
        self.net_arch, self.activation = [int(w) for w in net_arch], activation
        layers: list[nn.Module] = []
        last = self.in_dim
        for w in self.net_arch:
            layers += [nn.Linear(last, w), ACTIVATIONS[activation]()]
            last = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(last, self.n_actions)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON types)."""
        return {"in_dim": self.in_dim, "n_actions": self.n_actions, "net_arch": list(self.net_arch),
                "activation": self.activation}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(obs))


class DreamPolicy:
    """A loaded (or exported) :class:`MlpActor` with the simlab policy interface, on CPU.

    ``act(obs (B, in_dim) float) -> actions (B,)`` int64: argmax of the logits when
    ``deterministic``, else sampled with :attr:`rng`.
    """

    CLASS = "MlpActor"

    def __init__(self, network: MlpActor, meta: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.network = network.to("cpu").eval()
        self.meta = dict(meta or {})
        self.rng = np.random.default_rng(seed)

    @property
    def config(self) -> dict[str, Any]:
        return self.network.config

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """``(B, n_actions)`` float32 logits."""
        x = np.asarray(obs, np.float32)
        if x.shape == (self.network.in_dim,):
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.network.in_dim:
            raise ConfigError(f"policy expects observations of shape (B, {self.network.in_dim}), got {x.shape}")
        with torch.no_grad():
            return self.network(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return sample_from_logits(self.logits(obs), deterministic, self.rng)

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (no pickles)."""
        net = self.network
        return save_tensor_dir(path, self.CLASS, net.config, net.state_dict(),
                               {"type": "Box", "shape": [net.in_dim], "dtype": "float32"},
                               {"type": "Discrete", "n": net.n_actions}, self.meta)

    @classmethod
    def load(cls, path: str | Path) -> DreamPolicy:
        """Load an exported actor; CheckpointError naming the file when anything is off."""
        path = Path(path)
        doc, state = load_tensor_dir(path, (cls.CLASS,))
        try:
            net = MlpActor(**doc["network"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path / CONFIG_NAME}: bad network config {doc['network']!r} ({e})") from None
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if want != got:
            bad = sorted(want.keys() ^ got.keys()) or sorted(k for k in want if want[k] != got[k])
            raise CheckpointError(f"{path / WEIGHTS_NAME}: weights do not match the MlpActor in {CONFIG_NAME} "
                                  f"(first mismatches: {', '.join(bad[:3])})")
        net.load_state_dict(state)
        return cls(net, meta=doc.get("meta"))

    def __repr__(self) -> str:
        return f"DreamPolicy(MlpActor{self.config})"


def policy_kwargs(cfg: DreamPPOConfig) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` of the MlpPolicy (separate pi and vf MLPs of ``net_arch``)."""
    return {"net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
            "activation_fn": ACTIVATIONS[cfg.activation]}


def export_actor(model: PPO) -> MlpActor:
    """Copy the actor of an SB3 ``MlpPolicy`` (policy MLP + action head) into a CPU :class:`MlpActor`."""
    pol = model.policy
    space = pol.observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ConfigError(f"export_actor needs flat Box observations, the policy has {space}")
    body = pol.mlp_extractor.policy_net
    widths = [m.out_features for m in body if isinstance(m, nn.Linear)]
    acts = {type(m) for m in body if not isinstance(m, nn.Linear)}
    name = next((k for k, v in ACTIVATIONS.items() if {v} == acts), "tanh" if not acts else None)
    if name is None:
        raise ConfigError(f"export_actor: unsupported activation(s) {sorted(a.__name__ for a in acts)}")
    actor = MlpActor(int(space.shape[0]), pol.action_net.out_features, widths, name)
    actor.body.load_state_dict({k: v.detach().cpu() for k, v in body.state_dict().items()})
    actor.head.load_state_dict({k: v.detach().cpu() for k, v in pol.action_net.state_dict().items()})
    return actor.eval()


# ---- run plumbing --------------------------------------------------------------------------------
def metric_name(key: str) -> str:
    """SB3 logger key -> simlab metric: ``train/value_loss`` -> ``ppo/value_loss``."""
    return "ppo/" + key.split("/", 1)[-1]


class _MetricsOutput(KVWriter):
    """SB3 logger output: every dump to ``RUN/metrics.jsonl`` and the ``log`` callback as ``ppo/...``."""

    def __init__(self, run: Any, log: LogFn | None) -> None:
        self.run, self.log = run, log

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        metrics = {metric_name(k): float(v) for k, v in key_values.items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        if not metrics:
            return
        if self.run is not None:
            self.run.log(step, metrics)
        if self.log is not None:
            self.log(step, metrics)

    def close(self) -> None:
        pass


def _make_logger(run: Any, log: LogFn | None) -> Logger:
    import importlib.util

    outputs: list[KVWriter] = [_MetricsOutput(run, log)]
    if run is not None and importlib.util.find_spec("tensorboard") is not None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        outputs.append(TensorBoardOutputFormat(str(run.path / "tb" / "dream_ppo")))
    return Logger(folder=None, output_formats=outputs)


def policy_meta(model: PPO, cfg: DreamPPOConfig) -> dict[str, Any]:
    """Metadata stored with an exported dream policy."""
    return {"trainer": "dream_ppo", "num_timesteps": int(model.num_timesteps), "train_config": to_dict(cfg),
            "observation": "[z, h]"}


def save_checkpoint(final: Path, model: PPO, cfg: DreamPPOConfig) -> Path:
    """Atomically write the checkpoint directory: SB3 zip, exported policy, state.json, and last the
    sealed digest record of all of them (checked before a resume unpickles the zip)."""
    check_weights(model.policy, "dream ppo")  # never save diverged weights
    with atomic_dir(final) as tmp:
        model.save(tmp / SB3_ZIP)  # SB3's own format, read back only to resume
        DreamPolicy(export_actor(model), policy_meta(model, cfg)).save(tmp / "policy")
        write_sealed_json(tmp / STATE, {"format_version": FORMAT_VERSION, "num_timesteps": int(model.num_timesteps),
                                        "config": to_dict(cfg), "time": time.time()})
        write_dir_digests(tmp)
    return final


class _Callback(BaseCallback):
    """Progress bar and periodic checkpoints (at rollout starts: no collected data is lost on resume)."""

    def __init__(self, final: Path | None, cfg: DreamPPOConfig, progress: bool) -> None:
        super().__init__()
        self.final, self.cfg, self.progress = final, cfg, progress
        self.bar: Any = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.last = self.num_timesteps
        self.bar = tqdm(total=self.cfg.total_timesteps, initial=self.num_timesteps, unit="step", unit_scale=True,
                        desc="dream ppo", disable=not self.progress, dynamic_ncols=True, smoothing=0.1)

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_start(self) -> None:
        now, every = self.num_timesteps, self.cfg.checkpoint_every
        if self.final is not None and every > 0 and now // every > self.last // every:
            save_checkpoint(self.final, self.model, self.cfg)
        self.last = now

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available (use device=cpu)")
    return device


def _read_state(final: Path, cfg: DreamPPOConfig) -> dict[str, Any] | None:
    recover_dir(final)
    p = final / STATE
    if not final.is_dir() or not any(final.iterdir()):
        return None  # swapped in whole (atomic_dir): any file means a checkpoint, checked in full
    verify_dir_digests(final, CheckpointError, "dream PPO checkpoint")
    state = read_sealed_json(p, CheckpointError, "dream PPO checkpoint state")
    try:
        n = int(state["num_timesteps"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: not a dream PPO checkpoint state ({e})") from None
    old = state.get("config")
    if isinstance(old, dict):
        new = to_dict(cfg)
        diff = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} - RESUMABLE_CHANGES
        if diff:
            raise ConfigError(f"{p}: resumed with a different dream PPO config ({', '.join(sorted(diff))} differ)")
    state["num_timesteps"] = n
    return state


# ---- training ------------------------------------------------------------------------------------
def train_dream_ppo(make_env: MakeEnv, cfg: DreamPPOConfig, run: Any = None, progress: bool = True,
                    log: LogFn | None = None) -> tuple[DreamPolicy, dict[str, Any]]:
    """Train PPO (MlpPolicy) in a batched dream env; returns the exported actor and a summary.

    Args:
        make_env: ``make_env(num_envs, seed) -> VectorEnv`` (positional), called once with
            ``(cfg.num_envs, cfg.seed)``: same-step autoreset, flat float observations,
            Discrete actions (e.g. ``DreamVecEnv``).
        cfg: the :class:`DreamPPOConfig`.
        run: optional :class:`simlab.runs.RunDir`: ``ppo/`` metrics, checkpoints in
            ``RUN/checkpoints/dream_ppo`` and the final actor in ``RUN/dream_policy``. If that
            checkpoint exists, training resumes from it (SB3 counters kept, only
            ``total_timesteps - num_timesteps`` more steps; config equal except
            :data:`RESUMABLE_CHANGES`).
        progress: tqdm bar (steps/s) on stderr.
        log: optional ``log(step, metrics)`` called with every logger dump (``ppo/...`` keys).

    Returns:
        ``(policy, info)``: a :class:`DreamPolicy` (``act([z, h])``) and ``{"num_timesteps",
        "resumed_from", "episodes", "mean_return"}`` (mean return of the last up to 100
        finished episodes, NaN when none finished).

    Raises:
        ConfigError: bad config, an env with the wrong spaces, or a resumed run with a
            different config.
        CheckpointError: the checkpoint to resume from is unreadable.
    """
    from simlab.sb3 import SB3VecEnv

    if not isinstance(cfg, DreamPPOConfig):
        raise ConfigError(f"cfg must be a DreamPPOConfig, got {type(cfg).__name__}")
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = _resolve_device(cfg.device)
    final = run.checkpoint(CHECKPOINT) if run is not None else None
    state = _read_state(final, cfg) if final is not None else None
    env = make_env(cfg.num_envs, cfg.seed)
    obs_space, act_space = env.single_observation_space, env.single_action_space
    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1) or \
            not isinstance(act_space, spaces.Discrete) or int(getattr(env, "num_envs", -1)) != cfg.num_envs:
        env.close()
        raise ConfigError(f"{type(env).__name__}: dream PPO needs {cfg.num_envs} envs with flat Box observations "
                          f"and Discrete actions, got {getattr(env, 'num_envs', None)} x {obs_space}, {act_space}")
    venv = SB3VecEnv(env)  # SB3 seeds its resets from cfg.seed (PPO's set_random_seed)
    start = 0
    try:
        if state is not None:
            try:
                model = PPO.load(final / SB3_ZIP, env=venv, device=device, custom_objects={
                    "policy_kwargs": policy_kwargs(cfg), "learning_rate": cfg.lr, "clip_range": cfg.clip})
            except Exception as e:  # noqa: BLE001 - any failure to read SB3's zip is a bad checkpoint
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise CheckpointError(f"{final / SB3_ZIP}: cannot resume from this checkpoint ({msg})") from None
            start = int(model.num_timesteps)
            model.set_random_seed(cfg.seed + start)
            drop_stale_metrics(run, start, "ppo/")
        else:
            if run is not None:
                drop_stale_metrics(run, 0, "ppo/")
            model = PPO(
                "MlpPolicy", venv, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
                n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip,
                ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                policy_kwargs=policy_kwargs(cfg), seed=cfg.seed, device=device, verbose=0,
            )
        model.set_logger(_make_logger(run, log))
        remaining = cfg.total_timesteps - int(model.num_timesteps)
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=_Callback(final, cfg, progress),
                        reset_num_timesteps=state is None, log_interval=1)
            model.logger.dump(model.num_timesteps)  # train/ values of the last update
        policy = DreamPolicy(export_actor(model), policy_meta(model, cfg), seed=cfg.seed)
        if final is not None:
            save_checkpoint(final, model, cfg)
            with atomic_dir(run.path / FINAL_DIR) as tmp:
                policy.save(tmp)
            run.mark_stage("dream_ppo", {"num_timesteps": int(model.num_timesteps)})
        returns = [float(ep["r"]) for ep in model.ep_info_buffer or []]
        info = {"num_timesteps": int(model.num_timesteps), "resumed_from": start, "episodes": len(returns),
                "mean_return": float(np.mean(returns)) if returns else float("nan")}
        model.logger.close()
    finally:
        venv.close()
    return policy, info
