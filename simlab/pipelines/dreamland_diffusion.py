"""The diffusion dream inside ``simlab train dreamland --world-model diffusion`` (issue 12).

The run keeps every stage of the dropout run (same data, VAE, MDN-RNN variants,
fixed policies, upper bound) and adds one variant, ``diffusion``:

1. ``ddream``  train the DIAMOND-style world model (:mod:`simlab.world_models.diffusion_dream`) on the
   same real transitions -> ``RUN/ddream_train`` (its own run directory, resumable) and
   ``RUN/world_models/diffusion`` (denoiser, reward/termination head, real start contexts).
2. ``controller_diffusion_s<k>``  the same linear controller and CMA-ES, trained only in the pixel
   dream. Its features are the Dream Land variant's frozen ``[z, h]`` (VAE mean and MDN-RNN state
   without dropout), computed from the dreamed frames; frames pass through the dream's resolution
   (downscale, nearest upscale back to 64) in the dream AND in the real game, so the controller
   sees the same kind of input in both. The MDN-RNN state is burned in over each dream's real
   start context.
3. ``eval_diffusion_s<k>``  the controller in the REAL env through the same evaluator, splits,
   seeds and episodes as every other row.
4. ``diag_diffusion``  dream fidelity (the same kind of panel, dream vs real return, Spearman),
   multi-step frame error vs horizon beside "repeat the last frame", and a real | dream video of
   the same actions from the same held-out start.

Everything heavy (torch, diffusers) is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError

VARIANT = "diffusion"
"""Row name of the diffusion-dream controller in report.json's ``variants``."""
WORLD_MODELS = ("dropout", "diffusion")


@dataclass
class DiffusionDreamlandConfig:
    """The diffusion variant of Dream Land (used when ``world_model=diffusion``). Defaults: the ``cpu``
    sizing, measured on the shared 2-core machine (docs/diffusion_dream.md)."""

    resolution: int = 32
    """Dream frame side (real 64 x 64 frames area-downscaled)."""
    channels: list[int] = dataclasses.field(default_factory=lambda: [32, 32, 64])
    """Denoiser UNet2DModel block widths."""
    layers_per_block: int = 1
    """ResNet blocks per UNet level."""
    train_steps: int = 1500
    """Optimizer steps of the denoiser and the head."""
    train_batch_size: int = 16
    """Windows per training step."""
    lr: float = 3e-4
    """AdamW learning rate."""
    cond_noise: float = 0.1
    """Noise augmentation of the context frames in training (max std)."""
    done_fraction: float = 0.125
    """Share of terminal transitions in the head's batches (corrected in its logit)."""
    num_steps: int = 3
    """Denoising (Euler) steps per dreamed frame (DIAMOND: 3)."""
    noise_scale: float = 1.0
    """Dream stochasticity: std of the sampler's starting noise relative to sigma_max (0: deterministic)."""
    start_every: int = 8
    """Dreams start from the real contexts at every this many steps of the real episodes."""
    danger_starts: int = 16
    """Also start from the real contexts 2, 4, ..., this many steps before every real death (0: none),
    so short dreams meet the fireballs that decide survival."""
    max_dream_steps: int = 15
    """Dream episode limit while training the controller (DIAMOND's imagination horizon: 15)."""
    popsize: int = 8
    """CMA-ES population."""
    episodes_per_candidate: int = 4
    """Dream episodes per CMA-ES candidate."""
    generations: int = 10
    """CMA-ES generations."""
    eval_every: int = 5
    """Score the CMA mean every this many generations (and after the last); the best-scoring mean is kept."""
    eval_dream_episodes: int = 16
    """Dream episodes per evaluation of the CMA mean."""
    seeds: int = 1
    """Controller seeds of the diffusion variant."""
    fidelity_episodes: int = 4
    """Dream fidelity: episodes per panel controller, in the dream and in the real game."""
    fidelity_random: int = 4
    """Dream fidelity: random linear controllers in the panel (fewer than the MDN-RNN dream's: every
    panel controller costs diffusion-dream steps)."""
    video_steps: int = 48
    """Length of the real | dream video (steps after the real context)."""

    def __post_init__(self) -> None:
        for k in ("resolution", "layers_per_block", "train_steps", "num_steps", "start_every", "max_dream_steps",
                  "popsize", "episodes_per_candidate", "generations", "eval_dream_episodes", "seeds",
                  "fidelity_episodes", "fidelity_random", "video_steps"):
            v = getattr(self, k)
            if isinstance(v, bool) or v < 1:
                raise ConfigError(f"config key 'diffusion.{k}' must be an integer >= 1, got {v!r}")
        if self.danger_starts < 0 or self.eval_every < 0:
            raise ConfigError("diffusion.danger_starts and diffusion.eval_every must be >= 0")
        if not (self.noise_scale >= 0):
            raise ConfigError(f"diffusion.noise_scale must be >= 0, got {self.noise_scale}")
        if 64 % self.resolution or self.resolution % (2 ** (len(self.channels) - 1)):
            raise ConfigError(f"diffusion.resolution {self.resolution} must divide 64 and be divisible by "
                              f"2^{len(self.channels) - 1} (UNet levels)")
        self.train_config()  # its own checks

    def train_config(self, seed: int = 0) -> Any:
        """The :class:`~simlab.world_models.diffusion_dream.train.DiffusionDreamTrainConfig` of these settings."""
        from simlab.world_models.diffusion_dream.config import DiffusionDreamTrainConfig

        return DiffusionDreamTrainConfig(resolution=self.resolution, channels=list(self.channels),
                                         layers_per_block=self.layers_per_block, steps=self.train_steps,
                                         batch_size=self.train_batch_size, lr=self.lr, cond_noise=self.cond_noise,
                                         done_fraction=self.done_fraction, seed=seed)


DEBUG_PRESET: dict[str, Any] = {"resolution": 16, "channels": [8, 16], "train_steps": 4, "train_batch_size": 4,
                                "max_dream_steps": 5, "popsize": 4, "episodes_per_candidate": 1, "generations": 2,
                                "eval_dream_episodes": 4, "fidelity_episodes": 1, "video_steps": 8,
                                "danger_starts": 4}
"""``--preset debug``'s diffusion settings (tests)."""


# ---- features: the Dream Land model's [z, h] of frames at the dream's resolution ---------------------
class RoundTripView:
    """:class:`~simlab.policies.cmaes.DropoutWorldModelView` whose ``encode`` first brings frames to the
    dream's resolution and back (area downscale of real frames, nearest upscale to the VAE's 64 px), so
    real and dreamed frames reach the frozen VAE the same way."""

    def __init__(self, model: Any, resolution: int, device: str = "cpu") -> None:
        from simlab.policies.cmaes import DropoutWorldModelView

        self.inner = DropoutWorldModelView(model, device=device)
        self.resolution = int(resolution)
        self.continuous = False

    def encode(self, frames: np.ndarray) -> Any:
        from simlab.world_models.diffusion_dream.data import downscale, upscale

        f = np.asarray(frames)
        if f.shape[-2] != self.resolution:
            f = downscale(f, self.resolution)
        return self.inner.encode(upscale(f, 64))

    def initial_state(self, batch: int) -> Any:
        return self.inner.initial_state(batch)

    def rnn_step(self, z: Any, actions: np.ndarray, state: Any) -> Any:
        return self.inner.rnn_step(z, actions, state)

    def hidden(self, state: Any) -> Any:
        return self.inner.hidden(state)


class FeatureDreamVecEnv:
    """A :class:`~simlab.world_models.diffusion_dream.dream.DiffusionDreamVecEnv` seen through a
    :class:`RoundTripView`: observations ``[z, h]`` ``(N, feature_dim)`` float32, the MDN-RNN state
    burned in over each episode's real start context (same-step autoreset preserved)."""

    def __init__(self, dream: Any, view: RoundTripView, feature_dim: int) -> None:
        from gymnasium import spaces
        from gymnasium.vector.utils import batch_space

        self.dream, self.view = dream, view
        self.num_envs = dream.num_envs
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (feature_dim,), np.float32)
        self.single_action_space = dream.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = dream.action_space
        self.metadata = dict(dream.metadata)
        self.state: Any = None
        self.z: Any = None

    def _burn_in(self, idx: np.ndarray) -> None:
        """Reset the RNN state of slots ``idx`` and run it over their real context (padding skipped)."""
        import torch

        frames, acts = self.dream.core.context(idx)
        pad = self.dream.core.model.n_actions
        st = self.view.initial_state(len(idx))
        with torch.no_grad():
            for j in range(acts.shape[1]):
                valid = acts[:, j] != pad
                if valid.any():
                    new = self.view.rnn_step(self.view.encode(frames[:, j]), np.where(valid, acts[:, j], 0), st)
                    m = torch.as_tensor(valid, device=st[0].device).view(-1, 1)
                    st = tuple(torch.where(m, n, o) for n, o in zip(new, st))
        if self.state is None or len(idx) == self.num_envs:
            self.state = st
        else:
            ti = torch.as_tensor(idx, device=st[0].device)
            self.state = tuple(s.index_copy(0, ti, n) for s, n in zip(self.state, st))

    def _features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            self.z = self.view.encode(frames)
            h = self.view.hidden(self.state)
        return np.concatenate([self.z.cpu().numpy(), h.cpu().numpy()], axis=1).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        frames, info = self.dream.reset(seed=seed, options=options)
        self._burn_in(np.arange(self.num_envs))
        return self._features(frames), info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        import torch

        a = np.asarray(actions)
        with torch.no_grad():
            self.state = self.view.rnn_step(self.z, a, self.state)
        frames, rew, term, trunc, info = self.dream.step(a)
        if info["reset_mask"].any():
            self._burn_in(np.flatnonzero(info["reset_mask"]))
        return self._features(frames), rew, term, trunc, info

    def close(self, **kwargs: Any) -> None:
        self.dream.close()


# ---- the stages ---------------------------------------------------------------------------------------
def _windows(dl: Any, which: str = "real") -> Any:
    from simlab.world_models.diffusion_dream.data import build_windows

    d = dl.cfg.diffusion
    return build_windows(dl._real(which).episodes(), 15, 4, d.resolution)


def check_env(cfg: Any) -> None:
    """ConfigError unless the run's env suits the diffusion dream (a procgen game: 15 discrete actions,
    64 x 64 frames) and the CMA-ES controller."""
    from simlab.pipelines.dreamland import procgen_game_or_none

    if procgen_game_or_none(cfg.env) is None:
        raise ConfigError(f"world_model=diffusion needs a procgen-like game (15 actions, 64x64 frames); "
                          f"{cfg.env} is not one")
    if cfg.controller != "cmaes":
        raise ConfigError("world_model=diffusion trains the CMA-ES linear controller; use controller=cmaes")


def train_world_model(dl: Any) -> dict[str, Any]:
    """Stage ``ddream``: train on the run's real data; save ``RUN/world_models/diffusion``."""
    from simlab.world_models.diffusion_dream.data import start_windows
    from simlab.world_models.diffusion_dream.train import train_diffusion_dream
    from simlab.world_models.diffusion_dream.world_model import DiffusionWorldModel

    d = dl.cfg.diffusion
    w = _windows(dl)
    den, head, info = train_diffusion_dream(w, d.train_config(dl.cfg.seed), dl.path / "ddream_train", resume=True,
                                            progress=dl.progress, log=dl._log("ddream"))
    s = start_windows(w, d.start_every, d.danger_starts)
    DiffusionWorldModel(den, head, w.frames[w.ctx[s]], w.ctx_actions[s][:, :-1], env_id=dl.cfg.env,
                        frame_size=64).save_pretrained(dl.path / "world_models" / VARIANT)
    dl._models.pop(VARIANT, None)
    return {**info, "start_contexts": len(s)}


def world_model(dl: Any) -> Any:
    """The saved diffusion world model (read once per run)."""
    from simlab.world_models.diffusion_dream.world_model import DiffusionWorldModel

    if VARIANT not in dl._models:
        wm = DiffusionWorldModel.from_pretrained(dl.path / "world_models" / VARIANT, device=dl.device)
        wm.check_compatible(dl.cfg.env, 15, 64)
        dl._models[VARIANT] = wm
    return dl._models[VARIANT]


def _feature_model(dl: Any) -> Any:
    """The dropout world model whose frozen [z, h] the diffusion controller reads (Dream Land's)."""
    return dl.world_model(dl.cfg.variants()[0])


def view(dl: Any) -> RoundTripView:
    return RoundTripView(_feature_model(dl), dl.cfg.diffusion.resolution, device=str(dl.device))


def dream_env(dl: Any, max_steps: int):
    """``make_env(num_envs, seed)`` of the pixel dream seen through the controller's features."""
    d = dl.cfg.diffusion
    wm, v, dim = world_model(dl), view(dl), _feature_model(dl).obs_dim

    def make_env(num_envs: int, env_seed: int):
        dream = wm.as_vec_env(num_envs, num_steps=d.num_steps, noise_scale=d.noise_scale,
                              max_episode_steps=max_steps, device=dl.device, seed=env_seed)
        return FeatureDreamVecEnv(dream, v, dim)
    return make_env


def real_env(dl: Any):
    """``make_env(num_envs, seed)`` of the REAL game (training levels) through the same features."""
    from simlab.envs.procgen.base import options_for_split
    from simlab.envs.procgen.vec import ProcgenVecEnv
    from simlab.policies.real_features import RealFeatureVecEnv

    train = dl.splits()["train"]
    v, dim = view(dl), _feature_model(dl).obs_dim

    def make_env(num_envs: int, env_seed: int):
        opts = options_for_split(train, rand_seed=int(env_seed) % (2**31), use_backgrounds=dl.cfg.use_backgrounds)
        return RealFeatureVecEnv(ProcgenVecEnv(dl.game, num_envs, options=opts), v, dim)
    return make_env


def train_controller(dl: Any, k: int) -> dict[str, Any]:
    """Stage ``controller_diffusion_s<k>``: CMA-ES in the pixel dream."""
    from simlab.policies.cmaes import CMAESConfig, train_cmaes
    from simlab.runs import RunDir

    d = dl.cfg.diffusion
    sub = dl.path / "controllers" / VARIANT / f"seed{k}"
    ccfg = CMAESConfig(popsize=d.popsize, episodes_per_candidate=d.episodes_per_candidate, sigma0=dl.cfg.sigma0,
                       generations=d.generations, seed=1000 * (k + 1), max_episode_steps=d.max_dream_steps,
                       eval_every=d.eval_every, eval_episodes=d.eval_dream_episodes)
    run = RunDir.create(sub, ccfg, resume=True)
    _, info = train_cmaes(dream_env(dl, d.max_dream_steps), _feature_model(dl).obs_dim, dl.actions, ccfg, run=run,
                          progress=dl.progress, log=dl._log(f"dream_{VARIANT}_s{k}"))
    evals = [e for e in info["evals"] if "params" in e]
    np.savez(sub / "eval_means.npz", generation=np.array([e["generation"] for e in evals], np.int64),
             dream_return=np.array([e["return"] for e in evals], np.float64),
             params=np.array([e["params"] for e in evals], np.float64).reshape(len(evals), -1))
    return {"dream_best_return": float(info["best_return"])}


def agent(dl: Any, k: int) -> Any:
    """The diffusion-dream controller of seed ``k`` acting on real frames."""
    from simlab.policies.cmaes import LinearController, WorldModelAgent

    ctrl = LinearController.load(dl.path / "controllers" / VARIANT / f"seed{k}" / "controller")
    return WorldModelAgent(view(dl), ctrl)


def evaluate(dl: Any, k: int) -> dict[str, Any]:
    """Stage ``eval_diffusion_s<k>``: the shared real evaluator, every test column."""
    return dl._evaluate(agent(dl, k), dl.path / "eval" / VARIANT / f"seed{k}", k)


def _panel(dl: Any) -> tuple[list[str], list[Any]]:
    """Fixed policies, random linear controllers, the CMA means of seed 0, the final controllers of
    every diffusion seed, and the controllers trained on the same features elsewhere (the Dream Land
    variant's finals, the real-game upper bound)."""
    from simlab.pipelines.dreamland import UPPER
    from simlab.policies.cmaes import LinearController
    from simlab.policies.fixed import FIXED_POLICIES

    cfg, d = dl.cfg, dl.cfg.diffusion
    in_dim = _feature_model(dl).obs_dim
    names, actors = [], []
    for name, f in FIXED_POLICIES.items():
        names.append(f"fixed: {name}")
        actors.append(f(0, dl._speed()))
    rng = np.random.default_rng([cfg.seed, 0xF1D])
    for i in range(d.fidelity_random):
        c = LinearController(in_dim, dl.actions)
        c.set_params(rng.normal(0.0, 1.0, c.num_params) / np.sqrt(in_dim))
        names.append(f"random linear {i}")
        actors.append(c)
    root = dl.path / "controllers"
    m = np.load(root / VARIANT / "seed0" / "eval_means.npz")
    for g, p in zip(m["generation"], m["params"]):
        names.append(f"CMA mean gen {int(g)}")
        actors.append(LinearController(in_dim, dl.actions, p))
    for k in range(d.seeds):
        names.append(f"final seed {k}")
        actors.append(LinearController.load(root / VARIANT / f"seed{k}" / "controller"))
    first = cfg.variants()[0]
    for k in range(cfg.seeds):
        p = root / first / f"seed{k}" / "controller"
        if p.exists():
            names.append(f"{first} final seed {k}")
            actors.append(LinearController.load(p))
    for k in range(cfg.upper_seeds):
        p = root / UPPER / f"seed{k}" / "controller"
        if p.exists():
            names.append(f"upper bound seed {k}")
            actors.append(LinearController.load(p))
    return names, actors


def fidelity(dl: Any) -> dict[str, Any]:
    """Dream vs real return of the panel and their Spearman correlation."""
    from simlab.pipelines.dreamland import fidelity_subsets
    from simlab.policies.panel import rollout_actors, spearman

    cfg, d = dl.cfg, dl.cfg.diffusion
    names, actors = _panel(dl)
    seed = 777
    dream = rollout_actors(dream_env(dl, d.max_dream_steps), actors, d.fidelity_episodes, seed,
                           d.max_dream_steps).mean(1)
    real = rollout_actors(real_env(dl), actors, d.fidelity_episodes, seed, cfg.fidelity_max_steps).mean(1)
    return {"spearman": spearman(dream, real), **fidelity_subsets(dream, real, names), "names": names,
            "dream": dream.tolist(), "real": real.tolist(), "episodes": d.fidelity_episodes, "max_steps": cfg.fidelity_max_steps, "dream_max_steps": d.max_dream_steps}


def multistep(wm: Any, frames: np.ndarray, ctx_actions: np.ndarray, actions: np.ndarray, horizons: list[int],
              num_steps: int, noise_scale: float, seed: int, device: Any = "cpu") -> dict[str, list[float]]:
    """Open-loop frame error of the pixel dream vs horizon, beside "repeat the last frame".

    Args:
        wm: the :class:`DiffusionWorldModel`.
        frames: ``(B, context + H, r, r, 3)`` uint8 real frames at the dream's resolution: the real
            context, then the ``H = max(horizons)`` frames to predict.
        ctx_actions: ``(B, context - 1)`` the actions between the context frames; ``actions``
            ``(B, H)`` the real actions taken from the last context frame on.
        horizons: steps ahead to report (1 = the next frame).

    Returns:
        ``{"horizon", "frame_mse", "frame_mse_repeat"}``: mean squared error in [0, 1] pixels
        of the dreamed frame (fed back as context, real actions) and of the last real context frame.
    """
    import torch

    from simlab.world_models.diffusion_dream.data import to_model
    from simlab.world_models.diffusion_dream.world_model import karras_sigmas, sample_next

    k = wm.context
    hmax = max(horizons)
    if frames.shape[1] < k + hmax or actions.shape[1] < hmax:
        raise ConfigError(f"multistep: need {k} context + {hmax} frames and {hmax} actions")
    sig = karras_sigmas(num_steps)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    ctx = to_model(frames[:, :k]).to(device)
    ca = torch.as_tensor(ctx_actions, dtype=torch.long, device=device)
    real = torch.as_tensor(frames, device=device).float().div(255)
    last = real[:, k - 1]
    out: dict[str, list[float]] = {"horizon": [], "frame_mse": [], "frame_mse_repeat": []}
    for h in range(1, hmax + 1):
        a = torch.as_tensor(actions[:, h - 1], dtype=torch.long, device=device)
        full = torch.cat([ca, a[:, None]], dim=1)
        nxt = sample_next(wm.denoiser, ctx, full, sig, gen, noise_scale)
        ctx = torch.cat([ctx[:, 1:], nxt[:, None]], dim=1)
        ca = full[:, 1:]
        if h in horizons:
            pred = nxt.movedim(1, -1).add(1).div(2)
            truth = real[:, k - 1 + h]
            out["horizon"].append(h)
            out["frame_mse"].append(float((pred - truth).pow(2).mean()))
            out["frame_mse_repeat"].append(float((last - truth).pow(2).mean()))
    return out


def diagnose(dl: Any) -> dict[str, Any]:
    """Stage ``diag_diffusion``: multi-step error vs horizon on held-out sequences, dream fidelity,
    real | dream video."""
    cfg, d = dl.cfg, dl.cfg.diffusion
    wm = world_model(dl)
    out: dict[str, Any] = {}
    w = _windows(dl, "heldout")
    hmax = max(cfg.horizons)
    k = wm.context
    # Sequences starting at step k - 1 of held-out episodes long enough for the horizon.
    first = np.flatnonzero(w.step == k - 1)
    ok = [j for j in first if j + hmax - 1 < len(w) and w.episode[j + hmax - 1] == w.episode[j]][:32]
    if ok:
        seq = np.array([np.concatenate([w.ctx[j], w.next[j:j + hmax]]) for j in ok])
        frames = w.frames[seq]
        acts = np.array([w.actions[j:j + hmax] for j in ok])
        out["multistep"] = multistep(wm, frames, w.ctx_actions[ok][:, :-1], acts, list(cfg.horizons), d.num_steps,
                                     d.noise_scale, cfg.seed, dl.device)
        out["multistep"]["sequences"] = len(ok)
        out["multistep"]["resolution"] = d.resolution
        if cfg.videos:
            _video(dl, wm, frames[0], w.ctx_actions[ok[0]][:-1], acts[0], min(d.video_steps, hmax))
    out["fidelity"] = fidelity(dl)
    return out


def _video(dl: Any, wm: Any, frames: np.ndarray, ctx_actions: np.ndarray, actions: np.ndarray, steps: int) -> None:
    """``RUN/videos/diffusion_real_vs_dream.mp4``: real | dream | error of the same actions."""
    import torch

    from simlab.video import side_by_side, write_mp4
    from simlab.world_models.diffusion_dream.data import to_model, to_uint8, upscale
    from simlab.world_models.diffusion_dream.world_model import karras_sigmas, sample_next

    d = dl.cfg.diffusion
    k = wm.context
    gen = torch.Generator(device=dl.device).manual_seed(dl.cfg.seed)
    ctx = to_model(frames[None, :k]).to(dl.device)
    ca = torch.as_tensor(ctx_actions[None], dtype=torch.long, device=dl.device)
    sig = karras_sigmas(d.num_steps)
    dream = [frames[k - 1]]
    for t in range(steps):
        full = torch.cat([ca, torch.as_tensor([[int(actions[t])]], device=dl.device)], dim=1)
        nxt = sample_next(wm.denoiser, ctx, full, sig, gen, d.noise_scale)
        ctx, ca = torch.cat([ctx[:, 1:], nxt[:, None]], dim=1), full[:, 1:]
        dream.append(to_uint8(nxt)[0])
    real = frames[k - 1:k + steps]
    n = min(len(real), len(dream))
    grid = side_by_side(upscale(real[:n], 64), upscale(np.stack(dream[:n]), 64))
    write_mp4(Path(dl.path) / "videos" / "diffusion_real_vs_dream.mp4", grid, fps=8)


__all__ = ["DEBUG_PRESET", "VARIANT", "WORLD_MODELS", "DiffusionDreamlandConfig", "FeatureDreamVecEnv",
           "RoundTripView", "agent", "check_env", "diagnose", "dream_env", "evaluate", "fidelity", "multistep",
           "real_env", "train_controller", "train_world_model", "world_model"]
