"""Does the dream know which action avoids a death? A counterfactual test against the real game.

Dream fidelity (a panel's dream vs real returns) says *whether* a dream ranks
controllers; this test says *why not*. From real mid-episode states reached by a
data policy, every action of a small set is held for ``horizon`` steps twice:

- in a deep copy of the real batched game (simlab's procgen-like games are numpy
  state, so ``copy.deepcopy`` branches them exactly), which says whether that
  action really dies;
- in the dream, burned in on the real frames and actions of the episode so far,
  open loop (its own sampled latents), which gives its death probability
  ``1 - prod(1 - p_done)`` over the same steps.

Two figures come out. **AUC**: the dream's death probability against the real
outcome over all (state, action) pairs: does it know *when* the agent is in
danger? **Action accuracy**: over the pairs of one state where one action really
dies and another really lives, the fraction where the dream gives the dying one
the higher probability (0.5 = chance): does it know *which move saves the
agent*? A controller trained in the dream can only learn to dodge what the
second figure sees. Both are also given teacher forced (the done head fed the
latents of the real counterfactual frames), the ceiling the dynamics could reach.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from simlab.errors import ConfigError
from simlab.world_models.dropout.diagnostics import auc


def _dream_death(model: Any, z0: torch.Tensor, state: Any, action: int, steps: int, samples: int,
                 gen: torch.Generator) -> torch.Tensor:
    """Open-loop dream death probability ``(M,)`` of M start states (``z0`` ``(M, z_dim)``, ``state``
    ``(h, c)`` ``(M, hidden)`` each) over ``steps`` steps of ``action``, averaged over ``samples``
    dreams each (sampled latents at temperature 1)."""
    from simlab.world_models.dropout.mdnrnn import sample_next_z

    m = z0.shape[0]
    z = z0.repeat_interleave(samples, 0)
    h, c = (s.repeat_interleave(samples, 0) for s in state)
    alive = torch.ones(m * samples, device=z.device)
    a = torch.full((m * samples,), int(action), dtype=torch.long, device=z.device)
    for _ in range(steps):
        out = model.rnn.step(z, a, (h, c))
        h, c = out.state
        alive = alive * (1 - torch.sigmoid(out.done_logit))
        z = sample_next_z(out.logpi, out.mu, out.logsigma, 1.0, generator=gen)
    return 1 - alive.view(m, samples).mean(1)


def _forced_death(model: Any, z0: torch.Tensor, state: Any, action: int, frames: np.ndarray,
                  device: Any) -> torch.Tensor:
    """Death probability ``(M,)`` over the real counterfactual frames ``(k, M, 64, 64, 3)`` (teacher
    forced: the done head fed the latents of what really happened)."""
    k, m = frames.shape[:2]
    z_next = model.vae.encode(torch.as_tensor(frames.reshape(k * m, *frames.shape[2:]), device=device))[0]
    z_next = z_next.view(k, m, -1).transpose(0, 1)                      # (M, k, z_dim)
    z_in = torch.cat([z0[:, None], z_next[:, :-1]], dim=1)
    a = torch.full((m, k), int(action), dtype=torch.long, device=device)
    out = model.rnn(z_in, a, state=state)
    return 1 - torch.prod(1 - torch.sigmoid(out.done_logit), dim=1)


def action_accuracy(groups: dict[Any, list[tuple[bool, float]]]) -> tuple[float, int]:
    """``(accuracy, pairs)``: over every state's (dies, lives) pairs of actions, the fraction where the
    dying action has the higher predicted death probability (ties count half); nan without pairs.

    ``groups``: ``{state: [(really_died, predicted_p), ...]}``, one entry per action.
    """
    hit, n = 0.0, 0
    for rows in groups.values():
        for d1, p1 in rows:
            if not d1:
                continue
            for d2, p2 in rows:
                if d2:
                    continue
                n += 1
                hit += 1.0 if p1 > p2 else 0.5 if p1 == p2 else 0.0
    return (hit / n if n else float("nan")), n


@torch.no_grad()
def counterfactual_test(model: Any, make_env: Callable[[int, int], Any], policy: Any, actions: Sequence[int],
                        horizon: int = 8, num_envs: int = 64, start_after: int = 60, every: int = 20,
                        branches: int = 12, min_history: int = 16, samples: int = 16, seed: int = 0,
                        device: str | torch.device = "cpu") -> dict[str, Any]:
    """The counterfactual test (module docstring) on ``branches`` branch points.

    Args:
        model: a DropoutWorldModel (``.vae``, ``.rnn`` with a done head, discrete actions).
        make_env: ``make_env(num_envs, seed)`` -> the REAL batched VectorEnv (same-step autoreset,
            ``final_obs`` in info), deep-copyable (simlab's procgen-like games are).
        policy: the data policy that leads the real envs between branch points (``act(obs)``).
        actions: the env actions held in the branches (e.g. LEFT, STAY, RIGHT).
        horizon: steps each action is held (the real outcome: a termination within them).
        num_envs: real envs run together; branch points at steps ``start_after + i * every``.
        min_history: envs whose episode is younger are skipped at a branch point (the dream needs
            a burn-in).
        samples: dreams per (state, action).

    Returns:
        ``{"pairs", "real_deaths", "auc", "auc_teacher_forced", "action_accuracy",
        "action_accuracy_teacher_forced", "action_pairs", "death_rate": {action: [real, dream]},
        "horizon"}``.
    """
    if model.rnn.continuous or model.rnn.done_fc is None:
        raise ConfigError("the counterfactual test needs a discrete-action world model with a done head")
    if horizon < 1 or branches < 1 or not actions:
        raise ConfigError("counterfactual_test needs horizon >= 1, branches >= 1 and at least one action")
    env = make_env(num_envs, seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    frames, _ = env.reset(seed=seed)
    # Every env's MDN-RNN state is burned in as the real episode goes (teacher forcing, one batched
    # step per real step), so a branch point costs nothing: z_cur is the current frame's latent,
    # (h, c) the state after the episode's earlier frames and actions, age its steps so far.
    z_cur = model.vae.encode(torch.as_tensor(frames, device=device))[0]
    h, c = model.rnn.initial_state(num_envs, device)
    age = np.zeros(num_envs, np.int64)
    points = {start_after + i * every for i in range(branches)}
    real, dream, forced = [], [], []
    groups_d: dict[Any, list[tuple[bool, float]]] = {}
    groups_f: dict[Any, list[tuple[bool, float]]] = {}
    by_action: dict[int, list[tuple[bool, float]]] = {int(a): [] for a in actions}
    try:
        for t in range(max(points) + 1):
            if t in points:
                ok = [i for i in range(num_envs) if age[i] >= min_history]
                if not ok:
                    continue
                rows = torch.as_tensor(ok, device=z_cur.device)
                z0, st = z_cur[rows], (h[rows], c[rows])
                for a in actions:
                    branch = copy.deepcopy(env)
                    died = np.zeros(num_envs, bool)
                    live = np.ones(num_envs, bool)
                    seen: list[np.ndarray] = []
                    for _ in range(horizon):
                        fr, _, term, trunc, info = branch.step(np.full(num_envs, int(a)))
                        fr = fr.copy()
                        end = np.asarray(term) | np.asarray(trunc)
                        for i in np.nonzero(end & live)[0]:
                            fr[i] = info["final_obs"][i]
                        died |= np.asarray(term, bool) & live
                        seen.append(np.where(live[:, None, None, None], fr, seen[-1] if seen else fr))
                        live &= ~end
                    branch.close()
                    seen_arr = np.stack(seen)[:, ok]  # (horizon, M, 64, 64, 3); frozen after an episode end
                    pd = _dream_death(model, z0, st, int(a), horizon, samples, gen).cpu().numpy()
                    pf = _forced_death(model, z0, st, int(a), seen_arr, device).cpu().numpy()
                    for j, i in enumerate(ok):
                        d = bool(died[i])
                        real.append(d)
                        dream.append(float(pd[j]))
                        forced.append(float(pf[j]))
                        groups_d.setdefault((t, i), []).append((d, float(pd[j])))
                        groups_f.setdefault((t, i), []).append((d, float(pf[j])))
                        by_action[int(a)].append((d, float(pd[j])))
            act = np.asarray(policy.act(frames)).reshape(num_envs)
            h, c = model.rnn.step(z_cur, torch.as_tensor(act, device=device).long(), (h, c)).state
            frames, _, term, trunc, _ = env.step(act)
            end = np.asarray(term) | np.asarray(trunc)
            z_cur = model.vae.encode(torch.as_tensor(frames, device=device))[0]
            age += 1
            if end.any():  # new episodes start from a zero state
                m = torch.as_tensor(end, device=h.device)
                h, c = h.masked_fill(m[:, None], 0.0), c.masked_fill(m[:, None], 0.0)
                age[end] = 0
            if end.any() and callable(getattr(policy, "reset", None)):
                policy.reset(end)
    finally:
        env.close()
    y = np.array(real, bool)
    acc_d, n_pairs = action_accuracy(groups_d)
    acc_f, _ = action_accuracy(groups_f)
    return {"pairs": len(y), "real_deaths": int(y.sum()), "horizon": int(horizon),
            "auc": auc(np.array(dream), y), "auc_teacher_forced": auc(np.array(forced), y),
            "action_accuracy": acc_d, "action_accuracy_teacher_forced": acc_f, "action_pairs": n_pairs,
            "death_rate": {str(a): [float(np.mean([d for d, _ in v])) if v else float("nan"),
                                    float(np.mean([p for _, p in v])) if v else float("nan")]
                           for a, v in by_action.items()}}


__all__ = ["action_accuracy", "counterfactual_test"]
