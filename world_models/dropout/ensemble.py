"""Ensemble dreams: one MDN-RNN dreams, several judge whether the dreamer dies.

Description:
    World Models' controllers exploit their dream: CMA-ES finds the actions for which the
    MDN-RNN's predicted states are wrong in the controller's favour (docs/results.md, "why the
    dream is still exploited"). Model-based RL's remedy (PETS, MOPO, MOReL) is an ensemble of
    models trained on the same data from different seeds, and pessimism where they disagree:
    what only one model believes is probably its error. Here the *primary* model (the variant's
    world model, the one whose features ``[z, h]`` the controller sees, in the dream and in the
    real game) dreams as in :class:`~simlab.world_models.dropout.dream.DreamCore` (its mask mode,
    temperature, start states); every *member* MDN-RNN follows the same dreamed latents and
    actions with its own LSTM state (started from its own burned-in state at the same real
    start frame, no dropout), and the step's termination probability is pooled over primary and
    members:

    - ``"max"``: the most pessimistic model's p_done (a death any model predicts ends the dream,
      or in ``done_mode="expected"`` discounts it): disagreement about danger counts as danger;
    - ``"mean"``: the ensemble's mean p_done (a plain ensemble average, no pessimism).

    Rewards, next latents and the controller's observation stay the primary's. The members cost
    one fused LSTM step and head each per dream step.
Arguments:
    model: the primary :class:`DropoutWorldModel`; members: ``[(MDNRNN, start_h (M, H'), start_c
    (M, H'))]`` with ``M`` = the primary's start rows (the same real frames, in the same order);
    pool: ``"max"`` or ``"mean"``; everything else as :class:`DreamCore`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simlab.errors import ConfigError
from simlab.world_models.dropout.dream import DreamCore, DreamVecEnv, FusedStep
from simlab.world_models.dropout.model import DropoutWorldModel

POOLS = ("max", "mean")
"""How an ensemble dream pools its models' termination probabilities (see the module docstring)."""


def pool_probs(p: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool termination probabilities ``(models, N)`` -> ``(N,)``: their max or their mean."""
    if pool == "max":
        return p.max(dim=0).values
    if pool == "mean":
        return p.mean(dim=0)
    raise ConfigError(f"unknown ensemble pool {pool!r}; choose one of {', '.join(POOLS)}")


class EnsembleDreamCore(DreamCore):
    """A :class:`DreamCore` whose termination probability is pooled over the primary model and
    ``members`` (see the module docstring). Member states: ``mh``, ``mc`` lists of ``(N, H_j)``."""

    def __init__(self, model: DropoutWorldModel, members: list[tuple[Any, torch.Tensor, torch.Tensor]],
                 pool: str = "max", **kw: Any) -> None:
        if pool not in POOLS:
            raise ConfigError(f"unknown ensemble pool {pool!r}; choose one of {', '.join(POOLS)}")
        super().__init__(model, **kw)
        self.pool = pool
        m_rows = int(model.start_z.shape[0])
        self.fused_members: list[FusedStep] = []
        self.member_starts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for j, (rnn, h0, c0) in enumerate(members):
            if rnn.z_dim != model.z_dim or rnn.action_width != model.rnn.action_width:
                raise ConfigError(f"ensemble member {j}: z_dim {rnn.z_dim} / action width {rnn.action_width} "
                                  f"differ from the primary's {model.z_dim} / {model.rnn.action_width}")
            if tuple(h0.shape) != (m_rows, rnn.hidden) or tuple(c0.shape) != (m_rows, rnn.hidden):
                raise ConfigError(f"ensemble member {j}: start states must be ({m_rows}, {rnn.hidden}), "
                                  f"got {tuple(h0.shape)} / {tuple(c0.shape)}")
            if rnn.done_fc is None:
                raise ConfigError(f"ensemble member {j} has no done head: it cannot judge deaths")
            rnn.to(self.device)
            self.fused_members.append(FusedStep(rnn, self.fused.precision))
            self.member_starts.append((h0.to(self.device), c0.to(self.device)))
        n = self.num_envs
        self.mh = [torch.zeros(n, f.rnn.hidden, device=self.device) for f in self.fused_members]
        self.mc = [torch.zeros(n, f.rnn.hidden, device=self.device) for f in self.fused_members]

    @torch.no_grad()
    def reset_slots(self, idx: np.ndarray | None, start_index: Any = None) -> np.ndarray:
        """As :meth:`DreamCore.reset_slots`; each member starts from its own state at the same row."""
        obs = super().reset_slots(idx, start_index)
        sel = slice(None) if idx is None else idx
        k = torch.from_numpy(self.start_idx[sel]).to(self.device)
        for j, (h0, c0) in enumerate(self.member_starts):
            if idx is None:
                self.mh[j], self.mc[j] = h0[k].clone(), c0[k].clone()
            else:
                it = torch.from_numpy(idx).to(self.device)
                self.mh[j][it] = h0[k]
                self.mc[j][it] = c0[k]
        return obs

    def pool_done(self, p_done: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Advance every member on ``(z_t, a_t)`` and pool its p_done with the primary's ``(N,)``."""
        ps = [p_done]
        for j, fused in enumerate(self.fused_members):
            h, c = fused.cell(self.z, a, self.mh[j], self.mc[j], None)
            self.mh[j], self.mc[j] = h, c
            ps.append(torch.sigmoid(fused.heads(h)[3]))
        return pool_probs(torch.stack(ps), self.pool)


def ensemble_vec_env(model: DropoutWorldModel, members: list[tuple[Any, torch.Tensor, torch.Tensor]],
                     num_envs: int, pool: str = "max", mask_mode: str = "per_episode",
                     dropout: float | None = None, temperature: float = 1.0, max_episode_steps: int = 1000,
                     device: str | torch.device = "cpu", seed: int = 0, mc_samples: int = 8,
                     precision: str = "float32", done_mode: str = "sample",
                     render_mode: str | None = None) -> DreamVecEnv:
    """A :class:`DreamVecEnv` of ``num_envs`` ensemble dreams (arguments as :class:`DreamVecEnv`)."""
    core = EnsembleDreamCore(model, members, pool, num_envs=num_envs, mask_mode=mask_mode, dropout=dropout,
                             temperature=temperature, max_episode_steps=max_episode_steps, device=device,
                             seed=seed, mc_samples=mc_samples, precision=precision, done_mode=done_mode)
    return DreamVecEnv.from_core(core, render_mode)
