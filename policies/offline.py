"""Offline RL on procgen transition datasets: BC, discrete CQL and discrete IQL through TorchRL.

The losses are TorchRL's (``torchrl.objectives``: :class:`BCLoss`, :class:`DiscreteCQLLoss`,
:class:`DiscreteIQLLoss`, with :class:`SoftUpdate` target networks); this module only feeds
them a dataset and writes the same run directory and saved-policy format as every simlab
policy. Why TorchRL (``docs/procgen_rl.md``): it installs beside gymnasium 1.4 and torch 2.13
without pulling anything else heavy (tensordict only), and it has discrete CQL and IQL;
d3rlpy pins ``gymnasium==1.0.0`` and tianshou 2.0 pulls numba, pandas and pettingzoo.

Every network is an :class:`~simlab.policies.saved.ImpalaActor` (IMPALA-CNN -> linear head):

======  ==========================================  =======================================
algo    trained networks                            exported policy (``RUN/policy``)
======  ==========================================  =======================================
bc      actor (logits)                              the actor: argmax / softmax of logits
cql     Q-network (15 Q-values), target Q           the Q-network: argmax Q (greedy); a
                                                    sampled action is softmax(Q)
iql     actor, 2 Q-networks (+ targets), V-network  the actor (advantage-weighted BC)
======  ==========================================  =======================================

Run directory (as :mod:`simlab.policies.bc`)::

    RUN/config.yaml                  the resolved OfflineConfig
    RUN/metrics.jsonl                train/<loss terms>, time/steps_per_s (+ eval/...)
    RUN/checkpoints/latest/          policy/ (saved-policy format), trainer.safetensors (every
                                     network incl. targets, optimizer moments, torch RNG),
                                     trainer.json (step, data fingerprint)
    RUN/policy/                      the final policy
    RUN/eval_info.json               evaluation in the real env (when eval_episodes > 0)

Determinism and resume: weights are initialised from ``seed``; step ``t`` trains on the batch
``default_rng([seed, t]).integers(0, N, batch_size)``, so a batch is a pure function of
(seed, step) and a resumed run ends with the same weights as an unbroken one (bit for bit on
CPU with the same thread count).

Data: a ``simlab collect procgen`` directory. Transition ``i`` is (``obs[i]``, ``actions[i]``,
``rewards[i]``, next observation, ``terminations[i]``); the next observation is the next row
of the same episode segment or the segment's ``final_obs``. Only termination stops the
bootstrap (a time-limit truncation or a cut segment bootstraps from its next observation).
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simlab.config import to_dict
from simlab.data import sha256_file
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json
from simlab.runs import RunDir

ALGOS = ("bc", "cql", "iql")
FORMAT_VERSION = 1


@dataclass
class OfflineConfig:
    """Hyperparameters of ``simlab train offline`` (CLI ``key=value`` overrides)."""

    algo: str = "cql"
    """bc | cql | iql."""
    data: str = ""
    """Transition dataset directory (``simlab collect procgen``)."""
    env: str = ""
    """Env id the data must fit and the policy is evaluated in (empty: the dataset's)."""
    steps: int = 2000
    """Gradient steps."""
    batch_size: int = 128
    """Transitions per gradient step (sampled uniformly with replacement)."""
    lr: float = 5e-4
    """Adam learning rate (every network)."""
    gamma: float = 0.99
    """Discount of the TD targets (cql, iql)."""
    tau: float = 0.005
    """Soft target-network update rate per step (cql, iql)."""
    cql_alpha: float = 1.0
    """Weight of CQL's conservative term ``logsumexp_a Q(s, a) - Q(s, a_data)``."""
    iql_expectile: float = 0.7
    """IQL's expectile of the value regression."""
    iql_temperature: float = 3.0
    """IQL's inverse temperature of the advantage weights."""
    depths: list[int] = field(default_factory=lambda: [0, 16, 32, 32])
    """IMPALA-CNN stacks of every network (0 = a 2x2 average-pool stage, as PPO's ``cpu`` preset)."""
    features_dim: int = 256
    """Encoder output width."""
    seed: int = 0
    """Seed of the weight init, the batches and the evaluation levels."""
    device: str = "cpu"
    """cpu | cuda | cuda:N | auto."""
    log_every: int = 100
    """Log train/ metrics every this many steps."""
    checkpoint_every: int = 500
    """Write checkpoints/latest every this many steps (and at the end)."""
    eval_episodes: int = 0
    """Episodes per split evaluated in the real env after training (0: none)."""
    eval_splits: list[str] = field(default_factory=lambda: ["train", "test"])
    """Splits of the final evaluation."""
    eval_num_envs: int = 16
    """Envs stepped together during evaluation."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown offline algorithm {self.algo!r}; choose one of {', '.join(ALGOS)}")
        for k in ("steps", "batch_size", "features_dim", "log_every", "checkpoint_every", "eval_num_envs"):
            if getattr(self, k) < 1:
                raise ConfigError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.eval_episodes < 0:
            raise ConfigError(f"eval_episodes must be >= 0, got {self.eval_episodes}")
        if not self.lr > 0 or not 0 <= self.gamma <= 1 or not 0 < self.tau <= 1 or self.cql_alpha < 0:
            raise ConfigError("need lr > 0, gamma in [0, 1], tau in (0, 1], cql_alpha >= 0")
        if not 0 < self.iql_expectile < 1 or self.iql_temperature <= 0:
            raise ConfigError("need iql_expectile in (0, 1) and iql_temperature > 0")
        if not any(d > 0 for d in self.depths) or min(self.depths) < 0:
            raise ConfigError(f"depths must be channel counts (0 = average-pool stage), got {self.depths}")


PRESETS: dict[str, dict[str, Any]] = {
    "debug": {"steps": 20, "batch_size": 16, "depths": [0, 8, 8], "features_dim": 32, "log_every": 5,
              "checkpoint_every": 10, "eval_episodes": 2, "eval_num_envs": 2},
}
"""Built-in presets (``debug``: seconds, for tests and smoke runs)."""


def offline_config(presets: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()
                   ) -> OfflineConfig:
    """Defaults <- presets in order (:data:`PRESETS` or ``assets/presets/offline/<name>.yaml``) <- overrides."""
    from simlab.config import resolve

    return resolve(OfflineConfig, "offline", presets, overrides, builtin=PRESETS)


# ---- data ------------------------------------------------------------------------------------

class OfflineData:
    """A transition dataset in memory, with next observations.

    Attributes:
        frames: ``(N + M, H, W, C)`` uint8: every episode segment's observations plus its final one.
        cur, nxt: ``(N,)`` int64 rows of ``frames`` of each transition's observation / next observation.
        actions: ``(N,)`` int64; rewards: ``(N,)`` float32; terminated: ``(N,)`` bool.
    """

    def __init__(self, root: str) -> None:
        from simlab.envs.procgen.dataset import TransitionDataset

        ds = TransitionDataset(root)
        self.source, self.env_id = root, ds.env_id
        self.obs_shape, self.obs_dtype, self.n_actions = ds.observation_shape, ds.observation_dtype, ds.n_actions
        self.fingerprint = sha256_file(Path(root) / "manifest.json")
        frames, cur, nxt, act, rew, term = [], [], [], [], [], []
        base = 0
        for ep in ds.episodes():
            t = len(ep["actions"])
            frames.append(ep["observations"])
            cur.append(base + np.arange(t))
            nxt.append(base + 1 + np.arange(t))
            act.append(np.asarray(ep["actions"], np.int64))
            rew.append(np.asarray(ep["rewards"], np.float32))
            term.append(np.asarray(ep["terminations"], bool))
            base += t + 1
        if not act:
            raise ConfigError(f"{root}: the dataset holds no transitions")
        self.frames = np.concatenate(frames)
        self.cur, self.nxt = np.concatenate(cur), np.concatenate(nxt)
        self.actions, self.rewards, self.terminated = np.concatenate(act), np.concatenate(rew), np.concatenate(term)
        bad = (self.actions < 0) | (self.actions >= self.n_actions)
        if bad.any():
            raise ConfigError(f"{root}: action {self.actions[bad][0]} outside [0, {self.n_actions})")

    def __len__(self) -> int:
        return len(self.actions)

    def batch(self, idx: np.ndarray) -> Any:
        """A TensorDict of transitions ``idx`` in TorchRL's layout: ``observation`` (B, H, W, C) uint8,
        ``action`` (B,) int64, ``("next", "observation" | "reward" (B, 1) | "done" | "terminated" (B, 1))``."""
        import torch
        from tensordict import TensorDict

        b = len(idx)
        term = torch.from_numpy(self.terminated[idx]).reshape(b, 1)
        return TensorDict({
            "observation": torch.from_numpy(self.frames[self.cur[idx]]),
            "action": torch.from_numpy(self.actions[idx]),
            "next": {"observation": torch.from_numpy(self.frames[self.nxt[idx]]),
                     "reward": torch.from_numpy(self.rewards[idx]).reshape(b, 1),
                     "done": term.clone(), "terminated": term},
        }, batch_size=[b])


def target_env(cfg: OfflineConfig, data: OfflineData) -> str:
    """The env id of the run; ConfigError if the data comes from another game or action space."""
    import gymnasium

    import simlab  # noqa: F401  (registers the envs)
    from simlab.envs.procgen.dataset import check_spaces
    from simlab.policies.evaluate import procgen_game

    env_id = cfg.env or data.env_id
    procgen_game(env_id)
    if data.env_id and env_id != data.env_id:
        raise ConfigError(f"dataset {data.source} was collected on {data.env_id}, not {env_id}")
    env = gymnasium.make(env_id)
    try:
        check_spaces(data.source, data.obs_shape, data.obs_dtype, data.n_actions, env)
    finally:
        env.close()
    return env_id


# ---- the TorchRL losses ------------------------------------------------------------------------

class Learner:
    """Networks, TorchRL loss module, target updater and optimizer of one algorithm.

    ``policy`` is the :class:`ImpalaActor` that is exported; ``loss`` is an ``nn.Module`` whose
    ``state_dict`` holds every network (targets included).
    """

    def __init__(self, cfg: OfflineConfig, n_actions: int, obs_shape: tuple[int, ...]) -> None:
        import torch
        from tensordict.nn import TensorDictModule
        from torchrl.data import Categorical
        from torchrl.modules import ProbabilisticActor, QValueActor
        from torchrl.objectives import BCLoss, DiscreteCQLLoss, DiscreteIQLLoss, SoftUpdate

        from simlab.policies.saved import ImpalaActor

        h, w, c = obs_shape
        if h != w:
            raise ConfigError(f"ImpalaActor needs square images, got {obs_shape}")
        torch.manual_seed(cfg.seed)
        net = lambda k: ImpalaActor(k, c, h, cfg.depths, cfg.features_dim)
        spec = Categorical(n_actions)
        self.cfg, self.updater = cfg, None
        if cfg.algo == "cql":
            self.policy = net(n_actions)
            qactor = QValueActor(self.policy, in_keys=["observation"], spec=spec)
            self.loss = DiscreteCQLLoss(qactor, action_space=spec, loss_function="l2", delay_value=True)
            self.loss.make_value_estimator(gamma=cfg.gamma)
            _bind_cql_target(self.loss)
            self.updater = SoftUpdate(self.loss, tau=cfg.tau)
            self.weights = {"loss_qvalue": 1.0, "loss_cql": cfg.cql_alpha}
        else:
            self.policy = net(n_actions)
            actor = ProbabilisticActor(TensorDictModule(self.policy, in_keys=["observation"], out_keys=["logits"]),
                                       in_keys=["logits"], out_keys=["action"], spec=spec,
                                       distribution_class=torch.distributions.Categorical,
                                       return_log_prob=False)
            if cfg.algo == "bc":
                # BCLoss's discrete branch: cross-entropy of the logits the module writes at "action"
                # against the dataset's action ids (read before the module runs).
                with warnings.catch_warnings():  # TorchRL 0.14 warns about its own BCLoss target-params attribute
                    warnings.filterwarnings("ignore", message="The name target_actor_network_params")
                    self.loss = BCLoss(TensorDictModule(self.policy, in_keys=["observation"], out_keys=["action"]))
                self.weights = {"loss_bc": 1.0}
            else:
                qnet = TensorDictModule(net(n_actions), in_keys=["observation"], out_keys=["state_action_value"])
                vnet = TensorDictModule(net(1), in_keys=["observation"], out_keys=["state_value"])
                self.loss = DiscreteIQLLoss(actor, qnet, vnet, action_space="categorical", num_qvalue_nets=2,
                                            expectile=cfg.iql_expectile, temperature=cfg.iql_temperature)
                self.loss.make_value_estimator(gamma=cfg.gamma)
                self.updater = SoftUpdate(self.loss, tau=cfg.tau)
                self.weights = {"loss_actor": 1.0, "loss_qvalue": 1.0, "loss_value": 1.0}
        self.opt = torch.optim.Adam(self.loss.parameters(), lr=cfg.lr)

    def terms(self, td: Any) -> dict[str, Any]:
        """The loss terms TorchRL computes on batch ``td`` (scalar tensors)."""
        out = self.loss(td)
        return {k: out[k] for k in self.weights}

    def step(self, td: Any) -> dict[str, float]:
        """One Adam step on the weighted sum of the loss terms; then the soft target update."""
        terms = self.terms(td)
        total = sum(self.weights[k] * v for k, v in terms.items())
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        if self.updater is not None:
            self.updater.step()
        return {f"train/{k}": float(v.detach()) for k, v in terms.items()} | {"train/loss": float(total.detach())}


def _bind_cql_target(loss: Any) -> None:
    """Make TorchRL 0.14's ``DiscreteCQLLoss`` bootstrap from its TARGET network.

    Its ``make_value_estimator`` gives the TD(0) estimator a copy of the Q-network bound to the
    ONLINE parameters, and ``value_loss`` passes the target parameters in a keyword the estimator
    ignores: the TD targets follow the network being trained, ``delay_value=True`` and the soft
    update have no effect (measured: scaling the online weights moved the targets, scaling
    nothing else; tests/test_offline.py). Without a target network the Q-values of the mixed
    and suboptimal CoinRun-v1 data grew 100-1000x every 25 steps at gamma 0.99. Rebinding the
    estimator's copy to the target parameters (updated in place by ``SoftUpdate``) restores DQN's
    delayed target.
    """
    est = getattr(loss, "_value_estimator", None)
    net = getattr(est, "value_network", None)
    if net is None:  # a TorchRL whose estimator has no stateful copy: nothing to rebind
        return
    loss.target_value_network_params.to_module(net, return_swap=False, preserve_module_state=False)


# ---- checkpoints -------------------------------------------------------------------------------

def save_checkpoint(path: Path, learner: Learner, step: int, meta: dict[str, Any]) -> None:
    """Atomically write ``path``: ``policy/``, ``trainer.safetensors`` (all networks incl. targets,
    optimizer tensors, torch RNG) and ``trainer.json`` (written last, with the file's checksum)."""
    import torch
    from safetensors.torch import save_file

    from simlab.policies.saved import save_policy

    tmp = path.with_name(f".{path.name}.new-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_policy(tmp / "policy", learner.policy, dict(meta))
    tensors = {f"loss.{k}": v.detach().cpu().contiguous().clone() for k, v in learner.loss.state_dict().items()}
    scalars: dict[str, Any] = {}
    for pid, st in learner.opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "trainer.safetensors"))
    write_sealed_json(tmp / "trainer.json", {
        "format_version": FORMAT_VERSION, "step": step, "optimizer_scalars": scalars,
        "data_fingerprint": meta.get("data_fingerprint"), "trainer_sha256": sha256_file(tmp / "trainer.safetensors")})
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path, learner: Learner) -> dict[str, Any]:
    """Restore :func:`save_checkpoint`'s state into ``learner``; returns ``trainer.json``."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        os.replace(old, path)  # a swap interrupted between its renames
    state_path, tpath = path / "trainer.json", path / "trainer.safetensors"
    state = read_sealed_json(state_path, CheckpointError, "checkpoint state")
    if not tpath.exists() or sha256_file(tpath) != state.get("trainer_sha256"):
        raise CheckpointError(f"{tpath}: missing or differs from trainer.json (corrupt)")
    try:
        tensors = load_file(str(tpath))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{tpath}: not a readable safetensors file ({e})") from None
    sd = {k[len("loss."):]: v for k, v in tensors.items() if k.startswith("loss.")}
    try:
        learner.loss.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"{tpath}: networks do not fit this config ({str(e).splitlines()[0]})") from None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[k] = v
    for key, v in state.get("optimizer_scalars", {}).items():
        pid, k = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[k] = v
    learner.opt.load_state_dict({"state": opt_state, "param_groups": learner.opt.state_dict()["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return state


# ---- training ----------------------------------------------------------------------------------

def evaluate_policy(cfg: OfflineConfig, learner: Learner, env_id: str, out_dir: Path | None) -> dict[str, float]:
    """Greedy evaluation of the exported policy in the real env; ``eval/<split>/<stat>`` metrics."""
    import copy

    from simlab.policies.evaluate import eval_metrics, evaluate
    from simlab.policies.saved import SavedPolicy

    res = evaluate(SavedPolicy(copy.deepcopy(learner.policy), seed=cfg.seed), env_id, cfg.eval_splits,
                   cfg.eval_episodes, seed=cfg.seed, num_envs=cfg.eval_num_envs, out_dir=out_dir)
    return eval_metrics(res, ("mean_return", "ci95"))


def train_offline(cfg: OfflineConfig, out: str | Path, resume: bool = False, progress: bool = True) -> RunDir:
    """Train ``cfg.algo`` on ``cfg.data`` and write the run directory ``out``.

    Raises:
        ConfigError: bad config or data that does not fit the env (checked before ``out`` is touched).
        CheckpointError: the checkpoint to resume from is unreadable or of other data.
    """
    import torch
    from tqdm import tqdm

    from simlab.policies.saved import save_policy

    if not cfg.data:
        raise ConfigError("offline training needs a dataset: --data DIR")
    data = OfflineData(cfg.data)
    env_id = target_env(cfg, data)
    if cfg.device not in ("cpu", "auto") and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg.device!r} requested but CUDA is not available")
    run = RunDir.create(out, cfg, resume=resume)
    learner = Learner(cfg, data.n_actions, data.obs_shape)
    meta = {"trainer": f"offline-{cfg.algo}", "env_id": env_id, "data": data.source,
            "data_fingerprint": data.fingerprint, "offline_config": to_dict(cfg)}
    ckpt = run.checkpoint("latest")
    start = 0
    if resume and (ckpt / "trainer.json").exists():
        state = load_checkpoint(ckpt, learner)
        if state.get("data_fingerprint") != data.fingerprint:
            raise CheckpointError(f"{ckpt}: the checkpoint was trained on other data than {data.source}")
        start = int(state["step"])
        run.truncate_metrics(start)
    elif resume:
        run.truncate_metrics(0)
    n = len(data)
    t0, win = time.perf_counter(), []
    with tqdm(total=cfg.steps, initial=start, desc=f"offline {cfg.algo}", unit="step", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for step in range(start, cfg.steps):
            idx = np.random.default_rng([cfg.seed, step]).integers(0, n, cfg.batch_size)
            win.append(learner.step(data.batch(idx)))
            bar.update(1)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                metrics = {k: float(np.mean([w[k] for w in win])) for k in win[0]}
                metrics["time/steps_per_s"] = (done - start) / max(1e-9, time.perf_counter() - t0)
                run.log(done, metrics)
                bar.set_postfix(loss=f"{metrics['train/loss']:.3f}")
                win = []
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save_checkpoint(ckpt, learner, done, meta)
    if not run.stage_done("train"):
        save_policy(run.path / "policy", learner.policy, dict(meta))
        run.mark_stage("train", {"steps": cfg.steps, "transitions": n})
    if cfg.eval_episodes and not run.stage_done("eval"):
        metrics = evaluate_policy(cfg, learner, env_id, run.path)
        run.log(cfg.steps, metrics)
        run.mark_stage("eval", metrics)
    return run
