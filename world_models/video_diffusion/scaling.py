"""Scaling grid of the video diffusion world model: velocity error vs training-set size and model size.

The paper (Kang et al. 2024, Fig. 2) trains on its ~30K / ~300K / ~3M linspace grids with
DiT-S/B/L and finds that more data and larger models drive the in-distribution error to the
parse floor while the out-of-distribution error stays an order of magnitude higher. This
module runs the same grid at any scale (``simlab train video-diffusion-grid``): for every
(data size, model size) cell it

1. collects the training set if it is missing (states only, the paper's linspace grid of the
   scenario; ``GRID:N`` takes the first N videos of the grid's fixed random order, for smoke
   runs), and the ID / OOD evaluation sets (``eval_videos`` videos, seed ``eval_seed``);
2. trains :func:`~.train.train_video_diffusion` with the preset, the overrides and the model
   size's width (:data:`MODEL_SIZES`);
3. scores ID and OOD with :func:`~.evaluate.evaluate_model` (the model beside the parse floor
   and the trivial predictors);
4. rewrites ``scaling.json``, ``scaling.md`` and ``scaling.png`` (velocity error vs number of
   training videos, one colour per model size, ID solid / OOD dashed, 95% CI bars).

Directory ``OUT``::

    OUT/grid.json                   the grid's settings (a resume must repeat them)
    OUT/data/                       datasets (unless --data-root points elsewhere):
                                    <scenario><res>_train<grid>[_n<N>], <scenario><res>_<split>
    OUT/runs/<data>_<model>/        one training run directory per cell
    OUT/cells/<data>_<model>.json   a finished cell (training info + ID / OOD scores)
    OUT/scaling.json|md|png         the table and the plot of every finished cell

Resumable: with ``resume`` finished cells (their ``cells/*.json``) are skipped, a cell whose
training finished is only evaluated, and a killed training run continues from its checkpoint.
The data and model sizes may change between resumes (cells are independent); every other
setting must not. The whole grid is validated (sizes, preset, overrides, splits, existing
datasets) before any work starts.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError

MODEL_SIZES: dict[str, float] = {"xs": 0.5, "s": 1.0, "m": 2.0, "l": 4.0, "xl": 8.0}
"""Width multiplier of each model size, applied to the preset's ``unet_channels`` and
``dit_head_dim`` (rounded up to multiples of 8): ``s`` is the preset itself (cpu-small: 2.8M
parameters), ``m`` doubles every width (~4x the parameters)."""
GRID_FORMAT = 1
"""Version of ``grid.json`` / ``cells/*.json``."""
FIXED_KEYS: tuple[str, ...] = ("preset", "overrides", "steps", "scenario", "id_split", "ood_split",
                               "eval_videos", "eval_seed", "data_root", "resolution")
"""Settings a resumed grid must share with the first run."""


@dataclass
class ScalingGridConfig:
    """What a scaling grid runs (one line per field)."""

    data_sizes: list[str] = field(default_factory=lambda: ["30k"])
    """Training-set sizes: the scenario's linspace grids (30k | 300k | 3m) or GRID:N (its first N videos)."""
    model_sizes: list[str] = field(default_factory=lambda: ["s"])
    """Model sizes, names of :data:`MODEL_SIZES`."""
    preset: str = "cpu-small"
    """Video diffusion preset of every cell."""
    overrides: list[str] = field(default_factory=list)
    """``key=value`` overrides of the video diffusion config, after the preset."""
    steps: int | None = None
    """Training steps of every cell (default: the preset's ``max_steps``)."""
    scenario: str = "uniform"
    """collision2d scenario with linspace grids (uniform | parabola | collision | oblique)."""
    id_split: str = "id"
    """In-distribution evaluation split."""
    ood_split: str = "ood_v"
    """Out-of-distribution evaluation split (ood_v: speeds outside the training range)."""
    eval_videos: int = 256
    """Videos scored per evaluation split."""
    eval_seed: int = 1
    """Seed of the evaluation datasets (the training grids use seed 0)."""
    data_root: str | None = None
    """Where datasets are found or collected (default: OUT/data)."""
    resolution: int = 0
    """Frame side, set from the resolved preset (not a user setting)."""


def parse_data_size(token: str, scenario: str = "uniform") -> tuple[str, int | None]:
    """``"30k"`` -> ``("30k", None)`` (the whole grid); ``"30k:2000"`` -> ``("30k", 2000)``.

    ConfigError (one line) for an unknown grid name or a count outside ``1..grid size``.
    """
    from simlab.envs.collision2d.scenarios import GRIDS, VideoSpec

    grids = GRIDS.get(scenario, {})
    name, _, count = token.strip().partition(":")
    if name not in grids:
        raise ConfigError(f"unknown data size {token!r}; choose {', '.join(grids) or '(none)'} "
                          f"or GRID:N (e.g. 30k:2000)")
    if not count:
        return name, None
    total = VideoSpec(scenario, "train", 0, name).grid_size()
    try:
        n = int(count)
    except ValueError:
        raise ConfigError(f"data size {token!r}: N in GRID:N must be an integer") from None
    if not 1 <= n <= (total or 0):
        raise ConfigError(f"data size {token!r}: N must be in 1..{total}")
    return name, n


def data_label(token: str) -> str:
    """A file-name-safe label of a data size: ``30k``, ``30k-n2000``."""
    name, _, count = token.strip().partition(":")
    return f"{name}-n{int(count)}" if count else name


def scaled_width(cfg, mult: float):  # -> VideoDiffusionConfig
    """``cfg`` with every width (UNet channels, DiT channels per head) times ``mult``, rounded up to 8."""
    def r8(x: float) -> int:
        return max(8, math.ceil(x / 8.0) * 8)

    return replace(cfg, unet_channels=[r8(c * mult) for c in cfg.unet_channels],
                   dit_head_dim=r8(cfg.dit_head_dim * mult))


def cell_config(grid: ScalingGridConfig, model_size: str):  # -> VideoDiffusionConfig
    """The resolved video diffusion config of a cell: preset <- overrides <- steps <- model width."""
    from simlab.world_models.video_diffusion.config import video_diffusion_config

    if model_size not in MODEL_SIZES:
        raise ConfigError(f"unknown model size {model_size!r}; choose one of {', '.join(MODEL_SIZES)}")
    ov = list(grid.overrides)
    if grid.steps is not None:
        ov.append(f"max_steps={grid.steps}")
    return scaled_width(video_diffusion_config([grid.preset], ov), MODEL_SIZES[model_size])


def validate(grid: ScalingGridConfig) -> ScalingGridConfig:
    """Check every setting and cell config; returns ``grid`` with ``resolution`` filled in.

    ConfigError (one line) for unknown or repeated sizes, an unknown preset, override, scenario
    or split, a bad step or video count.
    """
    from simlab.envs.collision2d.scenarios import GRIDS, VideoSpec

    if grid.scenario not in GRIDS:
        raise ConfigError(f"scenario {grid.scenario!r} has no linspace grids; choose one of {', '.join(GRIDS)}")
    for what, items in (("data size", grid.data_sizes), ("model size", grid.model_sizes)):
        if not items:
            raise ConfigError(f"give at least one {what}")
        if len(set(items)) != len(items):
            raise ConfigError(f"a {what} is repeated in {','.join(items)}")
    for tok in grid.data_sizes:
        parse_data_size(tok, grid.scenario)
    if grid.steps is not None and grid.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {grid.steps}")
    if grid.eval_videos < 1:
        raise ConfigError(f"--eval-videos must be >= 1, got {grid.eval_videos}")
    cfgs = [cell_config(grid, m) for m in grid.model_sizes]
    for split in (grid.id_split, grid.ood_split):
        VideoSpec(grid.scenario, split, grid.eval_seed)
    return replace(grid, resolution=cfgs[0].resolution)


# ---- datasets -------------------------------------------------------------------------------------
def train_data_config(grid: ScalingGridConfig, token: str):  # -> CollectConfig
    """The states-only training set of a data size (seed 0)."""
    from simlab.envs.collision2d.dataset import CollectConfig

    name, n = parse_data_size(token, grid.scenario)
    return CollectConfig(scenario=grid.scenario, split="train", size=n or 0, resolution=grid.resolution,
                         seed=0, grid=name, store_frames=False)


def eval_data_config(grid: ScalingGridConfig, split: str):  # -> CollectConfig
    """An evaluation set (frames stored)."""
    from simlab.envs.collision2d.dataset import CollectConfig

    return CollectConfig(scenario=grid.scenario, split=split, size=grid.eval_videos, resolution=grid.resolution,
                         seed=grid.eval_seed)


def data_dir(grid: ScalingGridConfig, out: Path, cfg) -> Path:
    """Dataset directory of a collect config (names as in docs/results.md)."""
    root = Path(grid.data_root) if grid.data_root else out / "data"
    base = f"{cfg.scenario}{cfg.resolution}"
    if cfg.grid is not None:
        return root / (f"{base}_train{cfg.grid}" + (f"_n{cfg.size}" if cfg.size else ""))
    return root / f"{base}_{cfg.split}"


def _record(path: Path) -> dict[str, Any] | None:
    from simlab.data import RECORD_FILE

    try:
        return json.loads((path / RECORD_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise ConfigError(f"{path}: unreadable {RECORD_FILE}; remove the directory or choose another --data-root") \
            from None


def check_existing_data(path: Path, cfg, at_least: bool = False) -> None:
    """ConfigError if ``path`` holds a dataset collected with another config than ``cfg``.

    With ``at_least`` (evaluation sets) a larger dataset of the same kind is accepted
    (the first ``cfg.size`` videos are scored).
    """
    rec = _record(path)
    if rec is None:
        return
    want = asdict(cfg)
    keys = [k for k in want if k != "size"] if at_least else list(want)
    diff = sorted(k for k in keys if rec.get(k) != want[k])
    if at_least and int(rec.get("size", 0)) < cfg.size:
        diff.append("size")
    if diff:
        raise ConfigError(f"{path} holds a dataset collected with a different config ({', '.join(diff)} differ); "
                          "remove it or choose another --data-root")


def ensure_data(path: Path, cfg, progress: bool | None = None) -> Path:
    """Collect ``cfg`` into ``path`` unless a complete matching dataset is there (resumes a partial one)."""
    from simlab.data import MANIFEST
    from simlab.envs.collision2d.dataset import collect

    rec = _record(path)
    if (path / MANIFEST).exists() and rec is not None and (rec == asdict(cfg) or cfg.grid is None):
        return path  # complete (an evaluation set may be larger: check_existing_data accepted it)
    collect(cfg, path, resume=True, progress=progress)
    return path


# ---- the grid ---------------------------------------------------------------------------------------
def _fixed(grid: ScalingGridConfig) -> dict[str, Any]:
    d = asdict(grid)
    return {k: d[k] for k in FIXED_KEYS}


def prepare_out(grid: ScalingGridConfig, out: Path, resume: bool) -> None:
    """Refuse a non-empty ``out`` without ``resume`` and a resume with other fixed settings; read-only."""
    from simlab.paths import check_output_dir

    check_output_dir(out)
    gfile = out / "grid.json"
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise ConfigError(f"{out} is not empty; pass --resume to continue that grid or choose another --out")
        if not gfile.exists():
            raise ConfigError(f"{out}: no grid.json, so it is not a scaling grid to resume")
        try:
            old = json.loads(gfile.read_text())["fixed"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"{gfile}: unreadable grid settings") from None
        new = json.loads(json.dumps(_fixed(grid)))
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if diff:
            raise ConfigError(f"{out}: resumed with different settings ({', '.join(diff)} differ); "
                              "only --data-sizes and --model-sizes may change")


def check_run_config(run_dir: Path, cfg) -> None:
    """ConfigError if an unfinished cell's run directory was started with another config than ``cfg``."""
    from simlab.config import load_yaml, to_dict
    from simlab.world_models.video_diffusion.config import VideoDiffusionConfig

    if not (run_dir / "config.yaml").exists():
        return
    old, new = to_dict(load_yaml(VideoDiffusionConfig, run_dir / "config.yaml")), to_dict(cfg)
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        raise ConfigError(f"{run_dir}: started with a different config ({', '.join(diff)} differ)")


def cell_name(token: str, model_size: str) -> str:
    """``30k_s``, ``30k-n2000_m``."""
    return f"{data_label(token)}_{model_size}"


def _trim_eval(ev: dict[str, Any]) -> dict[str, Any]:
    keep = ("velocity_error", "velocity_error_robust", "missing_frac")
    return {"split": ev["split"], "videos": ev["videos"], "sample_steps": ev["sample_steps"],
            "generated_frames_per_s": ev["generated_frames_per_s"],
            "ratio_to_repeat_last": ev["ratio_to_repeat_last"],
            "ratio_to_constant_velocity": ev["ratio_to_constant_velocity"],
            "predictors": {p: {k: s[k] for k in keep} for p, s in ev["predictors"].items()}}


def run_grid(grid: ScalingGridConfig, out: str | Path, resume: bool = False,
             progress: bool | None = None) -> dict[str, Any]:
    """Run (or resume) the scaling grid; returns the ``scaling.json`` report.

    Args:
        grid: settings (validated here, before anything is written).
        out: grid directory.
        resume: continue a grid in ``out`` (finished cells are skipped).
        progress: tqdm bars (default: when stderr is a terminal).
    """
    import os

    from tqdm import tqdm

    from simlab.data import write_json_atomic

    out = Path(out)
    grid = validate(grid)
    prepare_out(grid, out, resume)
    cells = [(d, m) for d in grid.data_sizes for m in grid.model_sizes]
    train_cfgs = {d: train_data_config(grid, d) for d in grid.data_sizes}
    eval_cfgs = {s: eval_data_config(grid, s) for s in (grid.id_split, grid.ood_split)}
    for c in train_cfgs.values():
        check_existing_data(data_dir(grid, out, c), c)
    for c in eval_cfgs.values():
        check_existing_data(data_dir(grid, out, c), c, at_least=True)
    for d, m in cells:  # every run directory a resume would continue must hold this cell's config
        if not (out / "cells" / f"{cell_name(d, m)}.json").exists():
            check_run_config(out / "runs" / cell_name(d, m), cell_config(grid, m))

    out.mkdir(parents=True, exist_ok=True)
    gfile = out / "grid.json"
    prev = json.loads(gfile.read_text()) if gfile.exists() else {}
    write_json_atomic(gfile, {"format_version": GRID_FORMAT, "fixed": _fixed(grid),
                              "data_sizes": list(dict.fromkeys([*prev.get("data_sizes", []), *grid.data_sizes])),
                              "model_sizes": list(dict.fromkeys([*prev.get("model_sizes", []), *grid.model_sizes]))})
    show = progress if progress is not None else os.isatty(2)
    done_before = []
    with tqdm(total=len(cells), desc="video-diffusion grid", unit="cell", disable=not show) as bar:
        for d, m in cells:
            name = cell_name(d, m)
            cfile = out / "cells" / f"{name}.json"
            if cfile.exists():
                done_before.append(name)
                bar.update(1)
                continue
            bar.set_postfix(cell=name)
            res = run_cell(grid, out, d, m, progress=show)
            write_json_atomic(cfile, res)
            write_report(out)
            bar.update(1)
    rep = write_report(out)
    rep["skipped_cells"] = done_before
    return rep


def run_cell(grid: ScalingGridConfig, out: Path, token: str, model_size: str,
             progress: bool | None = None) -> dict[str, Any]:
    """Collect (if missing), train (or resume / skip a finished run), evaluate ID and OOD; the cell's record."""
    from simlab.world_models.video_diffusion.evaluate import evaluate_model
    from simlab.world_models.video_diffusion.train import train_video_diffusion

    tcfg = train_data_config(grid, token)
    tdir = ensure_data(data_dir(grid, out, tcfg), tcfg, progress)
    edirs = {s: ensure_data(data_dir(grid, out, c), c, progress)
             for s, c in ((grid.id_split, eval_data_config(grid, grid.id_split)),
                          (grid.ood_split, eval_data_config(grid, grid.ood_split)))}
    cfg = cell_config(grid, model_size)
    run_dir = out / "runs" / cell_name(token, model_size)
    info_file = run_dir / "train_info.json"
    if not info_file.exists():
        started = run_dir.exists() and any(run_dir.iterdir())
        train_video_diffusion(cfg, tdir, run_dir, resume=started, progress=progress)
    info = json.loads(info_file.read_text())
    t0 = time.perf_counter()
    evals = {}
    for role, split in (("id", grid.id_split), ("ood", grid.ood_split)):
        evals[role] = _trim_eval(evaluate_model(run_dir, edirs[split], limit=grid.eval_videos, progress=progress))
    name, _ = parse_data_size(token, grid.scenario)
    return {"format_version": GRID_FORMAT, "cell": cell_name(token, model_size), "data_size": token, "grid": name,
            "train_videos": tcfg.total, "model_size": model_size, "width": MODEL_SIZES[model_size],
            "unet_channels": cfg.unet_channels, "backbone": cfg.backbone, "parameters": info.get("parameters"),
            "steps": info.get("steps"), "final_loss": info.get("final_loss"),
            "train_seconds": info.get("seconds"), "eval_seconds": time.perf_counter() - t0,
            "run": str(run_dir), "train_data": str(tdir), "eval_data": {k: str(v) for k, v in edirs.items()},
            **evals}


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every finished cell of a grid directory, sorted by model width then training videos."""
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    return sorted(cells, key=lambda c: (c["width"], c["train_videos"]))


def write_report(out: str | Path) -> dict[str, Any]:
    """Rewrite ``scaling.json``, ``scaling.md`` and ``scaling.png`` from the finished cells."""
    from simlab.data import write_json_atomic

    out = Path(out)
    g = json.loads((out / "grid.json").read_text())
    cells = load_cells(out)
    rep = {"format_version": GRID_FORMAT, "settings": g["fixed"], "units": "world units / s",
           "metric": "velocity error of the paper's parser, mean and 95% CI over the evaluation videos",
           "cells": cells, "files": {"json": str(out / "scaling.json"), "markdown": str(out / "scaling.md"),
                                     "plot": str(out / "scaling.png")}}
    (out / "scaling.md").write_text(format_markdown(rep))
    if cells:
        plot_scaling(cells, out / "scaling.png", g["fixed"])
    write_json_atomic(out / "scaling.json", rep)
    return rep


def _ve(cell: dict[str, Any], role: str, pred: str = "model") -> dict[str, float]:
    return cell[role]["predictors"][pred]["velocity_error"]


def format_markdown(rep: dict[str, Any]) -> str:
    """The grid as a markdown table."""
    s = rep["settings"]
    lines = ["# Video diffusion scaling grid", "",
             (f"Scenario {s['scenario']} at {s['resolution']} px, preset `{s['preset']}`"
              + (f" with {' '.join(s['overrides'])}" if s["overrides"] else "")
              + (f", {s['steps']} steps per cell" if s["steps"] else "")
              + f"; ID = `{s['id_split']}`, OOD = `{s['ood_split']}`, {s['eval_videos']} videos each "
              f"(seed {s['eval_seed']}). Velocity error in world units / s, mean ± 95% CI."), "",
             ("| data | train videos | model | parameters | ID model | ID floor | ID const-vel | OOD model | "
             "OOD const-vel | ID / OOD | train s |"),
             "|---|---:|---|---:|---|---|---|---|---|---:|---:|"]
    for c in rep["cells"]:
        idm, ood = _ve(c, "id"), _ve(c, "ood")
        fl, cv, ocv = _ve(c, "id", "ground_truth"), _ve(c, "id", "constant_velocity"), _ve(c, "ood", "constant_velocity")
        params = f"{c['parameters'] / 1e6:.2f}M" if c.get("parameters") else "?"
        lines.append(f"| {c['data_size']} | {c['train_videos']} | {c['model_size']} | {params} | "
                     f"{idm['mean']:.3f} ± {idm['ci95']:.3f} | {fl['mean']:.3f} | {cv['mean']:.3f} | "
                     f"{ood['mean']:.3f} ± {ood['ci95']:.3f} | {ocv['mean']:.3f} | "
                     f"{idm['mean'] / ood['mean']:.3f} | {c.get('train_seconds') or float('nan'):.0f} |")
    return "\n".join(lines) + "\n"


def plot_scaling(cells: list[dict[str, Any]], path: str | Path, settings: dict[str, Any]) -> None:
    """PNG: model velocity error vs training videos (log-log), one colour per model size,
    ID solid and OOD dashed, 95% CI error bars; the ID ground-truth parse floor dotted grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sizes = sorted({c["model_size"] for c in cells}, key=lambda m: MODEL_SIZES[m])
    for i, m in enumerate(sizes):
        cs = sorted((c for c in cells if c["model_size"] == m), key=lambda c: c["train_videos"])
        x = np.array([c["train_videos"] for c in cs], float)
        params = cs[0].get("parameters")
        label = f"{m} ({params / 1e6:.2g}M)" if params else m
        for role, ls in (("id", "-"), ("ood", "--")):
            y = np.array([_ve(c, role)["mean"] for c in cs])
            e = np.array([_ve(c, role)["ci95"] for c in cs])
            ax.errorbar(x, y, yerr=e, color=colors[i % len(colors)], ls=ls, marker="o", ms=4, capsize=3,
                        label=f"{label} {role.upper()}")
    fl = [_ve(c, "id", "ground_truth")["mean"] for c in cells]
    ax.axhline(float(np.mean(fl)), color="gray", ls=":", lw=1, label="ID parse floor (ground truth)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training videos")
    ax.set_ylabel("velocity error (world units / s)")
    ax.set_title(f"{settings['scenario']} {settings['resolution']}px, preset {settings['preset']}: "
                 f"ID ({settings['id_split']}) solid, OOD ({settings['ood_split']}) dashed", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_summary(rep: dict[str, Any]) -> str:
    """A short text table for the terminal."""
    lines = [f"scaling grid: {len(rep['cells'])} finished cell(s)"
             + (f" ({len(rep.get('skipped_cells', []))} skipped as already done)" if rep.get("skipped_cells") else ""),
             f"  {'cell':<18} {'videos':>8} {'ID err':>8} {'95% CI':>7} {'OOD err':>8} {'95% CI':>7}"]
    for c in rep["cells"]:
        i, o = _ve(c, "id"), _ve(c, "ood")
        lines.append(f"  {c['cell']:<18} {c['train_videos']:>8} {i['mean']:>8.3f} {i['ci95']:>7.3f} "
                     f"{o['mean']:>8.3f} {o['ci95']:>7.3f}")
    lines.append(f"  wrote {rep['files']['json']}, {rep['files']['markdown']}, {rep['files']['plot']}")
    return "\n".join(lines)
