"""``simlab train dreamland``: Dropout's Dream Land end to end, against the World Models baseline.

Stages (each checkpointed in the run directory; ``--resume`` skips finished
ones and CMA-ES resumes inside its generations):

1. ``collect``  real rollouts on the training levels (uniform random actions held
   for 1-10 steps, the World Models data policy) -> ``RUN/data/real``.
2. ``vae``      ConvVAE on the frames -> ``RUN/checkpoints/vae``.
3. ``encode``   every frame -> z (VAE mean) -> ``RUN/data/latents.npz``.
4. ``rnn_<v>``  MDN-RNN for each variant ``v``: ``dreamland`` (LSTM dropout on z and h at
   the configured rate) and ``worldmodels`` (the baseline: no dropout) ->
   ``RUN/world_models/<v>`` (VAE + RNN + start latents, ``from_pretrained``-loadable).
5. ``controller_<v>_s<k>``  a controller trained ONLY in dreams, per seed: CMA-ES linear
   controller on [z, h] (or PPO); Dream Land draws a new dropout mask per dream episode
   (``mask=per_episode``), the baseline dreams without dropout (``none``).
6. ``eval_<v>_s<k>``  the controller, driven by the world model's encoder and RNN, in
   the REAL env on the training levels and on held-out levels.
7. ``report``  ``report.md`` (returns: mean, std, 95% CI over seeds x episodes per
   variant and split), ``plots/dream_vs_real.png``, real-rollout mp4s and a
   ``real | dream`` video of the same actions.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab.config import to_dict
from simlab.errors import ConfigError
from simlab.runs import RunDir

VARIANTS = ("dreamland", "worldmodels")
GYM_HELDOUT_SEEDS = (100_000, 100_000)
"""Reset seeds of the ``test`` split of a gymnasium env (CarRacing: tracks never seen in training)."""


def procgen_game_or_none(env_id: str) -> str | None:
    """The game of a procgen-like env id, or None for any other id (checked elsewhere)."""
    from simlab.policies.evaluate import procgen_env_ids, procgen_game

    return procgen_game(env_id) if env_id in procgen_env_ids() else None
CONTROLLER_ACTIONS: dict[str, list[int]] = {
    # One representative per distinct effect of Procgen's 15 combos (left / stay / right ...).
    "dodge": [1, 4, 7],
    "maze": [1, 3, 4, 5, 7],
    "coinrun": [1, 2, 4, 5, 7, 8],
    "bigfish": [0, 1, 2, 3, 4, 5, 6, 7, 8],
}


@dataclass
class DreamlandConfig:
    """The whole Dream Land experiment (presets: debug, cpu (default), gpu)."""

    env: str = "simlab/Dodge-v0"
    """Real env: a procgen-like game id (``simlab/Dodge-v0``...) or an image gymnasium env such as
    ``CarRacing-v3`` (frames resized to 64 x 64; Discrete or Box actions)."""
    train_levels: str = "0:200"
    """Level seeds (procgen) or reset seeds (gymnasium envs: CarRacing's tracks) the data comes from
    and the controller is first evaluated on (a:b)."""
    heldout_split: str = "test"
    """Held-out real levels for the transfer test: procgen test = levels 250+ (or levels:a:b, hard...);
    gymnasium envs: test = reset seeds 100000+ (or levels:a:b)."""
    use_backgrounds: bool = False
    """Procgen's textured level backgrounds in the real env (data and evaluation). Off by default:
    on 2 CPU cores the ConvVAE cannot learn the 4x4-px fireballs over high-contrast textures in
    the time budget (measured: after 1,250 steps it reconstructs the mean background and no
    sprites; with plain backgrounds the agent is sharp after the same steps). The held-out
    levels still differ in enemies, shot timing, aim and palette."""
    transitions: int = 20_000
    """Real transitions collected for the world model."""
    num_envs: int = 64
    """Real envs stepped together while collecting."""
    z_dim: int = 32
    """VAE latent size."""
    vae_epochs: int = 12
    """VAE training epochs."""
    vae_max_frames: int = 10_000
    """Frames used to train the VAE (a seeded subsample if more were collected)."""
    vae_batch_size: int = 32
    """VAE frames per gradient step (small batches: more steps per CPU second)."""
    vae_lr: float = 1e-3
    """VAE Adam learning rate."""
    hidden: int = 256
    """LSTM size of the MDN-RNN."""
    mixtures: int = 5
    """Gaussian mixtures per latent dimension."""
    rnn_epochs: int = 30
    """MDN-RNN training epochs."""
    seq_len: int = 32
    """MDN-RNN training window length."""
    rnn_batch_size: int = 32
    """MDN-RNN windows per gradient step."""
    done_pos_weight: float = 1.0
    """BCE weight of done steps in the MDN-RNN's done head (1: calibrated probabilities)."""
    dropout: float = 0.05
    """Dream Land: LSTM dropout (z input and recurrent state) while training the world model."""
    dream_dropout: float | None = None
    """Dropout rate of the dream masks (default: ``dropout``)."""
    mask: str = "per_episode"
    """Dream Land's mask mode in the dream: per_episode | per_step | mc_mean | none."""
    sweep: list[float] = dataclasses.field(default_factory=list)
    """Extra Dream Land variants, one per dropout rate (world model trained and dreamed at that
    rate), e.g. ``[0.1, 0.2]``; with the default ``dropout`` and the baseline (rate 0) this is the
    paper's sweep 0 / 0.05 / 0.1 / 0.2 on one shared dataset and VAE."""
    temperature: float = 1.0
    """Sampling temperature tau of the dream."""
    controller: str = "cmaes"
    """cmaes (linear controller on [z, h]) | ppo (SB3 MLP on [z, h])."""
    controller_actions: list[int] | None = None
    """Actions the controller chooses among (default: one per distinct effect for the game)."""
    popsize: int = 16
    """CMA-ES population."""
    episodes_per_candidate: int = 4
    """Dream episodes per CMA-ES candidate."""
    generations: int = 40
    """CMA-ES generations."""
    sigma0: float = 0.1
    """CMA-ES initial step size."""
    eval_every: int = 5
    """Every this many generations (and after the last) score the CMA mean on ``eval_dream_episodes``
    fresh dreams; the controller kept is the best-scoring mean (World Models' choice; 0: keep the
    best single candidate, a noisier pick)."""
    eval_dream_episodes: int = 64
    """Dream episodes per evaluation of the CMA mean."""
    max_dream_steps: int = 400
    """Dream episode limit while training the controller."""
    ppo_timesteps: int = 200_000
    """Dream steps for the PPO controller."""
    seeds: int = 3
    """Controller seeds per variant."""
    baseline: bool = True
    """Also run the World Models baseline (same budget, no dropout)."""
    eval_episodes: int = 16
    """Real episodes per split per seed."""
    eval_num_envs: int = 16
    """Real envs stepped together in evaluation."""
    eval_max_steps: int = 0
    """Cap on real evaluation episodes (0 = the env's own limit); gymnasium envs: on collected
    episodes too."""
    device: str = "auto"
    """auto | cpu | cuda."""
    torch_threads: int = 0
    """torch CPU threads (0 = torch's default)."""
    seed: int = 0
    """Seed of data collection and world-model training."""
    videos: bool = True
    """Write mp4s (real rollouts, real | dream)."""

    def __post_init__(self) -> None:
        from simlab.envs.procgen.base import check_split_name, level_range_split, parse_levels

        game = procgen_game_or_none(self.env)
        _, b = parse_levels(self.train_levels)
        if game is not None:
            check_split_name(self.heldout_split)
        else:
            from simlab.envs.gym_image import check_image_env

            info = check_image_env(self.env)  # one-line ConfigError: unknown id, not images...
            if b < 1:
                raise ConfigError(f"train_levels must be a bounded range a:b for {self.env}, got {self.train_levels!r}")
            if self.heldout_split != "test" and level_range_split(self.heldout_split) is None:
                raise ConfigError(f"heldout_split for {self.env} must be 'test' or levels:a:b, "
                                  f"got {self.heldout_split!r}")
            if info.continuous and self.controller == "ppo":
                raise ConfigError(f"controller 'ppo' needs discrete actions; {self.env} has a Box: use cmaes")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dream_dropout is not None and not 0.0 <= self.dream_dropout < 1.0:
            raise ConfigError(f"dream_dropout must be in [0, 1), got {self.dream_dropout}")
        if self.mask not in ("per_episode", "per_step", "mc_mean", "none"):
            raise ConfigError(f"unknown mask mode {self.mask!r}; choose per_episode, per_step, mc_mean or none")
        if self.controller not in ("cmaes", "ppo"):
            raise ConfigError(f"unknown controller {self.controller!r}; choose cmaes or ppo")
        for k in ("transitions", "num_envs", "z_dim", "vae_epochs", "vae_max_frames", "hidden", "mixtures",
                  "rnn_epochs", "seq_len", "vae_batch_size", "rnn_batch_size", "eval_dream_episodes", "popsize", "episodes_per_candidate", "generations",
                  "max_dream_steps", "ppo_timesteps", "seeds", "eval_episodes", "eval_num_envs"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key {k!r} must be >= 1, got {getattr(self, k)}")
        for r in self.sweep:
            if not 0.0 <= r < 1.0:
                raise ConfigError(f"sweep rates must be in [0, 1), got {r}")
        if self.vae_lr <= 0:
            raise ConfigError(f"vae_lr must be > 0, got {self.vae_lr}")
        if self.done_pos_weight <= 0:
            raise ConfigError(f"done_pos_weight must be > 0, got {self.done_pos_weight}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        acts = self._actions(game, None if game is not None else info.action_space)
        n = 15 if game is not None else info.n_actions
        if not isinstance(acts, list):
            if self.controller_actions is not None:
                raise ConfigError(f"controller_actions does not apply to {self.env}'s Box actions")
        elif not acts or min(acts) < 0 or max(acts) >= n:
            raise ConfigError(f"controller_actions must be actions in [0, {n}), got {acts}")

    def actions(self) -> Any:
        """The controller's action set: a list of discrete action ids, or the env's Box."""
        game = procgen_game_or_none(self.env)
        if game is not None:
            return self._actions(game, None)
        from simlab.envs.gym_image import check_image_env

        return self._actions(None, check_image_env(self.env).action_space)

    def _actions(self, game: str | None, space: Any) -> Any:
        """:meth:`actions` given the procgen game, or else the gymnasium env's action space."""
        if game is None and not hasattr(space, "n"):
            return space
        if self.controller_actions is not None:
            return list(self.controller_actions)
        return CONTROLLER_ACTIONS[game] if game is not None else list(range(space.n))

    def variant_specs(self) -> dict[str, dict[str, Any]]:
        """``{name: {"dropout", "dream_dropout", "mask"}}`` of every variant run: Dream Land, the
        baseline unless disabled (``worldmodels``: rate 0, no masks), then one ``dreamland_p<rate>``
        per extra :attr:`sweep` rate (rate 0 is the baseline; the default rate is ``dreamland``)."""
        rate = self.dropout if self.dream_dropout is None else self.dream_dropout
        specs = {"dreamland": {"dropout": self.dropout, "dream_dropout": rate, "mask": self.mask}}
        if self.baseline:
            specs["worldmodels"] = {"dropout": 0.0, "dream_dropout": 0.0, "mask": "none"}
        for r in self.sweep:
            if r > 0 and r != self.dropout:
                specs[f"dreamland_p{r:g}"] = {"dropout": float(r), "dream_dropout": float(r), "mask": self.mask}
        return specs

    def variants(self) -> list[str]:
        """Names of the variants run (see :meth:`variant_specs`)."""
        return list(self.variant_specs())


PRESETS: dict[str, dict[str, Any]] = {
    "debug": {"transitions": 2048, "num_envs": 16, "z_dim": 8, "vae_epochs": 1, "vae_max_frames": 512,
              "hidden": 32, "mixtures": 2, "rnn_epochs": 2, "seq_len": 16, "popsize": 4,
              "episodes_per_candidate": 2, "generations": 2, "max_dream_steps": 50, "ppo_timesteps": 512,
              "seeds": 1, "eval_episodes": 2, "eval_num_envs": 2, "eval_max_steps": 60, "torch_threads": 1,
              "videos": False, "eval_dream_episodes": 8, "vae_batch_size": 64, "rnn_batch_size": 16},
    "cpu": {},
    "carracing": {"env": "CarRacing-v3", "transitions": 10_000, "num_envs": 1, "max_dream_steps": 300,
                  "eval_max_steps": 300, "eval_episodes": 8, "eval_num_envs": 1},
    "gpu": {"transitions": 200_000, "vae_epochs": 10, "vae_max_frames": 200_000, "rnn_epochs": 40,
            "popsize": 64, "episodes_per_candidate": 16, "generations": 100, "max_dream_steps": 1000,
            "seeds": 5, "eval_episodes": 100, "eval_num_envs": 64, "device": "cuda"},
}
"""Named presets (DreamerV3 style: applied in order, then key=value overrides)."""


def dreamland_config(presets: list[str] | tuple[str, ...] = (), overrides: list[str] | tuple[str, ...] = ()
                     ) -> DreamlandConfig:
    """Defaults <- presets (built-in :data:`PRESETS` or ``assets/presets/dreamland/<name>.yaml``) <- overrides."""
    from simlab.config import _merge, from_dict, load_preset, parse_override

    data = to_dict(DreamlandConfig())
    for name in presets:
        data = _merge(data, PRESETS[name] if name in PRESETS else load_preset("dreamland", name))
    for ov in overrides:
        path, value = parse_override(ov)
        if len(path) != 1 or path[0] not in data:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(data))}")
        data[path[0]] = value
    return from_dict(DreamlandConfig, data)


# ---- the pipeline -----------------------------------------------------------------------------
class Dreamland:
    """One Dream Land run directory and its stages."""

    def __init__(self, cfg: DreamlandConfig, out: str | Path, resume: bool = False, progress: bool = True) -> None:
        import torch

        from simlab.policies.ppo import resolve_device

        self.cfg = cfg
        self.game = procgen_game_or_none(cfg.env)
        """The procgen game, or None for a gymnasium image env."""
        self.actions = cfg.actions()
        """Controller action ids (list) or the env's Box."""
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.run = RunDir.create(out, cfg, resume=resume)
        self.path = self.run.path
        self.t0 = time.time()

    # -- helpers ---------------------------------------------------------------------------------
    def _stage(self, name: str, fn: Any) -> Any:
        done = self.run.stage_done(name)
        if done is not None:
            return done
        t = time.time()
        info = fn() or {}
        self.run.mark_stage(name, {**info, "seconds": round(time.time() - t, 2)})
        return self.run.stage_done(name)

    def _log(self, prefix: str):
        def log(step: int, metrics: dict[str, float]) -> None:
            self.run.log(step, {k if k.startswith(prefix + "/") else f"{prefix}/{k}": v
                                for k, v in metrics.items()})
        return log

    def world_model(self, variant: str):
        """The saved world model of a variant."""
        from simlab.world_models.dropout.model import DropoutWorldModel

        return DropoutWorldModel.from_pretrained(self.path / "world_models" / variant, device=self.device)

    # -- stages ------------------------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        if self.game is None:
            from simlab.envs.gym_image import collect_gym

            a, b = (int(x) for x in self.cfg.train_levels.split(":"))
            res = collect_gym(self.cfg.env, self.path / "data" / "real", self.cfg.transitions, seeds=(a, b - a),
                              policy="random", seed=self.cfg.seed, progress=self.progress,
                              max_episode_steps=self.cfg.eval_max_steps or None)
            return {"transitions": self.cfg.transitions, "complete": res.complete}
        from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen

        cc = ProcgenCollectConfig(game=self.game, levels=self.cfg.train_levels, transitions=self.cfg.transitions,
                                  policy="random_repeat", seed=self.cfg.seed, num_envs=self.cfg.num_envs,
                                  use_backgrounds=self.cfg.use_backgrounds)
        res = collect_procgen(cc, self.path / "data" / "real", resume=True, progress=self.progress)
        return {"transitions": self.cfg.transitions, "complete": res.complete}

    def _real(self):
        if self.game is None:
            from simlab.envs.gym_image import GymTransitionDataset

            return GymTransitionDataset(self.path / "data" / "real")
        from simlab.envs.procgen.dataset import TransitionDataset

        return TransitionDataset(self.path / "data" / "real")

    def train_vae(self) -> dict[str, Any]:
        from simlab.world_models.dropout.vae import VAETrainConfig, train_vae

        ds = self._real()
        n = len(ds)
        rng = np.random.default_rng([self.cfg.seed, 0xAE])
        idx = np.sort(rng.choice(n, size=min(n, self.cfg.vae_max_frames), replace=False))
        frames = ds.get(idx, ["obs"])["obs"]
        vcfg = VAETrainConfig(z_dim=self.cfg.z_dim, epochs=self.cfg.vae_epochs, batch_size=self.cfg.vae_batch_size,
                              lr=self.cfg.vae_lr)
        vae = train_vae(frames, vcfg, device=self.device, progress=self.progress, seed=self.cfg.seed,
                        log=self._log("vae"))
        vae.save_pretrained(self.path / "checkpoints" / "vae")
        return {"frames": len(frames)}

    def encode(self) -> dict[str, Any]:
        from simlab.data import atomic_path
        from simlab.world_models.dropout.vae import ConvVAE, encode_frames

        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        ds = self._real()
        z_list, a_list, r_list, d_list = [], [], [], []
        for ep in ds.episodes():
            z_list.append(encode_frames(vae, ep["observations"]))  # (T+1) frames incl. the last next obs
            a_list.append(ep["actions"])
            r_list.append(ep["rewards"])
            d_list.append(ep["terminations"])
        lens = np.array([len(a) for a in a_list])
        with atomic_path(self.path / "data" / "latents.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, z=np.concatenate(z_list), actions=np.concatenate(a_list),
                     rewards=np.concatenate(r_list), dones=np.concatenate(d_list), lengths=lens)
        return {"episodes": len(lens), "transitions": int(lens.sum())}

    def _latents(self) -> tuple[list[np.ndarray], ...]:
        d = np.load(self.path / "data" / "latents.npz")
        lens = d["lengths"]
        zs, acts, rews, dones = [], [], [], []
        zo, to = 0, 0
        for ln in lens:
            zs.append(d["z"][zo:zo + ln + 1])
            acts.append(d["actions"][to:to + ln])
            rews.append(d["rewards"][to:to + ln])
            dones.append(d["dones"][to:to + ln])
            zo += ln + 1
            to += ln
        return zs, acts, rews, dones

    def train_rnn(self, variant: str) -> dict[str, Any]:
        import torch

        from simlab.world_models.dropout.mdnrnn import RNNTrainConfig, train_mdnrnn
        from simlab.world_models.dropout.model import DropoutWorldModel
        from simlab.world_models.dropout.vae import ConvVAE

        zs, acts, rews, dones = self._latents()
        cont = not isinstance(self.actions, list)
        n_act = 15 if self.game is not None else (0 if cont else self._real().n_actions)
        rcfg = RNNTrainConfig(n_actions=max(1, n_act), action_dim=self.actions.shape[0] if cont else 0,
                              hidden=self.cfg.hidden,
                              mixtures=self.cfg.mixtures, epochs=self.cfg.rnn_epochs, seq_len=self.cfg.seq_len,
                              batch_size=self.cfg.rnn_batch_size, done_pos_weight=self.cfg.done_pos_weight,
                              dropout=self.cfg.variant_specs()[variant]["dropout"])
        rnn = train_mdnrnn(zs, acts, rews, dones, rcfg, device=self.device, progress=self.progress,
                           seed=self.cfg.seed, log=self._log(f"rnn_{variant}"))
        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        start_z = torch.as_tensor(np.stack([z[0] for z in zs]))
        DropoutWorldModel(vae, rnn, start_z, env_id=self.cfg.env,
                          action_space=self.actions if cont else None).save_pretrained(
            self.path / "world_models" / variant)
        return {"dropout": rcfg.dropout}

    def _dream_kwargs(self, variant: str) -> dict[str, Any]:
        spec = self.cfg.variant_specs()[variant]
        if spec["dream_dropout"] == 0.0:
            return {"mask_mode": "none", "dropout": 0.0}
        return {"mask_mode": spec["mask"], "dropout": spec["dream_dropout"]}

    def train_controller(self, variant: str, k: int) -> dict[str, Any]:
        model = self.world_model(variant)
        kw = self._dream_kwargs(variant)
        sub = self.path / "controllers" / variant / f"seed{k}"
        seed = 1000 * (k + 1)

        def make_env(num_envs: int, env_seed: int):
            return model.as_vec_env(num_envs, temperature=self.cfg.temperature,
                                    max_episode_steps=self.cfg.max_dream_steps, device=self.device,
                                    seed=env_seed, **kw)

        if self.cfg.controller == "cmaes":
            from simlab.policies.cmaes import CMAESConfig, train_cmaes

            ccfg = CMAESConfig(popsize=self.cfg.popsize, episodes_per_candidate=self.cfg.episodes_per_candidate,
                               sigma0=self.cfg.sigma0, generations=self.cfg.generations, seed=seed,
                               max_episode_steps=self.cfg.max_dream_steps, eval_every=self.cfg.eval_every,
                               eval_episodes=self.cfg.eval_dream_episodes)
            run = RunDir.create(sub, ccfg, resume=True)
            _, info = train_cmaes(make_env, model.obs_dim, self.actions, ccfg, run=run,
                                  progress=self.progress, log=self._log(f"dream_{variant}_s{k}"))
            return {"dream_best_return": float(info["best_return"])}
        from simlab.policies.dream_ppo import DreamPPOConfig, train_dream_ppo

        pcfg = DreamPPOConfig(total_timesteps=self.cfg.ppo_timesteps, seed=seed, device=str(self.device),
                              num_envs=min(64, self.cfg.popsize * self.cfg.episodes_per_candidate))
        run = RunDir.create(sub, pcfg, resume=True)
        _, info = train_dream_ppo(make_env, pcfg, run=run, progress=self.progress,
                                  log=self._log(f"dream_{variant}_s{k}"))
        return {"dream_mean_return": float(info.get("mean_return", float("nan")))}

    def _agent(self, variant: str, k: int):
        from simlab.policies.cmaes import DropoutWorldModelView, LinearController, WorldModelAgent

        model = self.world_model(variant)
        sub = self.path / "controllers" / variant / f"seed{k}"
        if self.cfg.controller == "cmaes":
            ctrl = LinearController.load(sub / "controller")
        else:
            from simlab.policies.dream_ppo import DreamPolicy

            ctrl = DreamPolicy.load(sub / "dream_policy")
        return WorldModelAgent(DropoutWorldModelView(model, device=str(self.device)), ctrl)

    def evaluate(self, variant: str, k: int) -> dict[str, Any]:
        from simlab.policies.evaluate import evaluate

        a, b = self.cfg.train_levels.split(":")
        splits = [f"levels:{a}:{b}", self.cfg.heldout_split]
        out = self.path / "eval" / variant / f"seed{k}"
        if self.game is None:
            from simlab.envs.gym_image import evaluate_gym
            from simlab.envs.procgen.base import level_range_split

            held = self.cfg.heldout_split
            seeds = {splits[0]: (int(a), int(b) - int(a)),
                     held: GYM_HELDOUT_SEEDS if held == "test" else level_range_split(held)}
            res = evaluate_gym(self._agent(variant, k), self.cfg.env, seeds, self.cfg.eval_episodes, seed=k,
                               max_episode_steps=self.cfg.eval_max_steps or None,
                               video_dir=out / "videos" if self.cfg.videos else None,
                               videos_per_split=1 if self.cfg.videos else 0, out_dir=out,
                               progress=self.progress)
        else:
            res = evaluate(self._agent(variant, k), self.cfg.env, splits, self.cfg.eval_episodes, seed=k,
                           num_envs=self.cfg.eval_num_envs, video_dir=out / "videos" if self.cfg.videos else None,
                           videos_per_split=1 if self.cfg.videos else 0, out_dir=out,
                           max_episode_steps=self.cfg.eval_max_steps or None,
                           use_backgrounds=self.cfg.use_backgrounds, progress=self.progress)
        return {s: {"mean_return": v["mean_return"], "returns": [e["return"] for e in v["episodes"]]}
                for s, v in res.items()}

    # -- report ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Real-env returns per variant and split over seeds x episodes."""
        table: dict[str, Any] = {}
        for v in self.cfg.variants():
            for k in range(self.cfg.seeds):
                rec = self.run.stage_done(f"eval_{v}_s{k}") or {}
                for split, r in rec.items():
                    if isinstance(r, dict) and "returns" in r:
                        table.setdefault(v, {}).setdefault(split, []).extend(r["returns"])
        out: dict[str, Any] = {}
        for v, splits in table.items():
            for s, rets in splits.items():
                x = np.asarray(rets, np.float64)
                sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
                out.setdefault(v, {})[s] = {"mean": float(x.mean()), "std": sd,
                                            "ci95": 1.96 * sd / np.sqrt(len(x)), "episodes": len(x)}
        return out

    def report(self) -> dict[str, Any]:
        summ = self.summary()
        self._plot(summ)
        self._reconstruction_plot()
        if self.cfg.videos:
            self._real_vs_dream_video()
        a, b = self.cfg.train_levels.split(":")
        tr = f"levels:{a}:{b}"
        lines = [
            "# Dream Land report", "",
            (f"Real env `{self.cfg.env}`; world models trained on {self.cfg.transitions} real transitions "
            f"from levels {self.cfg.train_levels}; controllers ({self.cfg.controller}) trained only in dreams; "
            f"{self.cfg.seeds} seed(s) x {self.cfg.eval_episodes} real episodes per split."), "",
            *[f"- {v}: the baseline, same budget, no dropout anywhere" if v == "worldmodels" else
              f"- {v}: MDN-RNN dropout {sp['dropout']:g}, dream masks `{sp['mask']}` at rate {sp['dream_dropout']:g}"
              for v, sp in self.cfg.variant_specs().items()],
            (f"- real env backgrounds: {'textured' if self.cfg.use_backgrounds else 'plain'}; "
             if self.game is not None else "- ") + f"held-out split `{self.cfg.heldout_split}`", "",
            "| variant | split | mean return | std | 95% CI | episodes |", "|---|---|---:|---:|---:|---:|",
        ]
        for v, splits in summ.items():
            for s, r in splits.items():
                name = "training levels" if s == tr else f"held-out ({s})"
                lines.append(f"| {v} | {name} | {r['mean']:.1f} | {r['std']:.1f} | +/- {r['ci95']:.1f} | "
                             f"{r['episodes']} |")
        lines += ["", "![dream vs real](plots/dream_vs_real.png)", "",
                  "What the world model sees (top: real frames, bottom: VAE reconstructions):", "",
                  "![VAE reconstructions](plots/vae_reconstruction.png)", "",
                  f"Resolved config: `config.yaml`. Wall time so far: {time.time() - self.t0:.0f} s."]
        (self.path / "report.md").write_text("\n".join(lines) + "\n")
        (self.path / "summary.json").write_text(json.dumps(summ, indent=2) + "\n")
        return {"summary": summ}

    def _plot(self, summ: dict[str, Any]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
        recs = self.run.metrics()
        for i, v in enumerate(self.cfg.variants()):
            for k in range(self.cfg.seeds):
                key = f"dream_{v}_s{k}/"
                pts = [(r["step"], r[m]) for r in recs for m in r if m.startswith(key)
                       and m.endswith(("mean_return", "ep_rew_mean"))]
                if pts:
                    x, y = zip(*pts)
                    ax0.plot(x, y, color=f"C{i}", alpha=0.7,
                             label=v if k == 0 else None)
        ax0.set_xlabel("generation / step")
        ax0.set_ylabel("dream return")
        ax0.set_title("controller training in the dream")
        ax0.legend()
        names = sorted({s for sp in summ.values() for s in sp})
        width = 0.8 / max(1, len(summ))
        for i, v in enumerate(summ):
            m = [summ[v].get(s, {}).get("mean", np.nan) for s in names]
            e = [summ[v].get(s, {}).get("ci95", 0) for s in names]
            ax1.bar(np.arange(len(names)) + width * i, m, width, yerr=e, label=v, color=f"C{i}")
        ax1.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
        ax1.set_ylabel("real return (95% CI)")
        ax1.set_title("transfer to the real env")
        ax1.legend()
        fig.tight_layout()
        fig.savefig(self.path / "plots" / "dream_vs_real.png", dpi=100)
        plt.close(fig)

    def _reconstruction_plot(self, n: int = 8) -> None:
        """``plots/vae_reconstruction.png``: ``n`` real frames spread over the data (top row) and
        their VAE reconstructions (bottom row), 3x upscaled: what the world model can and cannot see."""
        import imageio.v3 as iio
        import torch

        from simlab.world_models.dropout.vae import ConvVAE

        ds = self._real()
        idx = np.linspace(0, len(ds) - 1, n).astype(np.int64)
        real = ds.get(idx, ("obs",))["obs"]
        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        with torch.no_grad():
            rec = vae.decode_uint8(vae.encode(torch.as_tensor(real, device=self.device))[0])
        grid = np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(rec), 1)], 0)
        (self.path / "plots").mkdir(parents=True, exist_ok=True)
        iio.imwrite(self.path / "plots" / "vae_reconstruction.png", np.kron(grid, np.ones((3, 3, 1), np.uint8)))

    def _real_vs_dream_video(self) -> None:
        """A real episode next to the dream of its own actions (the Dream Land model, no dropout)."""
        import torch

        from simlab.video import side_by_side, write_mp4
        from simlab.world_models.dropout.mdnrnn import sample_next_z

        ep = next(iter(self._real().episodes()))
        real = ep["observations"][:200]
        acts = ep["actions"][: len(real) - 1]
        model = self.world_model(self.cfg.variants()[0])
        gen = torch.Generator(device=self.device).manual_seed(0)
        with torch.no_grad():
            z = model.vae.encode(torch.as_tensor(real[:1], device=self.device))[0]
            state = None
            zs = [z]
            for a in acts:
                at = torch.as_tensor(np.asarray(a)[None], device=self.device)
                out = model.rnn.step(z, at if model.rnn.continuous else at.long(), state)
                state = out.state
                z = sample_next_z(out.logpi, out.mu, out.logsigma, tau=self.cfg.temperature, generator=gen)
                zs.append(z)
            dream = np.concatenate([model.vae.decode_uint8(x) for x in zs])
        write_mp4(self.path / "videos" / "real_vs_dream.mp4", side_by_side(real, dream), fps=15)

    # -- everything ------------------------------------------------------------------------------
    def run_all(self) -> dict[str, Any]:
        self._stage("collect", self.collect)
        self._stage("vae", self.train_vae)
        self._stage("encode", self.encode)
        for v in self.cfg.variants():
            self._stage(f"rnn_{v}", lambda v=v: self.train_rnn(v))
        for v in self.cfg.variants():
            for k in range(self.cfg.seeds):
                self._stage(f"controller_{v}_s{k}", lambda v=v, k=k: self.train_controller(v, k))
                self._stage(f"eval_{v}_s{k}", lambda v=v, k=k: self.evaluate(v, k))
        rep = self.report()
        self.run.mark_stage("report", {"seconds_total": round(time.time() - self.t0, 1)})
        return rep


def train_dreamland(cfg: DreamlandConfig, out: str | Path, resume: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns ``{"summary": ...}`` and writes ``out/report.md``."""
    return Dreamland(cfg, out, resume=resume, progress=progress).run_all()


__all__ = ["PRESETS", "VARIANTS", "Dreamland", "DreamlandConfig", "dreamland_config", "train_dreamland"]
