"""MDN-RNN with Dropout's Dream Land dropout: an LSTM over ``[z_t, a_t]`` + mixture head.

One transition: ``h_t, c_t = LSTMCell([z_t * m_z, act(a_t)], (h_{t-1} * m_h, c_{t-1}))``,
then from ``h_t``: a per-dimension mixture of ``K`` Gaussians over ``z_{t+1}``
(``logpi``, ``mu``, ``logsigma``, each ``(B, K, z_dim)``), the reward ``r_t`` and
the done logit of step ``t``.

Actions: discrete ids (``MDNRNNConfig.action_dim == 0``, the default) enter as
``act(a_t) = onehot(a_t)`` of size ``n_actions``; continuous actions
(``action_dim = d > 0``, e.g. CarRacing's ``Box([-1, 0, 0], [1, 1, 1])``, d = 3)
enter as the raw float vector ``act(a_t) = a_t`` of size ``d``.

Dropout (Wellmer & Kwok 2021) lives only inside the LSTM: Bernoulli keep-masks
``m_z`` ``(B, z_dim)`` on the z part of the input and ``m_h`` ``(B, hidden)`` on
the recurrent state, scaled by ``1 / (1 - p)``, fixed for a whole sequence
(variational dropout). The action one-hot is never masked; neither are the
heads. Masks are explicit arguments: ``masks=None`` means no dropout, whatever
``module.training`` says; :func:`train_mdnrnn` draws a new mask per sequence
per batch and the dream (:mod:`simlab.world_models.dropout.dream`) per episode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simlab.errors import ActionError, ConfigError
from simlab.training import check_loss, check_weights
from simlab.world_models.base import check_rate, resolve_device
from simlab.world_models.modeling import SimlabModelMixin, make_config

LogFn = Callable[[int, dict[str, float]], None]

LOG_SIGMA_MIN = -10.0
"""Floor of ``logsigma`` in :func:`mdn_loss` and :func:`sample_next_z` (sigma >= 4.5e-5)."""
MAX_STD_RESIDUAL = 1e6
"""|z - mu| / sigma is clipped here in :func:`mdn_loss` so its square stays finite in float32."""
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class MDNRNNConfig:
    """Constructor arguments of :class:`MDNRNN`."""

    z_dim: int = 32
    """Latent size (the ConvVAE's)."""
    n_actions: int = 15
    """Discrete actions, fed as a one-hot (ignored, and stored as 0, when ``action_dim > 0``)."""
    hidden: int = 256
    """LSTM width (World Models: 256 CarRacing, 512 Doom)."""
    mixtures: int = 5
    """Gaussians per latent dimension."""
    dropout: float = 0.05
    """Training dropout rate on z inputs and the recurrent state; the dream's default rate."""
    reward_head: bool = True
    """Predict the reward of each step."""
    done_head: bool = True
    """Predict whether each step ends the episode."""
    action_dim: int = 0
    """0: discrete actions (one-hot of ``n_actions``); ``d > 0``: continuous actions, float
    vectors of size ``d`` fed raw (never masked); ``n_actions`` is then set to 0."""

    def __post_init__(self) -> None:
        v = self.action_dim
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"MDNRNNConfig.action_dim must be an integer >= 0, got {v!r}")
        self.action_dim = int(v)
        if self.action_dim > 0:
            self.n_actions = 0
        for name in ("z_dim", "n_actions", "hidden", "mixtures"):
            if name == "n_actions" and self.action_dim > 0:
                continue
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ConfigError(f"MDNRNNConfig.{name} must be a positive integer, got {v!r}")
            setattr(self, name, int(v))
        self.dropout = check_rate(self.dropout, "MDNRNNConfig.dropout")
        self.reward_head, self.done_head = bool(self.reward_head), bool(self.done_head)

    @property
    def continuous(self) -> bool:
        """True for continuous (float vector) actions."""
        return self.action_dim > 0

    @property
    def action_width(self) -> int:
        """Width of the action part of the LSTM input: ``action_dim`` or ``n_actions``."""
        return self.action_dim if self.action_dim > 0 else self.n_actions


class Masks(NamedTuple):
    """Dropout keep-masks (values 0 or ``1 / (1 - p)``): ``z`` ``(B, z_dim)``, ``h`` ``(B, hidden)``."""

    z: torch.Tensor
    h: torch.Tensor


class StepOut(NamedTuple):
    """Predictions of one step (``(B, ...)``) or of a sequence (``(B, T, ...)``).

    ``logpi`` (log mixture weights, normalised over K), ``mu``, ``logsigma``: ``(B[, T], K, z_dim)``;
    ``reward``: ``(B[, T])`` (zeros without a reward head); ``done_logit``: ``(B[, T])``
    (``-inf`` without a done head); ``state``: ``(h, c)`` after the (last) step, ``(B, hidden)`` each.
    """

    logpi: torch.Tensor
    mu: torch.Tensor
    logsigma: torch.Tensor
    reward: torch.Tensor
    done_logit: torch.Tensor
    state: tuple[torch.Tensor, torch.Tensor]


def _check_tau(tau: float) -> float:
    t = float(tau)
    if not (math.isfinite(t) and t >= 0):
        raise ConfigError(f"temperature tau must be a finite number >= 0, got {tau!r}")
    return t


def mdn_loss(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor, z_next: torch.Tensor,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-likelihood of ``z_next`` under the per-dimension Gaussian mixtures.

    Args:
        logpi, mu, logsigma: ``(..., K, z_dim)``; ``logpi`` are mixture logits (normalised
            here with log-softmax over K, a no-op for log-probabilities).
        z_next: ``(..., z_dim)`` targets.
        mask: optional ``(...)`` weights (1 = counts, 0 = padding).

    Returns:
        ``-mean log p(z_next)`` over the batch (and time) and the z dimensions, with
        ``log p(z_d) = logsumexp_k(log pi_kd + log N(z_d; mu_kd, sigma_kd))``. Stable: the
        log-sum-exp is done in log space, ``logsigma`` is floored at :data:`LOG_SIGMA_MIN` and
        the standardised residual clipped at :data:`MAX_STD_RESIDUAL`, so finite inputs
        always give a finite loss and finite gradients.
    """
    if z_next.shape != mu.shape[:-2] + mu.shape[-1:]:
        raise ConfigError(f"z_next shape {tuple(z_next.shape)} does not fit mixture shape {tuple(mu.shape)}")
    logpi = torch.log_softmax(logpi, dim=-2)
    ls = logsigma.clamp(min=LOG_SIGMA_MIN)
    r = ((z_next.unsqueeze(-2) - mu) * torch.exp(-ls)).clamp(-MAX_STD_RESIDUAL, MAX_STD_RESIDUAL)
    log_n = -0.5 * r.pow(2) - ls - 0.5 * _LOG_2PI
    nll = -torch.logsumexp(logpi + log_n, dim=-2).mean(dim=-1)  # (...)
    if mask is None:
        return nll.mean()
    mask = mask.to(nll.dtype)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


def sample_next_z(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor, tau: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``z`` ``(..., z_dim)`` from per-dimension mixtures ``(..., K, z_dim)`` at temperature ``tau``.

    Each dimension picks a component with probability ``softmax(logpi / tau)`` over K
    (``logpi`` may be unnormalised) and draws ``mu + sigma * sqrt(tau) * eps``.
    ``tau = 0`` returns the mean of the most likely component exactly; small ``tau``
    approaches it. Randomness only from ``generator`` (on the tensors' device): one
    uniform (inverse CDF over the K components) and one normal per dimension.
    """
    return sample_mixture(logpi, torch.stack([mu, logsigma], dim=-2), tau, generator)


def common_draw(draw: Any, shape: tuple[int, ...], group: int = 0) -> torch.Tensor:
    """``draw(shape)`` (a ``torch.rand``-like call), or with ``group > 0`` common random numbers:
    ``draw`` for ``group`` rows, repeated down the batch, so row ``i`` of the result is row
    ``i % group`` of one draw. ``shape[0]`` must be a multiple of ``group`` (ConfigError otherwise).

    Used when a batch holds ``P`` controllers x ``group`` episodes (slot ``i * group + j``): episode
    ``j`` of every controller then sees the same random numbers, so their returns differ by their
    actions rather than by their luck (variance reduction for CMA-ES fitness).
    """
    if not group or group == shape[0]:
        return draw(shape)
    if shape[0] % group:
        raise ConfigError(f"a batch of {shape[0]} rows cannot share random numbers in groups of {group}")
    return draw((group, *shape[1:])).repeat(shape[0] // group, *([1] * (len(shape) - 1)))


def sample_mixture(logits: torch.Tensor, mu_logsigma: torch.Tensor, tau: float = 1.0,
                   generator: torch.Generator | None = None, group: int = 0) -> torch.Tensor:
    """:func:`sample_next_z` with ``mu`` and ``logsigma`` stacked: ``mu_logsigma`` ``(..., K, 2, z_dim)``.

    The dream's heads write this layout directly, so one gather picks both. ``group > 0``: the
    batch ``(B, K, z_dim)`` draws its uniforms and normals in common per ``group`` rows
    (:func:`common_draw`); 0 draws every row independently.
    """
    tau = _check_tau(tau)
    k_count, zd = logits.shape[-2], logits.shape[-1]
    lead = logits.shape[:-2]
    if k_count == 1:
        comp = torch.zeros(lead + (zd,), dtype=torch.long, device=logits.device)
    elif tau == 0.0:                                       # the most likely component
        best = logits.select(-2, 0)
        comp = torch.zeros(best.shape, dtype=torch.long, device=best.device)
        for k in range(1, k_count):
            lk = logits.select(-2, k)
            comp.masked_fill_(lk > best, k)
            best = torch.maximum(best, lk)
    else:                                                  # inverse CDF, one uniform per dimension
        scaled = logits if tau == 1.0 else logits / tau
        cdf = torch.exp(scaled - scaled.amax(dim=-2, keepdim=True))  # unnormalised weights, max 1
        for k in range(1, k_count):                        # -> running sums (unnormalised CDF)
            cdf.select(-2, k).add_(cdf.select(-2, k - 1))
        total = cdf.select(-2, k_count - 1)
        u = common_draw(lambda sh: torch.rand(sh, generator=generator, device=total.device, dtype=total.dtype),
                        tuple(total.shape), group).mul_(total)
        comp = (cdf.narrow(-2, 0, k_count - 1) < u.unsqueeze(-2)).sum(dim=-2)  # CDF steps below u
    # column of (component, mu, d) in the flattened (K, 2, z) block; logsigma sits z further
    col = comp.mul_(2 * zd).add_(torch.arange(zd, device=comp.device))
    flat = mu_logsigma.reshape(*lead, 2 * k_count * zd)
    picked = torch.gather(flat, -1, torch.cat([col, col + zd], dim=-1))
    mean, logsigma = picked[..., :zd], picked[..., zd:]
    if tau == 0.0:
        return mean.contiguous()
    std = logsigma.clamp(min=LOG_SIGMA_MIN).exp_()
    if tau != 1.0:
        std.mul_(math.sqrt(tau))
    eps = common_draw(lambda sh: torch.randn(sh, generator=generator, device=mean.device, dtype=mean.dtype),
                      tuple(mean.shape), group)
    return torch.addcmul(mean, std, eps)


class MDNRNN(SimlabModelMixin):
    """LSTM (explicit ``nn.LSTMCell`` loop) + MDN, reward and done heads, with Dream Land dropout.

    A diffusers ``ModelMixin`` + ``ConfigMixin`` (:class:`~simlab.world_models.modeling.SimlabModelMixin`):
    ``save_pretrained(dir)`` writes ``config.json`` (the :class:`MDNRNNConfig` fields) +
    ``diffusion_pytorch_model.safetensors``; ``MDNRNN.from_pretrained(dir)`` reads it back.

    Args:
        config: an :class:`MDNRNNConfig`, or its fields as keyword arguments
            (``MDNRNN(z_dim=8, n_actions=3, hidden=32)``; continuous actions:
            ``MDNRNN(z_dim=8, action_dim=3, hidden=32)``; a field left None takes the default).
    """

    config_class = MDNRNNConfig
    mdn_loss = staticmethod(mdn_loss)
    sample_next_z = staticmethod(sample_next_z)

    def __init__(self, config: MDNRNNConfig | None = None, *, z_dim: int | None = None,
                 n_actions: int | None = None, hidden: int | None = None, mixtures: int | None = None,
                 dropout: float | None = None, reward_head: bool | None = None, done_head: bool | None = None,
                 action_dim: int | None = None, **kwargs: Any) -> None:
        super().__init__()
        self._set_config(make_config(MDNRNNConfig, config, {
            "z_dim": z_dim, "n_actions": n_actions, "hidden": hidden, "mixtures": mixtures, "dropout": dropout,
            "reward_head": reward_head, "done_head": done_head, "action_dim": action_dim, **kwargs}))
        c = self.config
        self.cell = nn.LSTMCell(c.z_dim + c.action_width, c.hidden)
        self.mdn = nn.Linear(c.hidden, 3 * c.mixtures * c.z_dim)
        self.reward_fc = nn.Linear(c.hidden, 1) if c.reward_head else None
        self.done_fc = nn.Linear(c.hidden, 1) if c.done_head else None

    # ---- shapes and helpers ------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def hidden(self) -> int:
        return self.config.hidden

    @property
    def n_actions(self) -> int:
        """Discrete action count (0 for a continuous model)."""
        return self.config.n_actions

    @property
    def action_dim(self) -> int:
        """Size of a continuous action vector (0 for a discrete model)."""
        return self.config.action_dim

    @property
    def continuous(self) -> bool:
        """True when actions are float vectors of size :attr:`action_dim`."""
        return self.config.action_dim > 0

    @property
    def action_width(self) -> int:
        """Width of the action part of the LSTM input (``action_dim`` or ``n_actions``)."""
        return self.config.action_width

    @property
    def device(self) -> torch.device:
        return self.mdn.weight.device

    def sample_masks(self, batch: int, rate: float, generator: torch.Generator | None = None,
                     device: str | torch.device | None = None, group: int = 0) -> Masks:
        """Bernoulli keep-masks ``z`` ``(batch, z_dim)``, ``h`` ``(batch, hidden)``: 0 with
        probability ``rate``, else ``1 / (1 - rate)``. ``rate = 0`` gives ones (no random draw).
        ``group > 0``: row ``i`` gets the mask of row ``i % group`` (:func:`common_draw`)."""
        rate = check_rate(rate, "dropout rate")
        dev = self.device if device is None else torch.device(device)
        if rate == 0.0:
            return Masks(torch.ones(batch, self.z_dim, device=dev), torch.ones(batch, self.hidden, device=dev))
        scale = 1.0 / (1.0 - rate)
        u = common_draw(lambda sh: torch.rand(sh, generator=generator, device=dev),
                        (batch, self.z_dim + self.hidden), group)
        m = (u >= rate).float().mul_(scale)
        return Masks(m[:, :self.z_dim], m[:, self.z_dim:])

    def initial_state(self, batch: int, device: str | torch.device | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero LSTM state ``(h, c)``, each ``(batch, hidden)``."""
        dev = self.device if device is None else torch.device(device)
        return (torch.zeros(batch, self.hidden, device=dev), torch.zeros(batch, self.hidden, device=dev))

    def check_actions(self, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Validated actions for a batch of leading shape ``shape`` (``(B,)`` or ``(B, T)``).

        Discrete: a long tensor of ``shape`` with values in ``[0, n_actions)``. Continuous: a
        float32 tensor of ``shape + (action_dim,)``, finite (no bounds here: the dream checks
        its Box). ActionError otherwise.
        """
        if not isinstance(a, torch.Tensor):
            a = torch.as_tensor(np.asarray(a))
        if self.continuous:
            want = (*shape, self.action_dim)
            if tuple(a.shape) != want:
                raise ActionError(f"expected continuous actions of shape {want}, got {tuple(a.shape)}")
            if a.is_complex() or a.dtype == torch.bool:
                raise ActionError(f"continuous actions must be real numbers, got dtype {a.dtype}")
            a = a.to(torch.float32)
            if a.numel() and not bool(torch.isfinite(a).all()):
                raise ActionError("continuous actions contain NaN or inf")
            return a
        if tuple(a.shape) != shape:
            raise ActionError(f"expected actions of shape {shape}, got {tuple(a.shape)}")
        if a.is_floating_point() or a.is_complex() or a.dtype == torch.bool:
            raise ActionError(f"actions must be integers in [0, {self.n_actions}), got dtype {a.dtype}")
        a = a.long()
        if a.numel() and (int(a.min()) < 0 or int(a.max()) >= self.n_actions):
            bad = a[(a < 0) | (a >= self.n_actions)].flatten()[0].item()
            raise ActionError(f"action {bad} outside [0, {self.n_actions})")
        return a

    def _check_z(self, z: torch.Tensor, lead: tuple[int, ...]) -> None:
        if z.ndim != len(lead) + 1 or tuple(z.shape[:-1]) != lead or z.shape[-1] != self.z_dim:
            raise ConfigError(f"z must have shape {(*lead, self.z_dim)}, got {tuple(z.shape)}")

    def masked_input(self, z: torch.Tensor, a: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
        """The LSTM input ``[z * masks.z, onehot(a)]`` ``(B, z_dim + n_actions)``, or for a continuous
        model ``[z * masks.z, a]`` ``(B, z_dim + action_dim)``; actions are never masked."""
        zin = z if masks is None else z * masks.z
        if self.continuous:
            return torch.cat([zin, a.to(device=z.device, dtype=z.dtype)], dim=1)
        onehot = torch.zeros(a.shape[0], self.n_actions, device=z.device, dtype=z.dtype)
        onehot.scatter_(1, a.view(-1, 1), 1.0)
        return torch.cat([zin, onehot], dim=1)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``h`` ``(..., hidden)`` -> ``(logpi, mu, logsigma)`` ``(..., K, z_dim)``, reward, done logit ``(...)``."""
        c = self.config
        out = self.mdn(h).unflatten(-1, (3, c.mixtures, c.z_dim))
        logpi = torch.log_softmax(out[..., 0, :, :], dim=-2)
        mu, logsigma = out[..., 1, :, :], out[..., 2, :, :]
        lead = h.shape[:-1]
        reward = self.reward_fc(h).squeeze(-1) if self.reward_fc is not None else h.new_zeros(lead)
        done = self.done_fc(h).squeeze(-1) if self.done_fc is not None else h.new_full(lead, -math.inf)
        return logpi, mu, logsigma, reward, done

    def cell_step(self, z: torch.Tensor, a: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
                  masks: Masks | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One masked LSTM transition without checks: ``(h_t, c_t)``."""
        h, c = state
        if masks is not None:
            h = h * masks.h
        return self.cell(self.masked_input(z, a, masks), (h, c))

    def step(self, z: torch.Tensor, a: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None,
             masks: Masks | None = None) -> StepOut:
        """One transition: from ``z_t`` ``(B, z_dim)``, ``a_t`` (``(B,)`` long ids, or ``(B, action_dim)``
        float for a continuous model) and ``(h_{t-1}, c_{t-1})`` (default zeros) predict ``z_{t+1}``
        (mixture), ``r_t`` and ``done_t``. ``masks=None``: no dropout."""
        b = z.shape[0]
        self._check_z(z, (b,))
        a = self.check_actions(a, (b,)).to(z.device)
        state = self.initial_state(b, z.device) if state is None else state
        h, c = self.cell_step(z, a, state, masks)
        return StepOut(*self.heads(h), state=(h, c))

    def forward(self, z_seq: torch.Tensor, a_seq: torch.Tensor, masks: Masks | None = None,
                state: tuple[torch.Tensor, torch.Tensor] | None = None,
                feedback_from: int | None = None) -> StepOut:
        """A sequence: ``z_seq`` ``(B, T, z_dim)``, ``a_seq`` ``(B, T)`` long (continuous: ``(B, T,
        action_dim)`` float) -> :class:`StepOut` with a T axis.

        The same ``masks`` (one per sequence) apply at every step; ``state`` defaults to zeros.
        ``feedback_from=k``: from step ``k`` on, the input latent is the model's own predicted mean
        of the previous step (detached) instead of ``z_seq`` (open loop, as in a dream).
        """
        b, t = z_seq.shape[:2]
        self._check_z(z_seq, (b, t))
        a_seq = self.check_actions(a_seq, (b, t)).to(z_seq.device)
        h, c = self.initial_state(b, z_seq.device) if state is None else state
        hs = []
        z_in = z_seq[:, 0]
        for i in range(t):
            if feedback_from is None or i < feedback_from or i == 0:
                z_in = z_seq[:, i]
            h, c = self.cell_step(z_in, a_seq[:, i], (h, c), masks)
            hs.append(h)
            if feedback_from is not None and i + 1 >= feedback_from:
                logpi, mu = self.heads(h)[:2]
                z_in = (logpi.exp() * mu).sum(dim=-2).detach()  # the mixture's mean next latent
        hseq = torch.stack(hs, dim=1) if hs else z_seq.new_zeros(b, 0, self.hidden)
        return StepOut(*self.heads(hseq), state=(h, c))


# ---- training ----------------------------------------------------------------------------

@dataclass
class RNNTrainConfig:
    """Hyperparameters of :func:`train_mdnrnn` (the model's ``z_dim`` comes from the data)."""

    n_actions: int = 15
    """Discrete actions of the env (ignored, and stored as 0, when ``action_dim > 0``)."""
    hidden: int = 256
    """LSTM width."""
    mixtures: int = 5
    """Gaussians per latent dimension."""
    dropout: float = 0.05
    """Dropout rate on z inputs and the recurrent state (0: World Models without dropout)."""
    reward_head: bool = True
    """Train a reward head (MSE)."""
    done_head: bool = True
    """Train a done head (BCE)."""
    epochs: int = 20
    """Passes over the data."""
    batch_size: int = 100
    """Sequences per gradient step."""
    seq_len: int | None = 32
    """Window length episodes are cut into (a random offset per epoch); None: whole episodes, padded."""
    lr: float = 1e-3
    """Adam learning rate."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0: none)."""
    reward_weight: float = 1.0
    """Weight of the reward MSE in the total loss."""
    done_weight: float = 1.0
    """Weight of the done BCE in the total loss."""
    done_pos_weight: float = 1.0
    """BCE weight of positive (done) steps, for rare episode ends."""
    open_loop: float = 0.0
    """Fraction of gradient steps trained open loop: after a random number of real steps (4 to
    ``seq_len - 1``) the RNN feeds on its own predicted mean latents, still scored against the real
    future (scheduled sampling). Teacher forcing alone (0) trains a model whose own rollouts, the
    dreams, drift off the data."""
    max_steps: int | None = None
    """Stop after this many gradient steps (None: run every epoch)."""
    log_every: int = 0
    """Also call ``log`` every this many gradient steps (0: once per epoch only)."""
    action_dim: int = 0
    """0: discrete actions (ids in ``[0, n_actions)``); ``d > 0``: continuous actions, float
    vectors of size ``d`` (e.g. 3 for CarRacing); ``n_actions`` is then set to 0."""

    def __post_init__(self) -> None:
        v = self.action_dim
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"RNNTrainConfig.action_dim must be an integer >= 0, got {v!r}")
        self.action_dim = int(v)
        if self.action_dim > 0:
            self.n_actions = 0
        for name in ("n_actions", "hidden", "mixtures", "epochs", "batch_size"):
            if name == "n_actions" and self.action_dim > 0:
                continue
            if getattr(self, name) < 1:
                raise ConfigError(f"RNNTrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        self.dropout = check_rate(self.dropout, "RNNTrainConfig.dropout")
        if not 0.0 <= float(self.open_loop) <= 1.0:
            raise ConfigError(f"RNNTrainConfig.open_loop must be in [0, 1], got {self.open_loop!r}")
        if self.seq_len is not None and self.seq_len < 1:
            raise ConfigError(f"RNNTrainConfig.seq_len must be >= 1 or None, got {self.seq_len!r}")
        if not self.lr > 0:
            raise ConfigError(f"RNNTrainConfig.lr must be > 0, got {self.lr!r}")
        for name in ("grad_clip", "reward_weight", "done_weight", "done_pos_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"RNNTrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"RNNTrainConfig.max_steps must be >= 1 or None, got {self.max_steps!r}")
        if self.log_every < 0:
            raise ConfigError(f"RNNTrainConfig.log_every must be >= 0, got {self.log_every!r}")


def _as_list(x: Any, name: str) -> list[np.ndarray] | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return list(x)
    if isinstance(x, Sequence):
        return [np.asarray(e.detach().cpu() if isinstance(e, torch.Tensor) else e) for e in x]
    raise ConfigError(f"{name} must be an array (N_ep, T, ...) or a list of episodes, got {type(x).__name__}")


class _Flat(NamedTuple):
    """Episodes concatenated: inputs/targets per transition and episode offsets/lengths."""

    z_in: np.ndarray      # (S, z_dim) float32
    z_next: np.ndarray    # (S, z_dim) float32
    has_next: np.ndarray  # (S,) bool: z_next is a real observation
    actions: np.ndarray   # (S,) int64, or (S, action_dim) float32 for continuous actions
    rewards: np.ndarray   # (S,) float32
    dones: np.ndarray     # (S,) float32
    offsets: np.ndarray   # (E,) int64
    lengths: np.ndarray   # (E,) int64


def _flatten(z: Any, actions: Any, rewards: Any, dones: Any, n_actions: int,
             need_rewards: bool, need_dones: bool, action_dim: int = 0) -> _Flat:
    zs, acts = _as_list(z, "z"), _as_list(actions, "actions")
    rews, dns = _as_list(rewards, "rewards"), _as_list(dones, "dones")
    if zs is None or acts is None:
        raise ConfigError("train_mdnrnn needs z and actions")
    if need_rewards and rews is None:
        raise ConfigError("rewards is None but the reward head is on (reward_head=False to train without)")
    if need_dones and dns is None:
        raise ConfigError("dones is None but the done head is on (done_head=False to train without)")
    n_ep = len(zs)
    if n_ep == 0:
        raise ConfigError("no episodes to train on")
    for name, lst in (("actions", acts), ("rewards", rews), ("dones", dns)):
        if lst is not None and len(lst) != n_ep:
            raise ConfigError(f"{name} has {len(lst)} episodes, z has {n_ep}")
    z_in, z_nx, has, aa, rr, dd, lens = [], [], [], [], [], [], []
    z_dim = None
    for i in range(n_ep):
        ze, ae = np.asarray(zs[i], np.float32), np.asarray(acts[i])
        a_nd = 2 if action_dim else 1
        if ze.ndim != 2 or ae.ndim != a_nd or (action_dim and ae.shape[1] != action_dim):
            want = f"(T, {action_dim})" if action_dim else "(T,)"
            raise ConfigError(f"episode {i}: z must be (T, z_dim) and actions {want}, got {ze.shape} and {ae.shape}")
        z_dim = ze.shape[1] if z_dim is None else z_dim
        if ze.shape[1] != z_dim:
            raise ConfigError(f"episode {i}: z_dim {ze.shape[1]} differs from episode 0's {z_dim}")
        t = len(ae)
        if t == 0:
            continue
        if len(ze) not in (t, t + 1):
            raise ConfigError(f"episode {i}: z has {len(ze)} steps for {t} actions (need T or T+1)")
        if action_dim:
            if ae.dtype.kind not in "iuf":
                raise ActionError(f"episode {i}: continuous actions must be real numbers, got dtype {ae.dtype}")
            ae = ae.astype(np.float32)
            if not np.isfinite(ae).all():
                raise ActionError(f"episode {i}: continuous actions contain NaN or inf")
        elif ae.dtype.kind not in "iu":
            raise ActionError(f"episode {i}: actions must be integers, got dtype {ae.dtype}")
        elif ((ae < 0) | (ae >= n_actions)).any():
            raise ActionError(f"episode {i}: actions outside [0, {n_actions})")
        if not np.isfinite(ze).all():
            raise ConfigError(f"episode {i}: z has NaN or inf")
        for name, lst in (("rewards", rews), ("dones", dns)):
            if lst is not None and np.asarray(lst[i]).shape != (t,):
                raise ConfigError(f"episode {i}: {name} must have shape ({t},), got {np.asarray(lst[i]).shape}")
        nxt = np.zeros_like(ze[:t])
        nxt[:len(ze) - 1] = ze[1:]
        hn = np.zeros(t, bool)
        hn[:len(ze) - 1] = True
        z_in.append(ze[:t])
        z_nx.append(nxt)
        has.append(hn)
        aa.append(ae if action_dim else ae.astype(np.int64))
        rr.append(np.zeros(t, np.float32) if rews is None else np.asarray(rews[i], np.float32))
        dd.append(np.zeros(t, np.float32) if dns is None else np.asarray(dns[i]).astype(np.float32))
        lens.append(t)
    if not lens:
        raise ConfigError("every episode is empty")
    lengths = np.asarray(lens, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return _Flat(np.concatenate(z_in), np.concatenate(z_nx), np.concatenate(has), np.concatenate(aa),
                 np.concatenate(rr), np.concatenate(dd), offsets, lengths)


def _windows(flat: _Flat, seq_len: int | None, rng: np.random.Generator) -> np.ndarray:
    """``(W, 2)`` (start, length) of this epoch's windows, shuffled."""
    if seq_len is None:
        win = np.stack([flat.offsets, flat.lengths], 1)
    else:
        parts = []
        for off, n in zip(flat.offsets.tolist(), flat.lengths.tolist()):
            s0 = int(rng.integers(0, seq_len)) if n > seq_len else 0
            starts = np.arange(s0, n, seq_len)
            if s0 > 0:
                starts = np.concatenate([[0], starts])
            ends = np.minimum(np.append(starts[1:], n), starts + seq_len)
            parts.append(np.stack([off + starts, ends - starts], 1))
        win = np.concatenate(parts)
    return win[rng.permutation(len(win))]


def init_head_biases(model: MDNRNN, rewards: np.ndarray, dones: np.ndarray) -> None:
    """Start the reward head at the data's mean reward and the done head at the log-odds of the
    data's termination rate, Laplace-smoothed: ``logit((n_done + 1) / (n + 2))``.

    Why by hand: with rare or no terminations (CarRacing's random data has none), a done head
    started at logit 0 still predicts a hazard of about 1% per step after a short training, and
    sampled dream termination then ends every dream after ~100 steps for no reason in the data.
    ``rewards`` / ``dones``: ``(N,)`` per-transition targets.
    """
    n = max(1, len(dones))
    with torch.no_grad():
        if model.reward_fc is not None and len(rewards):
            model.reward_fc.bias.fill_(float(np.mean(rewards)))
        if model.done_fc is not None:
            p = (float(np.sum(dones)) + 1.0) / (n + 2.0)
            model.done_fc.bias.fill_(math.log(p / (1.0 - p)))


def train_mdnrnn(z: Any, actions: Any, rewards: Any, dones: Any, cfg: RNNTrainConfig | None = None,
                 device: str | torch.device = "cpu", progress: bool = False, seed: int = 0,
                 log: LogFn | None = None, model: MDNRNN | None = None) -> MDNRNN:
    """Train an :class:`MDNRNN` on encoded episodes; returns it in eval mode.

    Args:
        z: latents ``(N_ep, T or T+1, z_dim)`` or a list of per-episode arrays. With
            ``T+1`` steps the last one is the observation after the last action, so
            every transition has a ``z_{t+1}`` target; with ``T`` the last transition of
            each episode trains only the reward and done heads.
        actions: int ``(N_ep, T)`` or a list of ``(T_i,)``, in ``[0, n_actions)``; with
            ``cfg.action_dim = d > 0``: float ``(N_ep, T, d)`` or a list of ``(T_i, d)`` (finite).
        rewards: ``(N_ep, T)`` or a list (None only with ``reward_head=False``).
        dones: terminations ``(N_ep, T)`` (not time-limit truncations) or a list
            (None only with ``done_head=False``).
        cfg: hyperparameters (default :class:`RNNTrainConfig`).
        device: where to train.
        progress: tqdm bar over gradient steps.
        seed: seeds the initial weights, window offsets, batch order and dropout masks.
        log: ``log(step, {"rnn/loss", "rnn/mdn", "rnn/reward", "rnn/done", "rnn/epoch"})``,
            means since the last call, after every epoch (and every ``cfg.log_every`` steps).
        model: continue training this model (its config must match the data and ``cfg``).

    Loss: ``mdn_loss + reward_weight * MSE(reward) + done_weight * BCE(done)`` over the
    real (unpadded) steps; every sequence of a batch gets its own dropout masks
    (rate ``cfg.dropout``), fixed along the sequence.
    """
    from tqdm.auto import tqdm

    cfg = cfg or RNNTrainConfig()
    dev = resolve_device(device)
    flat = _flatten(z, actions, rewards, dones, cfg.n_actions, cfg.reward_head, cfg.done_head, cfg.action_dim)
    z_dim = flat.z_in.shape[1]
    mcfg = MDNRNNConfig(z_dim=z_dim, n_actions=cfg.n_actions, hidden=cfg.hidden, mixtures=cfg.mixtures,
                        dropout=cfg.dropout, reward_head=cfg.reward_head, done_head=cfg.done_head,
                        action_dim=cfg.action_dim)
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MDNRNN(mcfg)
        init_head_biases(model, flat.rewards, flat.dones)
    elif model.config != mcfg:
        raise ConfigError(f"model config {model.config} does not match data/cfg {mcfg}")
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    tz_in, tz_next = torch.from_numpy(flat.z_in).to(dev), torch.from_numpy(flat.z_next).to(dev)
    t_has, t_a = torch.from_numpy(flat.has_next).to(dev), torch.from_numpy(flat.actions).to(dev)
    t_r, t_d = torch.from_numpy(flat.rewards).to(dev), torch.from_numpy(flat.dones).to(dev)
    pos_weight = torch.tensor(cfg.done_pos_weight, device=dev)

    n_win = len(_windows(flat, cfg.seq_len, np.random.default_rng(seed)))  # about the same each epoch
    planned = cfg.epochs * -(-n_win // cfg.batch_size)
    limit = cfg.max_steps
    total = planned if limit is None else min(planned, limit)
    sums = torch.zeros(4, dtype=torch.float64, device=dev)
    count, step = 0, 0

    def flush(epoch: float) -> None:
        nonlocal count
        if count == 0:
            return
        m = (sums / count).tolist()
        if log is not None:
            log(step, {"rnn/loss": m[0], "rnn/mdn": m[1], "rnn/reward": m[2], "rnn/done": m[3],
                       "rnn/epoch": epoch})
        bar.set_postfix(loss=f"{m[0]:.3f}")
        sums.zero_()
        count = 0

    with tqdm(total=total, disable=not progress, desc="mdnrnn", unit="step") as bar:
        for epoch in range(cfg.epochs):
            win = _windows(flat, cfg.seq_len, rng)
            for lo in range(0, len(win), cfg.batch_size):
                if limit is not None and step >= limit:
                    break
                w = torch.from_numpy(win[lo:lo + cfg.batch_size]).to(dev)
                b, tmax = w.shape[0], int(w[:, 1].max())
                ar = torch.arange(tmax, device=dev)
                valid = ar[None, :] < w[:, 1:2]                                  # (B, T)
                idx = torch.where(valid, w[:, :1] + ar[None, :], w[:, :1])      # padding -> window start
                vf = valid.float()
                zi = tz_in[idx] * vf[..., None]
                va = valid if t_a.ndim == 1 else valid[..., None]
                fb = None
                if cfg.open_loop > 0 and tmax > 5 and rng.random() < cfg.open_loop:
                    fb = int(rng.integers(4, tmax))
                out = model(zi, torch.where(va, t_a[idx], 0),
                            masks=model.sample_masks(b, cfg.dropout, generator=gen, device=dev), feedback_from=fb)
                mdn = mdn_loss(out.logpi, out.mu, out.logsigma, tz_next[idx], mask=valid & t_has[idx])
                denom = vf.sum()
                r_loss = ((out.reward - t_r[idx]).pow(2) * vf).sum() / denom if cfg.reward_head \
                    else mdn.new_zeros(())
                if cfg.done_head:
                    bce = F.binary_cross_entropy_with_logits(out.done_logit, t_d[idx], pos_weight=pos_weight,
                                                             reduction="none")
                    d_loss = (bce * vf).sum() / denom
                else:
                    d_loss = mdn.new_zeros(())
                loss = mdn + cfg.reward_weight * r_loss + cfg.done_weight * d_loss
                check_loss(loss, step, "mdn-rnn")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sums += torch.stack([loss.detach(), mdn.detach(), r_loss.detach(), d_loss.detach()]).double()
                count += 1
                step += 1
                bar.update(1)
                if cfg.log_every and step % cfg.log_every == 0:
                    flush(epoch + min(1.0, (lo + cfg.batch_size) / len(win)))
            flush(float(epoch + 1))
            if limit is not None and step >= limit:
                break
    check_weights(model, "mdn-rnn")
    return model.eval()
