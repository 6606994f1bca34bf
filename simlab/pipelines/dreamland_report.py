"""The Dream Land report: ``report.md`` for people, ``report.json`` for scripts, plots and videos.

Everything here reads what the pipeline's stages recorded in the run directory
(stage records, saved models, eval files); nothing is trained.

``report.json``::

    {"env", "preset", "seconds",
     "variants" | "fixed_policies" | "upper_bound": {name: {split: {"mean", "std", "ci95", "n"}}},
     "selected": {variant: {"seed": k, "pooled": bool, split: {"mean", "std", "ci95", "n"}}},
     "diagnostics": {"hazard_recall": float | null, "hazard_recall_note": str | null,
                     "dream_fidelity": {variant: spearman}, "fidelity_panel": {...},
                     "multistep": {variant: {...}}, "death_prediction": {variant: {"auc", ...}}},
     "verdict": {...}}

with splits ``train`` (the training levels), ``heldout`` and ``hard`` (the
OOD-dynamics levels; absent for gymnasium envs). ``ci95`` is ``1.96 * std /
sqrt(n)`` over every real episode of every seed (pooled).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from simlab.data import atomic_path, write_json_atomic
from simlab.pipelines.dreamland import SPLIT_KEYS, UPPER

SPLIT_TITLES = {"train": "training levels", "heldout": "held-out levels", "hard": "hard (OOD dynamics)"}
VARIANT_TITLES = {"dreamland": "Dream Land", "worldmodels": "World Models (baseline)",
                  "diffusion": "Diffusion dream (DIAMOND-style)",
                  "upper_bound": "upper bound: CMA-ES in the real game"}


def stats(returns: list[float] | np.ndarray) -> dict[str, float]:
    """``{"mean", "std", "ci95", "n"}`` of pooled real returns (sample std; 0 for one episode)."""
    x = np.asarray(returns, np.float64)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "std": sd, "ci95": 1.96 * sd / float(np.sqrt(len(x))), "n": len(x)}


def _rows(dl: Any, names: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Pooled stats of the eval stages ``eval_<name>_s<k>`` per name and split."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for v in names:
        pooled: dict[str, list[float]] = {}
        for k in range(max(dl.cfg.seeds, dl.cfg.upper_seeds, dl.cfg.diffusion.seeds)):
            rec = dl.run.stage_done(f"eval_{v}_s{k}") or {}
            for split, r in rec.items():
                if isinstance(r, dict) and "returns" in r:
                    pooled.setdefault(split, []).extend(r["returns"])
        if pooled:
            out[v] = {s: stats(r) for s, r in pooled.items()}
    return out


def summarize(dl: Any) -> dict[str, Any]:
    """The figures of report.json (see the module docstring)."""
    fixed_rec = dl.run.stage_done("fixed") or {}
    fixed = {name: {s: stats(r) for s, r in splits.items()}
             for name, splits in fixed_rec.get("returns", {}).items()}
    diag: dict[str, Any] = {"hazard_recall": None, "hazard_recall_note": None, "dream_fidelity": {},
                            "fidelity_panel": {}, "multistep": {}}
    vae = dl.run.stage_done("diag_vae")
    if vae is not None:
        diag["hazard_recall"] = vae.get("hazard_recall")
        diag["hazard_recall_note"] = vae.get("hazard_recall_note")
        diag["hazards"] = vae.get("hazards")
    for v in dl.cfg.variants():
        rec = dl.run.stage_done(f"diag_{v}") or {}
        if "fidelity" in rec:
            diag["dream_fidelity"][v] = rec["fidelity"]["spearman"]
            diag["fidelity_panel"][v] = rec["fidelity"]
        if "multistep" in rec:
            diag["multistep"][v] = rec["multistep"]
        if "death_prediction" in rec:
            diag.setdefault("death_prediction", {})[v] = rec["death_prediction"]
        if "counterfactual" in rec:
            diag.setdefault("counterfactual", {})[v] = rec["counterfactual"]
    enc = dl.run.stage_done("encode") or {}
    diag["data"] = {k: enc.get(k) for k in ("episodes", "transitions", "mirrored_episodes", "deaths")}
    names = dl.cfg.variants()
    if dl.cfg.world_model == "diffusion":  # the pixel dream's row and diagnostics (issue 12)
        names = [*names, "diffusion"]
        rec = dl.run.stage_done("diag_diffusion") or {}
        if "fidelity" in rec:
            diag["dream_fidelity"]["diffusion"] = rec["fidelity"]["spearman"]
            diag["fidelity_panel"]["diffusion"] = rec["fidelity"]
        tr = dl.run.stage_done("ddream") or {}
        diag["diffusion"] = {"multistep": rec.get("multistep"),
                             "training": {k: tr.get(k) for k in ("steps", "seconds", "seconds_per_step",
                                                                 "final_edm_loss", "denoiser_parameters",
                                                                 "start_contexts")}}
    out = {"env": dl.cfg.env, "preset": dl.cfg.preset, "seconds": round(time.time() - dl.t0, 1),
           "variants": _rows(dl, names), "fixed_policies": fixed,
           "upper_bound": _rows(dl, [UPPER]).get(UPPER), "selected": _selected(dl), "diagnostics": diag}
    out["verdict"] = verdict(out)
    return out


def _selected(dl: Any) -> dict[str, dict[str, Any]]:
    """``{variant: {"seed": k, split: stats}}`` of the ``select_<variant>`` stages that ran."""
    out: dict[str, dict[str, Any]] = {}
    for v in dl.cfg.variants():
        rec = dl.run.stage_done(f"select_{v}")
        if rec is not None:
            # Records from before select_pool pooled every seed's episodes and do not list "seeds".
            out[v] = {"seed": rec["selected_seed"], "pooled": len(rec["seeds"]) > 1 if "seeds" in rec else True,
                      **{k: stats(r["returns"]) for k, r in rec.items() if isinstance(r, dict) and "returns" in r}}
    return out


TRANSFER_TARGET = 1.5
"""The transfer target: the better variant's held-out mean over the best fixed policy's, CIs disjoint."""


def verdict(s: dict[str, Any]) -> dict[str, Any]:
    """The issue's transfer test: on held-out levels, the better variant against the best fixed
    policy (ratio, whether the 95% CIs are disjoint, and whether both together meet
    :data:`TRANSFER_TARGET`); on training levels, whether every variant beats every fixed policy."""
    var, fixed = s["variants"], s["fixed_policies"]
    if not var or not fixed:
        return {}
    out: dict[str, Any] = {}
    if all("heldout" in r for r in var.values()):
        best_v = max(var, key=lambda v: var[v]["heldout"]["mean"])
        best_f = max(fixed, key=lambda f: fixed[f]["heldout"]["mean"])
        v, f = var[best_v]["heldout"], fixed[best_f]["heldout"]
        # A ratio means something only against a positive return (CarRacing's random play scores < 0):
        # otherwise it is None, and so is the target, while the difference is always given.
        ratio = v["mean"] / f["mean"] if f["mean"] > 0 else None
        out.update({"best_variant": best_v, "best_fixed": best_f, "heldout_ratio": ratio,
                    "heldout_difference": v["mean"] - f["mean"],
                    "heldout_cis_disjoint": v["mean"] - v["ci95"] > f["mean"] + f["ci95"]})
        out["transfer_target_met"] = (None if ratio is None
                                      else ratio >= TRANSFER_TARGET and out["heldout_cis_disjoint"])
    if all("train" in r for r in var.values()):
        top = max(f["train"]["mean"] for f in fixed.values())
        out["all_variants_beat_fixed_on_train"] = all(r["train"]["mean"] > top for r in var.values())
    sel = {v: r for v, r in (s.get("selected") or {}).items() if "heldout" in r}
    if sel and "best_fixed" in out:
        f = fixed[out["best_fixed"]]["heldout"]
        best_s = max(sel, key=lambda v: sel[v]["heldout"]["mean"])
        r = sel[best_s]["heldout"]
        out.update({"selected_best_variant": best_s,
                    "selected_heldout_ratio": r["mean"] / f["mean"] if f["mean"] > 0 else None,
                    "selected_heldout_cis_disjoint": r["mean"] - r["ci95"] > f["mean"] + f["ci95"]})
    return out


def _cell(r: dict[str, float] | None) -> str:
    return "n/a" if r is None else f"{r['mean']:.1f} ± {r['ci95']:.1f}"


def markdown(dl: Any, s: dict[str, Any]) -> str:
    """report.md."""
    cfg = dl.cfg
    cols = [k for k in SPLIT_KEYS if k in dl.splits()]
    split_names = dl.splits()
    head = "| policy | " + " | ".join(f"{SPLIT_TITLES[c]} (`{split_names[c]}`)" for c in cols) + " |"
    lines = [
        "# Dream Land report", "",
        (f"Real env `{cfg.env}`; world models trained on {cfg.transitions} real transitions from levels "
         f"{cfg.train_levels}; controllers ({cfg.controller}) trained only in dreams; real returns, mean ± 95% CI "
         f"over {cfg.seeds} seed(s) x {cfg.eval_episodes} episodes per column (fixed policies: the same seeds, "
         "levels and episodes)."), "",
        *[f"- {VARIANT_TITLES.get(v, v)} (`{v}`): the baseline, same budget, no dropout anywhere"
          if v == "worldmodels" else
          f"- {VARIANT_TITLES.get(v, v)} (`{v}`): MDN-RNN dropout {sp['dropout']:g}, dream masks `{sp['mask']}` "
          f"at rate {sp['dream_dropout']:g}" for v, sp in cfg.variant_specs().items()],
        *([(f"- {VARIANT_TITLES['diffusion']} (`diffusion`): the same linear controller on the Dream Land "
            f"model's frozen [z, h], CMA-ES ({cfg.diffusion.generations} generations) only in a pixel diffusion "
            f"dream ({cfg.diffusion.resolution}x{cfg.diffusion.resolution} frames, {cfg.diffusion.num_steps} Euler "
            f"steps, {cfg.diffusion.max_dream_steps}-step dreams); {cfg.diffusion.seeds} seed(s)")]
          if cfg.world_model == "diffusion" else []),
        (f"- upper bound: the same linear controller and CMA-ES ({cfg.upper_generations} generations) trained "
         "directly in the real game on the Dream Land model's features" if s["upper_bound"] else
         "- upper bound: not run"),
        "", head, "|---|" + "---:|" * len(cols),
    ]
    for v, r in s["variants"].items():
        lines.append(f"| {VARIANT_TITLES.get(v, v)} | " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    for v, r in (s.get("selected") or {}).items():
        lines.append(f"| {VARIANT_TITLES.get(v, v)}, selected: seed {r['seed']} (best on training levels) | "
                     + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    if s["upper_bound"]:
        lines.append(f"| {VARIANT_TITLES['upper_bound']} | "
                     + " | ".join(_cell(s["upper_bound"].get(c)) for c in cols) + " |")
    for f, r in s["fixed_policies"].items():
        lines.append(f"| fixed: {f} | " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    v = s["verdict"]
    if "heldout_ratio" in v:
        if v["heldout_ratio"] is None:
            versus = (f"{v['heldout_difference']:+.1f} against the best fixed policy ({v['best_fixed']}, whose mean "
                      "is not positive, so there is no ratio); 95% CIs "
                      f"{'disjoint' if v['heldout_cis_disjoint'] else 'overlap'}. ")
        else:
            versus = (f"{v['heldout_ratio']:.3f}x the best fixed policy ({v['best_fixed']}); 95% CIs "
                      f"{'disjoint' if v['heldout_cis_disjoint'] else 'overlap'} (target: at least "
                      f"{TRANSFER_TARGET}x with disjoint CIs, {'met' if v['transfer_target_met'] else 'not met'}). ")
        lines += ["", (f"**Transfer:** on held-out levels the better variant ({v['best_variant']}) scores " + versus
                       + ("Every variant beats every fixed policy on the training levels."
                          if v.get("all_variants_beat_fixed_on_train") else
                          "Not every variant beats every fixed policy on the training levels."))]
        if v.get("selected_heldout_ratio") is not None:
            lines += ["", (f"**Selected controllers** (each variant's seed with the best real return on the "
                           f"training levels, evaluated on "
                           f"{'every seed' if s['selected'][v['selected_best_variant']]['pooled'] else 'its own seed'}"
                           f"'s episodes; its training-level column "
                           f"includes the episodes it was chosen on, the other columns were not looked at): the "
                           f"better ({v['selected_best_variant']}) scores {v['selected_heldout_ratio']:.3f}x the "
                           f"best fixed policy on held-out levels; 95% CIs "
                           f"{'disjoint' if v['selected_heldout_cis_disjoint'] else 'overlap'}. Not the protocol "
                           "above (all seeds): a few real episodes choose among dream-trained controllers.")]
    d = s["diagnostics"]
    lines += ["", "## World-model diagnostics", ""]
    if d["hazard_recall"] is not None:
        lines.append(f"- **Hazard recall** of the VAE on {d.get('hazards')} held-out fireballs: "
                     f"{d['hazard_recall']:.1%} are visible in the reconstruction (at least half of a "
                     "fireball's pixels reconstructed nearer its colour than the background's).")
    elif d["hazard_recall_note"]:
        lines.append(f"- Hazard recall: {d['hazard_recall_note']}.")
    for var, rho in d["dream_fidelity"].items():
        p = d["fidelity_panel"][var]
        dream_eps = p.get("dream_episodes", p["episodes"])
        ceiling = p.get("ceiling")
        lines.append(f"- **Dream fidelity** of `{var}`: Spearman {rho:.2f} between dream and real returns of "
                     f"{len(p['names'])} controllers ({dream_eps} dream episodes each, as in training, up to "
                     f"{p.get('dream_max_steps', p['max_steps'])} steps; {p['episodes']} real episodes each from "
                     f"the start, up to {p['max_steps']} steps)"
                     + (f"; a perfect dream would reach about {ceiling:.2f} against these noisy real means "
                        "(split-half reliability)." if ceiling is not None and not math.isnan(ceiling) else ".")
                     + _subset_note(p))
    for var, dp in d.get("death_prediction", {}).items():
        lines.append(f"- **Death prediction** of `{var}` fed real held-out latents (teacher forcing): AUC "
                     f"{dp['auc']:.3f} over {dp['deaths']} deaths in {dp['steps']} steps (mean p_done "
                     f"{dp['p_at_death']:.3f} at a death, {dp['p_other']:.4f} elsewhere).")
    for var, cf in d.get("counterfactual", {}).items():
        lines.append(f"- **Counterfactual test** of `{var}` ({cf['pairs']} real states x actions, each action held "
                     f"{cf['horizon']} steps in a copy of the real game and in the dream; {cf['real_deaths']} real "
                     f"deaths): the dream's death probability has AUC {cf['auc']:.3f} (teacher forced "
                     f"{cf['auc_teacher_forced']:.3f}); where one action really dies and another lives "
                     f"({cf['action_pairs']} pairs) the dream blames the fatal one {cf['action_accuracy']:.0%} of "
                     f"the time (teacher forced {cf['action_accuracy_teacher_forced']:.0%}; 50% is chance): "
                     "what a dream-trained controller can learn to dodge.")
    data = d.get("data") or {}
    if data.get("transitions"):
        lines.append(f"- World-model data: {data['transitions']} transitions in {data['episodes']} episodes"
                     + (f" ({data['mirrored_episodes']} of them mirror images)" if data.get("mirrored_episodes") else "")
                     + (f", {data['deaths']} deaths" if data.get("deaths") is not None else "") + ".")
    if d["dream_fidelity"]:
        lines += ["", "![dream fidelity](plots/dream_fidelity.png)"]
    if d["multistep"]:
        lines += ["", (f"Multi-step prediction error on held-out real sequences (open loop after {cfg.burn_in} "
                       "real steps; mean squared error; frames in [0, 1]):"), "",
                  ("| variant | horizon | latent | latent, repeat last | frame | frame, repeat last | "
                   "frame, VAE floor |"), "|---|---:|---:|---:|---:|---:|---:|"]
        for var, m in d["multistep"].items():
            for i, h in enumerate(m["horizon"]):
                lines.append(f"| {var} | {h} | {m['latent_mse'][i]:.3f} | {m['latent_mse_repeat'][i]:.3f} | "
                             f"{m['frame_mse'][i]:.4f} | {m['frame_mse_repeat'][i]:.4f} | "
                             f"{m['frame_mse_vae'][i]:.4f} |")
        lines += ["", "![multi-step error](plots/multistep.png)"]
    ms = (d.get("diffusion") or {}).get("multistep")
    if ms:
        lines += ["", (f"Diffusion dream, multi-step error on held-out real sequences (open loop after its "
                       f"{cfg.diffusion.resolution}x{cfg.diffusion.resolution} real context; the real actions; "
                       "frames in [0, 1] at the dream's resolution):"), "",
                  "| horizon | frame | frame, repeat last |", "|---:|---:|---:|"]
        lines += [f"| {h} | {ms['frame_mse'][i]:.4f} | {ms['frame_mse_repeat'][i]:.4f} |"
                  for i, h in enumerate(ms["horizon"])]
        if cfg.videos:
            lines += ["", "Real | dream | error of the same actions: `videos/diffusion_real_vs_dream.mp4`."]
    lines += ["", "![dream vs real](plots/dream_vs_real.png)", "",
              "What the world model sees (top: real frames, bottom: VAE reconstructions):", "",
              "![VAE reconstructions](plots/vae_reconstruction.png)", "",
              f"Resolved config: `config.yaml`; the same figures: `report.json`. Wall time: {s['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning(dl: Any, s: dict[str, Any]) -> None:
    """plots/dream_vs_real.png: CMA-ES in the dream, and the real-env results beside the fixed policies.

    Left, on two y scales (a dream return is out of ``max_dream_steps``, a real one out of
    ``fidelity_max_steps``, so one axis flattens the dream curve): top, the dream return per
    generation (population mean of every seed, thin) and of seed 0's scored CMA means (from the
    fidelity panel); bottom, the real return of the same CMA means. The dashed lines are the best
    fixed policy of the panel, measured the same way (dream on top, real below), so a reader sees at
    once whether the dream or reality rates the trained controllers above a trivial policy."""
    plt = _plt()
    fig = plt.figure(figsize=(13, 6))
    grid = fig.add_gridspec(2, 2)
    ax_d, ax_r, ax1 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    ax_r.sharex(ax_d)
    recs = dl.run.metrics()
    real_baseline = False  # the fixed policies' real returns are the same in every variant's panel
    for i, v in enumerate(dl.cfg.variants()):
        for k in range(dl.cfg.seeds):
            key = f"dream_{v}_s{k}/cmaes/mean_return"
            pts = [(r["step"], r[key]) for r in recs if key in r]
            if pts:
                x, y = zip(*pts)
                ax_d.plot(x, y, color=f"C{i}", alpha=0.25, lw=1, label=f"{v}: population mean" if k == 0 else None)
        p = s["diagnostics"]["fidelity_panel"].get(v)
        if p:
            gm = [(int(n.split()[-1]), d, r) for n, d, r in zip(p["names"], p["dream"], p["real"])
                  if n.startswith("CMA mean gen")]
            if gm:
                g, d, r = zip(*gm)
                ax_d.plot(g, d, "o-", color=f"C{i}", label=f"{v}: CMA mean (seed 0)")
                ax_r.plot(g, r, "s-", color=f"C{i}", label=f"{v}: CMA mean (seed 0)")
            fixed = [(n, d, r) for n, d, r in zip(p["names"], p["dream"], p["real"]) if n.startswith("fixed")]
            if fixed:
                name, d, r = max(fixed, key=lambda t: t[2])
                ax_d.axhline(d, color=f"C{i}", ls="--", lw=1, label=f"{v}: dream of {name}")
                if not real_baseline:
                    ax_r.axhline(r, color="k", ls="--", lw=1, label=f"best {name}")
                    real_baseline = True
    ax_d.set_ylabel(f"dream return (of {dl.cfg.max_dream_steps})")
    ax_d.set_title("controller training in the dream, and the same controllers in reality")
    ax_d.legend(fontsize=7)
    ax_r.set_xlabel("CMA-ES generation")
    ax_r.set_ylabel(f"real return (up to {dl.cfg.fidelity_max_steps} steps)")
    ax_r.legend(fontsize=7)
    rows = {**{f"{v}": r for v, r in s["variants"].items()},
            **({"upper bound": s["upper_bound"]} if s["upper_bound"] else {}),
            **{f"fixed: {f}": r for f, r in s["fixed_policies"].items()}}
    cols = [c for c in SPLIT_KEYS if any(c in r for r in rows.values())]
    width = 0.8 / max(1, len(rows))
    for i, (name, r) in enumerate(rows.items()):
        m = [r.get(c, {}).get("mean", np.nan) for c in cols]
        e = [r.get(c, {}).get("ci95", 0) for c in cols]
        hatch = "//" if name.startswith("fixed") else None
        ax1.bar(np.arange(len(cols)) + width * i, m, width, yerr=e, label=name, color=f"C{i}", hatch=hatch)
    ax1.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, [SPLIT_TITLES[c] for c in cols])
    ax1.set_ylabel("real return (95% CI)")
    ax1.set_title("transfer to the real env")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dl.path / "plots" / "dream_vs_real.png", dpi=100)
    plt.close(fig)


def _subset_note(p: dict[str, Any]) -> str:
    """The fidelity line's tail: the Spearman within the trained and the untrained controllers."""
    tr, un = p.get("spearman_trained"), p.get("spearman_untrained")
    if tr is None or un is None or math.isnan(tr) or math.isnan(un):
        return ""
    return (f" Within the untrained controllers (fixed, random linear): {un:.2f}; within the trained ones "
            f"(CMA-ES means, final controllers): {tr:.2f}" + (" (near or below 0: the dream tells good from bad "
                                                               "play but is exploited among good controllers)."
                                                               if tr < 0.2 else "."))


def plot_fidelity(dl: Any, s: dict[str, Any]) -> None:
    """plots/dream_fidelity.png: dream return vs real return of every panel controller, per variant."""
    panels = s["diagnostics"]["fidelity_panel"]
    if not panels:
        return
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (v, p) in zip(axes[0], panels.items()):
        kinds = [n.split(":")[0].split(" gen")[0].split(" seed")[0].rstrip("0123456789 ") for n in p["names"]]
        for j, kind in enumerate(dict.fromkeys(kinds)):
            sel = [i for i, k in enumerate(kinds) if k == kind]
            ax.scatter([p["dream"][i] for i in sel], [p["real"][i] for i in sel], label=kind, color=f"C{j}")
        lim = [0, max(max(p["dream"]), max(p["real"])) * 1.05 + 1]
        ax.plot(lim, lim, color="gray", lw=0.5)
        ax.set_xlabel("dream return")
        ax.set_ylabel("real return")
        ax.set_title(f"{v}: Spearman {p['spearman']:.2f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dl.path / "plots" / "dream_fidelity.png", dpi=100)
    plt.close(fig)


def plot_multistep(dl: Any, s: dict[str, Any]) -> None:
    """plots/multistep.png: latent and frame error vs horizon per variant, with the baselines."""
    ms = s["diagnostics"]["multistep"]
    if not ms:
        return
    plt = _plt()
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (v, m) in enumerate(ms.items()):
        a0.plot(m["horizon"], m["latent_mse"], "o-", color=f"C{i}", label=v)
        a1.plot(m["horizon"], m["frame_mse"], "o-", color=f"C{i}", label=v)
    m = next(iter(ms.values()))
    a0.plot(m["horizon"], m["latent_mse_repeat"], "k--", label="repeat last latent")
    a1.plot(m["horizon"], m["frame_mse_repeat"], "k--", label="repeat last frame")
    a1.plot(m["horizon"], m["frame_mse_vae"], "k:", label="VAE reconstruction (floor)")
    for ax, t in ((a0, "latent MSE"), (a1, "decoded-frame MSE")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("horizon (steps)")
        ax.set_title(t)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(dl.path / "plots" / "multistep.png", dpi=100)
    plt.close(fig)


def plot_reconstructions(dl: Any, n: int = 8) -> None:
    """``plots/vae_reconstruction.png``: ``n`` real frames spread over the data (top row) and their
    VAE reconstructions (bottom row), 3x upscaled: what the world model can and cannot see."""
    import imageio.v3 as iio

    from simlab.world_models.dropout.vae import ConvVAE, reconstruct_frames

    ds = dl._real()
    idx = np.linspace(0, len(ds) - 1, n).astype(np.int64)
    real = ds.get(idx, ("obs",))["obs"]
    vae = ConvVAE.from_pretrained(dl.path / "checkpoints" / "vae", device=dl.device)
    rec = reconstruct_frames(vae, real)
    grid = np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(rec), 1)], 0)
    iio.imwrite(dl.path / "plots" / "vae_reconstruction.png", np.kron(grid, np.ones((3, 3, 1), np.uint8)))


def real_vs_dream_video(dl: Any) -> None:
    """``videos/real_vs_dream.mp4``: a real episode next to the dream of its own actions (the first
    variant's model, no dropout)."""
    import torch

    from simlab.video import side_by_side, write_mp4
    from simlab.world_models.dropout.mdnrnn import sample_next_z

    ep = next(iter(dl._real().episodes()))
    real = ep["observations"][:200]
    acts = ep["actions"][: len(real) - 1]
    model = dl.world_model(dl.cfg.variants()[0])
    gen = torch.Generator(device=dl.device).manual_seed(0)
    with torch.no_grad():
        z = model.vae.encode(torch.as_tensor(real[:1], device=dl.device))[0]
        state = None
        zs = [z]
        for a in acts:
            at = torch.as_tensor(np.asarray(a)[None], device=dl.device)
            out = model.rnn.step(z, at if model.rnn.continuous else at.long(), state)
            state = out.state
            z = sample_next_z(out.logpi, out.mu, out.logsigma, tau=dl.cfg.temperature, generator=gen)
            zs.append(z)
        dream = np.concatenate([model.vae.decode_uint8(x) for x in zs])
    write_mp4(dl.path / "videos" / "real_vs_dream.mp4", side_by_side(real, dream), fps=15)


def _no_nan(x: Any) -> Any:
    """NaN (an undefined figure, e.g. a rank correlation of constant returns) -> null: strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x


def write_report(dl: Any) -> dict[str, Any]:
    """Write report.md, report.json, the plots and the real | dream video; returns report.json's dict."""
    (dl.path / "plots").mkdir(parents=True, exist_ok=True)
    s = summarize(dl)
    plot_learning(dl, s)
    plot_fidelity(dl, s)
    plot_multistep(dl, s)
    plot_reconstructions(dl)
    if dl.cfg.videos:
        real_vs_dream_video(dl)
    s["seconds"] = round(time.time() - dl.t0, 1)
    with atomic_path(dl.path / "report.md") as tmp:
        tmp.write_text(markdown(dl, s))
    write_json_atomic(dl.path / "report.json", _no_nan(json.loads(json.dumps(s, default=float))))
    return s


__all__ = ["markdown", "stats", "summarize", "verdict", "write_report"]
