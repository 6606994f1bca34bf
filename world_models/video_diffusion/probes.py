"""Case-based probes of a video diffusion world model (Kang et al. 2024, Sec. 5): one function each.

**Velocity-gap probe** (:func:`run_gap_probe`, ``simlab eval gap-probe``). A model trained on
``gap_train`` (speeds ``v`` in [1, 1.5] U [3.5, 4] world units / s, one ball, uniform motion) is
asked to continue ``gap_test`` videos (``v`` in the gap [1.5, 3.5]). Does it predict the speeds it
never saw, or does it pull them to the gap's edges (the paper's "case-based" generalisation)?

- ``v_true``: the video's speed parameter (``param_v``), world units / s.
- ``v_pred``: the mean horizontal velocity of the parsed ball (the paper's colour parser) over
  the frame pairs the paper's metric scores in which the predicted ball is also fully in view
  (:func:`predicted_velocity`), world units / s. The paper's velocity error of the same videos
  is reported beside it.
- ``abs_error``: mean |v_pred - v_true| over all scored videos (with a 95% CI).
- Snapping, over the **core** videos, those with ``v_true`` at least ``2 * band`` inside both
  edges ([2.0, 3.0] for the default ``band`` = 0.25), so that a correct prediction lies well away
  from the edges:

  - ``within_gap``: ``v_pred`` in the open interval (1.5 + band, 3.5 - band);
  - ``near_edge`` ("snapped"): ``|v_pred - 1.5| <= band`` or ``|v_pred - 3.5| <= band``;
  - ``other``: the rest (deeper in the training ranges, beyond them, or no velocity parsed).

  A predictor that follows the law has ``within_gap`` ~ 1 and ``near_edge`` ~ 0; one that
  copies its nearest training case has ``near_edge`` ~ 1.
- ``edge_pull``: mean over the core of ``(v_pred - v_true) * sign(e - v_true)``, ``e`` the
  edge nearer to ``v_true``: > 0 when predictions move toward the nearer edge, world units / s.
- ``slope``: least-squares slope of ``v_pred`` on ``v_true`` over the core: 1 follows the truth,
  0 ignores it, and a jump from one edge to the other at the gap's middle (snapping to the nearer
  edge) gives about 3 over the default core.

The same numbers are given for the references of :mod:`.evaluate` (ground-truth parse,
repeat-last-frame, constant-velocity extrapolation), all from one pass of
:func:`~.evaluate.evaluate_model`. Writes ``gap_probe.json``, ``gap_probe.md`` and
``gap_probe.png`` (predicted vs true speed, and histograms of predicted speed, gap edges marked).

**Attribute priority probe** (:func:`run_attribute_probe`, ``simlab eval attribute-probe``).
On each ``pair_<a>_<b>_test`` split of :mod:`simlab.envs.collision2d.attributes` (training saw
only the combinations ``(a1, b1)``, ``(a2, b2)``; the test shows ``(a1, b2)``, ``(a2, b1)``), a
model trained on the matching ``pair_<a>_<b>_train`` continues the videos and
:func:`~simlab.envs.collision2d.attributes.attribute_consistency` says which attributes it kept.
Per pair: the consistency rate of each attribute, which of the two the model keeps more often
(``winner``; ``significant`` when the 95% CI of the paired difference excludes 0), and the
fractions of videos keeping only ``a``, only ``b``, both or neither. Over the pairs given, the
priority ordering ranks attributes by pairwise wins (ties by mean consistency rate), beside the
paper's color > size > velocity > shape. Writes ``attribute_probe.json`` and
``attribute_probe.md``.

Everything heavy (torch, diffusers, matplotlib) is imported inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError

GAP_EDGES: tuple[float, float] = (1.5, 3.5)
"""The velocity gap of ``gap_train`` / ``gap_test``, world units / s (scenarios.GAP_TEST_V)."""
EDGE_BAND: float = 0.25
"""Default half-width of the "near an edge" band, world units / s."""
GAP_SCENARIOS: tuple[str, ...] = ("uniform", "parabola")
"""One-ball scenarios with ``gap_train`` / ``gap_test`` splits and a horizontal speed ``v``."""


# ---- shared ----------------------------------------------------------------------------------
def _mean_ci(x: np.ndarray) -> dict[str, float]:
    from simlab.world_models.video_diffusion.evaluate import mean_ci

    return mean_ci(x)


def _check_out(out: str | Path) -> Path:
    from simlab.paths import check_output_dir

    return check_output_dir(out)


def _trained_on(model_path: str | Path) -> str | None:
    """The training split of a run, when its ``train_info.json`` records the dataset (``data``), else None."""
    info = Path(model_path) / "train_info.json"
    try:
        data = json.loads(info.read_text()).get("data")
        cfg = json.loads((Path(data) / "manifest.json").read_text())["config"]
        return f"{cfg['scenario']}/{cfg['split']}"
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _check_trained_on(model_path: str | Path, expected: str) -> None:
    """ConfigError if the run says it was trained on another split than ``expected`` (scenario/split)."""
    got = _trained_on(model_path)
    if got is not None and got != expected:
        raise ConfigError(f"{model_path} was trained on {got}; this probe needs a model trained on {expected}")


def _open_dataset(data: str | Path, verify: bool = False):
    from simlab.envs.collision2d.dataset import VideoDataset

    return VideoDataset(data, verify=verify)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ---- velocity-gap probe -------------------------------------------------------------------------
def predicted_velocity(frames: np.ndarray, gt_pos: np.ndarray, radii: np.ndarray,
                       cond_frames: int) -> np.ndarray:
    """Mean horizontal velocity of the (one) parsed ball, world units / s, ``(N,)``.

    Averaged over the frame pairs the paper's metric scores (from the last condition frame on,
    the ground-truth ball fully in view) in which the predicted ball is found fully in view in
    both frames (its parsed centre at least the true radius inside the world): a prediction whose
    ball leaves the frame earlier than the truth is measured while it is visible instead of being
    pinned to the edge. NaN where no pair qualifies (counted as ``other`` / ``unparsed``).

    Args:
        frames: ``(N, T, H, W, 3)`` uint8 (generated or reference videos).
        gt_pos: ``(N, T, 1, 2)`` ground-truth centres (they decide which frames count).
        radii: ``(N, 1)`` ground-truth radii.
        cond_frames: condition frames ``c``.
    """
    from simlab.envs.collision2d.parse import parse_balls, valid_frames
    from simlab.envs.collision2d.physics import FRAME_DT, WORLD_SIZE

    center = parse_balls(frames, 1)["center"][:, :, 0]  # (N, T, 2), NaN where absent
    r = np.asarray(radii, np.float64)[:, :1]  # (N, 1)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(center).all(-1) & (center >= r[..., None]).all(-1) \
            & (center <= WORLD_SIZE - r[..., None]).all(-1)
    ok = valid_frames(gt_pos, radii, None, cond_frames)[..., 0] & inside  # (N, T)
    vx = np.diff(np.nan_to_num(center[..., 0]), axis=1) / FRAME_DT
    pair = ok[:, 1:] & ok[:, :-1]
    cnt = pair.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, np.where(pair, vx, 0.0).sum(axis=1) / cnt, np.nan)


def gap_scores(v_pred: np.ndarray, v_true: np.ndarray, edges: tuple[float, float] = GAP_EDGES,
               band: float = EDGE_BAND) -> dict[str, Any]:
    """Error and snapping statistics of predicted speeds (definitions in the module docstring).

    Args:
        v_pred: ``(N,)`` predicted speeds (NaN = none parsed), world units / s.
        v_true: ``(N,)`` true speeds, world units / s.
        edges: the gap ``(lo, hi)``.
        band: half-width of the near-edge band; must leave a core: ``0 < band < (hi - lo) / 4``.
    """
    lo, hi = edges
    check_band(band, edges)
    v_pred = np.asarray(v_pred, np.float64)
    v_true = np.asarray(v_true, np.float64)
    err = np.abs(v_pred - v_true)
    core = (v_true >= lo + 2 * band) & (v_true <= hi - 2 * band)
    p = v_pred[core]
    t = v_true[core]
    fin = np.isfinite(p)
    within = fin & (p > lo + band) & (p < hi - band)
    near = fin & ((np.abs(p - lo) <= band) | (np.abs(p - hi) <= band))
    nearest = np.where(np.abs(t - lo) <= np.abs(t - hi), lo, hi)
    pull = (p - t) * np.sign(nearest - t)
    slope = float("nan")
    if fin.sum() >= 2 and np.ptp(t[fin]) > 0:
        slope = float(np.polyfit(t[fin], p[fin], 1)[0])
    n_core = int(core.sum())
    frac = (lambda m: float(m.mean()) if n_core else float("nan"))
    return {"abs_error": _mean_ci(err), "abs_error_core": _mean_ci(err[core]),
            "videos": len(v_true), "core_videos": n_core,
            "within_gap": frac(within), "near_edge": frac(near), "other": frac(~within & ~near),
            "edge_pull": _mean_ci(pull), "slope": slope,
            "unparsed": float(np.mean(~np.isfinite(v_pred))) if len(v_pred) else float("nan")}


def check_band(band: float, edges: tuple[float, float] = GAP_EDGES) -> None:
    """ConfigError unless ``0 < band < (hi - lo) / 4`` (the core, ``2 * band`` inside both edges, is not empty)."""
    lo, hi = edges
    if not (np.isfinite(band) and 0 < band < (hi - lo) / 4):
        raise ConfigError(f"--edge-band must be in (0, {(hi - lo) / 4:g}) world units / s, got {band}")


def check_gap_dataset(ds) -> None:
    """ConfigError unless ``ds`` is a one-ball physics dataset with a speed ``v`` (the gap probe's input)."""
    sc = ds.config.scenario
    if ds.attributes or sc not in GAP_SCENARIOS:
        raise ConfigError(f"{ds.root}: the gap probe scores one-ball motion ({', '.join(GAP_SCENARIOS)}), "
                          f"not {sc}")


def run_gap_probe(model: str | Path, data: str | Path, out: str | Path | None = None, limit: int = 0,
                  steps: int | None = None, batch: int = 32, seed: int = 0, band: float = EDGE_BAND,
                  verify: bool = False, progress: bool | None = None, sampler: str | None = None) -> dict[str, Any]:
    """The velocity-gap probe: generate, parse speeds, score, write JSON, markdown and PNG.

    Args:
        model: a run (or saved model) directory, trained on ``gap_train``.
        data: a one-ball dataset, normally ``gap_test`` (any split of uniform/parabola is accepted
            and named in the report).
        out: output directory (default ``MODEL/probes/gap``).
        limit, steps, batch, seed, verify, progress, sampler: as :func:`~.evaluate.evaluate_model`.
        band: near-edge band, world units / s.

    Returns:
        The JSON-ready report (also written to ``OUT/gap_probe.json``).
    """
    from simlab.data import write_json_atomic
    from simlab.world_models.video_diffusion.evaluate import evaluate_model

    check_band(band)
    if limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    out = _check_out(out if out is not None else Path(model) / "probes" / "gap")
    ds = _open_dataset(data, verify)
    check_gap_dataset(ds)
    _check_trained_on(model, f"{ds.config.scenario}/gap_train")
    c_box: dict[str, int] = {}
    v_true: list[np.ndarray] = []
    v_pred: dict[str, list[np.ndarray]] = {}

    def on_batch(st: dict[str, np.ndarray], preds: dict[str, np.ndarray]) -> None:
        c = c_box.setdefault("c", _cond_frames(model))
        v_true.append(np.asarray(st["param_v"], np.float64))
        for name, frames in preds.items():
            v_pred.setdefault(name, []).append(predicted_velocity(frames, st["pos"], st["radii"], c))

    ev = evaluate_model(model, data, limit=limit, steps=steps, batch=batch, seed=seed, verify=False,
                        progress=progress, on_batch=on_batch, sampler=sampler)
    vt = np.concatenate(v_true)
    vp = {k: np.concatenate(v) for k, v in v_pred.items()}
    report = {
        "probe": "velocity_gap", "model": str(model), "data": str(data), "scenario": ev["scenario"],
        "split": ev["split"], "resolution": ev["resolution"], "videos": ev["videos"],
        "cond_frames": ev["cond_frames"], "sample_steps": ev["sample_steps"], "sampler": ev.get("sampler", "ddim"),
        "backbone": ev["backbone"], "units": "world units / s", "gap": list(GAP_EDGES), "train_speeds": [[1.0, 1.5], [3.5, 4.0]],
        "edge_band": band,
        "core": [GAP_EDGES[0] + 2 * band, GAP_EDGES[1] - 2 * band],
        "definitions": {
            "v_pred": "mean horizontal velocity of the parsed ball over the scored frame pairs where it is "
                      "fully in view",
            "abs_error": "mean |v_pred - v_true| over all videos",
            "within_gap": "core videos with v_pred in (lo + band, hi - band)",
            "near_edge": "core videos with |v_pred - lo| <= band or |v_pred - hi| <= band (snapped)",
            "other": "core videos with v_pred elsewhere or not parsed",
            "edge_pull": "mean (v_pred - v_true) * sign(nearest edge - v_true) over the core",
            "slope": "least-squares slope of v_pred on v_true over the core",
            "core": "videos with v_true in [lo + 2 band, hi - 2 band]"},
        "predictors": {name: gap_scores(v, vt, GAP_EDGES, band) for name, v in vp.items()},
        "velocity_error": {name: p["velocity_error"] for name, p in ev["predictors"].items()},
        "per_video": {"v_true": vt.tolist(),
                      "v_pred": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in vp.items()}},
    }
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {"json": str(out / "gap_probe.json"), "markdown": str(out / "gap_probe.md"),
                       "plot": str(out / "gap_probe.png")}
    plot_gap(vt, vp, out / "gap_probe.png", band, title=f"{ev['scenario']}/{ev['split']}, {ev['videos']} videos")
    (out / "gap_probe.md").write_text(format_gap_markdown(report))
    write_json_atomic(out / "gap_probe.json", report)
    return report


def _cond_frames(model: str | Path) -> int:
    from simlab.world_models.video_diffusion.model import load_model

    return int(load_model(model).config.cond_frames)


def plot_gap(v_true: np.ndarray, v_pred: dict[str, np.ndarray], path: str | Path, band: float = EDGE_BAND,
             title: str = "") -> None:
    """PNG: predicted vs true speed (left) and histograms of predicted speed (right), gap edges marked.

    Args:
        v_true: ``(N,)`` world units / s.
        v_pred: ``{predictor: (N,)}``; ``model`` is drawn in front.
    """
    plt = _plt()
    lo, hi = GAP_EDGES
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5))
    style = {"model": ("tab:red", "o"), "ground_truth": ("black", "."), "constant_velocity": ("tab:blue", "x"),
             "repeat_last": ("tab:gray", "+")}
    finite = np.concatenate([v[np.isfinite(v)] for v in v_pred.values()] + [v_true])
    vmin, vmax = min(0.0, float(finite.min())), max(4.5, float(finite.max()))
    for a in (ax, bx):
        for tlo, thi in ((1.0, lo), (hi, 4.0)):
            (a.axhspan if a is ax else a.axvspan)(tlo, thi, color="tab:green", alpha=0.12, lw=0)
        for e in GAP_EDGES:
            (a.axhline if a is ax else a.axvline)(e, color="tab:green", ls="--", lw=1)
    ax.plot([vmin, vmax], [vmin, vmax], color="black", lw=0.8, ls=":", label="v_pred = v_true")
    for name in sorted(v_pred, key=lambda k: k == "model"):
        col, mk = style.get(name, ("tab:purple", "s"))
        ax.scatter(v_true, v_pred[name], s=10 if name == "model" else 6, c=col, marker=mk, label=name,
                   alpha=0.8 if name == "model" else 0.5)
    ax.set_xlabel("true speed v (world units / s)")
    ax.set_ylabel("predicted speed (world units / s)")
    ax.set_ylim(vmin - 0.1, vmax + 0.1)
    ax.set_title("predicted vs true (training speeds shaded, gap edges dashed)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    bins = np.arange(np.floor(vmin * 10) / 10, vmax + 0.1, 0.1)
    for name in ("ground_truth", "constant_velocity", "model"):
        if name in v_pred:
            v = v_pred[name][np.isfinite(v_pred[name])]
            col = style[name][0]
            bx.hist(v, bins=bins, histtype="stepfilled" if name == "model" else "step", color=col,
                    alpha=0.5 if name == "model" else 1.0, label=name)
    bx.set_xlabel("predicted speed (world units / s)")
    bx.set_ylabel("videos")
    bx.set_title(f"histogram of predicted speed (near-edge band ±{band:g})", fontsize=9)
    bx.legend(fontsize=7)
    fig.suptitle(f"velocity-gap probe: {title}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_gap_markdown(rep: dict[str, Any]) -> str:
    """A markdown table of :func:`run_gap_probe`'s report."""
    lo, hi = rep["gap"]
    b = rep["edge_band"]
    lines = [f"# Velocity-gap probe: {rep['scenario']}/{rep['split']}", "",
             (f"Model `{rep['model']}` ({rep['backbone']}, {rep['sample_steps']} {rep['sampler']} steps) on `{rep['data']}`, "
             f"{rep['videos']} videos at {rep['resolution']} px. Training speeds [1, {lo}] U [{hi}, 4]; "
             f"gap ({lo}, {hi}); speeds in {rep['units']}. Snapping counted over the core videos "
             f"(v_true in [{rep['core'][0]:g}, {rep['core'][1]:g}]): within gap = v_pred in "
             f"({lo + b:g}, {hi - b:g}), near edge = within {b:g} of {lo} or {hi}."), "",
             ("| predictor | mean abs(v_pred - v_true) | core: within gap | core: near edge | core: other | "
             "edge pull | slope | velocity error (paper) |"),
             "|---|---|---:|---:|---:|---|---:|---|"]
    for name, s in rep["predictors"].items():
        ae, ep = s["abs_error"], s["edge_pull"]
        ve = rep["velocity_error"].get(name, {})
        lines.append(f"| {name} | {ae['mean']:.3f} ± {ae['ci95']:.3f} | {s['within_gap']:.1%} | "
                     f"{s['near_edge']:.1%} | {s['other']:.1%} | {ep['mean']:+.3f} ± {ep['ci95']:.3f} | "
                     f"{s['slope']:.2f} | {ve.get('mean', float('nan')):.3f} ± {ve.get('ci95', float('nan')):.3f} |")
    n = rep["predictors"].get("model", {}).get("core_videos", 0)
    lines += ["", f"{n} core videos. Plot: `{Path(rep['files']['plot']).name}`."]
    if rep["split"] != "gap_test":
        lines += ["", f"Note: scored on split `{rep['split']}`, not `gap_test`."]
    return "\n".join(lines) + "\n"


def format_gap_report(rep: dict[str, Any]) -> str:
    """A short text table for the terminal."""
    lines = [(f"velocity-gap probe: {rep['scenario']}/{rep['split']}, {rep['videos']} videos "
             f"({rep['predictors']['model']['core_videos']} in the core); speeds in {rep['units']}"),
             (f"  {'predictor':<18} {'abs err':>8} {'95% CI':>7} {'within':>7} {'near':>7} {'other':>7} "
             f"{'pull':>7} {'slope':>6}")]
    for name, s in rep["predictors"].items():
        lines.append(f"  {name:<18} {s['abs_error']['mean']:>8.3f} {s['abs_error']['ci95']:>7.3f} "
                     f"{s['within_gap']:>7.1%} {s['near_edge']:>7.1%} {s['other']:>7.1%} "
                     f"{s['edge_pull']['mean']:>+7.3f} {s['slope']:>6.2f}")
    lines.append(f"  wrote {rep['files']['json']}, {rep['files']['markdown']}, {rep['files']['plot']}")
    return "\n".join(lines)


# ---- attribute priority probe -------------------------------------------------------------------
ATTRS: tuple[str, ...] = ("color", "size", "velocity", "shape")
"""Attributes scored by ``attribute_consistency`` (its ``<name>_ok`` arrays)."""


def attribute_arrays(frames: np.ndarray, st: dict[str, np.ndarray], cond_frames: int) -> dict[str, np.ndarray]:
    """Per-video attribute consistency of ``frames`` against a dataset batch ``st`` (``param_*``, ``pos``, ``radii``).

    Returns :func:`~simlab.envs.collision2d.attributes.attribute_consistency`'s ``(N,)`` arrays.
    """
    from simlab.envs.collision2d.attributes import attribute_consistency

    return attribute_consistency(frames, {"pos": st["pos"], "radii": st["radii"], "r": st["param_r"],
                                          "color": st["param_color"], "shape": st["param_shape"]},
                                 cond_frames=cond_frames)


def summarise_attributes(arr: dict[str, np.ndarray]) -> dict[str, Any]:
    """Consistency rates (fraction of videos keeping each attribute, and all four) and errors."""
    rates = {a: float(np.mean(arr[f"{a}_ok"])) for a in ATTRS}
    rates["consistent"] = float(np.mean(arr["consistent"]))
    return {"consistency_rate": rates, "videos": len(arr["consistent"]),
            "size_error": _mean_ci(arr["size_error"]), "velocity_error": _mean_ci(arr["velocity_error"])}


def pair_of_split(split: str) -> tuple[str, str]:
    """``pair_<a>_<b>_test`` -> ``(a, b)``; ConfigError for any other split."""
    from simlab.envs.collision2d.attributes import probe_pairs

    for a, b in probe_pairs():
        if split == f"pair_{a}_{b}_test":
            return a, b
    names = ", ".join(f"pair_{a}_{b}_test" for a, b in probe_pairs())
    raise ConfigError(f"the attribute probe needs a pair test split ({names}), got {split!r}")


def pair_result(arr: dict[str, np.ndarray], a: str, b: str) -> dict[str, Any]:
    """Which of the pair's attributes ``a``, ``b`` the videos keep (``arr``: :func:`attribute_arrays`)."""
    ka = np.asarray(arr[f"{a}_ok"], bool)
    kb = np.asarray(arr[f"{b}_ok"], bool)
    diff = _mean_ci(ka.astype(np.float64) - kb.astype(np.float64))
    ra, rb = float(ka.mean()), float(kb.mean())
    winner = a if ra > rb else b if rb > ra else "tie"
    sig = winner != "tie" and abs(diff["mean"]) > diff["ci95"]
    return {"pair": [a, b], "kept": {a: ra, b: rb}, "winner": winner, "significant": bool(sig),
            "margin": diff, "only_" + a: float((ka & ~kb).mean()), "only_" + b: float((kb & ~ka).mean()),
            "both": float((ka & kb).mean()), "neither": float((~ka & ~kb).mean())}


def priority_ordering(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rank attributes by pairwise wins of the model (ties: mean consistency rate over their pairs).

    Args:
        pairs: :func:`pair_result` dicts (one per probed pair).

    Returns:
        ``ordering`` (kept first), ``wins``, ``mean_rate``, ``paper`` (color > size > velocity >
        shape), ``pairs_agreeing_with_paper`` (winner = the attribute the paper ranks higher),
        ``pairs`` and ``matches_paper`` (all 6 pairs probed and every one agrees).
    """
    from simlab.envs.collision2d.attributes import PRIORITY

    attrs = [x for x in PRIORITY if any(x in p["pair"] for p in pairs)]
    wins = {x: sum(p["winner"] == x for p in pairs) for x in attrs}
    rate = {x: float(np.mean([p["kept"][x] for p in pairs if x in p["pair"]])) for x in attrs}
    order = sorted(attrs, key=lambda x: (-wins[x], -rate[x]))
    agree = sum(p["winner"] == min(p["pair"], key=PRIORITY.index) for p in pairs)
    return {"ordering": order, "wins": wins, "mean_rate": rate, "paper": list(PRIORITY),
            "pairs_agreeing_with_paper": agree, "pairs": len(pairs),
            "matches_paper": len(pairs) == 6 and agree == 6}


def evaluate_attribute_model(model: str | Path, data: str | Path, limit: int = 0, steps: int | None = None,
                             batch: int = 32, seed: int = 0, verify: bool = False, progress: bool | None = None,
                             sampler: str | None = None) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Generate from an attribute dataset and score model, ground truth and repeat-last by attribute.

    Returns:
        ``(report, arrays)``: the report holds :func:`~.evaluate.evaluate_model`'s header and
        ``predictors[name]`` = :func:`summarise_attributes`; ``arrays[name]`` the per-video arrays.
    """
    from simlab.world_models.video_diffusion.evaluate import evaluate_model

    ds = _open_dataset(data, verify)
    if not ds.attributes:
        raise ConfigError(f"{data}: not an attribute-scene dataset (scenario {ds.config.scenario})")
    c_box: dict[str, int] = {}
    parts: dict[str, dict[str, list[np.ndarray]]] = {}

    def on_batch(st: dict[str, np.ndarray], preds: dict[str, np.ndarray]) -> None:
        c = c_box.setdefault("c", _cond_frames(model))
        for name, frames in preds.items():
            for k, v in attribute_arrays(frames, st, c).items():
                parts.setdefault(name, {}).setdefault(k, []).append(v)

    ev = evaluate_model(model, data, limit=limit, steps=steps, batch=batch, seed=seed, verify=False,
                        progress=progress, on_batch=on_batch, sampler=sampler)
    arrays = {p: {k: np.concatenate(v) for k, v in d.items()} for p, d in parts.items()}
    report = {**ev, "units": "consistency rate = fraction of videos keeping the attribute",
              "predictors": {p: summarise_attributes(a) for p, a in arrays.items()}}
    return report, arrays


def format_attribute_report(rep: dict[str, Any]) -> str:
    """A text table of :func:`evaluate_attribute_model`'s report (``simlab eval physics --model``)."""
    lines = [(f"attributes/{rep['split']} @ {rep['resolution']}px, {rep['videos']} videos, {rep['backbone']} model, "
             f"{rep['sample_steps']} {rep.get('sampler', 'ddim')} steps; fraction of videos keeping each attribute"),
             f"  {'predictor':<14}" + "".join(f"{a:>11}" for a in (*ATTRS, "consistent"))]
    for name, s in rep["predictors"].items():
        lines.append(f"  {name:<14}" + "".join(f"{s['consistency_rate'][a]:>11.1%}" for a in (*ATTRS, "consistent")))
    return "\n".join(lines)


def run_attribute_probe(models: list[str | Path], datas: list[str | Path], out: str | Path | None = None,
                        limit: int = 0, steps: int | None = None, batch: int = 32, seed: int = 0,
                        verify: bool = False, progress: bool | None = None, sampler: str | None = None,
                        ) -> dict[str, Any]:
    """The attribute priority probe over one or more (model, ``pair_<a>_<b>_test`` dataset) pairs.

    Everything is checked before any video is generated: as many models as datasets, every
    dataset an attribute dataset of a pair test split, no pair twice, and (when the run records
    its training data) each model trained on the matching ``pair_<a>_<b>_train``.

    Args:
        models: run (or saved model) directories, ``models[i]`` trained on the train split of ``datas[i]``.
        datas: attribute datasets of ``pair_<a>_<b>_test`` splits.
        out: output directory (default ``MODEL/probes/attributes`` with one model; required with several).

    Returns:
        The JSON-ready report (also written to ``OUT/attribute_probe.json``).
    """
    from simlab.data import write_json_atomic

    models, datas = list(models), list(datas)
    if not models or len(models) != len(datas):
        raise ConfigError(f"give one --model per --data (got {len(models)} model(s), {len(datas)} dataset(s))")
    if limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    if out is None:
        if len(models) > 1:
            raise ConfigError("--out is required when several models are probed")
        out = Path(models[0]) / "probes" / "attributes"
    out = _check_out(out)
    from simlab.world_models.video_diffusion.data import check_compatible
    from simlab.world_models.video_diffusion.model import load_model

    pairs: list[tuple[str, str]] = []
    for m, d in zip(models, datas):
        ds = _open_dataset(d, verify)
        if not ds.attributes:
            raise ConfigError(f"{d}: not an attribute-scene dataset (scenario {ds.config.scenario})")
        a, b = pair_of_split(ds.config.split)
        if (a, b) in pairs:
            raise ConfigError(f"{d}: pair {a} x {b} is given twice")
        pairs.append((a, b))
        _check_trained_on(m, f"attributes/pair_{a}_{b}_train")
        cfg = load_model(m).config  # every model loads and fits its data before any video is generated
        check_compatible(ds, cfg.num_frames, cfg.resolution, f"the model {m}")
    results = []
    for m, d, (a, b) in zip(models, datas, pairs):
        rep, arrays = evaluate_attribute_model(m, d, limit=limit, steps=steps, batch=batch, seed=seed,
                                               progress=progress, sampler=sampler)
        results.append({"model": str(m), "data": str(d), "split": rep["split"], "videos": rep["videos"],
                        "resolution": rep["resolution"], "sample_steps": rep["sample_steps"],
                        "sampler": rep.get("sampler", "ddim"),
                        "backbone": rep["backbone"],
                        **pair_result(arrays["model"], a, b),
                        "references": {p: pair_result(arrays[p], a, b) for p in arrays if p != "model"},
                        "predictors": rep["predictors"]})
    report = {"probe": "attribute_priority", "pairs": results,
              "priority": priority_ordering(results),
              "definitions": {
                  "kept": "fraction of videos whose generated frames keep the attribute "
                          "(attribute_consistency: colour/shape mode, size within 0.1, velocity within 0.2)",
                  "winner": "the pair's attribute kept more often",
                  "significant": "95% CI of the paired difference of kept indicators excludes 0",
                  "ordering": "attributes by pairwise wins, ties by mean kept rate"}}
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {"json": str(out / "attribute_probe.json"), "markdown": str(out / "attribute_probe.md")}
    (out / "attribute_probe.md").write_text(format_attribute_markdown(report))
    write_json_atomic(out / "attribute_probe.json", report)
    return report


def format_attribute_markdown(rep: dict[str, Any]) -> str:
    """Markdown tables of :func:`run_attribute_probe`'s report."""
    pr = rep["priority"]
    lines = ["# Attribute priority probe", "",
             ("Each row: a model trained on `pair_<a>_<b>_train` (only the combinations (a1, b1), (a2, b2)) "
             "continues `pair_<a>_<b>_test` videos ((a1, b2), (a2, b1)); kept = fraction of videos whose "
             "generated frames keep the attribute."), "",
             ("| pair (a x b) | videos | model keeps a | model keeps b | winner | a - b (95% CI) | only a | only b | "
             "both | neither | ground truth a / b | repeat-last a / b |"),
             "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---|---|"]
    for p in rep["pairs"]:
        a, b = p["pair"]
        ref = p["references"]
        gt = ref.get("ground_truth", {}).get("kept", {})
        rl = ref.get("repeat_last", {}).get("kept", {})
        win = p["winner"] + ("" if p["significant"] or p["winner"] == "tie" else " (n.s.)")
        lines.append(f"| {a} x {b} | {p['videos']} | {p['kept'][a]:.1%} | {p['kept'][b]:.1%} | {win} | "
                     f"{p['margin']['mean']:+.2f} ± {p['margin']['ci95']:.2f} | {p['only_' + a]:.1%} | "
                     f"{p['only_' + b]:.1%} | {p['both']:.1%} | {p['neither']:.1%} | "
                     f"{gt.get(a, float('nan')):.0%} / {gt.get(b, float('nan')):.0%} | "
                     f"{rl.get(a, float('nan')):.0%} / {rl.get(b, float('nan')):.0%} |")
    lines += ["", (f"Priority ordering (model, {pr['pairs']} pair(s)): **{' > '.join(pr['ordering'])}** "
              f"(wins {', '.join(f'{k} {v}' for k, v in pr['wins'].items())}); the paper: "
              f"{' > '.join(pr['paper'])}. Pairs whose winner agrees with the paper: "
              f"{pr['pairs_agreeing_with_paper']} of {pr['pairs']}.")]
    return "\n".join(lines) + "\n"


def format_attribute_probe(rep: dict[str, Any]) -> str:
    """A short text summary for the terminal."""
    lines = ["attribute priority probe (fraction of videos keeping each attribute of the pair)"]
    for p in rep["pairs"]:
        a, b = p["pair"]
        verdict = "tie" if p["winner"] == "tie" else f"keeps {p['winner']}" + ("" if p["significant"] else " (n.s.)")
        lines.append(f"  {a:>8} x {b:<8} {p['videos']:>5} videos: {a} {p['kept'][a]:.1%}, {b} {p['kept'][b]:.1%}"
                     f" -> {verdict}")
    pr = rep["priority"]
    lines.append(f"  ordering: {' > '.join(pr['ordering'])} (paper: {' > '.join(pr['paper'])}; "
                 f"{pr['pairs_agreeing_with_paper']}/{pr['pairs']} pairs agree)")
    lines.append(f"  wrote {rep['files']['json']}, {rep['files']['markdown']}")
    return "\n".join(lines)
