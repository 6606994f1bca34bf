"""World Models' controller: a linear map on ``[z, h]`` trained by CMA-ES inside a dream.

The controller (Ha & Schmidhuber 2018; Dropout's Dream Land, Wellmer & Kwok 2021)
is ``action = actions[argmax([z, h] @ W + b)]`` for discrete action ids, or, for a
continuous ``Box(low, high, (d,))`` action space (CarRacing), World Models'
``tanh`` controller mapped onto the Box:
``action = low + (tanh([z, h] @ W + b) + 1) / 2 * (high - low)``; its parameters one flat vector
optimised by CMA-ES (the ``cma`` package): population 64, 16 dream episodes per
candidate, initial step size 0.1, fitness = mean dream return.

One generation is ONE batched dream: ``make_env(popsize * episodes_per_candidate,
seed)`` (positional arguments ``(num_envs, seed)``), slot ``i * E + j`` runs
candidate ``i``'s episode ``j``, and each slot counts only its first finished
episode (the env resets finished slots in the same step; what those slots play
afterwards is ignored). A generation ends when every slot has finished an
episode or after ``max_episode_steps`` steps (an unfinished slot counts its
partial return).

With a :class:`RunDir` the trainer writes::

    RUN/metrics.jsonl                  cmaes/mean_return, cmaes/best_return, cmaes/sigma,
                                       time/generation_s (step = generation), cmaes/eval_return
    RUN/checkpoints/cmaes/state.json   generation, every generation's fitness values (JSON),
                                       digests of the candidates, best so far (written last)
    RUN/checkpoints/cmaes/es.safetensors     the CMA mean and sigma (a consistency check)
    RUN/checkpoints/cmaes/controller/  the best controller so far (config.json +
                                       diffusion_pytorch_model.safetensors)
    RUN/controller/                    the final controller
    RUN/stages/cmaes.json              completion record

The checkpoint is swapped in atomically after every generation. Resuming does
not unpickle anything: the CMA-ES state is rebuilt by *deterministic replay*
(same seed, ``ask`` again, ``tell`` the stored fitness values, no env steps),
which reproduces it bit for bit, so a run killed after generation ``k`` and
resumed ends with the same controller as an unbroken run. cma's random numbers
come from numpy's global RNG; the trainer keeps a private copy of that state
for cma alone, so env code that uses ``np.random`` does not disturb it.

A controller acts on ``[z, h]``. To act in the real env it needs the world
model's VAE encoder and RNN: :class:`WorldModelAgent` wraps both around a
controller and exposes ``act(frames)`` for :func:`simlab.policies.evaluate.evaluate`.

Usage::

    from simlab.policies.cmaes import CMAESConfig, train_cmaes
    ctrl, info = train_cmaes(lambda n, s: model.as_vec_env(n, seed=s), in_dim=32 + 256,
                             actions=list(range(15)), cfg=CMAESConfig(generations=200), run=run)
    # continuous actions: pass the Box where the action ids go
    ctrl, info = train_cmaes(make_env, 32 + 256, model.action_space, cfg)   # Box([-1,0,0],[1,1,1])
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from simlab.actions import action_space_from_json, action_space_to_json, check_box
from simlab.config import to_dict
from simlab.data import atomic_dir, atomic_path, recover_dir
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import read_sealed_json, write_sealed_json
from simlab.policies.panel import common_start_rows
from simlab.world_models.base import CONFIG_NAME, WEIGHTS_NAME, load_model_dir, save_model_dir  # noqa: F401 (WEIGHTS_NAME: re-exported)

FORMAT_VERSION = 1
"""Version of the training checkpoint's ``state.json`` (a saved controller has the layout of
:mod:`simlab.world_models.base`, version :data:`simlab.world_models.base.FORMAT_VERSION`)."""
STATE = "state.json"
ES_TENSORS = "es.safetensors"
CHECKPOINT = "cmaes"
RESUMABLE_CHANGES = frozenset({"generations"})
"""CMAESConfig keys that may differ when resuming (a larger ``generations`` extends a run)."""

MakeEnv = Callable[[int, int], Any]
"""``make_env(num_envs, seed) -> VectorEnv`` (gymnasium 1.x, same-step autoreset)."""
LogFn = Callable[[int, dict[str, float]], None]
"""``log(step, metrics)`` callback."""
Actions = Sequence[int] | spaces.Box
"""A controller's action spec: discrete env action ids (one output each), or a 1-D ``Box`` with
finite bounds for continuous actions (one tanh output per dimension)."""


def parse_actions(actions: Any, who: str = "LinearController") -> list[int] | spaces.Box:
    """Normalise an action spec: a list of ids >= 0 (non-empty) or a float32 ``Box``; ConfigError otherwise."""
    if isinstance(actions, spaces.Box):
        return check_box(actions, f"{who}: action Box")
    if isinstance(actions, (spaces.Space, str, bytes)):
        raise ConfigError(f"{who}: actions must be a list of action ids or a gymnasium Box, got {actions!r}")
    try:
        acts = [int(a) for a in actions]
    except (TypeError, ValueError):
        raise ConfigError(f"{who}: actions must be a list of action ids or a gymnasium Box, got {actions!r}") \
            from None
    if not acts or min(acts) < 0:
        raise ConfigError(f"{who}: actions must be a non-empty list of ids >= 0, got {actions!r}")
    return acts


def actions_json(actions: list[int] | spaces.Box) -> list[int] | dict[str, Any]:
    """JSON form of a parsed action spec (the list itself, or the Box's description)."""
    return action_space_to_json(actions) if isinstance(actions, spaces.Box) else list(actions)


def box_map(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``low + (tanh(y) + 1) / 2 * (high - low)`` in float32, clipped to ``[low, high]`` (rounding)."""
    t = np.tanh(y, dtype=np.float32)
    out = (t + 1.0) * 0.5 * (high - low) + low
    return np.clip(out, low, high).astype(np.float32, copy=False)


def scores_to_actions(y: np.ndarray, actions: list[int] | spaces.Box) -> np.ndarray:
    """Controller scores ``(..., k)`` -> actions, the leading axes flattened: int64 ``(N,)`` ids
    ``actions[argmax]``, or float32 ``(N, d)`` :func:`box_map` onto a Box."""
    y = y.reshape(-1, y.shape[-1])
    if isinstance(actions, spaces.Box):
        return box_map(y, actions.low, actions.high)
    return np.asarray(actions, np.int64)[y.argmax(axis=1)]


# ---- saved-tensor directories (shared by the controller and the dream PPO actor) ---------------
# One format for every saved model in simlab: these two functions are thin views of
# :func:`simlab.world_models.base.save_model_dir` / :func:`~simlab.world_models.base.load_model_dir`
# (diffusers' layout; format version 1 directories still load).
def save_tensor_dir(path: str | Path, cls_name: str, network: dict[str, Any],
                    tensors: dict[str, torch.Tensor], observation_space: dict[str, Any],
                    action_space: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write ``path/diffusion_pytorch_model.safetensors`` then ``path/config.json`` (both atomic; config last).

    ``config.json`` is simlab's saved-model layout (:mod:`simlab.world_models.base`): the
    ``network`` constructor arguments as public keys; ``_class_name``, ``_observation_space``,
    ``_action_space``, ``_meta`` (free metadata, JSON-serialisable), the weights' SHA-256 and a
    seal as private keys.
    """
    return save_model_dir(path, cls_name, dict(network), tensors,
                          extra={"observation_space": observation_space, "action_space": action_space,
                                 "meta": dict(meta or {})})


def load_tensor_dir(path: str | Path, classes: Sequence[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a directory written by :func:`save_tensor_dir` (or in format version 1): ``(doc, tensors)``.

    ``doc`` has ``class``, ``format_version`` (1 or 2), ``simlab_version``, ``network`` (the
    constructor arguments), ``observation_space``, ``action_space``, ``meta`` and
    ``weights_file`` (the weights' file name), whichever version is on disk.

    Raises:
        CheckpointError: (one line naming the file) missing directory/config/weights,
            invalid JSON, a newer format, a class not in ``classes``, a checksum mismatch
            or an unreadable safetensors file.
    """
    saved = load_model_dir(path, classes, "saved-model")
    doc = {"class": saved.class_name, "format_version": saved.format_version,
           "simlab_version": saved.simlab_version, "network": saved.fields,
           "observation_space": saved.extra.get("observation_space"),
           "action_space": saved.extra.get("action_space"), "meta": saved.extra.get("meta") or {},
           "weights_file": saved.weights_path.name}
    return doc, saved.tensors


# ---- the controller ------------------------------------------------------------------------------
class LinearController:
    """A linear controller on flat float observations (``[z, h]``).

    Discrete (``actions`` a list of ids): ``act(obs) = actions[argmax(obs @ W + b)]``,
    int64 ``(B,)``. Continuous (``actions`` a ``gymnasium.spaces.Box(low, high, (d,))`` with
    finite bounds): ``act(obs) = low + (tanh(obs @ W + b) + 1) / 2 * (high - low)``,
    float32 ``(B, d)``, always inside the Box (World Models' tanh controller mapped onto it).

    Args:
        in_dim: observation size (``z_dim + hidden`` for a dream).
        actions: env action id of each output (e.g. ``list(range(15))``, or a subset of
            the game's actions; ``len(actions)`` outputs), or a ``Box`` (``d`` outputs).
        params: optional flat parameter vector (see :meth:`get_params`); default zeros.

    Parameters are float32; the flat vector is ``W`` (``in_dim x n_outputs``,
    row-major) followed by ``b`` (``n_outputs``). Save/load keep the mode and the bounds.
    """

    CLASS = "LinearController"

    def __init__(self, in_dim: int, actions: Actions, params: np.ndarray | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        if int(in_dim) < 1:
            raise ConfigError(f"LinearController: in_dim must be >= 1, got {in_dim}")
        acts = parse_actions(actions)
        self.in_dim = int(in_dim)
        self.actions: list[int] | spaces.Box = acts
        """The action ids, or the float32 Box of a continuous controller."""
        self.box: spaces.Box | None = acts if isinstance(acts, spaces.Box) else None
        n_out = int(acts.shape[0]) if isinstance(acts, spaces.Box) else len(acts)
        self.W = np.zeros((self.in_dim, n_out), np.float32)
        self.b = np.zeros(n_out, np.float32)
        self.meta = dict(meta or {})
        if params is not None:
            self.set_params(params)

    @property
    def continuous(self) -> bool:
        """True for a Box (continuous) controller."""
        return self.box is not None

    @property
    def n_outputs(self) -> int:
        """Number of outputs (``len(actions)``, or the Box's dimension ``d``)."""
        return int(self.b.shape[0])

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector: ``in_dim * n_outputs + n_outputs``."""
        return self.in_dim * self.n_outputs + self.n_outputs

    def get_params(self) -> np.ndarray:
        """The flat parameter vector (float64 copy): ``W.ravel()`` then ``b``."""
        return np.concatenate([self.W.ravel(), self.b]).astype(np.float64)

    def set_params(self, vec: np.ndarray) -> None:
        """Set ``W`` and ``b`` from a flat vector of length :attr:`num_params` (stored as float32)."""
        v = np.asarray(vec, np.float64).reshape(-1)
        if v.shape[0] != self.num_params:
            raise ConfigError(f"LinearController: expected {self.num_params} parameters, got {v.shape[0]}")
        k = self.in_dim * self.n_outputs
        self.W = v[:k].reshape(self.in_dim, self.n_outputs).astype(np.float32)
        self.b = v[k:].astype(np.float32)

    def _check(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float32)
        if x.shape == (self.in_dim,):
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ConfigError(f"LinearController expects observations of shape (B, {self.in_dim}), got {x.shape}")
        return x

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """``(B, n_outputs)`` float32 scores ``obs @ W + b`` (pre-tanh for a continuous controller)."""
        return self._check(obs) @ self.W + self.b

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for observations ``(B, in_dim)`` (a single ``(in_dim,)`` counts as ``B = 1``):
        env action ids ``(B,)`` int64, or for a continuous controller float32 ``(B, d)`` in the Box.

        ``deterministic`` is accepted for the simlab policy interface; the controller is
        always deterministic.
        """
        return scores_to_actions(self.logits(obs), self.actions)

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write ``path/diffusion_pytorch_model.safetensors`` (W, b as float32) + ``path/config.json``.

        ``network`` is ``{"in_dim", "actions": [ids]}`` or, continuous, ``{"in_dim", "action_space":
        {"type": "Box", "low", "high", ...}}``; ``action_space`` holds the same Box or the Discrete ids.
        """
        if self.box is not None:
            box = action_space_to_json(self.box)
            network: dict[str, Any] = {"in_dim": self.in_dim, "action_space": box}
            act_space: dict[str, Any] = box
        else:
            ids = list(self.actions)  # type: ignore[arg-type]
            network = {"in_dim": self.in_dim, "actions": ids}
            act_space = {"type": "Discrete", "n": int(max(ids)) + 1, "actions": ids}
        return save_tensor_dir(
            path, self.CLASS, network,
            {"W": torch.from_numpy(self.W.copy()), "b": torch.from_numpy(self.b.copy())},
            {"type": "Box", "shape": [self.in_dim], "dtype": "float32"},
            act_space, {**self.meta, **(meta or {})})

    @classmethod
    def load(cls, path: str | Path) -> LinearController:
        """Load a saved controller (discrete or continuous; format 2 or 1); CheckpointError naming the
        file when anything is off."""
        path = Path(path)
        doc, t = load_tensor_dir(path, (cls.CLASS,))
        net = doc["network"]
        try:
            acts: Actions = action_space_from_json(net["action_space"]) if "action_space" in net \
                else [int(a) for a in net["actions"]]
            ctrl = cls(int(net["in_dim"]), acts, meta=doc.get("meta"))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path / CONFIG_NAME}: bad network config {net!r} ({e})") from None
        want = {"W": (ctrl.in_dim, ctrl.n_outputs), "b": (ctrl.n_outputs,)}
        got = {k: tuple(v.shape) for k, v in t.items()}
        if got != want:
            raise CheckpointError(f"{path / doc['weights_file']}: weights {got} do not match the controller in "
                                  f"{CONFIG_NAME} (expected {want})")
        ctrl.W = t["W"].to(torch.float32).numpy().copy()
        ctrl.b = t["b"].to(torch.float32).numpy().copy()
        return ctrl

    def __repr__(self) -> str:
        return f"LinearController(in_dim={self.in_dim}, actions={self.actions})"

    # ``rollout_controllers`` applies many controllers at once; this is its batched act.
    @staticmethod
    def batched_act(x: np.ndarray, W: np.ndarray, b: np.ndarray, actions: list[int] | spaces.Box) -> np.ndarray:
        """Actions of ``P`` controllers on ``x`` ``(P, E, in_dim)`` with ``W`` ``(P, in_dim, k)`` and ``b``
        ``(P, 1, k)``: int64 ``(P * E,)`` ids, or float32 ``(P * E, d)`` for a Box."""
        y = np.matmul(x, W)
        y += b
        return scores_to_actions(y, actions)


# ---- config --------------------------------------------------------------------------------------
@dataclass
class CMAESConfig:
    """CMA-ES on a linear controller in a dream (defaults: World Models / Dropout's Dream Land)."""

    popsize: int = 64
    """Candidates per generation (CMA-ES lambda)."""
    episodes_per_candidate: int = 16
    """Dream episodes per candidate; fitness = their mean return."""
    sigma0: float = 0.1
    """Initial CMA-ES step size (the mean starts at zero)."""
    generations: int = 200
    """Generations to run (a resumed run may raise it to continue)."""
    seed: int = 0
    """Seed of CMA-ES's sampling and of every generation's dream env."""
    max_episode_steps: int = 1000
    """Step limit of one generation's batched rollout (unfinished slots count their partial return)."""
    diagonal: bool = False
    """Diagonal covariance (sep-CMA-ES): O(n) per sample instead of O(n^2); use for thousands of params."""
    eval_every: int = 25
    """Every this many generations (and after the last) evaluate the CMA mean; 0 = never."""
    eval_episodes: int = 1024
    """Dream episodes of each evaluation of the CMA mean (one batched env)."""
    common_starts: bool = False
    """Common random numbers: every candidate of a generation plays its episodes from the SAME start
    states, and every evaluation of the CMA mean the same episodes (drawn from the generation's seed; the env must expose ``num_start_states`` and accept
    ``reset(options={"start_index": ...})``, as dream envs do). Candidates then differ by their
    play, not by the luck of their starts: measured on Dodge-v1 dreams started from burned-in real
    states, the start state decides most of a 30-step dream's return."""
    common_noise: bool = False
    """Common random numbers inside the dream too (needs ``common_starts``): episode ``j`` of every
    candidate also draws the same latent samples, dropout masks and sampled deaths
    (``reset(options={"noise_group": episodes})``, dream envs only), so two candidates that act alike
    get the same return and the fitness ranks the candidates by their play alone."""

    def __post_init__(self) -> None:
        for k in ("popsize", "episodes_per_candidate", "max_episode_steps", "eval_episodes"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"config key {k!r} must be an integer >= 1, got {v!r}")
        if self.popsize < 2:
            raise ConfigError(f"config key 'popsize' must be >= 2, got {self.popsize}")
        for k in ("generations", "seed", "eval_every"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"config key {k!r} must be an integer >= 0, got {v!r}")
        if isinstance(self.sigma0, bool) or not isinstance(self.sigma0, (int, float)) \
                or not math.isfinite(self.sigma0) or self.sigma0 <= 0:
            raise ConfigError(f"config key 'sigma0' must be a finite number > 0, got {self.sigma0!r}")
        self.sigma0 = float(self.sigma0)
        for k in ("diagonal", "common_starts", "common_noise"):
            if not isinstance(getattr(self, k), bool):
                raise ConfigError(f"config key {k!r} must be true/false, got {getattr(self, k)!r}")
        if self.common_noise and not self.common_starts:
            raise ConfigError("config key 'common_noise' needs common_starts=true")


def generation_seed(seed: int, generation: int, stream: int = 0) -> int:
    """Env seed of a generation (1-based); ``stream`` 1 is the evaluation of the CMA mean."""
    return int(np.random.SeedSequence([int(seed), int(generation), int(stream)]).generate_state(1)[0])


# ---- batched rollouts ----------------------------------------------------------------------------
def _check_env(env: Any, in_dim: int, actions: list[int] | spaces.Box, num_envs: int) -> None:
    name = type(env).__name__
    if int(getattr(env, "num_envs", -1)) != num_envs:
        raise ConfigError(f"{name}: make_env({num_envs}, seed) returned an env with "
                          f"num_envs={getattr(env, 'num_envs', None)}")
    shape = getattr(getattr(env, "single_observation_space", None), "shape", None)
    if shape is not None and tuple(shape) != (in_dim,):
        raise ConfigError(f"{name}: observations have shape {tuple(shape)}, the controller takes ({in_dim},)")
    space = getattr(env, "single_action_space", None)
    if isinstance(actions, spaces.Box):
        if isinstance(space, spaces.Discrete):
            raise ConfigError(f"{name}: has Discrete({int(space.n)}) actions, the controller is continuous {actions}")
        if isinstance(space, spaces.Box):
            if tuple(space.shape) != tuple(actions.shape):
                raise ConfigError(f"{name}: action shape {tuple(space.shape)} != the controller's {actions.shape}")
            if (actions.low < space.low).any() or (actions.high > space.high).any():
                raise ConfigError(f"{name}: the controller's action Box {actions} is not inside the env's {space}")
        return
    if isinstance(space, spaces.Box):
        raise ConfigError(f"{name}: has continuous {space} actions, the controller picks discrete ids {actions}")
    n = getattr(space, "n", None)
    if n is not None and max(actions) >= int(n):
        raise ConfigError(f"{name}: action ids {list(actions)} exceed its Discrete({int(n)}) action space")


def rollout_controllers(make_env: MakeEnv, params: np.ndarray, in_dim: int, actions: Actions,
                        episodes: int, seed: int, max_episode_steps: int,
                        common_starts: bool = False, common_noise: bool = False) -> dict[str, Any]:
    """Play ``episodes`` episodes of each of ``P`` linear controllers in ONE batched env.

    Args:
        make_env: ``make_env(num_envs, seed)``; called once with ``num_envs = P * episodes``.
        params: ``(P, num_params)`` flat controller parameters (:meth:`LinearController.get_params`).
        in_dim, actions: the controllers' input size and action ids (or a ``Box``: continuous
            controllers, ``(P * episodes, d)`` float32 actions per step).
        episodes: episodes per controller; slot ``i * episodes + j`` is controller ``i``'s ``j``-th.
        seed: passed to ``make_env`` and to ``env.reset(seed=seed)``.
        max_episode_steps: step limit; slots still running then count their partial return.
        common_starts: episode ``j`` of every controller starts from the same start state (drawn
            from ``seed`` among the env's ``num_start_states``; ConfigError if it has none).
        common_noise: with ``common_starts``, episode ``j`` of every controller also shares the
            dream's random numbers (``reset(options={"noise_group": episodes})``).

    Returns:
        ``{"returns": (P, episodes) float64, "lengths": (P, episodes) int64,
        "finished": (P, episodes) bool, "steps": int}`` (the first episode of every slot).
    """
    params = np.atleast_2d(np.asarray(params, np.float64))
    actions = parse_actions(actions, "rollout_controllers")
    n_out = int(actions.shape[0]) if isinstance(actions, spaces.Box) else len(actions)
    p = params.shape[0]
    if params.shape[1] != in_dim * n_out + n_out:
        raise ConfigError(f"expected {in_dim * n_out + n_out} parameters per controller, got {params.shape[1]}")
    n = p * episodes
    W = params[:, : in_dim * n_out].reshape(p, in_dim, n_out).astype(np.float32)
    b = params[:, in_dim * n_out:].astype(np.float32)[:, None, :]
    ret = np.zeros(n, np.float64)
    length = np.zeros(n, np.int64)
    done = np.zeros(n, bool)
    env = make_env(n, seed)
    steps = 0
    try:
        _check_env(env, in_dim, actions, n)
        options = None
        if common_starts:
            starts = common_start_rows(env, np.random.default_rng([int(seed), 0x5EED]), episodes)
            options = {"start_index": np.tile(starts, p)}
            if common_noise:
                options["noise_group"] = episodes
        elif common_noise:
            raise ConfigError("common_noise needs common_starts")
        obs, _ = env.reset(seed=seed, options=options)
        while steps < max_episode_steps and not done.all():
            x = _to_numpy(obs).astype(np.float32, copy=False).reshape(p, episodes, in_dim)
            act = LinearController.batched_act(x, W, b, actions)
            obs, rew, term, trunc, _ = env.step(act)
            steps += 1
            live = ~done
            ret[live] += _to_numpy(rew).astype(np.float64).reshape(n)[live]
            length[live] += 1
            done |= (_to_numpy(term).astype(bool) | _to_numpy(trunc).astype(bool)).reshape(n)
    finally:
        env.close()
    return {"returns": ret.reshape(p, episodes), "lengths": length.reshape(p, episodes),
            "finished": done.reshape(p, episodes), "steps": steps}


# ---- CMA-ES with a private RNG and deterministic replay -------------------------------------------
class _ES:
    """``cma.CMAEvolutionStrategy`` whose global-numpy-RNG draws use a private state."""

    def __init__(self, n: int, cfg: CMAESConfig) -> None:
        import cma

        self._rng_state: Any = None
        opts = {"popsize": cfg.popsize, "seed": cfg.seed % (2**32 - 2) + 1, "verbose": -9, "verb_disp": 0,
                "verb_log": 0, "verb_time": False, "CMA_diagonal": True if cfg.diagonal else 0}
        with self._rng():
            self.es = cma.CMAEvolutionStrategy(np.zeros(n), cfg.sigma0, opts)

    @contextlib.contextmanager
    def _rng(self) -> Iterator[None]:
        outer = np.random.get_state()
        if self._rng_state is not None:
            np.random.set_state(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = np.random.get_state()
            np.random.set_state(outer)

    def ask(self) -> np.ndarray:
        with self._rng():
            return np.asarray(self.es.ask(), np.float64)

    def tell(self, X: np.ndarray, fitness: np.ndarray) -> None:
        """``fitness`` is the mean return (maximised); cma minimises, so it gets the negative."""
        with self._rng():
            self.es.tell(list(X), [-float(f) for f in fitness])

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(self.es.mean, np.float64).copy()

    @property
    def sigma(self) -> float:
        return float(self.es.sigma)


def _digest(X: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(X, np.float64).tobytes()).hexdigest()[:32]


def _fitness(returns: np.ndarray) -> np.ndarray:
    """Mean return per candidate; a non-finite mean is ranked below every finite one."""
    f = returns.mean(axis=1)
    bad = ~np.isfinite(f)
    if bad.any():
        floor = float(f[~bad].min()) - 1.0 if (~bad).any() else 0.0
        f = np.where(bad, floor, f)
    return f


# ---- checkpoints ---------------------------------------------------------------------------------
def drop_stale_metrics(run: Any, step: int, prefix: str) -> None:
    """Remove records that have a ``prefix`` key and a step past ``step`` (a killed run's tail).

    Unlike ``RunDir.truncate_metrics`` this keeps other trainers' records of the same run.
    """
    p = run.path / "metrics.jsonl"
    if not p.exists():
        return
    recs = run.metrics()
    keep = [r for r in recs if not (int(r.get("step", 0)) > step and any(k.startswith(prefix) for k in r))]
    with atomic_path(p) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def _save_checkpoint(final: Path, state: dict[str, Any], es: _ES, best: LinearController) -> None:
    from safetensors.torch import save_file

    with atomic_dir(final) as tmp:
        save_file({"mean": torch.from_numpy(es.mean), "sigma": torch.tensor([es.sigma], dtype=torch.float64)},
                  str(tmp / ES_TENSORS))
        best.save(tmp / "controller")
        write_sealed_json(tmp / STATE, state)


def _load_checkpoint(final: Path, cfg: CMAESConfig, in_dim: int,
                     actions: list[int] | dict[str, Any]) -> dict[str, Any] | None:
    recover_dir(final)
    sp = final / STATE
    if not sp.exists():
        return None
    state = read_sealed_json(sp, CheckpointError, "CMA-ES checkpoint state")
    need = ("format_version", "generation", "fitness", "candidates_sha256", "config", "in_dim", "actions")
    if not isinstance(state, dict) or any(k not in state for k in need):
        raise CheckpointError(f"{sp}: not a CMA-ES checkpoint (needs {', '.join(need)})")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{sp}: format version {state['format_version']} is newer than this simlab reads")
    if state["in_dim"] != in_dim or state["actions"] != actions:
        raise ConfigError(f"{sp}: checkpoint is for in_dim={state['in_dim']}, actions={state['actions']}; "
                          f"resumed with in_dim={in_dim}, actions={actions}")
    diff = _config_diff(state["config"], to_dict(cfg)) - RESUMABLE_CHANGES
    if diff:
        raise ConfigError(f"{sp}: resumed with a different CMA-ES config ({', '.join(sorted(diff))} differ)")
    g = int(state["generation"])
    if len(state["fitness"]) != g or len(state["candidates_sha256"]) != g:
        raise CheckpointError(f"{sp}: {g} generations but {len(state['fitness'])} fitness records")
    return state


def _replay(es: _ES, state: dict[str, Any], final: Path, popsize: int) -> None:
    """Re-ask and re-tell the finished generations: rebuilds the exact CMA-ES state, no env steps."""
    from safetensors.torch import load_file

    for g, (fit, digest) in enumerate(zip(state["fitness"], state["candidates_sha256"]), start=1):
        X = es.ask()
        if _digest(X) != digest or len(fit) != popsize:
            raise CheckpointError(
                f"{final / STATE}: replaying generation {g} of the CMA-ES state drew different candidates "
                f"(cma {state.get('cma_version')} / numpy {state.get('numpy_version')} wrote it); this "
                f"checkpoint cannot be resumed exactly here; remove {final} to start over")
        es.tell(X, np.asarray(fit, np.float64))
    try:
        t = load_file(str(final / ES_TENSORS))
        mean, sigma = t["mean"].numpy(), float(t["sigma"][0])
    except Exception as e:  # noqa: BLE001 - any failure to read is a bad checkpoint
        raise CheckpointError(f"{final / ES_TENSORS}: unreadable ({str(e).splitlines()[0] if str(e) else e!r})") \
            from None
    if mean.shape != es.mean.shape or not np.allclose(mean, es.mean, rtol=1e-9, atol=1e-12) \
            or not math.isclose(sigma, es.sigma, rel_tol=1e-9):
        raise CheckpointError(f"{final / ES_TENSORS}: the replayed CMA-ES state differs from the saved one; "
                              f"remove {final} to start over")


# ---- training ------------------------------------------------------------------------------------
def train_cmaes(make_env: MakeEnv, in_dim: int, actions: Actions, cfg: CMAESConfig,
                run: Any = None, progress: bool = True, log: LogFn | None = None,
                ) -> tuple[LinearController, dict[str, Any]]:
    """Train a :class:`LinearController` with CMA-ES in a batched (dream) env.

    Args:
        make_env: ``make_env(num_envs, seed) -> VectorEnv`` (positional); float32 observations
            of shape ``(in_dim,)``, Discrete (or, with a Box ``actions``, Box) actions, same-step
            autoreset. Called once per
            generation with ``num_envs = popsize * episodes_per_candidate`` and once per
            evaluation of the CMA mean with ``num_envs = eval_episodes``.
        in_dim: observation size (``z_dim + hidden``).
        actions: env action id of each controller output, or a ``gymnasium.spaces.Box`` (finite
            bounds, e.g. ``model.action_space`` of a continuous world model) for a continuous
            tanh controller (see :class:`LinearController`).
        cfg: the :class:`CMAESConfig`.
        run: optional :class:`simlab.runs.RunDir`: metrics, a checkpoint after every generation,
            the final controller in ``RUN/controller``. If ``RUN/checkpoints/cmaes`` holds a
            checkpoint, training resumes from it (same config except :data:`RESUMABLE_CHANGES`);
            the result equals that of an unbroken run.
        progress: tqdm bar over generations on stderr.
        log: optional ``log(generation, metrics)`` called after each generation's checkpoint.

    Returns:
        ``(controller, info)``. The controller is, with ``eval_every > 0``, the CMA mean with
        the best evaluation return (World Models' choice: less optimistic than a noisy
        per-candidate maximum); with ``eval_every == 0``, the candidate with the best fitness
        of all generations. ``info``: ``generations``, ``best_return``, ``best_generation``,
        ``best_source`` (``"eval"`` | ``"candidate"``), ``history`` (per-generation metrics),
        ``evals`` (``[{"generation", "return", "params"}]``: every scored CMA mean), ``resumed_from`` (generations restored),
        ``num_params``, ``final_mean`` (the CMA mean after the last generation), ``final_sigma``.

    Raises:
        ConfigError: bad arguments, an env that does not fit the controller, or a resumed
            run with a different config.
        CheckpointError: the checkpoint cannot be read or replayed.
    """
    import cma
    from tqdm.auto import tqdm

    if not isinstance(cfg, CMAESConfig):
        raise ConfigError(f"cfg must be a CMAESConfig, got {type(cfg).__name__}")
    cfg = dataclasses.replace(cfg)  # re-validates
    actions = parse_actions(actions, "train_cmaes")
    ctrl = LinearController(in_dim, actions)
    n = ctrl.num_params
    if n < 2:
        raise ConfigError("CMA-ES needs at least 2 parameters")
    meta = {"trainer": "cmaes", "train_config": to_dict(cfg)}
    es = _ES(n, cfg)
    best_params = np.zeros(n)
    best_return, best_gen, best_source = -math.inf, 0, "eval" if cfg.eval_every > 0 else "candidate"
    history: list[dict[str, float]] = []
    evals: list[dict[str, float]] = []
    fitness_log: list[list[float]] = []
    digests: list[str] = []
    start = 0
    final = run.checkpoint(CHECKPOINT) if run is not None else None
    if final is not None:
        state = _load_checkpoint(final, cfg, int(in_dim), actions_json(actions))
        if state is not None:
            _replay(es, state, final, cfg.popsize)
            start = int(state["generation"])
            fitness_log, digests = [list(f) for f in state["fitness"]], list(state["candidates_sha256"])
            history, evals = list(state.get("history", [])), list(state.get("evals", []))
            best = state.get("best") or {}
            if best.get("generation", 0) > 0:
                best_params = LinearController.load(final / "controller").get_params()
                best_return, best_gen = float(best["return"]), int(best["generation"])
            drop_stale_metrics(run, start, "cmaes/")

    def checkpoint(g: int) -> None:
        if final is None:
            return
        state = {
            "format_version": FORMAT_VERSION, "trainer": "cmaes", "generation": g, "time": time.time(),
            "cma_version": cma.__version__, "numpy_version": np.__version__, "config": to_dict(cfg),
            "in_dim": int(in_dim), "actions": actions_json(actions), "num_params": n, "fitness": fitness_log,
            "candidates_sha256": digests, "history": history, "evals": evals,
            "best": {"return": best_return if math.isfinite(best_return) else None, "generation": best_gen,
                     "source": best_source},
        }
        _save_checkpoint(final, state, es, LinearController(in_dim, actions, best_params, meta))

    bar = tqdm(total=cfg.generations, initial=min(start, cfg.generations), unit="gen", desc="cmaes",
               disable=not progress, dynamic_ncols=True)
    try:
        for g in range(start + 1, cfg.generations + 1):
            t0 = time.time()
            X = es.ask()
            out = rollout_controllers(make_env, X, in_dim, actions, cfg.episodes_per_candidate,
                                      generation_seed(cfg.seed, g), cfg.max_episode_steps, cfg.common_starts,
                                      cfg.common_noise)
            fit = _fitness(out["returns"])
            es.tell(X, fit)
            fitness_log.append([float(f) for f in fit])
            digests.append(_digest(X))
            i = int(np.argmax(fit))
            metrics = {"cmaes/mean_return": float(fit.mean()), "cmaes/best_return": float(fit[i]),
                       "cmaes/sigma": es.sigma, "cmaes/mean_episode_length": float(out["lengths"].mean()),
                       "cmaes/unfinished_fraction": float(1.0 - out["finished"].mean())}
            if cfg.eval_every == 0 and fit[i] > best_return:
                best_return, best_gen, best_params = float(fit[i]), g, X[i].copy()
            if cfg.eval_every > 0 and (g % cfg.eval_every == 0 or g == cfg.generations):
                mean = es.mean
                # common_starts: every evaluation of the mean plays the same episodes (generation 0's
                # seed), so the means of different generations are compared on equal terms
                ev = rollout_controllers(make_env, mean, in_dim, actions, cfg.eval_episodes,
                                         generation_seed(cfg.seed, 0 if cfg.common_starts else g, 1),
                                         cfg.max_episode_steps, cfg.common_starts)
                r = float(ev["returns"].mean())
                metrics["cmaes/eval_return"] = r
                evals.append({"generation": g, "return": r, "params": [float(x) for x in mean]})
                if r > best_return:
                    best_return, best_gen, best_params = r, g, mean
            metrics["time/generation_s"] = time.time() - t0
            history.append({"generation": g, **metrics})
            checkpoint(g)
            if run is not None:
                run.log(g, metrics)
            if log is not None:
                log(g, metrics)
            bar.update(1)
            bar.set_postfix(mean=f"{metrics['cmaes/mean_return']:.3g}", best=f"{best_return:.3g}")
    finally:
        bar.close()
    if best_gen == 0:  # no generation ran (generations=0): the initial mean
        best_params = es.mean
    result = LinearController(in_dim, actions, best_params,
                              {**meta, "generation": best_gen, "best_return": best_return
                               if math.isfinite(best_return) else None, "best_source": best_source})
    done = max(start, cfg.generations)
    if run is not None:
        with atomic_dir(run.path / "controller") as tmp:
            result.save(tmp)
        run.mark_stage("cmaes", {"generations": done, "best_return": result.meta["best_return"],
                                 "best_generation": best_gen})
    info = {"generations": done, "best_return": best_return, "best_generation": best_gen,
            "best_source": best_source, "history": history, "evals": evals, "resumed_from": start,
            "num_params": n, "final_mean": es.mean, "final_sigma": es.sigma}
    return result, info


# ---- acting in the real env ----------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def _select(mask: np.ndarray, fresh: Any, old: Any) -> Any:
    """Per-slot ``fresh if mask else old`` over a state pytree (tuples/lists/dicts of batch-first arrays)."""
    if isinstance(old, tuple) and hasattr(old, "_fields"):  # namedtuple
        return type(old)(*(_select(mask, f, o) for f, o in zip(fresh, old)))
    if isinstance(old, (tuple, list)):
        return type(old)(_select(mask, f, o) for f, o in zip(fresh, old))
    if isinstance(old, dict):
        return {k: _select(mask, fresh[k], v) for k, v in old.items()}
    if isinstance(old, torch.Tensor):
        m = torch.as_tensor(mask, device=old.device).view(-1, *([1] * (old.dim() - 1)))
        return torch.where(m, fresh.to(old.device, old.dtype), old)
    if isinstance(old, np.ndarray):
        return np.where(mask.reshape(-1, *([1] * (old.ndim - 1))), fresh, old)
    raise ConfigError(f"WorldModelAgent: cannot reset a recurrent state of type {type(old).__name__}")


class WorldModelAgent:
    """A dream-trained controller acting in the REAL env through the world model.

    Each :meth:`act` call encodes the frames ``z = world_model.encode(frames)``, reads
    ``h = world_model.hidden(state)``, picks ``a = controller.act([z, h])`` and advances
    ``state = world_model.rnn_step(z, a, state)`` (World Models: the controller sees ``z_t``
    and ``h_t``; the RNN then consumes ``(z_t, a_t)``). The recurrent state lives across
    calls; :meth:`reset` clears it for slots whose episode ended.

    Args:
        world_model: any object with ``encode(frames uint8 (B, 64, 64, 3)) -> z (B, z_dim)``,
            ``initial_state(batch) -> state``, ``rnn_step(z, actions (B,), state) -> state`` and
            ``hidden(state) -> h (B, hidden)``; tensors or arrays. ``state`` may be an array
            or a tuple/list/dict of them, batch on axis 0. For the SPEC's
            ``DropoutWorldModel`` use :class:`DropoutWorldModelView`. A ``continuous = True``
            attribute means ``rnn_step`` takes float actions ``(B, action_dim)``.
        controller: anything with ``act(obs (B, z_dim + hidden)) -> actions (B,)``
            (a :class:`LinearController`, a dream PPO policy), or ``(B, action_dim)`` floats
            when the world model or the controller has ``continuous = True``.

    A batch of a different size than the current state starts fresh states for all slots.
    """

    def __init__(self, world_model: Any, controller: Any) -> None:
        self.world_model = world_model
        self.controller = controller
        self.state: Any = None
        self.batch: int | None = None

    def reset(self, mask: np.ndarray | Sequence[bool] | None = None) -> None:
        """Clear the recurrent state: of every slot (``mask=None``), or of the slots where ``mask`` is true."""
        if mask is None or self.state is None:
            self.state, self.batch = None, None
            return
        m = np.asarray(mask, bool).reshape(-1)
        if m.shape[0] != self.batch:
            raise ConfigError(f"WorldModelAgent.reset: mask of {m.shape[0]} slots for a batch of {self.batch}")
        if m.any():
            self.state = _select(m, self.world_model.initial_state(self.batch), self.state)

    def features(self, obs: np.ndarray) -> tuple[Any, np.ndarray]:
        """``(z, [z, h])`` of a batch of frames under the current state (state unchanged)."""
        frames = np.asarray(obs)
        if frames.ndim == 3:
            frames = frames[None]
        b = frames.shape[0]
        if self.state is None or self.batch != b:
            self.state, self.batch = self.world_model.initial_state(b), b
        with torch.no_grad():
            z = self.world_model.encode(frames)
            h = self.world_model.hidden(self.state)
        x = np.concatenate([_to_numpy(z).reshape(b, -1), _to_numpy(h).reshape(b, -1)], axis=1)
        return z, x.astype(np.float32)

    @property
    def continuous(self) -> bool:
        """True when actions are float vectors (the world model or the controller says so)."""
        return bool(getattr(self.world_model, "continuous", False) or getattr(self.controller, "continuous", False))

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for real frames ``(B, 64, 64, 3)`` uint8: int64 ``(B,)`` ids, or float32
        ``(B, action_dim)`` for a continuous model; advances the recurrent state."""
        z, x = self.features(obs)
        if self.continuous:
            a = np.asarray(self.controller.act(x), np.float32).reshape(x.shape[0], -1)
        else:
            a = np.asarray(self.controller.act(x), np.int64).reshape(-1)
        with torch.no_grad():
            self.state = self.world_model.rnn_step(z, a, self.state)
        return a


class DropoutWorldModelView:
    """The :class:`WorldModelAgent` interface over a world model with ``.vae`` and ``.rnn`` (world_models/SPEC.md).

    ``encode`` is the VAE mean ``mu`` (or a sample ``mu + exp(logvar / 2) * eps`` with
    ``sample_z``), ``initial_state`` / ``rnn_step`` are the MDN-RNN's ``initial_state(batch,
    device)`` and ``step(z, a, state).state`` without dropout masks (no dropout in the real
    env), ``hidden`` is ``h`` of the LSTM state ``(h, c)``. For a continuous MDN-RNN
    (``rnn.continuous``) :attr:`continuous` is True and ``rnn_step`` passes float32
    ``(B, action_dim)`` actions.
    """

    def __init__(self, model: Any, device: str = "cpu", sample_z: bool = False, seed: int = 0) -> None:
        self.vae, self.rnn, self.device = model.vae, model.rnn, device
        self.sample_z = sample_z
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.continuous = bool(getattr(self.rnn, "continuous", False))

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        mu, logvar = self.vae.encode(torch.as_tensor(np.asarray(frames), device=self.device))
        if not self.sample_z:
            return mu
        eps = torch.randn(mu.shape, generator=self.gen, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(logvar / 2) * eps

    def initial_state(self, batch: int) -> Any:
        return self.rnn.initial_state(batch, self.device)

    def rnn_step(self, z: torch.Tensor, actions: np.ndarray, state: Any) -> Any:
        if self.continuous:
            a = torch.as_tensor(np.asarray(actions, np.float32), device=self.device).reshape(z.shape[0], -1)
            return self.rnn.step(z, a, state).state
        a = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=self.device)
        return self.rnn.step(z, a, state).state

    def hidden(self, state: Any) -> torch.Tensor:
        return state[0]
