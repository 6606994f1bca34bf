"""Real transitions as the diffusion dream's training windows, and frame conversions.

A window is one real transition with its context: the ``context`` frames up to
and including ``obs_t`` (oldest first), the actions after each of them (the last
is ``a_t``), the next frame ``obs_{t+1}``, the reward and the termination flag.
Before an episode's first step the context repeats the first frame and the
actions are the padding id ``n_actions``.

Everything is plain numpy: frames are uint8 ``(H, W, 3)`` at the dream's
resolution (the real 64 x 64 frames are area-downscaled by an integer factor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from simlab.errors import ConfigError, DatasetError


def downscale(frames: np.ndarray, resolution: int) -> np.ndarray:
    """Area-average uint8 frames ``(..., S, S, 3)`` to ``(..., resolution, resolution, 3)`` (S a
    multiple of ``resolution``; returned unchanged when equal)."""
    f = np.asarray(frames)
    s = f.shape[-2]
    if f.shape[-3] != s or f.shape[-1] != 3:
        raise ConfigError(f"frames must be (..., S, S, 3), got {f.shape}")
    if s == resolution:
        return f.astype(np.uint8, copy=False)
    if resolution < 1 or s % resolution:
        raise ConfigError(f"cannot downscale {s}x{s} frames to {resolution}x{resolution} (not a divisor)")
    k = s // resolution
    g = f.reshape(*f.shape[:-3], resolution, k, resolution, k, 3).astype(np.float32).mean(axis=(-4, -2))
    return np.clip(np.rint(g), 0, 255).astype(np.uint8)


def upscale(frames: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour uint8 frames ``(..., r, r, 3)`` -> ``(..., size, size, 3)``."""
    f = np.asarray(frames)
    k = size // f.shape[-2]
    if k * f.shape[-2] != size:
        raise ConfigError(f"cannot upscale {f.shape[-2]}x{f.shape[-2]} frames to {size}x{size}")
    return f if k == 1 else f.repeat(k, axis=-3).repeat(k, axis=-2)


def to_model(frames: Any) -> Any:
    """uint8 frames ``(..., H, W, 3)`` (numpy or torch) -> float ``(..., 3, H, W)`` torch in [-1, 1]."""
    import torch

    t = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    return t.float().div(127.5).sub(1.0).movedim(-1, -3)


def to_uint8(x: Any) -> np.ndarray:
    """Model-space frames ``(..., 3, H, W)`` torch -> uint8 ``(..., H, W, 3)`` numpy."""
    import torch

    return x.detach().movedim(-3, -1).add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


@dataclass
class Windows:
    """Every training window of a set of episodes, as index arrays into one frame table.

    Attributes:
        frames: ``(F, H, W, 3)`` uint8, every frame of every episode (episode e's ``T_e + 1``).
        ctx: ``(N, context)`` int64 indices into ``frames`` of each window's context frames.
        ctx_actions: ``(N, context)`` int64 actions after each context frame (``n_actions`` = pad).
        next: ``(N,)`` int64 index of the next frame; ``actions``: ``(N,)`` the action taken.
        rewards: ``(N,)`` float32; ``dones``: ``(N,)`` bool (terminations, not truncations).
        episode: ``(N,)`` episode number; ``step``: ``(N,)`` step in the episode.
        n_actions, context, resolution: as configured.
    """

    frames: np.ndarray
    ctx: np.ndarray
    ctx_actions: np.ndarray
    next: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    n_actions: int
    context: int
    resolution: int

    def __len__(self) -> int:
        return len(self.next)

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Windows ``idx``: ``ctx`` ``(B, K, H, W, 3)`` uint8, ``ctx_actions`` ``(B, K)``, ``next``
        ``(B, H, W, 3)`` uint8, ``action`` ``(B,)``, ``reward`` ``(B,)``, ``done`` ``(B,)``."""
        return {"ctx": self.frames[self.ctx[idx]], "ctx_actions": self.ctx_actions[idx],
                "next": self.frames[self.next[idx]], "action": self.actions[idx],
                "reward": self.rewards[idx], "done": self.dones[idx]}


def build_windows(episodes: Iterable[dict[str, Any]], n_actions: int, context: int, resolution: int) -> Windows:
    """:class:`Windows` of episodes as yielded by ``TransitionDataset.episodes()`` (``observations``
    ``(T+1, S, S, 3)`` uint8, ``actions`` ``(T,)`` ids, ``rewards``, ``terminations`` ``(T,)``)."""
    frames, ctx, cact, nxt, act, rew, done, epi, stp = [], [], [], [], [], [], [], [], []
    base = 0
    for e, ep in enumerate(episodes):
        obs = downscale(ep["observations"], resolution)
        a = np.asarray(ep["actions"])
        if a.ndim != 1:
            raise DatasetError("the diffusion dream needs discrete actions (ids), got action vectors")
        t = len(a)
        if len(obs) != t + 1:
            raise DatasetError(f"episode {e}: {len(obs)} observations for {t} actions (expected T+1)")
        if t and (a.min() < 0 or a.max() >= n_actions):
            raise DatasetError(f"episode {e}: action ids outside [0, {n_actions})")
        frames.append(obs)
        steps = np.arange(t)
        offs = np.arange(-context + 1, 1)
        fi = np.clip(steps[:, None] + offs[None, :], 0, None)           # (T, K) frame in episode
        ai = steps[:, None] + offs[None, :]                              # (T, K) action index
        padded = np.concatenate([np.full(context, n_actions, np.int64), a.astype(np.int64)])
        ctx.append(base + fi)
        cact.append(padded[ai + context])
        nxt.append(base + steps + 1)
        act.append(a.astype(np.int64))
        rew.append(np.asarray(ep["rewards"], np.float32))
        done.append(np.asarray(ep["terminations"], bool))
        epi.append(np.full(t, e, np.int64))
        stp.append(steps)
        base += t + 1
    if not frames or base == len(frames):
        raise DatasetError("no transitions to train the diffusion dream on")
    cat = np.concatenate
    return Windows(cat(frames), cat(ctx), cat(cact), cat(nxt), cat(act), cat(rew), cat(done), cat(epi), cat(stp),
                   int(n_actions), int(context), int(resolution))


def start_windows(w: Windows, every: int, danger: int = 0) -> np.ndarray:
    """Window indices dreams start from: steps ``0, every, 2 every...`` of every episode, plus the
    steps ``2, 4, ..., danger`` before every real death (where the data policy failed to dodge)."""
    take = (w.step % every) == 0
    if danger > 0:
        death = np.flatnonzero(w.dones)
        for k in range(2, danger + 1, 2):
            j, d = death - k, death
            ok = j >= 0
            j, d = j[ok], d[ok]
            take[j[w.episode[j] == w.episode[d]]] = True
    return np.flatnonzero(take)


__all__ = ["Windows", "build_windows", "downscale", "start_windows", "to_model", "to_uint8", "upscale"]
