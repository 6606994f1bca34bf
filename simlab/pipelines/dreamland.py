"""``simlab train dreamland``: Dropout's Dream Land end to end, against the World Models baseline,
the fixed policies and a real-game upper bound, with world-model diagnostics.

Stages (each checkpointed in the run directory; ``--resume`` skips finished
ones and CMA-ES resumes inside its generations):

1. ``collect``  real rollouts on the training levels (uniform random actions held
   for 1-10 steps, the World Models data policy) -> ``RUN/data/real``;
   ``collect_heldout``: a small set on held-out levels, only for the diagnostics.
2. ``vae``      ConvVAE on the frames -> ``RUN/checkpoints/vae``; ``diag_vae``: its
   hazard recall on held-out frames.
3. ``encode``   every frame -> z (VAE mean) -> ``RUN/data/latents.npz``.
4. ``fixed``    the fixed policies (stand still, uniform random, random held 1-10 steps,
   sweep wall to wall) in the real env, same columns, seeds and episodes as the variants.
5. ``rnn_<v>``  MDN-RNN for each variant ``v``: ``dreamland`` (LSTM dropout on z and h at
   the configured rate) and ``worldmodels`` (the baseline: no dropout) ->
   ``RUN/world_models/<v>`` (VAE + RNN + start latents, ``from_pretrained``-loadable).
6. ``controller_<v>_s<k>``  a controller trained ONLY in dreams, per seed: CMA-ES linear
   controller on [z, h] (or PPO); Dream Land draws a new dropout mask per dream episode
   (``mask=per_episode``), the baseline dreams without dropout (``none``).
7. ``eval_<v>_s<k>``  the controller, driven by the world model's encoder and RNN, in
   the REAL env on the training levels, held-out levels and the hard (OOD) levels.
8. ``controller_upper_bound_s<k>`` / ``eval_...``: the same CMA-ES and controller class
   trained in the REAL game on the Dream Land model's features.
9. ``diag_<v>``  multi-step prediction error on held-out sequences and dream fidelity
   (dream vs real return of a panel of controllers, Spearman).
10. ``report``  ``report.md`` and ``report.json`` (:mod:`simlab.pipelines.dreamland_report`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simlab.config import to_dict
from simlab.errors import ConfigError
from simlab.pipelines.dreamland_diffusion import DEBUG_PRESET as _DIFFUSION_DEBUG
from simlab.pipelines.dreamland_diffusion import WORLD_MODELS, DiffusionDreamlandConfig
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
    "dodge_v1": [1, 4, 7],
    "maze": [1, 3, 4, 5, 7],
    "coinrun": [1, 2, 4, 5, 7, 8],
    "coinrun_v1": [1, 2, 4, 5, 7, 8],
    "bigfish": [0, 1, 2, 3, 4, 5, 6, 7, 8],
}


@dataclass
class DreamlandConfig:
    """The whole Dream Land experiment (presets: debug, cpu (default), gpu)."""

    env: str = "simlab/Dodge-v1"
    """Real env: a procgen-like game id (``simlab/Dodge-v1`` (default), ``simlab/Dodge-v0``...) or an
    image gymnasium env such as ``CarRacing-v3`` (frames resized to 64 x 64; Discrete or Box actions)."""
    train_levels: str = "0:200"
    """Level seeds (procgen) or reset seeds (gymnasium envs: CarRacing's tracks) the data comes from
    and the controller is first evaluated on (a:b)."""
    heldout_split: str = "test"
    """Held-out real levels for the transfer test: procgen test = levels 250+ (or levels:a:b, hard...);
    gymnasium envs: test = reset seeds 100000+ (or levels:a:b)."""
    hard_split: str = "hard"
    """Third test column, out-of-distribution dynamics: procgen's ``hard`` mode (Dodge: faster, denser
    fireballs on levels 250+); "" to skip. Ignored for gymnasium envs (they have no such mode)."""
    use_backgrounds: bool = False
    """Procgen's textured level backgrounds in the real env (data and evaluation). Off by default:
    on 2 CPU cores the ConvVAE cannot learn the 4x4-px fireballs over high-contrast textures in
    the time budget (measured: after 1,250 steps it reconstructs the mean background and no
    sprites; with plain backgrounds the agent is sharp after the same steps). The held-out
    levels still differ in enemies, shot timing, aim and palette."""
    transitions: int = 100_000
    """Real transitions collected for the world model. Deaths are what the done head and the dynamics
    must learn to anticipate, and they are rare (one per ~300 steps of the data policy on Dodge-v1):
    measured, 20k transitions from 64 envs held 28 deaths and the dream could not tell a saving move
    from a fatal one (counterfactual action accuracy 0.57); 100k from 16 envs hold ~330 (0.76)."""
    num_envs: int = 16
    """Real envs stepped together while collecting. Fewer envs run longer episodes for the same
    transitions: every env's first ~60 steps have no fireball in reach, so 64 envs x 312 steps saw
    28 deaths where 16 envs x 1,250 steps saw 58."""
    mirror: bool = True
    """Also train the MDN-RNN on every real episode mirrored left-right (frames flipped, LEFT <-> RIGHT
    actions swapped) when the game's rules are symmetric (the game's ``mirror_actions``; ignored for
    other games and gymnasium envs). Measured on Dodge-v1: without it the dream learned from a few
    dozen deaths that RIGHT is safe and LEFT deadly, and a dream-trained controller held RIGHT 95% of
    the time."""
    z_dim: int = 32
    """VAE latent size."""
    vae_epochs: int = 12
    """VAE training epochs (~12.5 s each on 2 Zen 4 cores at 10k frames, ~25 s on AVX2 ones). Hazard
    recall on Dodge-v1's held-out fireballs (``experiments/dreamland_vae.py``): on the default
    run's data (``runs/v14``, 2 threads) 6 epochs 88.2% / 86.9% / 87.5% (VAE seeds 0 / 1 / 2),
    9 epochs 89.8%, 12 epochs 90.7%; on pipeline seeds 1 / 2's data 12 epochs 92.6% / 93.7%; on
    ``runs/v6``'s data 6 epochs 87.9% / 88.8%, 12 epochs 93.5%. Same 6-epoch budget otherwise:
    cosine learning-rate decay 85.5% / 83.9%, batch 16 87.5%, 5k frames x 12 epochs 85.4%,
    ``vae_fg_weight=60`` 87.0%, lr 2e-3 88.6% / 87.2%, ``vae_fg_density`` 0.5 90.3% / 88.3% /
    86.9% and 1.0 89.0% / 89.4%: only more steps clear 90% on every seed measured."""
    vae_max_frames: int = 10_000
    """Frames used to train the VAE (a seeded subsample if more were collected)."""
    vae_batch_size: int = 32
    """VAE frames per gradient step (small batches: more steps per CPU second)."""
    vae_lr: float = 1e-3
    """VAE Adam learning rate."""
    vae_lr_schedule: str = "constant"
    """``constant`` or ``cosine`` (the rate decays to 0 over the VAE's steps; see
    :class:`~simlab.world_models.dropout.vae.VAETrainConfig`)."""
    vae_width: int = 16
    """Channels of the VAE's first conv layer (World Models: 32). 16 costs a quarter of the FLOPs:
    every real frame a world-model agent sees is encoded, so this sets the real-evaluation cost."""
    vae_fg_weight: float = 30.0
    """Extra reconstruction weight of pixels that differ from the frame's background (0: World
    Models' plain squared error, which learns the background and loses the small fireballs).
    Measured on Dodge-v1 (10k frames, batch 32, lr 1e-3, hazard recall on held-out frames): weight
    10 for 12 epochs 95.8%, for 6 epochs 73.9%; weight 30 for 6 epochs 93.5%."""
    vae_fg_density: float = 0.0
    """The VAE's ``fg_density_power``: a sprite pixel's extra weight is divided by the foreground
    fraction of its 9-px neighbourhood to this power, so small sprites (the just-thrown 5-px
    fireballs, most of the VAE's misses) weigh more (0: off; see
    :func:`~simlab.world_models.dropout.vae.foreground_weight`). Hazard recall at 6 epochs on the
    default run's data, VAE seeds 0 / 1 / 2: 0.5 90.3% / 88.3% / 86.9% against 88.2% / 86.9% /
    87.5% without; 1.0 89.0% / 89.4% (seeds 0 / 1): about +1 point, within the seed spread."""
    hidden: int = 256
    """LSTM size of the MDN-RNN."""
    mixtures: int = 5
    """Gaussian mixtures per latent dimension."""
    rnn_epochs: int = 5
    """MDN-RNN training epochs (over the real episodes and, with ``mirror``, their mirror images)."""
    seq_len: int = 32
    """MDN-RNN training window length."""
    rnn_batch_size: int = 32
    """MDN-RNN windows per gradient step."""
    done_pos_weight: float = 1.0
    """BCE weight of done steps in the MDN-RNN's done head (1: calibrated probabilities)."""
    rnn_open_loop: float = 0.0
    """Fraction of MDN-RNN training steps run open loop on its own predicted latents after a real
    burn-in (scheduled sampling; 0: teacher forcing, World Models)."""
    done_weight: float = 20.0
    """Weight of the done head's BCE in the MDN-RNN loss (it does not bias the probabilities, it only
    makes the LSTM spend more of its state on predicting deaths, which are rare in the data)."""
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
    dream_done: str = "expected"
    """How a dream ends from the done head (``DreamVecEnv``'s ``done_mode``): ``expected`` (default):
    never; each predicted reward is weighted by the probability of having survived to it, so a
    dream's return is its expected return (Dreamer's continuation weighting) and a controller that
    steers toward danger loses a little in every dream instead of dying in a few; ``sample``: end with
    probability p_done (World Models); ``threshold``: when p_done > 0.5."""
    ensemble: int = 1
    """MDN-RNNs per variant: ``1`` (default) dreams with the variant's model alone; ``K > 1`` trains
    ``K - 1`` more on the same latents with other seeds (stages ``rnn_<variant>_m<j>``) that follow
    each dream and pool its termination probability (``ensemble_pool``): pessimism where the models
    disagree, against a controller that exploits one model's errors
    (:mod:`simlab.world_models.dropout.ensemble`). Costs one MDN-RNN training and one LSTM step per
    dream step per extra member."""
    ensemble_pool: str = "max"
    """How an ensemble dream pools termination: ``max`` (the most pessimistic model) or ``mean``."""
    dream_start: str = "burn_in"
    """Where dream episodes start: ``burn_in`` (default): from real training states every
    ``start_every`` steps of the real episodes, the MDN-RNN's state burned in on the real frames
    before them (DIAMOND, Dreamer), so a dream continues a real situation with its fireballs in
    flight; ``first_frame``: from the first frames of real episodes with a zero state (World Models).
    Measured on Dodge-v1: a dream started from first frames never spawns a fireball (a rare,
    abrupt event the per-dimension mixture does not sample), so it cannot tell a safe policy from
    a deadly one."""
    start_every: int = 8
    """Steps between the burn-in start states taken from each real episode."""
    danger_starts: int = 16
    """Burn-in only: also start dreams from the real states 2, 4, ..., ``danger_starts`` steps before
    each death in the data (0: none), where the data policy failed to dodge: the dream then tests
    the controller on the situations that decide survival, which uniform starts rarely hit.
    Measured on Dodge-v1 (one world model, controllers retrained, 3 seeds x 32 held-out episodes):
    Dream Land 352 +- 31 with 16 (seeds 323-373) vs 272 +- 35 with 0 (182-396); World Models
    247 +- 27 vs 262 +- 34; 32 gave Dream Land 274 +- 32 (2 seeds)."""
    start_focus: float = 1.0
    """Fraction of the dream start states that CMA-ES (and the fidelity panel's dream) draws its
    dreams from: the rows whose dream return depends most on what the agent does, scored by holding
    each controller action for a whole dream and taking the spread of the returns (stage
    ``starts_<variant>``, :mod:`simlab.world_models.dropout.starts`; needs ``common_starts``). 1: every
    start. Most starts decide nothing (no fireball arrives within the dream) and only add the dream's
    sampling noise to a candidate's fitness."""
    controller: str = "cmaes"
    """cmaes (linear controller on [z, h]) | ppo (SB3 MLP on [z, h])."""
    controller_actions: list[int] | None = None
    """Actions the controller chooses among (default: one per distinct effect for the game)."""
    popsize: int = 32
    """CMA-ES population. Measured on Dodge-v1 (3 seeds x 2 variants, same world models): 16 x 16
    dreams per candidate gave held-out returns 166-309, 32 x 32 gave 267-443 (a generation costs
    ~0.6 s of dreaming)."""
    episodes_per_candidate: int = 32
    """Dream episodes per CMA-ES candidate (World Models: 16): a 30-step dream from a real state
    rarely meets danger, so a candidate's fitness needs many of them."""
    common_starts: bool = True
    """Every CMA-ES candidate of a generation dreams from the same start states (common random
    numbers; ``CMAESConfig.common_starts``), so its fitness differs from the others' by its play
    rather than by where its dreams began."""
    common_noise: bool = True
    """With ``common_starts`` (ignored without them): episode ``j`` of every CMA-ES candidate also draws the same latent
    samples and dropout mask in the dream (``CMAESConfig.common_noise``), so the candidates' fitness
    differences come from their play, not from the dream's sampling. Measured on Dodge-v1
    (``experiments/dreamland_crn.py``, 32 candidates around a trained controller): one generation's
    fitness ranked them with Spearman 0.12 / 0.24 (Dream Land / World Models) against 2048 dreams
    each without it, 0.24 / 0.45 with it. Default runs, four world models (held out, 3 seeds x 32
    episodes): Dream Land 255 -> 534, 206 -> 207, 314 -> 258, 268 -> 339; World Models 250 -> 272,
    316 -> 268, 401 -> 388, 248 -> 306 (docs/results.md, "Common random numbers")."""
    generations: int = 40
    """CMA-ES generations."""
    sigma0: float = 0.1
    """CMA-ES initial step size."""
    eval_every: int = 5
    """Every this many generations (and after the last) score the CMA mean on ``eval_dream_episodes``
    fresh dreams; the controller kept is the best-scoring mean (World Models' choice; 0: keep the
    best single candidate, a noisier pick)."""
    eval_dream_episodes: int = 256
    """Dream episodes per evaluation of the CMA mean (with ``common_starts`` the same episodes for every
    evaluation, so the kept mean is picked on equal terms)."""
    max_dream_steps: int = 30
    """Dream episode limit while training the controller. Dreams start from burned-in real states and
    drift from reality as they go on (measured: ``report.json``'s multi-step error), so short dreams
    from many real situations (DIAMOND: horizon 15) are the default; World Models dreamed whole
    episodes from the first frame (``dream_start=first_frame max_dream_steps=400``)."""
    ppo_timesteps: int = 200_000
    """Dream steps for the PPO controller."""
    seeds: int = 3
    """Controller seeds per variant."""
    baseline: bool = True
    """Also run the World Models baseline (same budget, no dropout)."""
    eval_episodes: int = 32
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
    preset: str = ""
    """Presets applied (set by :func:`dreamland_config`; recorded in report.json)."""
    select: bool = True
    """Also report each variant's controller seed with the best real return on the TRAINING levels
    (its own evaluation episodes there), on its own evaluation episodes (or every seed's, with
    ``select_pool``): the row ``<variant> (selected)``. Dream-trained controllers of one world
    model differ widely in reality (203-374 held out on one model); a few real training-level
    episodes tell them apart, and the held-out and hard columns stay unseen by the choice. The
    variant rows, and the transfer verdict, are the unselected protocol."""
    select_pool: bool = False
    """With ``select``: evaluate the selected seed on every seed's episodes too (n = ``seeds`` x
    ``eval_episodes`` per column, like the variant rows; ~25 s per variant on the Dodge-v1
    default, 53 s of its 693 s). False reports it on its own evaluation episodes (n =
    ``eval_episodes``, wider CIs, no extra cost)."""
    fixed_policies: bool = True
    """Evaluate the fixed policies (stand still, uniform random, random held 1-10 steps, sweep wall to
    wall) on the same splits, seeds and episodes: the bar every variant must clear."""
    upper_bound: bool = True
    """Train the same controller class with the same CMA-ES directly in the REAL game on the Dream Land
    world model's features (procgen games): separates "the world model is wrong" from "the controller
    is too weak"."""
    upper_generations: int = 6
    """CMA-ES generations of the upper bound (each costs real frames through the VAE encoder, ~10 s
    at 16 x 16 on 2 cores; 10 generations reached 669 held out, 2.8x the best fixed policy: 6 keep
    the main job under 12 minutes and the bound still far above the dream-trained controllers)."""
    upper_seeds: int = 1
    """Seeds of the upper bound."""
    upper_popsize: int = 16
    """CMA-ES population of the upper bound (real episodes are ~300x dearer than dream steps: every
    frame goes through the VAE encoder; measured 8.6 s per generation at 16 x 16)."""
    upper_episodes_per_candidate: int = 16
    """Real episodes per candidate of the upper bound."""
    upper_max_steps: int = 300
    """Step cap of the upper bound's real training episodes (real episodes start at step 0, where the
    fireballs only begin; a dream that starts from burned-in mid-episode states needs fewer)."""
    diagnostics: bool = True
    """Write the world-model diagnostics: hazard recall, dream fidelity, multi-step error."""
    fidelity_episodes: int = 16
    """Dream fidelity: episodes per panel controller, in the dream and in the real game (measured: the
    real means of 8 episodes ranked a 20-controller panel with Spearman only 0.46 against 32)."""
    counterfactual_horizon: int = 8
    """Counterfactual test (procgen games): steps each action is held in a copy of the real game and
    in the dream (``world_models/dropout/counterfactual.py``)."""
    counterfactual_branches: int = 8
    """Counterfactual test: branch points (every 20 steps of 32 real envs led by the data policy)."""
    fidelity_max_steps: int = 300
    """Dream fidelity: step cap of the real episodes (the dream ones use ``max_dream_steps``, the
    dream the controllers are trained in)."""
    fidelity_random: int = 12
    """Dream fidelity: random linear controllers in the panel (the panel's untrained controllers with
    the widest spread of real returns; 4 until 2026-12-01)."""
    fidelity_dream_episodes: int = 2048
    """Dream fidelity: dream episodes per panel controller (common starts). Dreams are cheap (~10 s
    per variant for 2048); measured on ``runs/v6``, the dream means from 256 episodes moved by up to
    0.15 (of 30) when the panel changed, as much as the spread among the trained controllers."""
    heldout_transitions: int = 4096
    """Real transitions collected on held-out levels for the diagnostics (never trained on)."""
    horizons: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    """Multi-step prediction error: horizons (steps ahead) reported."""
    burn_in: int = 16
    """Multi-step prediction error: real steps fed before predicting open loop."""
    world_model: str = "dropout"
    """``dropout``: the MDN-RNN dreams only (Dream Land, World Models). ``diffusion``: the same run plus
    a controller trained in a DIAMOND-style pixel diffusion dream (issue 12; the ``diffusion`` row
    and diagnostics; ``diffusion.<key>=value`` sets its fields)."""
    diffusion: DiffusionDreamlandConfig = dataclasses.field(default_factory=DiffusionDreamlandConfig)
    """Settings of the diffusion dream (used with ``world_model=diffusion``)."""

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
        if self.vae_lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"unknown vae_lr_schedule {self.vae_lr_schedule!r}; choose constant or cosine")
        if self.controller not in ("cmaes", "ppo"):
            raise ConfigError(f"unknown controller {self.controller!r}; choose cmaes or ppo")
        for k in ("transitions", "num_envs", "z_dim", "vae_epochs", "vae_max_frames", "hidden", "mixtures",
                  "rnn_epochs", "seq_len", "vae_batch_size", "rnn_batch_size", "eval_dream_episodes", "popsize", "episodes_per_candidate", "generations",
                  "max_dream_steps", "ppo_timesteps", "seeds", "eval_episodes", "eval_num_envs", "vae_width",
                  "upper_generations", "upper_seeds", "upper_max_steps", "fidelity_episodes", "fidelity_max_steps",
                  "fidelity_dream_episodes",
                  "heldout_transitions", "burn_in", "start_every", "counterfactual_horizon", "upper_popsize",
                  "upper_episodes_per_candidate",
                  "counterfactual_branches", "ensemble"):
            if getattr(self, k) < 1:
                raise ConfigError(f"config key {k!r} must be >= 1, got {getattr(self, k)}")
        for r in self.sweep:
            if not 0.0 <= r < 1.0:
                raise ConfigError(f"sweep rates must be in [0, 1), got {r}")
        if self.danger_starts < 0:
            raise ConfigError(f"danger_starts must be >= 0, got {self.danger_starts}")
        if isinstance(self.start_focus, bool) or not isinstance(self.start_focus, (int, float)) \
                or not 0.0 < self.start_focus <= 1.0:
            raise ConfigError(f"start_focus must be a fraction in (0, 1], got {self.start_focus!r}")
        if self.start_focus < 1.0 and (self.controller != "cmaes" or not self.common_starts):
            raise ConfigError("start_focus < 1 needs controller=cmaes with common_starts=true "
                              "(the pool is where common starts are drawn)")
        if self.world_model not in WORLD_MODELS:
            raise ConfigError(f"unknown world_model {self.world_model!r}; choose {' or '.join(WORLD_MODELS)}")
        if self.world_model == "diffusion":
            from simlab.pipelines.dreamland_diffusion import check_env

            check_env(self)
        if self.fidelity_random < 0:
            raise ConfigError(f"fidelity_random must be >= 0, got {self.fidelity_random}")
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"horizons must be a non-empty list of steps >= 1, got {self.horizons}")
        if not self.vae_fg_weight >= 0 or self.vae_fg_weight == float("inf"):
            raise ConfigError(f"vae_fg_weight must be a finite number >= 0, got {self.vae_fg_weight}")
        if not self.vae_fg_density >= 0 or self.vae_fg_density == float("inf"):
            raise ConfigError(f"vae_fg_density must be a finite number >= 0, got {self.vae_fg_density}")
        if self.hard_split and game is not None:
            check_split_name(self.hard_split)
        if self.vae_lr <= 0:
            raise ConfigError(f"vae_lr must be > 0, got {self.vae_lr}")
        if not 0.0 <= self.rnn_open_loop <= 1.0:
            raise ConfigError(f"rnn_open_loop must be in [0, 1], got {self.rnn_open_loop}")
        if not 0 < self.done_weight < float("inf"):
            raise ConfigError(f"done_weight must be a finite number > 0, got {self.done_weight}")
        if self.done_pos_weight <= 0:
            raise ConfigError(f"done_pos_weight must be > 0, got {self.done_pos_weight}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")
        if self.eval_max_steps < 0:
            raise ConfigError(f"eval_max_steps must be >= 0 (0: the game's limit), got {self.eval_max_steps}")
        if self.dream_start not in ("burn_in", "first_frame"):
            raise ConfigError(f"unknown dream_start {self.dream_start!r}; choose burn_in or first_frame")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        from simlab.world_models.dropout.dream import DONE_MODES

        if self.dream_done not in DONE_MODES:
            raise ConfigError(f"unknown dream_done {self.dream_done!r}; choose one of {', '.join(DONE_MODES)}")
        from simlab.world_models.dropout.ensemble import POOLS

        if self.ensemble_pool not in POOLS:
            raise ConfigError(f"unknown ensemble_pool {self.ensemble_pool!r}; choose one of {', '.join(POOLS)}")
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
              "videos": False, "eval_dream_episodes": 8, "vae_batch_size": 64, "rnn_batch_size": 16,
              "vae_width": 8, "upper_generations": 2, "upper_popsize": 4, "upper_episodes_per_candidate": 2,
              "fidelity_episodes": 2, "fidelity_max_steps": 30,
              "fidelity_random": 2, "fidelity_dream_episodes": 8, "heldout_transitions": 512, "horizons": [1, 2, 4], "burn_in": 4,
              "upper_max_steps": 50, "counterfactual_horizon": 4, "counterfactual_branches": 1,
              "diffusion": _DIFFUSION_DEBUG},
    "cpu": {},
    "carracing": {"env": "CarRacing-v3", "hard_split": "", "transitions": 10_000, "num_envs": 1, "max_dream_steps": 300,
                  "eval_max_steps": 300, "eval_episodes": 8, "eval_num_envs": 1,
                  # 300-step dreams cost 10x Dodge's 30-step ones: the budget of the documented run
                  # (docs/results.md, CarRacing), not the Dodge defaults'.
                  "vae_epochs": 12, "rnn_epochs": 30, "popsize": 16, "episodes_per_candidate": 4,
                  "eval_dream_episodes": 64, "fidelity_dream_episodes": 64, "fidelity_random": 4},
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
        if len(path) == 2 and path[0] == "diffusion":  # the diffusion dream's group
            if path[1] not in data["diffusion"]:
                raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: "
                                  f"{', '.join('diffusion.' + k for k in sorted(data['diffusion']))}")
            data["diffusion"][path[1]] = value
            continue
        if len(path) != 1 or path[0] not in data:
            raise ConfigError(f"unknown config key {'.'.join(path)!r}; valid keys: {', '.join(sorted(data))}")
        data[path[0]] = value
    data["preset"] = ",".join(presets) or "cpu"
    return from_dict(DreamlandConfig, data)


def encode_episode(vae: Any, frames: np.ndarray, actions: np.ndarray, perm: np.ndarray | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(z (T+1, z_dim), actions (T,))]`` of one real episode (its ``T+1`` frames include the last
    next observation), and with ``perm`` (:meth:`Dreamland.mirror_map`) a second pair: the episode's
    mirror image (frames flipped left-right, actions permuted)."""
    from simlab.world_models.dropout.vae import encode_frames

    out = [(encode_frames(vae, frames), actions)]
    if perm is not None:
        a = np.asarray(actions)
        out.append((encode_frames(vae, np.ascontiguousarray(frames[:, :, ::-1])),
                    perm[a.astype(np.int64)].astype(a.dtype)))
    return out


def dream_starts(rnn: Any, zs: list[np.ndarray], acts: list[np.ndarray], every: int | None,
                 device: Any = "cpu", dones: list[np.ndarray] | None = None, danger: int = 0) -> tuple[Any, Any]:
    """Start states of the dreams from real episodes: ``(start_z (M, z_dim), (h, c) (M, hidden) each)``.

    ``every=None``: the first frame of each episode with a zero state (World Models). Otherwise the
    frames at steps 0, every, 2 * every... of each episode, each with the MDN-RNN's state after
    consuming the real frames and actions before it (teacher forcing, no dropout): a dream started
    there continues the real situation. ``danger > 0`` (with ``dones``, per-step termination flags)
    adds the steps 2, 4, ..., ``danger`` before the end of every episode that ended in a death.
    """
    import torch

    takes: list[np.ndarray] = []
    for i, a in enumerate(acts):
        if every is None or len(a) == 0:
            takes.append(np.zeros(1, np.int64))
            continue
        take = np.arange(0, len(a), every)
        if danger and dones is not None and bool(dones[i][-1]):  # the episode ended in a death
            before = (len(a) - 1) - np.arange(2, danger + 1, 2)  # the fatal step is len(a) - 1
            take = np.union1d(take, before[before >= 0])
        takes.append(take)
    zt = [torch.as_tensor(z[t]) for z, t in zip(zs, takes)]
    if every is None:
        h = torch.zeros(len(zt), rnn.hidden)
        return torch.cat(zt), (h, h.clone())
    hs, cs = _states_at(rnn, zs, acts, takes, device)
    return torch.cat(zt), (torch.cat(hs), torch.cat(cs))


def _states_at(rnn: Any, zs: list[np.ndarray], acts: list[np.ndarray], takes: list[np.ndarray],
               device: Any = "cpu", chunk: int = 256) -> tuple[list[Any], list[Any]]:
    """The LSTM state BEFORE the steps ``takes[i]`` of each episode ``i`` (teacher forcing, no
    dropout; step 0's is zeros): ``(h, c)`` lists of ``(len(takes[i]), hidden)`` CPU tensors.

    Hand-written rather than ``rnn.forward`` because only a few states per episode are kept: the
    episodes of a chunk run side by side (padded with zero latents and action 0 past their end,
    whose states are never taken), one batched cell step per time step instead of one batch-1
    step per transition (measured on the default's 200k transitions: 34.5 s -> 4.7 s).
    """
    import torch

    hs: list[Any] = [None] * len(zs)
    cs: list[Any] = [None] * len(zs)
    with torch.no_grad():
        for lo in range(0, len(zs), chunk):
            idx = list(range(lo, min(lo + chunk, len(zs))))
            T = max(len(acts[i]) for i in idx)
            z = np.zeros((len(idx), T, zs[idx[0]].shape[1]), np.float32)
            a_shape = (len(idx), T) + tuple(np.shape(acts[idx[0]])[1:])
            a = np.zeros(a_shape, np.float32 if rnn.continuous else np.int64)
            for j, i in enumerate(idx):
                n = len(acts[i])
                z[j, :n] = zs[i][:n]
                a[j, :n] = acts[i]
            z_t = torch.as_tensor(z, device=device)
            a_t = rnn.check_actions(torch.as_tensor(a, device=device), (len(idx), T))  # once, not per step
            want: dict[int, list[tuple[int, int]]] = {}  # step -> [(row in chunk, row in take)]
            for j, i in enumerate(idx):
                for k, t in enumerate(takes[i]):
                    want.setdefault(int(t), []).append((j, k))
            out_h = [torch.empty(len(takes[i]), rnn.hidden) for i in idx]
            out_c = [torch.empty(len(takes[i]), rnn.hidden) for i in idx]
            state = rnn.initial_state(len(idx), device)
            last = max(want)
            for t in range(last + 1):
                for j, k in want.get(t, ()):
                    out_h[j][k] = state[0][j].cpu()
                    out_c[j][k] = state[1][j].cpu()
                if t < last:
                    state = rnn.cell_step(z_t[:, t], a_t[:, t], state)
            for j, i in enumerate(idx):
                hs[i], cs[i] = out_h[j], out_c[j]
    return hs, cs


def member_name(variant: str, member: int) -> str:
    """World-model name of a variant's ensemble member: the variant itself for member 0, else
    ``<variant>_m<member>``."""
    return variant if member == 0 else f"{variant}_m{member}"


# ---- the pipeline -----------------------------------------------------------------------------
SPLIT_KEYS = ("train", "heldout", "hard")
"""report.json's split names: the training levels, the held-out levels, the OOD-dynamics levels."""
UPPER = "upper_bound"
"""Name of the real-game CMA-ES row."""


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
        self._check_resources(out)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.run = RunDir.create(out, cfg, resume=resume)
        self.path = self.run.path
        self.t0 = time.time()
        self._models: dict[str, Any] = {}
        """Loaded world models by variant (see :meth:`world_model`)."""

    # -- helpers ---------------------------------------------------------------------------------
    def _check_resources(self, out: str | Path) -> None:
        """Refuse, before any work, a config whose data cannot fit in memory or on disk.

        Estimates (64x64x3 uint8 frames for the procgen games; 96x96x3 for image envs): the
        VAE holds up to ``vae_max_frames`` frames and their float copy per batch; the MDN-RNN
        holds every latent; the datasets hold every frame (an upper bound: shards are not
        compressed below ~1/10 of it on these games, so 1/10 is the disk figure checked).
        """
        from simlab.resources import check_disk, check_memory

        cfg = self.cfg
        frame = (64 * 64 * 3) if self.game is not None else (96 * 96 * 3)
        frames = cfg.transitions + cfg.heldout_transitions
        check_memory(min(cfg.vae_max_frames, cfg.transitions) * frame + frames * (cfg.z_dim * 4 + 64)
                     + cfg.vae_batch_size * frame * 4 * 8,
                     f"transitions={cfg.transitions} with vae_max_frames={cfg.vae_max_frames}")
        check_disk(frames * frame / 10, out, f"transitions={cfg.transitions}")

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
        """The saved world model of a variant, read from disk once per run (dreams, agents and
        diagnostics only read it: dreams pass their dropout masks explicitly)."""
        from simlab.world_models.dropout.model import DropoutWorldModel

        if variant not in self._models:
            self._models[variant] = DropoutWorldModel.from_pretrained(self.path / "world_models" / variant,
                                                                      device=self.device)
        return self._models[variant]

    def splits(self) -> dict[str, str]:
        """``{report key: evaluator split}`` of the test columns: train, heldout (and hard)."""
        a, b = self.cfg.train_levels.split(":")
        out = {"train": f"levels:{a}:{b}", "heldout": self.cfg.heldout_split}
        if self.game is not None and self.cfg.hard_split:
            out["hard"] = self.cfg.hard_split
        return out

    def _speed(self) -> int:
        from simlab.envs.procgen.vec import game_class

        return int(getattr(game_class(self.game), "agent_speed", 2))

    # -- stages ------------------------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        return self._collect(self.path / "data" / "real", self.cfg.train_levels, self.cfg.transitions,
                             self.cfg.seed)

    def collect_heldout(self) -> dict[str, Any]:
        """Real transitions on held-out levels, only for the diagnostics."""
        held = self.cfg.heldout_split
        if self.game is not None:
            from simlab.envs.procgen.base import options_for_split

            o = options_for_split(held)
            levels = f"{o.start_level}:" if o.num_levels == 0 else f"{o.start_level}:{o.start_level + o.num_levels}"
        else:
            from simlab.envs.procgen.base import level_range_split

            a, n = GYM_HELDOUT_SEEDS if held == "test" else level_range_split(held)
            levels = f"{a}:{a + n}"
        # Fewer envs than for training data: long episodes, so the multi-step error sees deaths.
        return self._collect(self.path / "data" / "heldout", levels, self.cfg.heldout_transitions,
                             self.cfg.seed + 1, num_envs=max(1, self.cfg.num_envs // 8))

    def _collect(self, out: Path, levels: str, transitions: int, seed: int,
                 num_envs: int | None = None) -> dict[str, Any]:
        if self.game is None:
            from simlab.envs.gym_image import collect_gym

            a, b = (int(x) for x in levels.split(":"))
            res = collect_gym(self.cfg.env, out, transitions, seeds=(a, b - a), policy="random", seed=seed,
                              progress=self.progress, max_episode_steps=self.cfg.eval_max_steps or None)
            return {"transitions": transitions, "complete": res.complete}
        from simlab.envs.procgen.dataset import ProcgenCollectConfig, collect_procgen

        cc = ProcgenCollectConfig(game=self.game, levels=levels, transitions=transitions,
                                  policy="random_repeat", seed=seed, num_envs=num_envs or self.cfg.num_envs,
                                  use_backgrounds=self.cfg.use_backgrounds)
        res = collect_procgen(cc, out, resume=True, progress=self.progress)
        return {"transitions": transitions, "complete": res.complete}

    def _real(self, which: str = "real"):
        if self.game is None:
            from simlab.envs.gym_image import GymTransitionDataset

            return GymTransitionDataset(self.path / "data" / which)
        from simlab.envs.procgen.dataset import TransitionDataset

        return TransitionDataset(self.path / "data" / which)

    def train_vae(self) -> dict[str, Any]:
        from simlab.world_models.dropout.vae import VAETrainConfig, train_vae

        ds = self._real()
        n = len(ds)
        rng = np.random.default_rng([self.cfg.seed, 0xAE])
        idx = np.sort(rng.choice(n, size=min(n, self.cfg.vae_max_frames), replace=False))
        frames = ds.get(idx, ["obs"])["obs"]
        vcfg = VAETrainConfig(z_dim=self.cfg.z_dim, epochs=self.cfg.vae_epochs, batch_size=self.cfg.vae_batch_size,
                              lr=self.cfg.vae_lr, lr_schedule=self.cfg.vae_lr_schedule, width=self.cfg.vae_width,
                              fg_weight=self.cfg.vae_fg_weight, fg_density_power=self.cfg.vae_fg_density)
        vae = train_vae(frames, vcfg, device=self.device, progress=self.progress, seed=self.cfg.seed,
                        log=self._log("vae"))
        vae.save_pretrained(self.path / "checkpoints" / "vae")
        return {"frames": len(frames)}

    def mirror_map(self) -> np.ndarray | None:
        """The action permutation of a left-right mirror when ``cfg.mirror`` applies (a procgen game
        with symmetric rules), else None."""
        if not self.cfg.mirror or self.game is None:
            return None
        from simlab.envs.procgen.vec import game_class

        perm = game_class(self.game).mirror_actions
        return None if perm is None else np.asarray(perm, np.int64)

    def encode(self) -> dict[str, Any]:
        """``data/latents.npz``: every real episode encoded by the VAE (and, with :meth:`mirror_map`,
        every episode's mirror image after them: frames flipped left-right, actions permuted)."""
        from simlab.data import atomic_path
        from simlab.world_models.dropout.vae import ConvVAE

        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        ds = self._real()
        perm = self.mirror_map()
        z_list, a_list, r_list, d_list = [], [], [], []
        mirrored: list[tuple[np.ndarray, ...]] = []
        for ep in ds.episodes():
            views = encode_episode(vae, ep["observations"], ep["actions"], perm)
            z_list.append(views[0][0])
            a_list.append(views[0][1])
            r_list.append(ep["rewards"])
            d_list.append(ep["terminations"])
            if perm is not None:
                mirrored.append((*views[1], ep["rewards"], ep["terminations"]))
        for z, a, r, d in mirrored:
            z_list.append(z)
            a_list.append(a)
            r_list.append(r)
            d_list.append(d)
        lens = np.array([len(a) for a in a_list])
        with atomic_path(self.path / "data" / "latents.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, z=np.concatenate(z_list), actions=np.concatenate(a_list),
                     rewards=np.concatenate(r_list), dones=np.concatenate(d_list), lengths=lens)
        return {"episodes": len(lens), "transitions": int(lens.sum()), "mirrored_episodes": len(mirrored),
                "deaths": int(sum(int(np.sum(d)) for d in d_list))}

    def _latents(self) -> tuple[list[np.ndarray], ...]:
        with np.load(self.path / "data" / "latents.npz") as f:
            # One read per array: every ``f[key]`` decompresses the whole array again, and slices of
            # a fresh copy per episode kept hundreds of full copies alive (GBs at 100k transitions).
            d = {k: f[k] for k in ("z", "actions", "rewards", "dones", "lengths")}
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

    def train_rnn(self, variant: str, member: int = 0) -> dict[str, Any]:
        """Train a variant's MDN-RNN (``member`` 0: its world model; ``j > 0``: ensemble member ``j``,
        another seed on the same latents, saved as world model ``<variant>_m<j>``)."""

        from simlab.world_models.dropout.mdnrnn import RNNTrainConfig, train_mdnrnn

        zs, acts, rews, dones = self._latents()
        cont = not isinstance(self.actions, list)
        n_act = 15 if self.game is not None else (0 if cont else self._real().n_actions)
        rcfg = RNNTrainConfig(n_actions=max(1, n_act), action_dim=self.actions.shape[0] if cont else 0,
                              hidden=self.cfg.hidden,
                              mixtures=self.cfg.mixtures, epochs=self.cfg.rnn_epochs, seq_len=self.cfg.seq_len,
                              batch_size=self.cfg.rnn_batch_size, done_pos_weight=self.cfg.done_pos_weight,
                              done_weight=self.cfg.done_weight, open_loop=self.cfg.rnn_open_loop,
                              dropout=self.cfg.variant_specs()[variant]["dropout"])
        name = member_name(variant, member)
        rnn = train_mdnrnn(zs, acts, rews, dones, rcfg, device=self.device, progress=self.progress,
                           seed=self.cfg.seed + 7919 * member, log=self._log(f"rnn_{name}"))
        return {"dropout": rcfg.dropout, "start_states": self.save_world_model(name, rnn)}

    def save_world_model(self, variant: str, rnn: Any) -> int:
        """Save a variant's world model (the run's VAE, ``rnn`` and the dream start states of the
        config's ``dream_start`` / ``start_every`` / ``danger_starts``); returns the number of starts.
        Also how a forked run (experiments/dreamland_fork.py) gets new start states from a trained
        MDN-RNN without retraining it."""
        from simlab.world_models.dropout.model import DropoutWorldModel
        from simlab.world_models.dropout.vae import ConvVAE

        zs, acts, _, dones = self._latents()
        cont = not isinstance(self.actions, list)
        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        burn = self.cfg.dream_start == "burn_in"
        start_z, start_state = dream_starts(rnn, zs, acts, self.cfg.start_every if burn else None, self.device,
                                            dones=dones, danger=self.cfg.danger_starts if burn else 0)
        DropoutWorldModel(vae, rnn, start_z, env_id=self.cfg.env, action_space=self.actions if cont else None,
                          start_state=start_state).save_pretrained(self.path / "world_models" / variant)
        self._models.pop(variant, None)  # a retrained variant is read afresh
        return int(start_z.shape[0])

    def _dream_kwargs(self, variant: str) -> dict[str, Any]:
        spec = self.cfg.variant_specs()[variant]
        if spec["dream_dropout"] == 0.0:
            return {"mask_mode": "none", "dropout": 0.0}
        return {"mask_mode": spec["mask"], "dropout": spec["dream_dropout"]}

    def _start_pool_path(self, variant: str) -> Path:
        return self.path / "controllers" / variant / "start_pool.npz"

    def score_starts(self, variant: str) -> dict[str, Any]:
        """Stage ``starts_<variant>`` (``start_focus < 1``): every start state's dream return with each
        controller action held, and the informative rows CMA-ES draws its dreams from."""
        from simlab.data import atomic_path
        from simlab.world_models.dropout.starts import held_action_returns, informative_rows

        m_rows = int(self.world_model(variant).start_z.shape[0])
        held = held_action_returns(self._dream_env(variant, self.cfg.max_dream_steps, focused=False), m_rows,
                                   list(self.actions), self.cfg.max_dream_steps, seed=self.cfg.seed + 11)
        rows = informative_rows(held, self.cfg.start_focus)
        spread = held.max(1) - held.min(1)
        out = self._start_pool_path(variant)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, rows=rows, spread=spread, held=held.astype(np.float32))
        return {"rows": len(rows), "of": m_rows, "min_spread_kept": float(spread[rows].min()),
                "median_spread": float(np.median(spread))}

    def _dream_env(self, variant: str, max_steps: int, focused: bool = True):
        """``make_env(num_envs, seed)`` of a variant's dream (its own mask mode and rate); with
        ``focused`` and ``start_focus < 1`` its common starts come from the informative rows."""
        make = self._plain_dream_env(variant, max_steps)
        if not focused or self.cfg.start_focus >= 1.0:
            return make
        pool = np.load(self._start_pool_path(variant))["rows"]

        def make_focused(num_envs: int, env_seed: int):
            env = make(num_envs, env_seed)
            env.start_pool = pool
            return env
        return make_focused

    def _plain_dream_env(self, variant: str, max_steps: int):
        model = self.world_model(variant)
        kw = self._dream_kwargs(variant)

        if self.cfg.ensemble > 1:
            from simlab.world_models.dropout.ensemble import ensemble_vec_env

            members = [self.world_model(member_name(variant, j)) for j in range(1, self.cfg.ensemble)]
            trio = [(m.rnn, m.start_h, m.start_c) for m in members]

            def make_ensemble(num_envs: int, env_seed: int):
                return ensemble_vec_env(model, trio, num_envs, pool=self.cfg.ensemble_pool,
                                        temperature=self.cfg.temperature, max_episode_steps=max_steps,
                                        device=self.device, seed=env_seed, done_mode=self.cfg.dream_done, **kw)
            return make_ensemble

        def make_env(num_envs: int, env_seed: int):
            return model.as_vec_env(num_envs, temperature=self.cfg.temperature, max_episode_steps=max_steps,
                                    device=self.device, seed=env_seed, done_mode=self.cfg.dream_done, **kw)
        return make_env

    def _real_feature_env(self, variant: str):
        """``make_env(num_envs, seed)`` of the REAL game on the training levels, observed through a
        variant's world-model features ``[z, h]`` (no dropout)."""
        from simlab.envs.procgen.base import options_for_split
        from simlab.envs.procgen.vec import ProcgenVecEnv
        from simlab.policies.cmaes import DropoutWorldModelView
        from simlab.policies.real_features import RealFeatureVecEnv

        model = self.world_model(variant)
        train = self.splits()["train"]

        def make_env(num_envs: int, env_seed: int):
            opts = options_for_split(train, rand_seed=int(env_seed) % (2**31), use_backgrounds=self.cfg.use_backgrounds)
            real = ProcgenVecEnv(self.game, num_envs, options=opts)
            return RealFeatureVecEnv(real, DropoutWorldModelView(model, device=str(self.device)), model.obs_dim)
        return make_env

    def _cmaes(self, make_env: Any, in_dim: int, sub: Path, seed: int, generations: int, eval_episodes: int,
               prefix: str, max_steps: int, dream: bool = True) -> dict[str, Any]:
        from simlab.policies.cmaes import CMAESConfig, train_cmaes

        pop, eps = ((self.cfg.popsize, self.cfg.episodes_per_candidate) if dream
                    else (self.cfg.upper_popsize, self.cfg.upper_episodes_per_candidate))
        ccfg = CMAESConfig(popsize=pop, episodes_per_candidate=eps,
                           sigma0=self.cfg.sigma0, generations=generations, seed=seed,
                           max_episode_steps=max_steps, eval_every=self.cfg.eval_every,
                           eval_episodes=eval_episodes, common_starts=dream and self.cfg.common_starts,
                           common_noise=dream and self.cfg.common_starts and self.cfg.common_noise)
        run = RunDir.create(sub, ccfg, resume=True)
        _, info = train_cmaes(make_env, in_dim, self.actions, ccfg, run=run, progress=self.progress,
                              log=self._log(prefix))
        # The CMA means scored during training: the learning curve and part of the fidelity panel.
        evals = [e for e in info["evals"] if "params" in e]  # (checkpoints of older versions lack them)
        np.savez(sub / "eval_means.npz", generation=np.array([e["generation"] for e in evals], np.int64),
                 dream_return=np.array([e["return"] for e in evals], np.float64),
                 params=np.array([e["params"] for e in evals], np.float64).reshape(len(evals), -1))
        return {"dream_best_return": float(info["best_return"])}

    def train_controller(self, variant: str, k: int) -> dict[str, Any]:
        sub = self.path / "controllers" / variant / f"seed{k}"
        seed = 1000 * (k + 1)
        make_env = self._dream_env(variant, self.cfg.max_dream_steps)
        if self.cfg.controller == "cmaes":
            return self._cmaes(make_env, self.world_model(variant).obs_dim, sub, seed, self.cfg.generations,
                               self.cfg.eval_dream_episodes, f"dream_{variant}_s{k}", self.cfg.max_dream_steps)
        from simlab.policies.dream_ppo import DreamPPOConfig, train_dream_ppo

        pcfg = DreamPPOConfig(total_timesteps=self.cfg.ppo_timesteps, seed=seed, device=str(self.device),
                              num_envs=min(64, self.cfg.popsize * self.cfg.episodes_per_candidate))
        run = RunDir.create(sub, pcfg, resume=True)
        _, info = train_dream_ppo(make_env, pcfg, run=run, progress=self.progress,
                                  log=self._log(f"dream_{variant}_s{k}"))
        return {"dream_mean_return": float(info.get("mean_return", float("nan")))}

    def train_upper(self, k: int) -> dict[str, Any]:
        """The upper bound: the same CMA-ES and controller class in the REAL game (training levels)."""
        v = self.cfg.variants()[0]
        return self._cmaes(self._real_feature_env(v), self.world_model(v).obs_dim,
                           self.path / "controllers" / UPPER / f"seed{k}", 1000 * (k + 1) + 7,
                           self.cfg.upper_generations, min(32, max(8, self.cfg.eval_dream_episodes // 2)), f"{UPPER}_s{k}",
                           self.cfg.upper_max_steps, dream=False)

    def _agent(self, variant: str, k: int):
        from simlab.policies.cmaes import DropoutWorldModelView, LinearController, WorldModelAgent

        sub = self.path / "controllers" / variant / f"seed{k}"
        model = self.world_model(self.cfg.variants()[0] if variant == UPPER else variant)
        if self.cfg.controller == "cmaes" or variant == UPPER:
            ctrl = LinearController.load(sub / "controller")
        else:
            from simlab.policies.dream_ppo import DreamPolicy

            ctrl = DreamPolicy.load(sub / "dream_policy")
        return WorldModelAgent(DropoutWorldModelView(model, device=str(self.device)), ctrl)

    def _evaluate(self, policy: Any, out: Path | None, k: int) -> dict[str, Any]:
        """Real returns of ``policy`` on every test column: ``{key: {"mean_return", "returns"}}``."""
        from simlab.policies.evaluate import evaluate

        cols = self.splits()
        videos = self.cfg.videos and out is not None
        kw = {"video_dir": out / "videos" if videos else None, "videos_per_split": 1 if videos else 0,
              "out_dir": out, "max_episode_steps": self.cfg.eval_max_steps or None, "progress": self.progress}
        if self.game is None:
            from simlab.envs.gym_image import evaluate_gym
            from simlab.envs.procgen.base import level_range_split

            a, b = self.cfg.train_levels.split(":")
            held = self.cfg.heldout_split
            seeds = {cols["train"]: (int(a), int(b) - int(a)),
                     held: GYM_HELDOUT_SEEDS if held == "test" else level_range_split(held)}
            res = evaluate_gym(policy, self.cfg.env, seeds, self.cfg.eval_episodes, seed=k, **kw)
        else:
            res = evaluate(policy, self.cfg.env, list(dict.fromkeys(cols.values())), self.cfg.eval_episodes,
                           seed=k, num_envs=self.cfg.eval_num_envs, use_backgrounds=self.cfg.use_backgrounds, **kw)
        return {key: {"mean_return": res[s]["mean_return"], "returns": [e["return"] for e in res[s]["episodes"]]}
                for key, s in cols.items()}

    def evaluate(self, variant: str, k: int) -> dict[str, Any]:
        return self._evaluate(self._agent(variant, k), self.path / "eval" / variant / f"seed{k}", k)

    def select(self, variant: str) -> dict[str, Any]:
        """The controller seed of ``variant`` with the best mean real return on the training levels
        (from its evaluation stage), with its own evaluation episodes and, with ``select_pool``,
        every other seed's: ``{"selected_seed", "train_means", "seeds", key: {"returns"}}``."""
        means = [float(np.mean(self.run.stage_done(f"eval_{variant}_s{k}")["train"]["returns"]))
                 for k in range(self.cfg.seeds)]
        best = int(np.argmax(means))
        seeds = list(range(self.cfg.seeds)) if self.cfg.select_pool else [best]
        agent = self._agent(variant, best) if len(seeds) > 1 else None
        pooled: dict[str, list[float]] = {}
        for k in seeds:
            rec = self.run.stage_done(f"eval_{variant}_s{k}") if k == best else self._evaluate(agent, None, k)
            for key in self.splits():
                pooled.setdefault(key, []).extend(rec[key]["returns"])
        return {"selected_seed": best, "train_means": means, "seeds": seeds, **{key: {"returns": r} for key, r in pooled.items()}}

    def evaluate_fixed(self) -> dict[str, Any]:
        """Every fixed policy on the same columns, seeds and episodes as the variants."""
        from simlab.policies.fixed import FIXED_POLICIES, GymRandom

        out: dict[str, Any] = {}
        if self.game is not None:
            factories = {name: (lambda k, f=f: f(k, self._speed())) for name, f in FIXED_POLICIES.items()}
        else:
            from simlab.envs.gym_image import check_image_env

            space = check_image_env(self.cfg.env).action_space
            factories = {"uniform random": lambda k: GymRandom(space, k)}
        for name, make in factories.items():
            for k in range(self.cfg.seeds):
                for key, r in self._evaluate(make(k), None, k).items():
                    out.setdefault(name, {}).setdefault(key, []).extend(r["returns"])
        return {"returns": out}

    # -- diagnostics -------------------------------------------------------------------------------
    def diagnose_vae(self) -> dict[str, Any]:
        """Hazard recall of the VAE on held-out frames (None with a reason when the data has no boxes)."""
        from simlab.errors import DatasetError
        from simlab.world_models.dropout.diagnostics import hazard_recall
        from simlab.world_models.dropout.vae import ConvVAE, reconstruct_frames

        ds = self._real("heldout")
        idx = np.arange(min(len(ds), 2048))
        try:
            d = ds.get(idx, ("obs", "hazard_boxes"))
        except (DatasetError, KeyError):  # procgen readers say DatasetError, the gym reader KeyError
            return {"hazard_recall": None, "hazard_recall_note": "unavailable: the data records no sprite boxes "
                    "(a game without projectiles, or a dataset from before they were recorded)"}
        vae = ConvVAE.from_pretrained(self.path / "checkpoints" / "vae", device=self.device)
        r = hazard_recall(d["obs"], reconstruct_frames(vae, d["obs"]), d["hazard_boxes"])
        return {"hazard_recall": r["recall"], "hazards": r["hazards"], "visible": r["visible"], "frames": len(idx)}

    def diagnose_variant(self, variant: str) -> dict[str, Any]:
        """Multi-step prediction error on held-out sequences, and dream fidelity over a panel."""
        from simlab.world_models.dropout.diagnostics import death_prediction, multistep_errors

        out: dict[str, Any] = {}
        cfg = self.cfg
        need = cfg.burn_in + max(cfg.horizons) + 1
        held = list(self._real("heldout").episodes())
        if self.game is not None and held:
            out["death_prediction"] = death_prediction(self.world_model(variant), held, device=self.device)
        eps = [e for e in held if len(e["observations"]) >= need][:32]
        if eps:
            frames = np.stack([e["observations"][:need] for e in eps])
            acts = np.stack([e["actions"][:need - 1] for e in eps])
            out["multistep"] = multistep_errors(self.world_model(variant), frames, acts, list(cfg.horizons),
                                                cfg.burn_in, device=self.device)
            out["multistep"]["sequences"] = len(eps)
        if self.game is not None and cfg.controller == "cmaes":
            out["fidelity"] = self._fidelity(variant)
        if self.game is not None and isinstance(self.actions, list):
            out["counterfactual"] = self._counterfactual(variant)
        return out

    def _counterfactual(self, variant: str) -> dict[str, Any]:
        """Does the dream know which action avoids a death (``world_models/dropout/counterfactual.py``):
        from real training-level states reached by the data policy, each controller action held for
        ``counterfactual_horizon`` steps in a copy of the real game and in the dream."""
        from simlab.envs.procgen.base import options_for_split
        from simlab.envs.procgen.vec import ProcgenVecEnv
        from simlab.policies.fixed import RandomHeld
        from simlab.world_models.dropout.counterfactual import counterfactual_test

        train = self.splits()["train"]

        def make_env(num_envs: int, env_seed: int) -> ProcgenVecEnv:
            return ProcgenVecEnv(self.game, num_envs, options=options_for_split(
                train, rand_seed=env_seed, use_backgrounds=self.cfg.use_backgrounds))

        return counterfactual_test(self.world_model(variant), make_env, RandomHeld(self.cfg.seed + 5),
                                   list(self.actions), horizon=self.cfg.counterfactual_horizon, num_envs=32,
                                   branches=self.cfg.counterfactual_branches, seed=self.cfg.seed + 5,
                                   device=self.device)

    def _panel(self, variant: str) -> tuple[list[str], list[Any]]:
        """Panel of controllers for dream fidelity: the fixed policies, random linear controllers,
        the CMA-ES means scored during seed 0's training, the final controller of every seed and
        (first variant, whose features it was trained on) the real-game upper bound."""
        from simlab.policies.cmaes import LinearController
        from simlab.policies.fixed import FIXED_POLICIES

        in_dim = self.world_model(variant).obs_dim
        names, actors = [], []
        for name, f in FIXED_POLICIES.items():
            names.append(f"fixed: {name}")
            actors.append(f(0, self._speed()))
        rng = np.random.default_rng([self.cfg.seed, 0xF1D])
        for i in range(self.cfg.fidelity_random):
            c = LinearController(in_dim, self.actions)
            c.set_params(rng.normal(0.0, 1.0, c.num_params) / np.sqrt(in_dim))
            names.append(f"random linear {i}")
            actors.append(c)
        sub = self.path / "controllers" / variant
        m = np.load(sub / "seed0" / "eval_means.npz")
        for g, p in zip(m["generation"], m["params"]):
            names.append(f"CMA mean gen {int(g)}")
            actors.append(LinearController(in_dim, self.actions, p))
        for k in range(self.cfg.seeds):
            names.append(f"final seed {k}")
            actors.append(LinearController.load(sub / f"seed{k}" / "controller"))
        upper = self.path / "controllers" / UPPER
        if variant == self.cfg.variants()[0]:  # trained on this model's features: a strong real player
            for k in range(self.cfg.upper_seeds):
                if (upper / f"seed{k}" / "controller").exists():
                    names.append(f"upper bound seed {k}")
                    actors.append(LinearController.load(upper / f"seed{k}" / "controller"))
        return names, actors

    def _fidelity(self, variant: str) -> dict[str, Any]:
        from simlab.policies.panel import rollout_actors, spearman, split_half_ceiling

        cfg = self.cfg
        names, actors = self._panel(variant)
        seed = 777
        # The dream as the controllers were trained in it (its own episode cap, common start states,
        # as many episodes as the CMA mean is judged on: dreams are cheap, so the dream's side of
        # the ranking is nearly noise-free), reality as evaluated (from the start of real episodes,
        # capped at fidelity_max_steps), whose noise bounds the Spearman (reported as the ceiling).
        dream_eps = max(cfg.fidelity_episodes, cfg.eval_dream_episodes, cfg.fidelity_dream_episodes)
        dream = rollout_actors(self._dream_env(variant, cfg.max_dream_steps), actors, dream_eps,
                               seed, cfg.max_dream_steps, common_starts=cfg.common_starts).mean(1)
        # A fresh panel: the random fixed policies carry RNG state, and reality's episodes must not
        # depend on how many dream episodes came before.
        _, fresh = self._panel(variant)
        real_eps = rollout_actors(self._real_feature_env(variant), fresh, cfg.fidelity_episodes, seed,
                                  cfg.fidelity_max_steps)
        real = real_eps.mean(1)
        return {"spearman": spearman(dream, real), **fidelity_subsets(dream, real, names), "names": names, "dream": dream.tolist(), "real": real.tolist(),
                "episodes": cfg.fidelity_episodes, "dream_episodes": dream_eps, "max_steps": cfg.fidelity_max_steps,
                "dream_max_steps": cfg.max_dream_steps, "ceiling": split_half_ceiling(real_eps)}

    # -- everything ------------------------------------------------------------------------------
    def run_all(self) -> dict[str, Any]:
        """Every stage in order (finished ones skipped), then the report."""
        import torch

        # Same seed, same machine, same thread count -> the same report (tested): torch's CPU kernels
        # are deterministic for a fixed thread count; this flags any that are not. Restored after.
        before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            return self._run_all()
        finally:
            torch.use_deterministic_algorithms(before)

    def _run_all(self) -> dict[str, Any]:
        from simlab.pipelines.dreamland_report import write_report

        cfg = self.cfg
        self._stage("collect", self.collect)
        if cfg.diagnostics:
            self._stage("collect_heldout", self.collect_heldout)
        self._stage("vae", self.train_vae)
        self._stage("encode", self.encode)
        if cfg.diagnostics:
            self._stage("diag_vae", self.diagnose_vae)
        if cfg.fixed_policies:
            self._stage("fixed", self.evaluate_fixed)
        for v in cfg.variants():
            self._stage(f"rnn_{v}", lambda v=v: self.train_rnn(v))
            for j in range(1, cfg.ensemble):
                self._stage(f"rnn_{member_name(v, j)}", lambda v=v, j=j: self.train_rnn(v, j))
        for v in cfg.variants():
            if cfg.start_focus < 1.0:
                self._stage(f"starts_{v}", lambda v=v: self.score_starts(v))
            for k in range(cfg.seeds):
                self._stage(f"controller_{v}_s{k}", lambda v=v, k=k: self.train_controller(v, k))
                self._stage(f"eval_{v}_s{k}", lambda v=v, k=k: self.evaluate(v, k))
            if cfg.select and cfg.seeds > 1:
                self._stage(f"select_{v}", lambda v=v: self.select(v))
        if cfg.upper_bound and self.game is not None and cfg.controller == "cmaes":
            for k in range(cfg.upper_seeds):
                self._stage(f"controller_{UPPER}_s{k}", lambda k=k: self.train_upper(k))
                self._stage(f"eval_{UPPER}_s{k}", lambda k=k: self.evaluate(UPPER, k))
        if cfg.world_model == "diffusion":
            self._run_diffusion()
        if cfg.diagnostics:
            for v in cfg.variants():
                self._stage(f"diag_{v}", lambda v=v: self.diagnose_variant(v))
            if cfg.world_model == "diffusion":
                from simlab.pipelines import dreamland_diffusion as dd

                self._stage(f"diag_{dd.VARIANT}", lambda: dd.diagnose(self))
        rep = write_report(self)
        self.run.mark_stage("report", {"seconds_total": round(time.time() - self.t0, 1)})
        return rep

    def _run_diffusion(self) -> None:
        """The diffusion dream's stages (``world_model=diffusion``): train it, then a CMA-ES controller
        per seed in it, each evaluated in the real env (:mod:`simlab.pipelines.dreamland_diffusion`)."""
        from simlab.pipelines import dreamland_diffusion as dd

        self._stage("ddream", lambda: dd.train_world_model(self))
        for k in range(self.cfg.diffusion.seeds):
            self._stage(f"controller_{dd.VARIANT}_s{k}", lambda k=k: dd.train_controller(self, k))
            self._stage(f"eval_{dd.VARIANT}_s{k}", lambda k=k: dd.evaluate(self, k))


def fidelity_subsets(dream: np.ndarray, real: np.ndarray, names: list[str]) -> dict[str, float | None]:
    """Spearman of dream vs real means ``(P,)`` within the panel's two halves: the trained controllers
    (CMA-ES means, final controllers, upper bound) and the untrained ones (``fixed: ...``, ``random
    linear ...``). The trained half is what CMA-ES chose between: a rank correlation near or below 0
    there, with a high one overall, means the dream tells good from bad play but is exploited among
    good controllers. ``None`` where a half has fewer than 3 controllers."""
    from simlab.policies.panel import spearman

    untrained = np.array([n.startswith(("fixed:", "random linear")) for n in names])
    out: dict[str, float | None] = {}
    for key, m in (("spearman_trained", ~untrained), ("spearman_untrained", untrained)):
        out[key] = spearman(np.asarray(dream)[m], np.asarray(real)[m]) if m.sum() >= 3 else None
    return out


def train_dreamland(cfg: DreamlandConfig, out: str | Path, resume: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole pipeline; returns the report dict and writes ``out/report.md`` and
    ``out/report.json``."""
    return Dreamland(cfg, out, resume=resume, progress=progress).run_all()


__all__ = ["PRESETS", "SPLIT_KEYS", "UPPER", "VARIANTS", "Dreamland", "DreamlandConfig", "dreamland_config",
           "fidelity_subsets", "train_dreamland"]
