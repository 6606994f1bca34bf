"""PPO (stable-baselines3) with an IMPALA-CNN on simlab's procgen-like games.

Procgen's PPO baseline (Cobbe et al. 2020): 64 envs x 256 steps per rollout,
3 epochs of 8 minibatches, lr 5e-4, gamma 0.999, IMPALA-CNN features with
linear policy and value heads. Training runs on :class:`ProcgenVecEnv`
(train-split levels) through :class:`simlab.sb3.SB3VecEnv` and writes one
run directory::

    RUN/config.yaml                      the resolved PPOConfig
    RUN/metrics.jsonl                    train/, rollout/, time/ (and eval/) keys per rollout
    RUN/tb/                              TensorBoard events (only if tensorboard is installed)
    RUN/checkpoints/latest/sb3_model.zip SB3's own checkpoint, used only to --resume
    RUN/checkpoints/latest/policy/       the exported actor (config.json + model.safetensors)
    RUN/checkpoints/latest/state.json    num_timesteps of the checkpoint
    RUN/checkpoints/latest/files.sha256.json  sealed size + SHA-256 of every file above (written
                                         last; checked before --resume unpickles the zip)
    RUN/checkpoints/best/policy/         best policy by eval return (when eval_every > 0)
    RUN/checkpoints/step_<N>/policy/     kept policies of periodic checkpoints (keep_checkpoints=true)
    RUN/baselines.json                   uniform-random and stand-still returns on eval_splits
    RUN/learning_curve.{csv,json}        return vs env steps and wall time (+ eval/ with 95% CIs)
    RUN/plots/learning_curve.png         the same, with the fixed baselines as dashed lines
    RUN/policy/                          the final exported actor (evaluate / load_policy read it)

Usage::

    from simlab.policies.ppo import PPOConfig, train_ppo
    run = train_ppo(PPOConfig(total_timesteps=1_000_000), Path("runs/ppo-maze"))
"""

from __future__ import annotations

import importlib.util
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
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from simlab.config import from_dict, load_yaml, resolve, save_yaml, to_dict
from simlab.data import atomic_dir, recover_dir, write_json_atomic
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import (
    read_sealed_json,
    verify_dir_digests,
    write_dir_digests,
    write_sealed_json,
)
from simlab.policies.evaluate import procgen_game
from simlab.policies.networks import ImpalaCNN
from simlab.policies.saved import ImpalaActor, SavedPolicy, save_policy
from simlab.runs import RunDir

SB3_ZIP = "sb3_model.zip"
STATE = "state.json"
RESUMABLE_CHANGES = frozenset({"total_timesteps", "checkpoint_every", "eval_every", "device", "torch_threads",
                               "keep_checkpoints", "baseline_episodes", "eval_deterministic"})
"""Config keys that may differ when resuming (they do not change the learning problem)."""


@dataclass
class PPOConfig:
    """PPO hyperparameters (defaults: Procgen's easy-mode PPO baseline)."""

    env_id: str = "simlab/Maze-v0"
    """Procgen-like env id (simlab/Maze-v0, simlab/CoinRun-v0, simlab/CoinRun-v1, simlab/BigFish-v0, simlab/Dodge-v0, simlab/Dodge-v1)."""
    num_levels: int = 200
    """Number of training levels (0 = unlimited)."""
    start_level: int = 0
    """Lowest training level seed."""
    distribution_mode: str = "easy"
    """Level distribution: easy | hard."""
    use_backgrounds: bool = True
    """Draw textured backgrounds."""
    num_envs: int = 64
    """Parallel envs in the batch."""
    n_steps: int = 256
    """Steps per env per rollout (rollout size = num_envs * n_steps)."""
    total_timesteps: int = 25_000_000
    """Env steps to train for, summed over envs."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.999
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
    n_epochs: int = 3
    """Optimisation epochs per rollout."""
    batch_size: int = 2048
    """Minibatch size."""
    cnn_depths: list[int] = field(default_factory=lambda: [16, 32, 32])
    """Channels of the three IMPALA-CNN stacks."""
    features_dim: int = 256
    """IMPALA-CNN output width (input of the linear policy and value heads)."""
    seed: int = 0
    """Seed of torch, numpy and the level streams."""
    device: str = "auto"
    """Torch device: auto (cuda if available, else cpu) | cpu | cuda | cuda:N."""
    torch_threads: int = 0
    """CPU threads for torch (0 = torch's default)."""
    eval_every: int = 1_000_000
    """Evaluate on eval_splits every this many env steps (0 = never)."""
    eval_episodes: int = 32
    """Episodes per split for the periodic evaluation."""
    eval_splits: list[str] = field(default_factory=lambda: ["train", "val"])
    """Splits of the periodic evaluation; the last one selects checkpoints/best."""
    eval_deterministic: bool = True
    """Greedy (argmax) actions in the periodic evaluation, else sampled from the policy's softmax
    (as Procgen's protocol evaluates PPO)."""
    checkpoint_every: int = 500_000
    """Save checkpoints/latest every this many env steps (0 = only at the end)."""
    keep_checkpoints: bool = False
    """Also keep a copy of each periodic checkpoint's policy as ``checkpoints/step_<N>/policy``
    (early policies for suboptimal / mixed behaviour datasets)."""
    baseline_episodes: int = 0
    """Episodes per eval split for the fixed-policy baselines (uniform random, stand still) drawn
    into the learning curve (0 = none)."""

    def __post_init__(self) -> None:
        from simlab.envs.procgen.base import ProcgenOptions

        procgen_game(self.env_id)
        # Validate the level options now, before a run directory is written.
        ProcgenOptions(num_levels=self.num_levels, start_level=self.start_level,
                       distribution_mode=self.distribution_mode, use_backgrounds=self.use_backgrounds)
        for k in ("num_envs", "n_steps", "n_epochs", "batch_size", "features_dim", "eval_episodes"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key {k!r} must be >= 1, got {getattr(self, k)}")
        for k in ("total_timesteps", "eval_every", "checkpoint_every", "torch_threads", "num_levels",
                  "start_level"):
            if getattr(self, k) < 0:
                raise ConfigError(f"config key {k!r} must be >= 0, got {getattr(self, k)}")
        if self.batch_size > self.num_envs * self.n_steps:
            raise ConfigError(f"batch_size {self.batch_size} exceeds the rollout size "
                              f"num_envs * n_steps = {self.num_envs * self.n_steps}")
        for k in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ConfigError(f"config key {k!r} must be in [0, 1], got {getattr(self, k)}")
        if self.lr <= 0 or self.clip <= 0:
            raise ConfigError("lr and clip must be > 0")
        if not any(d > 0 for d in self.cnn_depths) or min(self.cnn_depths) < 0:
            raise ConfigError(f"cnn_depths must be channel counts (0 = a 2x2 average-pool stage) with at "
                              f"least one > 0, got {self.cnn_depths}")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")
                                          or self.device == "mps"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


CPU_PRESET: dict[str, Any] = {
    "num_envs": 64, "n_steps": 128, "batch_size": 512, "n_epochs": 3, "lr": 5e-4, "gamma": 0.99,
    "cnn_depths": [0, 8, 16, 16], "features_dim": 256, "total_timesteps": 786_432,
    "eval_every": 131_072, "eval_episodes": 32, "eval_deterministic": False,
    "checkpoint_every": 131_072, "keep_checkpoints": True, "baseline_episodes": 64, "device": "cpu",
}
"""The ``cpu`` preset: a half-width IMPALA-CNN on a 2x2-average-pooled 32x32 view ([0, 8, 16, 16]:
about 8x cheaper per sample than the full 64x64 [16, 32, 32] network on a CPU core), 64 envs x
128 steps, 3 epochs of minibatches of 512 (48 Adam steps per rollout), gamma 0.99, 786,432 steps:
measured 2.4 ms of CPU per env step with one torch thread, so about 31 CPU-minutes.
Chosen by measurement (``docs/procgen_rl.md``); periodic evaluation on train and held-out levels
and the fixed baselines make the learning curve."""

PRESETS: dict[str, dict[str, Any]] = {
    "debug": {
        "num_envs": 8, "n_steps": 64, "batch_size": 256, "n_epochs": 1, "total_timesteps": 2048,
        "cnn_depths": [8, 16, 16], "features_dim": 64, "checkpoint_every": 1024, "eval_every": 0,
        "eval_episodes": 4, "torch_threads": 1,
    },
    "cpu": CPU_PRESET,
}
"""Built-in presets (``debug``: a few thousand steps with a small CNN, for tests and smoke runs;
``cpu``: about 30 CPU-minutes with the network sized for a CPU, see :data:`CPU_PRESET`)."""


def ppo_config(presets: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()) -> PPOConfig:
    """Defaults <- presets in order (built-in :data:`PRESETS` or ``assets/presets/ppo/<name>.yaml``) <- overrides."""
    return resolve(PPOConfig, "ppo", presets, overrides, builtin=PRESETS)


def debug_config(**overrides: Any) -> PPOConfig:
    """The ``debug`` preset as a PPOConfig, with keyword overrides."""
    return from_dict(PPOConfig, {**to_dict(PPOConfig()), **PRESETS["debug"], **overrides})


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; ConfigError for an unavailable cuda."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available (use device=cpu or auto)")
    return device


# ---- network ------------------------------------------------------------------------------------
class ImpalaExtractor(BaseFeaturesExtractor):
    """SB3 features extractor wrapping :class:`ImpalaCNN`.

    SB3 transposes image observations to channels-first and scales them to
    [0, 1] before the extractor, so the CNN runs with ``channels_last=False``;
    :class:`ImpalaActor` does the same transpose and scaling itself on raw
    ``(B, H, W, C)`` uint8 images, so the weights move over unchanged.
    """

    def __init__(self, observation_space: spaces.Box, depths: tuple[int, ...] | list[int] = (16, 32, 32),
                 features_dim: int = 256) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        if h != w:
            raise ConfigError(f"ImpalaExtractor needs square images, got {h}x{w}")
        self.in_channels, self.image_size, self.depths = int(c), int(h), tuple(int(d) for d in depths)
        self.cnn = ImpalaCNN(self.in_channels, self.image_size, self.depths, features_dim, channels_last=False)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.cnn(observations)


def policy_kwargs(cfg: PPOConfig) -> dict[str, Any]:
    """SB3 ``policy_kwargs``: IMPALA-CNN features, linear policy and value heads (no hidden MLP)."""
    return {
        "features_extractor_class": ImpalaExtractor,
        "features_extractor_kwargs": {"depths": list(cfg.cnn_depths), "features_dim": cfg.features_dim},
        "net_arch": {"pi": [], "vf": []},
    }


def export_actor(model: PPO) -> ImpalaActor:
    """Copy the actor of an SB3 PPO model (IMPALA features + action head) into a CPU :class:`ImpalaActor`."""
    pol = model.policy
    fe = pol.features_extractor
    if not isinstance(fe, ImpalaExtractor):
        raise ConfigError(f"export_actor needs an ImpalaExtractor, the policy has {type(fe).__name__}")
    if any(True for _ in pol.mlp_extractor.policy_net.parameters()):
        raise ConfigError("export_actor needs net_arch pi=[] (a linear policy head on the CNN features)")
    if not pol.share_features_extractor and pol.pi_features_extractor is not fe:
        fe = pol.pi_features_extractor
    actor = ImpalaActor(n_actions=pol.action_net.out_features, in_channels=fe.in_channels,
                        image_size=fe.image_size, depths=fe.depths, features_dim=fe.features_dim)
    actor.encoder.load_state_dict({k: v.detach().cpu() for k, v in fe.cnn.state_dict().items()})
    actor.head.load_state_dict({k: v.detach().cpu() for k, v in pol.action_net.state_dict().items()})
    return actor.eval()


# ---- envs -----------------------------------------------------------------------------------------
def make_train_env(cfg: PPOConfig):  # -> SB3VecEnv
    """The training env: ProcgenVecEnv on the configured levels, as an SB3 VecEnv."""
    from simlab.envs.procgen.base import ProcgenOptions
    from simlab.envs.procgen.vec import ProcgenVecEnv
    from simlab.sb3 import SB3VecEnv

    opts = ProcgenOptions(num_levels=cfg.num_levels, start_level=cfg.start_level,
                          distribution_mode=cfg.distribution_mode, use_backgrounds=cfg.use_backgrounds,
                          rand_seed=cfg.seed)
    return SB3VecEnv(ProcgenVecEnv(procgen_game(cfg.env_id), cfg.num_envs, options=opts))


# ---- run directory plumbing ------------------------------------------------------------------------
class RunDirOutput(KVWriter):
    """SB3 logger output that appends every dump to ``RUN/metrics.jsonl`` (keys keep SB3's namespaces)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        metrics = {k: float(v) for k, v in key_values.items()
                   if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}
        if metrics:
            self.run.log(step, metrics)

    def close(self) -> None:
        pass


def make_logger(run: RunDir) -> Logger:
    """metrics.jsonl always; TensorBoard events in ``RUN/tb`` only when tensorboard is importable."""
    outputs: list[KVWriter] = [RunDirOutput(run)]
    if importlib.util.find_spec("tensorboard") is not None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        outputs.append(TensorBoardOutputFormat(str(run.path / "tb")))
    return Logger(folder=str(run.path), output_formats=outputs)


def save_checkpoint(run: RunDir, model: PPO, cfg: PPOConfig, name: str = "latest") -> Path:
    """Atomically write ``checkpoints/<name>/``: SB3 zip, exported policy, state.json, and last the
    sealed digest record of all three (:func:`simlab.integrity.write_dir_digests`), which
    :func:`load_checkpoint` checks before SB3 unpickles anything.

    DivergedError (nothing written) when the weights are no longer finite: a NaN loss in SB3's
    update leaves NaN weights, and the last good checkpoint must stay the newest.
    """
    from simlab.training import check_weights

    check_weights(model.policy, "ppo")
    final = run.checkpoint(name)
    with atomic_dir(final) as tmp:
        # The SB3 zip (its own format, with torch-pickled state) is only read back by --resume here;
        # the policy that leaves the run is the safetensors export next to it.
        model.save(tmp / SB3_ZIP)
        save_policy(tmp / "policy", export_actor(model), policy_meta(model, cfg))
        write_sealed_json(tmp / STATE, {"format_version": 1, "num_timesteps": int(model.num_timesteps),
                                        "time": time.time()})
        write_dir_digests(tmp)
    return final


def load_checkpoint(ckpt: Path, cfg: PPOConfig, venv: Any, device: str) -> PPO:
    """Load the SB3 model of a checkpoint directory written by :func:`save_checkpoint`.

    Checked first, before SB3 reads (and unpickles) the zip: the directory's digest record
    exists, and every file has its recorded size and SHA-256 and no other file is present
    (:func:`simlab.integrity.verify_dir_digests`). CheckpointError, one line naming the file,
    for any failure, including one of SB3's own reader.
    """
    try:
        verify_dir_digests(ckpt, CheckpointError, "PPO checkpoint")
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume from this checkpoint: {e}") from None
    try:
        return PPO.load(ckpt / SB3_ZIP, env=venv, device=device, custom_objects={
            "policy_kwargs": policy_kwargs(cfg), "learning_rate": cfg.lr, "clip_range": cfg.clip})
    except Exception as e:  # noqa: BLE001 - any failure to read SB3's zip is a bad checkpoint
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{ckpt / SB3_ZIP}: cannot resume from this checkpoint ({msg})") from None


def keep_policy(run: RunDir, model: PPO, cfg: PPOConfig) -> Path:
    """Write the current actor to ``checkpoints/step_<num_timesteps>/policy`` (kept for good)."""
    final = run.checkpoint(f"step_{int(model.num_timesteps)}")
    with atomic_dir(final) as tmp:
        save_policy(tmp / "policy", export_actor(model), policy_meta(model, cfg))
        write_sealed_json(tmp / STATE, {"format_version": 1, "num_timesteps": int(model.num_timesteps),
                                        "time": time.time()})
    return final


def policy_meta(model: PPO, cfg: PPOConfig) -> dict[str, Any]:
    """Metadata stored with an exported PPO policy."""
    return {"trainer": "ppo", "env_id": cfg.env_id, "num_timesteps": int(model.num_timesteps),
            "train_config": to_dict(cfg)}


def _accept_budget_change(out: Path, cfg: PPOConfig) -> None:
    """On resume, allow :data:`RESUMABLE_CHANGES` (e.g. a larger total_timesteps) by updating config.yaml."""
    p = out / "config.yaml"
    if not p.exists():
        return
    try:
        old = load_yaml(PPOConfig, p)
    except ConfigError:
        return  # RunDir.create reports it
    a, b = to_dict(old), to_dict(cfg)
    diff = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    if diff and diff <= RESUMABLE_CHANGES:
        save_yaml(cfg, p)


# ---- learning curve -------------------------------------------------------------------------------
BASELINES = "baselines.json"
CURVE = "learning_curve"
CURVE_KEYS = ("rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "time/process_cpu_s")


def fixed_baselines(cfg: PPOConfig, run: RunDir) -> dict[str, dict[str, Any]]:
    """Mean return (+- 95% CI, success) of uniform-random and stand-still play on ``eval_splits``.

    Written once to ``RUN/baselines.json`` (same levels and seed as the periodic evaluation,
    ``baseline_episodes`` episodes per split) and read back on resume.
    """
    from simlab.policies.evaluate import evaluate
    from simlab.policies.fixed import StandStill, UniformRandom

    p = run.path / BASELINES
    if p.exists():
        return read_sealed_json(p, CheckpointError, "baselines record")["baselines"]
    out: dict[str, dict[str, Any]] = {}
    for name, pol in (("uniform random", UniformRandom(cfg.seed)), ("stand still", StandStill())):
        res = evaluate(pol, cfg.env_id, cfg.eval_splits, cfg.baseline_episodes, seed=cfg.seed,
                       num_envs=min(cfg.baseline_episodes, cfg.num_envs))
        out[name] = {split: {k: r[k] for k in ("mean_return", "ci95", "success_rate", "mean_length")}
                     for split, r in res.items()}
    write_sealed_json(p, {"env_id": cfg.env_id, "episodes": cfg.baseline_episodes, "seed": cfg.seed,
                          "baselines": out})
    return out


def learning_curve(run: RunDir) -> list[dict[str, float]]:
    """Rows of the learning curve from ``metrics.jsonl``: ``step`` (env steps), ``elapsed_s``
    (wall seconds since the first record), training-episode return / length over SB3's last 100
    episodes, steps/s, and every ``eval/`` value logged at that step."""
    recs = run.metrics()
    if not recs:
        return []
    t0 = min(float(r.get("time", 0.0)) for r in recs)
    rows: list[dict[str, float]] = []
    for r in recs:
        row = {"step": int(r["step"]), "elapsed_s": round(float(r.get("time", t0)) - t0, 3)}
        row.update({k: float(r[k]) for k in CURVE_KEYS if k in r})
        row.update({k: float(v) for k, v in r.items() if k.startswith("eval/")})
        if len(row) > 2:
            rows.append(row)
    return rows


def write_learning_curve(run: RunDir) -> Path:
    """Write ``RUN/learning_curve.{csv,json,png}`` (return vs env steps, eval splits with 95% CIs,
    fixed-policy baselines as dashed lines); returns the PNG path."""
    import csv
    import io

    rows = learning_curve(run)
    base_path = run.path / BASELINES
    baselines = (read_sealed_json(base_path, CheckpointError, "baselines record")["baselines"]
                 if base_path.exists() else {})
    cols = ["step", "elapsed_s", *sorted({k for r in rows for k in r} - {"step", "elapsed_s"})]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    (run.path / f"{CURVE}.csv").write_text(buf.getvalue())
    write_json_atomic(run.path / f"{CURVE}.json", {"rows": rows, "baselines": baselines})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg_path = run.path / "config.yaml"
    c = run.config(PPOConfig) if cfg_path.exists() else None
    mode = "greedy" if c is None or c.eval_deterministic else "sampled actions"
    fig, ax = plt.subplots(figsize=(9, 4.2))
    tr = [(r["step"], r["rollout/ep_rew_mean"]) for r in rows if "rollout/ep_rew_mean" in r]
    if tr:
        ax.plot(*zip(*tr), color="0.6", lw=1, label="training episodes (last 100, sampled actions)")
    splits = sorted({k[len("eval/"):-len("_mean_return")] for r in rows for k in r
                     if k.startswith("eval/") and k.endswith("_mean_return")})
    for i, split in enumerate(splits):
        pts = [(r["step"], r[f"eval/{split}_mean_return"], r.get(f"eval/{split}_ci95", 0.0))
               for r in rows if f"eval/{split}_mean_return" in r]
        x, y, e = zip(*pts)
        ax.errorbar(x, y, yerr=e, color=f"C{i}", marker="o", ms=3, capsize=2, label=f"eval {split} ({mode}, 95% CI)")
        for j, (name, res) in enumerate(baselines.items()):
            if split in res:
                ax.axhline(res[split]["mean_return"], color=f"C{i}", ls=("--", ":")[j % 2], lw=1,
                           label=f"{name} ({split})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    title = run.path.name
    if c is not None:
        title = f"PPO {c.env_id}, {c.num_levels or 'unlimited'} levels ({run.path.name})"
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = run.path / "plots" / f"{CURVE}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


class RunCallback(BaseCallback):
    """Progress bar, periodic checkpoints and evaluation of a PPO run.

    Checkpoints and evaluations happen at the start of a rollout, when the
    parameters have been updated on every step collected so far, so a
    resumed run loses no collected data.
    """

    def __init__(self, run: RunDir, cfg: PPOConfig, progress: bool = True) -> None:
        super().__init__()
        self.run, self.cfg, self.progress = run, cfg, progress
        self.bar: Any = None
        self.best = -np.inf
        best = run.checkpoint("best") / STATE
        if best.exists():
            self.best = float(read_sealed_json(best, CheckpointError, "best-checkpoint state").get("score", -np.inf))

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.last = self.num_timesteps
        self.bar = tqdm(total=self.cfg.total_timesteps, initial=self.num_timesteps, unit="step",
                        unit_scale=True, desc=f"ppo {self.cfg.env_id}", disable=not self.progress,
                        dynamic_ncols=True, smoothing=0.1)

    def _on_rollout_end(self) -> None:
        # CPU seconds of this process since it started (or resumed): a load-independent cost measure
        # on a shared machine, beside SB3's wall-clock time/fps.
        self.logger.record("time/process_cpu_s", time.process_time())

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.training_env.num_envs)
        return True

    @staticmethod
    def _crossed(every: int, before: int, now: int) -> bool:
        return every > 0 and now // every > before // every

    def _on_rollout_start(self) -> None:
        now = self.num_timesteps
        if now == self.last:
            return
        if self._crossed(self.cfg.checkpoint_every, self.last, now):
            save_checkpoint(self.run, self.model, self.cfg)
            if self.cfg.keep_checkpoints:
                keep_policy(self.run, self.model, self.cfg)
        if self._crossed(self.cfg.eval_every, self.last, now):
            self.evaluate()
            self.logger.dump(now)  # eval/ (and the last update's train/) values at the step they belong to
        if self._crossed(self.cfg.checkpoint_every, self.last, now):
            write_learning_curve(self.run)  # a killed run keeps its curve so far
        self.last = now

    def evaluate(self) -> dict[str, Any]:
        """Evaluate the current actor on ``eval_splits``; record ``eval/`` metrics; update checkpoints/best."""
        from simlab.policies.evaluate import evaluate

        policy = SavedPolicy(export_actor(self.model))
        policy.rng = np.random.default_rng([self.cfg.seed, int(self.model.num_timesteps)])
        res = evaluate(policy, self.cfg.env_id, self.cfg.eval_splits, self.cfg.eval_episodes, seed=self.cfg.seed,
                       num_envs=min(self.cfg.eval_episodes, self.cfg.num_envs),
                       deterministic=self.cfg.eval_deterministic)
        for split, r in res.items():
            self.logger.record(f"eval/{split}_mean_return", r["mean_return"])
            self.logger.record(f"eval/{split}_ci95", r["ci95"])
            if r["success_rate"] is not None:
                self.logger.record(f"eval/{split}_success_rate", r["success_rate"])
        score = res[self.cfg.eval_splits[-1]]["mean_return"]
        if score > self.best:
            self.best = score
            final = self.run.checkpoint("best")
            with atomic_dir(final) as tmp:
                save_policy(tmp / "policy", policy.network, policy_meta(self.model, self.cfg))
                write_sealed_json(tmp / STATE, {"format_version": 1, "num_timesteps": int(self.model.num_timesteps),
                                                "split": self.cfg.eval_splits[-1], "score": float(score)})
        return res

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_ppo(cfg: PPOConfig, out: Path | str, resume: bool = False, progress: bool = True) -> RunDir:
    """Train PPO on a procgen-like game and write the run directory ``out``.

    Args:
        cfg: the resolved config (saved as ``out/config.yaml``).
        out: run directory; must be new or empty unless ``resume``.
        resume: continue from ``checkpoints/latest`` (SB3 counters kept, only the
            remaining ``total_timesteps - num_timesteps`` steps run). A resumed config must
            equal the saved one except for :data:`RESUMABLE_CHANGES` (e.g. a larger
            ``total_timesteps`` extends a finished run). Without a checkpoint it starts over.
        progress: show a tqdm progress bar (steps/s) on stderr.

    Returns:
        The :class:`RunDir`; the final policy is in ``RUN/policy`` (load with
        :func:`simlab.policies.evaluate.load_policy`).

    Raises:
        ConfigError: bad config, non-procgen env id, or a non-empty ``out`` without ``resume``.
        CheckpointError: the checkpoint to resume from fails its integrity record or is unreadable.
    """
    out = Path(out)
    procgen_game(cfg.env_id)
    if resume:
        _accept_budget_change(out, cfg)
    run = RunDir.create(out, cfg, resume=resume)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    venv = make_train_env(cfg)
    latest = run.checkpoint("latest")
    recover_dir(latest)
    # checkpoints/latest is swapped in whole (atomic_dir), so it exists only complete; any file in
    # it means a checkpoint to resume from, checked against its digest record.
    resumed = resume and latest.is_dir() and any(latest.iterdir())
    if resumed:
        model = load_checkpoint(latest, cfg, venv, device)
        model.set_random_seed(cfg.seed + int(model.num_timesteps))  # fresh level streams after resuming
        run.truncate_metrics(int(model.num_timesteps))
    else:
        if resume:
            run.truncate_metrics(0)
        model = PPO(
            "CnnPolicy", venv, learning_rate=cfg.lr, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip,
            ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
            policy_kwargs=policy_kwargs(cfg), seed=cfg.seed, device=device, verbose=0,
        )
    model.set_logger(make_logger(run))
    if cfg.baseline_episodes > 0:
        fixed_baselines(cfg, run)
    remaining = cfg.total_timesteps - int(model.num_timesteps)
    if remaining > 0:
        cb = RunCallback(run, cfg, progress=progress)
        model.learn(total_timesteps=remaining, callback=cb, reset_num_timesteps=not resumed, log_interval=1)
        if cfg.eval_every > 0:
            cb.evaluate()  # the final policy is always evaluated when evaluation is on
        model.logger.dump(model.num_timesteps)  # train/ values of the last update (+ eval/)
    save_checkpoint(run, model, cfg)
    with atomic_dir(run.path / "policy") as tmp:
        save_policy(tmp, export_actor(model), policy_meta(model, cfg))
    model.logger.close()
    venv.close()
    write_learning_curve(run)
    run.mark_stage("train", {"num_timesteps": int(model.num_timesteps)})
    return run
