"""In-template vs out-of-template table: abnormal rate per kind (95% CI), SSIM, PSNR.

The paper's Table 2 reports the share of generated videos that human raters
judged abnormal, for unseen variants of training templates (in-template) and
for held-out templates (out-of-template). Here the raters are the detector of
:mod:`.abnormality`; SSIM and PSNR compare each generated video with its ground
truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from simlab.envs.combinatorial.abnormality import (
    KINDS,
    check_video,
    psnr,
    scores,
    ssim,
    thresholds_for,
)
from simlab.errors import ConfigError
from simlab.stats import wilson as wilson_ci

REPORT_VERSION = 1


def split_table(generated: np.ndarray, truth: np.ndarray, thresholds: dict[str, float] | None = None) -> dict:
    """Figures of one split.

    Args:
        generated, truth: ``(N, T, H, W, 3)`` uint8, video ``i`` of both from the same start frame.
        thresholds: detector thresholds (default: calibrated ones for the resolution).

    Returns:
        ``{"videos": N, "abnormal": {kind | "any": {"rate", "ci95", "count"}}, "ssim": {"mean", "ci95"},
        "psnr": {"mean", "ci95", "infinite"}, "ground_truth_abnormal": count}``
    """
    generated, truth = np.asarray(generated), np.asarray(truth)
    if generated.shape != truth.shape or generated.ndim != 5 or len(generated) == 0:
        raise ConfigError(f"generated and ground-truth videos must share a shape (N>=1, T, H, W, 3), "
                          f"got {generated.shape} and {truth.shape}")
    th = thresholds if thresholds is not None else thresholds_for(generated.shape[2])
    n = len(generated)
    hits = {k: 0 for k in (*KINDS, "any")}
    gt_hits = 0
    ss, ps = [], []
    for g, t in zip(generated, truth):
        sc = scores(check_video(g))
        flagged = [k for k in KINDS if sc[k] > th[k]]
        for k in flagged:
            hits[k] += 1
        hits["any"] += bool(flagged)
        gt_hits += any(v > th[k] for k, v in scores(t).items())
        ss.append(ssim(g, t))
        ps.append(psnr(g, t))
    finite = np.array([p for p in ps if math.isfinite(p)])
    return {
        "videos": n,
        "abnormal": {k: {"rate": c / n, "ci95": list(wilson_ci(c, n)), "count": c} for k, c in hits.items()},
        "ssim": _mean_ci(np.array(ss)),
        "psnr": {**_mean_ci(finite), "infinite": int(n - len(finite))},
        "ground_truth_abnormal": gt_hits,
    }


def _mean_ci(x: np.ndarray) -> dict[str, float | list[float] | None]:
    if len(x) == 0:
        return {"mean": None, "ci95": None}
    m = float(x.mean())
    h = 1.96 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return {"mean": m, "ci95": [m - h, m + h]}


def combinatorial_report(splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         thresholds: dict[str, float] | None = None, meta: dict | None = None) -> dict:
    """JSON-ready report: ``{"report_version", "meta", "splits": {name: split_table(...)}}``.

    ``splits`` maps a name (``test_in`` / ``test_out``, or e.g. ``test_in@30``) to
    ``(generated, truth)`` arrays as in :func:`split_table`.
    """
    if not splits:
        raise ConfigError("combinatorial_report needs at least one split")
    return {"report_version": REPORT_VERSION, "meta": dict(meta or {}),
            "splits": {name: split_table(g, t, thresholds) for name, (g, t) in splits.items()}}


def _pct(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['rate']:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def _num(d: dict, digits: int) -> str:
    return "-" if d["mean"] is None else f"{d['mean']:.{digits}f}"


def format_markdown(report: dict) -> str:
    """Markdown table of :func:`combinatorial_report`: one row per split."""
    kinds = ("any", *KINDS)
    head = "| split | videos | " + " | ".join("abnormal" if k == "any" else k for k in kinds) \
        + " | SSIM | PSNR (dB) |"
    lines = [head, "|" + "---|" * (len(kinds) + 4)]
    for name, s in report["splits"].items():
        cells = [name, str(s["videos"]), *[_pct(s["abnormal"][k]) for k in kinds],
                 _num(s["ssim"], 3), _num(s["psnr"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Abnormal: share of videos the automatic detector flags (95% Wilson CI); "
                 "ground truth is flagged in "
                 + ", ".join(f"{n}: {s['ground_truth_abnormal']}/{s['videos']}" for n, s in report["splits"].items())
                 + ".")
    return "\n".join(lines) + "\n"
