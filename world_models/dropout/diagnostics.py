"""What a dropout world model can see and predict: hazard recall and multi-step error.

- :func:`hazard_recall`: the fraction of ground-truth hazards (the games record
  every fireball's box) that are still visible in the VAE's reconstruction.
- :func:`multistep_errors`: open-loop prediction error of the MDN-RNN vs horizon,
  in latent space and as decoded frames, beside the "repeat the last frame"
  predictor, on real sequences the model never saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simlab.errors import ConfigError

FG_THRESHOLD = 25
"""uint8 colour distance (any channel) from the background that makes a pixel part of a sprite."""


def background_colour(frames: np.ndarray) -> np.ndarray:
    """Per-frame background colour ``(N, 3)``: the per-channel median of ``(N, H, W, 3)`` frames."""
    return np.median(frames.reshape(len(frames), -1, frames.shape[-1]), axis=1)


def hazard_recall(real: np.ndarray, recon: np.ndarray, boxes: np.ndarray,
                  min_visible: float = 0.5) -> dict[str, Any]:
    """Fraction of hazards whose reconstruction is visible.

    A hazard is a ground-truth box ``[x0, y0, x1, y1)`` (``boxes`` ``(N, K, 4)``, ``-1`` rows
    empty) in ``real`` frames ``(N, 64, 64, 3)`` uint8. Its pixels are those of the box that
    differ from the frame's background (:func:`background_colour`) by more than
    :data:`FG_THRESHOLD` in some channel. A pixel is *recalled* when its reconstruction (``recon``,
    same shape) is nearer (L1 over channels) to the real colour than to the background colour of
    both frames (the real one's and the reconstruction's own median colour, so a uniformly grey or
    blurred reconstruction recalls nothing); the hazard is *visible* when at least ``min_visible``
    of its pixels are recalled.

    Returns:
        ``{"recall": visible / hazards (nan if none), "hazards": int, "visible": int}``.
    """
    if real.shape != recon.shape or boxes.ndim != 3 or boxes.shape[0] != len(real) or boxes.shape[2] != 4:
        raise ConfigError(f"hazard_recall: frames {real.shape} / {recon.shape} and boxes {boxes.shape} do not match")
    bg = background_colour(real).astype(np.int64)
    bg_q = background_colour(recon).astype(np.int64)
    total = visible = 0
    for i, j in zip(*np.nonzero(boxes[..., 0] >= 0)):
        x0, y0, x1, y1 = (int(v) for v in boxes[i, j])
        r = real[i, y0:y1, x0:x1].astype(np.int64)
        q = recon[i, y0:y1, x0:x1].astype(np.int64)
        sprite = (np.abs(r - bg[i]).max(-1) > FG_THRESHOLD)
        if not sprite.any():
            continue
        d = np.abs(q - r).sum(-1)
        near_real = (d < np.abs(q - bg[i]).sum(-1)) & (d < np.abs(q - bg_q[i]).sum(-1))
        total += 1
        visible += int(near_real[sprite].mean() >= min_visible)
    return {"recall": visible / total if total else float("nan"), "hazards": total, "visible": visible}


def mixture_mean(logpi: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Expected next latent of a per-dimension mixture: ``sum_k pi_k mu_k`` over ``(B, K, z)`` -> ``(B, z)``."""
    return (logpi.exp() * mu).sum(dim=-2)


@torch.no_grad()
def multistep_errors(model: Any, frames: np.ndarray, actions: np.ndarray, horizons: list[int],
                     burn_in: int = 16, device: str | torch.device = "cpu") -> dict[str, list[float]]:
    """Open-loop prediction error of the MDN-RNN vs horizon on real sequences (no dropout).

    Args:
        model: a ``DropoutWorldModel`` (``.vae``, ``.rnn``).
        frames: ``(B, T + 1, 64, 64, 3)`` uint8 real sequences; ``actions``: ``(B, T)`` their
            actions (long ids or float vectors); ``T >= burn_in + max(horizons)``.
        horizons: steps ahead to report (1 = the next frame).
        burn_in: real steps fed to the RNN (teacher forcing) before predicting open loop; after
            it the RNN consumes its own predicted latents (the mixture mean) and the real actions.

    Returns:
        ``{"horizon", "latent_mse", "latent_mse_repeat", "frame_mse", "frame_mse_repeat",
        "frame_mse_vae"}``, lists aligned with ``horizon``: mean squared error of the predicted
        latent vs the encoded real frame (``_repeat``: holding the last real latent / frame), and
        of the decoded prediction vs the real frame in [0, 1] (``_vae``: the VAE's own
        reconstruction of that frame, the floor).
    """
    b, t1 = frames.shape[:2]
    hmax = max(horizons)
    if burn_in < 1 or t1 < burn_in + hmax:
        raise ConfigError(f"multistep_errors: sequences of {t1} frames are too short for burn-in "
                          f"{burn_in} + horizon {hmax}")
    vae, rnn = model.vae, model.rnn
    flat = frames[:, :burn_in + hmax].reshape(-1, *frames.shape[2:])
    z = vae.encode(torch.as_tensor(flat, device=device))[0].reshape(b, burn_in + hmax, -1)
    real = torch.as_tensor(flat, device=device).float().div(255).reshape(b, burn_in + hmax, *frames.shape[2:])
    act = torch.as_tensor(np.asarray(actions), device=device)
    act = act if rnn.continuous else act.long()
    state = None
    for t in range(burn_in):
        out = rnn.step(z[:, t], act[:, t], state)
        state = out.state
    pred = mixture_mean(out.logpi, out.mu)  # z[burn_in] predicted
    res: dict[str, list[float]] = {k: [] for k in ("horizon", "latent_mse", "latent_mse_repeat", "frame_mse",
                                                   "frame_mse_repeat", "frame_mse_vae")}
    last_z, last_f = z[:, burn_in - 1], real[:, burn_in - 1]
    for k in range(1, hmax + 1):
        t = burn_in + k - 1
        if k in horizons:
            dec, rec = vae.decode(pred), vae.decode(z[:, t])  # (B, 64, 64, C) in [0, 1]
            res["horizon"].append(k)
            res["latent_mse"].append(float((pred - z[:, t]).pow(2).mean()))
            res["latent_mse_repeat"].append(float((last_z - z[:, t]).pow(2).mean()))
            res["frame_mse"].append(float((dec - real[:, t]).pow(2).mean()))
            res["frame_mse_repeat"].append(float((last_f - real[:, t]).pow(2).mean()))
            res["frame_mse_vae"].append(float((rec - real[:, t]).pow(2).mean()))
        if k < hmax:
            out = rnn.step(pred, act[:, t], state)
            state = out.state
            pred = mixture_mean(out.logpi, out.mu)
    return res


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (the Mann-Whitney statistic,
    ties counted half); nan without both classes."""
    from simlab.policies.panel import rankdata

    y = np.asarray(labels, bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    r = rankdata(np.asarray(scores, np.float64))
    return float((r[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


@torch.no_grad()
def death_prediction(model: Any, episodes: list[dict[str, np.ndarray]], device: str | torch.device = "cpu"
                     ) -> dict[str, float]:
    """How well the done head predicts real deaths when fed the REAL latents (teacher forcing).

    ``episodes``: dicts with ``observations`` ``(T + 1, 64, 64, 3)`` uint8, ``actions`` ``(T,)`` and
    ``terminations`` ``(T,)``. Returns ``{"auc", "deaths", "steps", "p_at_death", "p_other"}``:
    a high AUC with dreams that rarely kill says the dream's own rollouts, not the done head, lose
    the danger.
    """
    ps, ys = [], []
    for ep in episodes:
        z = model.vae.encode(torch.as_tensor(ep["observations"][:-1], device=device))[0]
        a = torch.as_tensor(np.asarray(ep["actions"]), device=device)
        out = model.rnn(z[None], (a if model.rnn.continuous else a.long())[None])
        ps.append(torch.sigmoid(out.done_logit[0]).cpu().numpy())
        ys.append(np.asarray(ep["terminations"], bool))
    p, y = np.concatenate(ps), np.concatenate(ys)
    return {"auc": auc(p, y), "deaths": int(y.sum()), "steps": len(y),
            "p_at_death": float(p[y].mean()) if y.any() else float("nan"),
            "p_other": float(p[~y].mean()) if (~y).any() else float("nan")}


__all__ = ["auc", "background_colour", "death_prediction", "hazard_recall", "mixture_mean", "multistep_errors"]
