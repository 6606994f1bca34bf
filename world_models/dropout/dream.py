"""Dream environments of a :class:`~simlab.world_models.dropout.model.DropoutWorldModel`.

Description:
    A dream is the MDN-RNN run as a simulator: from the latent ``z_t`` of the
    current "frame", the action ``a_t`` and the LSTM state, it predicts a
    mixture over ``z_{t+1}`` (sampled at temperature ``tau``), the reward and
    whether the episode ends. :class:`DreamVecEnv` steps ``num_envs`` dreams
    together on torch tensors (CPU or CUDA, no Python loop over envs) as a
    gymnasium 1.x ``VectorEnv`` with same-step autoreset, exactly like
    :class:`simlab.envs.procgen.vec.ProcgenVecEnv`; :class:`DreamEnv` is the same
    engine with one slot as a ``gymnasium.Env``. With the same seed and actions,
    slot 0 of a one-slot ``DreamVecEnv`` and a ``DreamEnv`` produce the same trajectory.
Dropout (mask modes):
    ``"none"``: no dropout (World Models); ``"per_episode"``: a new Bernoulli mask
    at every reset, fixed for the whole episode (Dropout's Dream Land: every mask
    is a different environment); ``"per_step"``: a new mask every step;
    ``"mc_mean"``: each step averages ``mc_samples`` masks (Monte-Carlo dropout):
    the next-z distribution is the equal-weight mixture of the ``mc_samples``
    mixtures, reward and done probability are the means, the LSTM state the mean state.
    Masks act on the z input and the recurrent state only, never on actions.
Action Space:
    ``Discrete(n_actions)``, or for a continuous model the model's float32
    ``Box(low, high, (action_dim,))`` (e.g. CarRacing's ``Box([-1, 0, 0], [1, 1, 1])``);
    a NaN/inf or out-of-bounds continuous action raises ActionError (one line).
Observation Space:
    float32 ``[z, h]`` of size ``z_dim + hidden``: the current latent (unbounded)
    and the LSTM output (in [-1, 1]), as a World Models controller sees it.
Rewards:
    The reward head's prediction for the step (0 without a reward head).
Starting State:
    ``z`` = one of the model's ``start_z`` rows, drawn uniformly, with its LSTM state
    (``start_h``, ``start_c``): zeros for real first frames (World Models), or the state
    burned in on the real frames before it for a mid-episode start.
Episode End:
    Terminated with the done head's probability p_done (``done_mode="sample"``, the
    default: rare deaths stay rare but happen), or when p_done > 0.5
    (``done_mode="threshold"``), or never (``done_mode="expected"``: rewards are weighted
    by the survival probability instead); ``mc_mean`` uses the mean probability over masks.
    Truncated after ``max_episode_steps``.
Arguments:
    model, num_envs (vector env only), mask_mode, dropout (default: the model's
    training rate), temperature (tau), max_episode_steps, device, seed, mc_samples,
    render_mode (``"rgb_array"``: ``render()`` decodes slot 0's z to a frame, upscaled 4x),
    precision (``"float32"`` or ``"bfloat16"`` matmuls).
Randomness:
    One ``torch.Generator`` on the env's device, seeded from ``seed`` (and
    re-seeded by ``reset(seed=...)``), drives start frames, masks and z samples.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from simlab.actions import check_box_actions, check_discrete_actions
from simlab.errors import ActionError, ConfigError
from simlab.errors import (
    ResetNeededError as ResetNeeded,  # a SimlabError and a gymnasium ResetNeeded
)
from simlab.world_models.base import check_rate, resolve_device
from simlab.world_models.dropout.mdnrnn import (
    MDNRNN,
    Masks,
    _check_tau,
    common_draw,
    sample_mixture,
)
from simlab.world_models.dropout.model import DropoutWorldModel

MASK_MODES = ("none", "per_episode", "per_step", "mc_mean")
PRECISIONS = ("float32", "bfloat16")
RENDER_SCALE = 4
"""``render()`` upscales the decoded 64x64 frame by this factor (nearest neighbour)."""

DONE_MODES = ("sample", "threshold", "expected")
"""How a dream decides termination from the done head: draw it with probability p_done
(default; keeps rare deaths), p_done > 0.5, or never (``expected``: each reward is weighted by
the probability of having survived to it, ``prod_{s<t} (1 - p_done_s)``, so an episode's return
is its expected return under the done head, as Dreamer weights imagined rewards by the predicted
continuation; a rare hazard then moves every return a little instead of ending a few)."""


class FusedStep:
    """The MDN-RNN transition with its weights fused for the dream's hot loop (same maths as
    :meth:`MDNRNN.step`, up to float rounding).

    One matmul for the LSTM (``[z * m_z, onehot(a) or a, h * m_h]`` against ``[W_ih, W_hh]``),
    tanh computed as ``2 sigmoid(2x) - 1`` (the ``g`` rows are pre-scaled by 2, so one
    sigmoid covers all four gates), and one matmul for the MDN, reward and done heads.
    The fused copies are rebuilt whenever a parameter of the MDN-RNN changes.

    ``precision="bfloat16"`` runs the two matmuls on bfloat16 copies of the weights and
    inputs (float32 accumulation, state and everything else in float32): about twice
    as fast on CPUs with AVX512-BF16/AMX and on GPUs, at a relative error of ~1e-3.
    """

    def __init__(self, rnn: MDNRNN, precision: str = "float32") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        self.rnn = rnn
        self.precision = precision
        self.dtype = torch.float32 if precision == "float32" else torch.bfloat16
        self._key: tuple | None = None

    def _refresh(self) -> None:
        rnn = self.rnn
        params = [p for p in rnn.parameters()]
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in params)
        if key == self._key:
            return
        hd = rnn.hidden
        with torch.no_grad():
            cell = rnn.cell
            w = torch.cat([cell.weight_ih, cell.weight_hh], dim=1).clone()   # (4H, z + A + H)
            b = (cell.bias_ih + cell.bias_hh).clone()
            w[2 * hd:3 * hd] *= 2.0
            b[2 * hd:3 * hd] *= 2.0
            zero_w, zero_b = rnn.mdn.weight.new_zeros(1, hd), rnn.mdn.bias.new_zeros(1)
            rw, rb = (rnn.reward_fc.weight, rnn.reward_fc.bias) if rnn.reward_fc is not None else (zero_w, zero_b)
            dw, db = (rnn.done_fc.weight, rnn.done_fc.bias) if rnn.done_fc is not None else (zero_w, zero_b)
            dt = self.dtype
            self.w_cell_t = w.to(dt).t()
            self.b_cell = b.to(dt)
            # MDN rows (part, k, d) -> logits (k, d), then (k, part in {mu, logsigma}, d)
            kk, zd = rnn.config.mixtures, rnn.z_dim
            order = torch.arange(3 * kk * zd, device=w.device).view(3, kk, zd)
            order = torch.cat([order[0].flatten(), order[1:].transpose(0, 1).flatten()])
            self.w_head_t = torch.cat([rnn.mdn.weight[order], rw, dw], dim=0).to(dt).t()  # (H, 3 K z + 2)
            self.b_head = torch.cat([rnn.mdn.bias[order], rb, db]).to(dt)
        self._key = key

    def cell(self, z: torch.Tensor, a: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
             masks: Masks | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h_t, c_t)`` from ``z_t`` ``(R, z_dim)``, ``a_t`` ``(R,)`` long (continuous: ``(R, action_dim)``
        float), ``h``, ``c`` ``(R, hidden)``."""
        self._refresh()
        rnn = self.rnn
        zd, na = rnn.z_dim, rnn.action_width
        x = torch.empty(z.shape[0], zd + na + rnn.hidden, device=z.device, dtype=self.dtype)
        if masks is None:
            x[:, :zd] = z
            x[:, zd + na:] = h
        else:
            torch.mul(z, masks.z, out=x[:, :zd])
            torch.mul(h, masks.h, out=x[:, zd + na:])
        if rnn.continuous:
            x[:, zd:zd + na] = a
        else:
            onehot = x[:, zd:zd + na]
            onehot.zero_()
            onehot.scatter_(1, a.view(-1, 1), 1.0)
        gates = torch.addmm(self.b_cell, x, self.w_cell_t)
        gates = (gates if gates.dtype == torch.float32 else gates.float()).sigmoid_()
        i, f, s, o = gates.chunk(4, dim=1)                      # s = sigmoid(2 g) = (tanh(g) + 1) / 2
        c_new = torch.mul(f, c).sub_(i).addcmul_(i, s, value=2.0)  # f c + i tanh(g)
        t = torch.mul(c_new, 2.0).sigmoid_()                    # (tanh(c) + 1) / 2
        h_new = torch.neg(o).addcmul_(o, t, value=2.0)          # o tanh(c)
        return h_new, c_new

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (unnormalised) ``(R, K, z_dim)``, ``mu_logsigma`` ``(R, K, 2, z_dim)``, reward,
        done logit ``(R,)``."""
        rnn = self.rnn
        kk, zd = rnn.config.mixtures, rnn.z_dim
        kz = kk * zd
        out = torch.addmm(self.b_head, h.to(self.dtype), self.w_head_t)
        out = out if out.dtype == torch.float32 else out.float()
        r = h.shape[0]
        logits = out[:, :kz].view(r, kk, zd)
        mu_logsigma = out[:, kz:3 * kz].view(r, kk, 2, zd)
        done = out[:, 3 * kz + 1] if rnn.done_fc is not None else h.new_full((r,), -math.inf)
        return logits, mu_logsigma, out[:, 3 * kz], done


class DreamCore:
    """Batched dream state and transition on torch tensors, shared by both env classes.

    State: ``z`` ``(N, z_dim)``, ``h``, ``c`` ``(N, hidden)`` on the device;
    ``t`` (steps in the episode), ``ret`` (return so far) and ``start_idx`` (row of
    ``start_z`` the episode started from) ``(N,)`` numpy. ``masks``: the masks in
    force (``per_episode``), or used by the last step (``per_step``: ``(N, ...)``;
    ``mc_mean``: ``(mc_samples, N, ...)``); None for ``"none"``.
    The model is moved to ``device`` (in place); its train/eval mode does not matter (masks are explicit).
    """

    def __init__(self, model: DropoutWorldModel, num_envs: int, mask_mode: str, dropout: float | None,
                 temperature: float, max_episode_steps: int, device: str | torch.device, seed: int,
                 mc_samples: int, precision: str = "float32", done_mode: str = "sample") -> None:
        if done_mode not in DONE_MODES:
            raise ConfigError(f"unknown done_mode {done_mode!r}; choose one of {', '.join(DONE_MODES)}")
        self.done_mode = done_mode
        if not isinstance(model, DropoutWorldModel):
            raise ConfigError(f"a dream needs a DropoutWorldModel, got {type(model).__name__}")
        if isinstance(num_envs, bool) or int(num_envs) != num_envs or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        if mask_mode not in MASK_MODES:
            raise ConfigError(f"unknown mask_mode {mask_mode!r}; choose one of {', '.join(MASK_MODES)}")
        if mask_mode == "none":
            if dropout is not None and check_rate(dropout) > 0:
                raise ConfigError(f"mask_mode='none' runs without dropout; got dropout={dropout!r} "
                                  "(pass dropout=None or 0, or another mask_mode)")
            rate = 0.0
        else:
            rate = check_rate(model.dropout if dropout is None else dropout)
        if isinstance(max_episode_steps, bool) or int(max_episode_steps) != max_episode_steps \
                or max_episode_steps < 1:
            raise ConfigError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        if isinstance(mc_samples, bool) or int(mc_samples) != mc_samples or mc_samples < 1:
            raise ConfigError(f"mc_samples must be a positive integer, got {mc_samples!r}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.rnn = model.rnn
        self.fused = FusedStep(model.rnn, precision)
        self.num_envs = int(num_envs)
        self.mask_mode = mask_mode
        self.rate = rate
        self.tau = _check_tau(temperature)
        self.max_episode_steps = int(max_episode_steps)
        self.mc_samples = int(mc_samples)
        self.gen = torch.Generator(device=self.device)
        self.reseed(seed)
        self.pack_transfer = self.device.type != "cpu"
        self.start_z_host = model.start_z.detach().cpu().numpy()
        self.start_h_host = model.start_h.detach().cpu().numpy()
        n, zd, hd = self.num_envs, model.z_dim, model.hidden
        self.obs_dim = zd + hd
        self.z = torch.zeros(n, zd, device=self.device)
        self.h = torch.zeros(n, hd, device=self.device)
        self.c = torch.zeros(n, hd, device=self.device)
        self.masks: Masks | None = None
        self.t = np.zeros(n, np.int64)
        self.ret = np.zeros(n, np.float64)
        self.alive = torch.ones(n, device=self.device)
        """``expected`` done mode: probability of having survived every step so far ``(N,)``."""
        self.start_idx = np.zeros(n, np.int64)
        self.noise_group = 0
        """Common random numbers (:meth:`set_noise_group`): 0, or G: slot ``i`` draws the random
        numbers of slot ``i % G`` (latent samples, dropout masks, sampled deaths)."""
        self.ready = False
        low = np.concatenate([np.full(zd, -np.inf), np.full(hd, -1.0)]).astype(np.float32)
        self.single_observation_space = spaces.Box(low, -low, dtype=np.float32)
        self.continuous = model.continuous
        if self.continuous:
            box = model.action_space
            self.single_action_space = spaces.Box(box.low.copy(), box.high.copy(), dtype=np.float32)
            self.low, self.high = box.low.copy(), box.high.copy()
            self.low_t = torch.from_numpy(self.low).to(self.device)
            self.high_t = torch.from_numpy(self.high).to(self.device)
        else:
            self.single_action_space = spaces.Discrete(model.n_actions)

    def set_noise_group(self, group: Any) -> None:
        """Common random numbers across a batch of ``P`` controllers x ``G`` episodes (slot
        ``i * G + j``): with ``group = G`` every slot ``i`` draws the random numbers of slot ``i % G``
        (its latent samples, dropout masks and sampled deaths), so episode ``j`` of every controller
        meets the same luck and their returns differ by their actions; two controllers that act
        alike dream alike. 0 (or None): every slot draws its own (the default)."""
        g = 0 if group is None else group
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 0 or (g and self.num_envs % g):
            raise ConfigError(f"noise_group must be 0 or a positive divisor of num_envs={self.num_envs}, got {group!r}")
        self.noise_group = int(g)

    def reseed(self, seed: Any) -> None:
        if isinstance(seed, (list, tuple, np.ndarray)):
            seed = seed[0]
        try:
            self.gen.manual_seed(int(seed))
        except (TypeError, ValueError, RuntimeError) as e:
            raise ConfigError(f"seed must be an integer, got {seed!r} ({e})") from None

    def to_tensor(self, actions: Any) -> torch.Tensor:
        """Validated actions as a long ``(N,)`` tensor on the device (numpy/list/int or torch input);
        for a continuous model a float32 ``(N, action_dim)`` tensor inside the Box (ActionError otherwise)."""
        if self.continuous:
            return self._box_tensor(actions)
        if isinstance(actions, torch.Tensor):
            a = actions.reshape(1) if actions.ndim == 0 and self.num_envs == 1 else actions
            return self.rnn.check_actions(a, (self.num_envs,)).to(self.device)
        a = check_discrete_actions(actions, self.num_envs, self.model.n_actions)
        return torch.from_numpy(a).to(self.device)

    def _box_tensor(self, actions: Any) -> torch.Tensor:
        n, d = self.num_envs, self.low.shape[0]
        if not isinstance(actions, torch.Tensor):
            return torch.from_numpy(check_box_actions(actions, n, self.low, self.high)).to(self.device)
        a = actions.reshape(1, d) if tuple(actions.shape) == (d,) and n == 1 else actions
        a = self.rnn.check_actions(a, (n,)).to(self.device)  # shape, dtype, finite
        bad = (a < self.low_t) | (a > self.high_t)
        if bool(bad.any()):
            i, j = (int(v) for v in torch.nonzero(bad)[0])
            raise ActionError(f"action component {j} = {float(a[i, j]):.6g} outside "
                              f"[{float(self.low[j]):.6g}, {float(self.high[j]):.6g}]")
        return a

    @torch.no_grad()
    def reset_slots(self, idx: np.ndarray | None, start_index: Any = None) -> np.ndarray:
        """Start new episodes in slots ``idx`` (None: all); returns their observations ``(len, D)``."""
        n = self.num_envs if idx is None else len(idx)
        m_rows = self.start_z_host.shape[0]
        g = self.noise_group
        # common random numbers: restarting slots take their rows (slot % g) of one draw for g slots
        common = torch.from_numpy(idx % g).to(self.device) if g and idx is not None else None
        if start_index is None:
            if common is not None:
                k = torch.randint(m_rows, (g,), generator=self.gen, device=self.device)[common]
            else:
                k = common_draw(lambda sh: torch.randint(m_rows, sh, generator=self.gen, device=self.device), (n,), g)
            k_host = k.cpu().numpy()
        else:
            k_host = np.asarray(start_index)
            if k_host.shape != (n,) or k_host.dtype.kind not in "iu" or (k_host < 0).any() \
                    or (k_host >= m_rows).any():
                raise ConfigError(f"start_index must be {n} integers in [0, {m_rows}), got {start_index!r}")
            k_host = k_host.astype(np.int64)
            k = torch.from_numpy(k_host).to(self.device)
        z0, h0, c0 = self.model.start_z[k], self.model.start_h[k], self.model.start_c[k]
        if idx is None:
            self.z, self.h, self.c = z0.clone(), h0.clone(), c0.clone()
        else:
            it = torch.from_numpy(idx).to(self.device)
            self.z[it] = z0
            self.h[it] = h0
            self.c[it] = c0
        if self.mask_mode == "per_episode":
            if common is not None:
                m = self.rnn.sample_masks(g, self.rate, generator=self.gen, device=self.device)
                m = Masks(m.z[common], m.h[common])
            else:
                m = self.rnn.sample_masks(n, self.rate, generator=self.gen, device=self.device, group=g)
            if idx is None or self.masks is None:
                self.masks = m
            else:
                self.masks.z[it] = m.z
                self.masks.h[it] = m.h
        sel = slice(None) if idx is None else idx
        if idx is None:
            self.alive = torch.ones(self.num_envs, device=self.device)
        else:
            self.alive[it] = 1.0
        self.t[sel] = 0
        self.ret[sel] = 0.0
        self.start_idx[sel] = k_host
        self.ready = True
        return np.concatenate([self.start_z_host[k_host], self.start_h_host[k_host]], 1)

    @torch.no_grad()
    def advance(self, a: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One dream step of every slot: ``(obs (N, D) float32, reward (N,) float32, terminated (N,) bool)``."""
        rnn, n, fused = self.rnn, self.num_envs, self.fused
        if self.mask_mode == "mc_mean":
            s, g = self.mc_samples, self.noise_group
            if g:  # (s, g) masks, each slot i taking column i % g: rows ordered (sample, slot)
                mg = rnn.sample_masks(s * g, self.rate, generator=self.gen, device=self.device)
                masks = Masks(*(x.view(s, g, -1).repeat(1, n // g, 1).view(s * n, -1) for x in mg))
            else:
                masks = rnn.sample_masks(s * n, self.rate, generator=self.gen, device=self.device)
            a_rep = a.repeat(s, 1) if a.ndim == 2 else a.repeat(s)
            h, c = fused.cell(self.z.repeat(s, 1), a_rep, self.h.repeat(s, 1), self.c.repeat(s, 1), masks)
            logits, mu_logsigma, rew, done_logit = fused.heads(h)

            def pool(x: torch.Tensor) -> torch.Tensor:  # (s*n, K, ...) -> (n, s*K, ...)
                return x.reshape(s, n, *x.shape[1:]).transpose(0, 1).flatten(1, 2)

            # the equal-weight mixture of the s mixtures: weights pi_k / s over s*K components
            logits = pool(torch.log_softmax(logits, dim=1)) - math.log(s)
            mu_logsigma = pool(mu_logsigma)
            rew = rew.reshape(s, n).mean(0)
            p_done = torch.sigmoid(done_logit).reshape(s, n).mean(0)
            h, c = h.view(s, n, -1).mean(0), c.view(s, n, -1).mean(0)
            self.masks = Masks(masks.z.view(s, n, -1), masks.h.view(s, n, -1))
        else:
            if self.mask_mode == "per_step":
                self.masks = rnn.sample_masks(n, self.rate, generator=self.gen, device=self.device,
                                              group=self.noise_group)
            h, c = fused.cell(self.z, a, self.h, self.c, self.masks)
            logits, mu_logsigma, rew, done_logit = fused.heads(h)
            p_done = torch.sigmoid(done_logit)
        p_done = self.pool_done(p_done, a)  # (ensemble dreams: every member's view; self.z is still z_t)
        z = sample_mixture(logits, mu_logsigma, self.tau, generator=self.gen, group=self.noise_group)
        self.z, self.h, self.c = z, h, c
        if self.done_mode == "sample":
            # Termination ~ Bernoulli(p_done): a rare per-step hazard (a death every few hundred
            # steps) never crosses a 0.5 threshold, so thresholding would make dreams endless.
            u = common_draw(lambda sh: torch.rand(sh, generator=self.gen, device=p_done.device, dtype=p_done.dtype),
                            tuple(p_done.shape), self.noise_group)
            p_done = (u < p_done).to(p_done.dtype)
        elif self.done_mode == "expected":
            rew = rew * self.alive
            self.alive = self.alive * (1.0 - p_done)
            p_done = torch.zeros_like(p_done)
        d = self.obs_dim
        if not self.pack_transfer:  # CPU: write the observation straight into the returned array
            obs = np.empty((n, d), np.float32)
            torch.cat([z, h], dim=1, out=torch.from_numpy(obs))
            return obs, rew.numpy().copy(), p_done.numpy() > 0.5
        # GPU: one device -> host transfer of everything the step returns
        packed = torch.cat([z, h, rew[:, None], p_done[:, None]], dim=1).float().cpu().numpy()
        return np.ascontiguousarray(packed[:, :d]), packed[:, d].copy(), packed[:, d + 1] > 0.5

    def pool_done(self, p_done: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The termination probability ``(N,)`` the step uses, given the model's ``p_done`` ``(N,)``
        for action ``a`` from the current state: unchanged here; an ensemble dream
        (:mod:`simlab.world_models.dropout.ensemble`) pools its members' predictions."""
        return p_done

    @torch.no_grad()
    def frame(self, scale: int = RENDER_SCALE) -> np.ndarray:
        """Slot 0's current z decoded by the ConvVAE: uint8 ``(64 * scale, 64 * scale, 3)``."""
        from simlab.video import upscale

        return upscale(self.model.vae.decode_uint8(self.z[:1])[0], scale)


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if it is None or ``"rgb_array"`` (what every dream env renders); ConfigError otherwise."""
    if render_mode not in (None, "rgb_array"):
        raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    return render_mode


class _CoreViews:
    """Read-only views of a dream env's :class:`DreamCore` configuration (``self.core``)."""

    mask_mode = property(lambda self: self.core.mask_mode)
    dropout = property(lambda self: self.core.rate)
    temperature = property(lambda self: self.core.tau)
    max_episode_steps = property(lambda self: self.core.max_episode_steps)
    device = property(lambda self: self.core.device)
    precision = property(lambda self: self.core.fused.precision)
    masks = property(lambda self: self.core.masks, doc="Masks in force / last used (see DreamCore).")


class DreamVecEnv(_CoreViews, VectorEnv):
    """``num_envs`` dreams stepped together (gymnasium 1.x VectorEnv, same-step autoreset).

    Args:
        model: the :class:`DropoutWorldModel` (moved to ``device`` in place).
        num_envs: batch size N.
        mask_mode: ``"none"`` | ``"per_episode"`` | ``"per_step"`` | ``"mc_mean"``.
        dropout: dropout rate in [0, 1) (default: the model's training rate; must be
            None or 0 with ``"none"``).
        temperature: tau >= 0; scales mixture logits by 1/tau and stds by sqrt(tau).
        max_episode_steps: truncation limit.
        device: ``"cpu"`` or ``"cuda"``.
        seed: seeds the dream's torch.Generator (``reset(seed=...)`` re-seeds it).
        mc_samples: masks averaged per step with ``"mc_mean"``.
        done_mode: ``"sample"`` (terminate with probability p_done, default),
            ``"threshold"`` (terminate when p_done > 0.5) or ``"expected"`` (never terminate;
            rewards weighted by the probability of having survived, see :data:`DONE_MODES`).
        render_mode: ``"rgb_array"``: :meth:`render` returns slot 0's decoded frame.
        precision: ``"float32"`` (exact) or ``"bfloat16"`` (matmuls in bfloat16, ~2x faster
            on CPUs with AVX512-BF16 and on GPUs; see :class:`FusedStep`).

    ``step`` returns ``(obs (N, D) float32, rewards (N,) float32, terminated (N,) bool,
    truncated (N,) bool, info)``; finished slots restart in the same call: their last
    observation is in ``info["final_obs"]`` (masked by ``info["_final_obs"]``), their
    return and length in ``info["episode_return"]`` / ``info["episode_length"]``
    (masked by ``info["_episode"]``). ``info["start_index"]`` is each slot's row of
    ``start_z``. ``reset(options={"start_index": (N,) ints})`` picks the start frames;
    ``options={"noise_group": G}`` makes slot ``i`` share the random numbers of slot ``i % G`` until
    the next reset (common random numbers, :meth:`DreamCore.set_noise_group`).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"], "render_fps": 15, "autoreset_mode": AutoresetMode.SAME_STEP}
    start_pool: np.ndarray | None = None
    """Rows of ``start_z`` that common starts draw from (``simlab.policies.panel.common_start_rows``;
    e.g. :func:`~simlab.world_models.dropout.starts.informative_rows`); None: every row."""

    def __init__(self, model: DropoutWorldModel, num_envs: int, mask_mode: str = "per_episode",
                 dropout: float | None = None, temperature: float = 1.0, max_episode_steps: int = 1000,
                 device: str | torch.device = "cpu", seed: int = 0, mc_samples: int = 8,
                 render_mode: str | None = None, precision: str = "float32", done_mode: str = "sample") -> None:
        self.render_mode = check_render_mode(render_mode)
        self._bind(DreamCore(model, num_envs, mask_mode, dropout, temperature, max_episode_steps, device,
                             seed, mc_samples, precision, done_mode))

    @classmethod
    def from_core(cls, core: DreamCore, render_mode: str | None = None) -> DreamVecEnv:
        """A vector env over an existing core (e.g. an ensemble dream's
        :class:`~simlab.world_models.dropout.ensemble.EnsembleDreamCore`)."""
        env = cls.__new__(cls)
        env.render_mode = check_render_mode(render_mode)
        env._bind(core)
        return env

    def _bind(self, core: DreamCore) -> None:
        self.core = core
        self.model = self.core.model
        self.num_envs = self.core.num_envs
        self.single_observation_space = self.core.single_observation_space
        self.single_action_space = self.core.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    @property
    def num_start_states(self) -> int:
        """Rows of the model's ``start_z``: valid ``start_index`` values are ``0 .. num_start_states - 1``."""
        return int(self.core.start_z_host.shape[0])

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes in every slot; ``seed`` re-seeds the dream's generator."""
        if seed is not None:
            self.core.reseed(seed)
        start = (options or {}).get("start_index")
        self.core.set_noise_group((options or {}).get("noise_group", 0))
        obs = self.core.reset_slots(None, start)
        return obs, {"start_index": self.core.start_idx.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every dream; finished ones restart in the same call. ActionError for bad actions."""
        core = self.core
        if not core.ready:
            raise ResetNeeded("call reset() before step()")
        obs, rew, term = core.advance(core.to_tensor(actions))
        core.t += 1
        core.ret += rew
        trunc = (core.t >= core.max_episode_steps) & ~term
        info: dict[str, Any] = {"start_index": core.start_idx.copy()}
        done = term | trunc
        if done.any():
            idx = np.flatnonzero(done)
            final = np.empty(self.num_envs, dtype=object)
            final[idx] = list(obs[idx].copy())
            info["final_obs"] = final
            info["_final_obs"] = done.copy()
            info["episode_return"] = np.where(done, core.ret, 0.0)
            info["episode_length"] = np.where(done, core.t, 0)
            info["_episode"] = done.copy()
            obs[idx] = core.reset_slots(idx)
            info["start_index"] = core.start_idx.copy()
        return obs, rew, term, trunc, info

    def render(self) -> np.ndarray | None:
        """Slot 0's current z decoded to a frame, upscaled 4x (uint8 ``(256, 256, 3)``), when
        ``render_mode="rgb_array"``; None otherwise."""
        if self.render_mode != "rgb_array":
            return None
        return self.core.frame()


class CoreDreamEnv(gymnasium.Env):
    """One dream as a ``gymnasium.Env`` over a batch-of-one dream core (``self.core``), shared by the
    dropout dream (:class:`DreamCore`) and the diffusion dream: the core provides ``reset_slots``,
    ``advance``, ``to_tensor``, ``frame``, ``reseed`` and the per-slot ``t``, ``ret``, ``start_idx``.

    ``step`` after the episode ended (or before ``reset``) raises ``ResetNeeded``; ``render()``
    returns the core's current frame (upscaled) with ``render_mode="rgb_array"``, else None.
    """

    core: Any
    render_mode: str | None
    _done: bool

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """New dream episode; ``seed`` re-seeds the dream's generator."""
        super().reset(seed=seed)
        if seed is not None:
            self.core.reseed(seed)
        start = (options or {}).get("start_index")
        obs = self.core.reset_slots(None, None if start is None else [start])
        self._done = False
        return obs[0], {"start_index": int(self.core.start_idx[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One dream step; ActionError for an action the core's action space refuses."""
        core = self.core
        if self._done:
            raise ResetNeeded("call reset() before step() (at the start and after an episode ends)")
        obs, rew, term = core.advance(core.to_tensor(action))
        core.t += 1
        core.ret += rew
        terminated = bool(term[0])
        truncated = bool(core.t[0] >= core.max_episode_steps) and not terminated
        self._done = terminated or truncated
        return obs[0], float(rew[0]), terminated, truncated, {"start_index": int(core.start_idx[0])}

    def render(self) -> np.ndarray | None:
        """The current frame, upscaled, when ``render_mode="rgb_array"``; else None."""
        if self.render_mode != "rgb_array":
            return None
        return self.core.frame()


class DreamEnv(_CoreViews, CoreDreamEnv):
    """One dream as a ``gymnasium.Env`` (arguments as :class:`DreamVecEnv`, without ``num_envs``).

    ``step`` after the episode ended (or before ``reset``) raises ``ResetNeeded``.
    ``reset(options={"start_index": i})`` starts from row ``i`` of ``start_z``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, model: DropoutWorldModel, mask_mode: str = "per_episode", dropout: float | None = None,
                 temperature: float = 1.0, max_episode_steps: int = 1000, device: str | torch.device = "cpu",
                 seed: int = 0, mc_samples: int = 8, render_mode: str | None = None,
                 precision: str = "float32", done_mode: str = "sample") -> None:
        self.render_mode = check_render_mode(render_mode)
        self.core = DreamCore(model, 1, mask_mode, dropout, temperature, max_episode_steps, device, seed,
                              mc_samples, precision, done_mode)
        self.model = self.core.model
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self._done = True
