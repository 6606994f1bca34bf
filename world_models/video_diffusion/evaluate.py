"""``simlab eval physics --model RUN``: the paper's velocity error of generated videos, beside references.

For each scored video the model generates frames ``c..T-1`` from the first
``c`` ground-truth frames. The same metric (:func:`simlab.envs.collision2d.parse.evaluate_videos`,
the paper's parser) is applied, in one table, to:

- ``model``: the generated videos;
- ``ground_truth``: the dataset's own frames (the parse floor);
- ``repeat_last``: the last condition frame repeated (a ball standing still);
- ``constant_velocity``: the condition frames extrapolated at constant velocity
  (the exact law for uniform motion, up to parsing error).

Every row is scored twice: with the paper's parser (``velocity_error``) and
with :mod:`.robust_parse` (``velocity_error_robust``), which sampling speckle
cannot pull toward the frame centre.

A model has learned the law only where it beats the trivial predictors.
Velocity errors are in world units per second (the world is 10 x 10).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError

PREDICTORS: tuple[str, ...] = ("model", "ground_truth", "repeat_last", "constant_velocity")


def mean_ci(x: np.ndarray) -> dict[str, float]:
    """Mean, std, normal-approximation 95% CI half-width, median and count of the finite values of ``x``."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95": float("nan"), "median": float("nan"), "n": 0}
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "std": sd, "ci95": 1.96 * sd / float(np.sqrt(len(x))),
            "median": float(np.median(x)), "n": len(x)}


def load_scheduler(model_dir: str | Path, num_train_timesteps: int = 1000):
    """The training DDPM schedule saved next to the model (``scheduler_config.json``), else the default."""
    from diffusers import DDPMScheduler

    from simlab.world_models.video_diffusion.diffusion import train_scheduler

    p = Path(model_dir)
    p = p / "model" if (p / "model" / "scheduler_config.json").exists() else p
    if (p / "scheduler_config.json").exists():
        return DDPMScheduler.from_pretrained(p, local_files_only=True)
    return train_scheduler(num_train_timesteps)


def load_for_sampling(model_path: str | Path, steps: int | None = None, sampler: str | None = None):
    """``(model, ddpm, vae, steps, sampler)`` of a run or saved model, ready for :func:`.sampling.generate`.

    ``vae`` is the frozen frame VAE saved next to a latent model's weights (else None); ``steps`` and
    ``sampler`` default to the run's ``sample_steps`` / ``sampler`` (20 / ddim for a bare model).
    ConfigError (one line) for steps < 1 or an unknown sampler; CheckpointError for a bad model.
    """
    from simlab.world_models.video_diffusion.diffusion import SAMPLERS
    from simlab.world_models.video_diffusion.model import load_model

    model = load_model(model_path)
    ddpm = load_scheduler(model_path)
    vae = None
    if model.latent:
        from simlab.world_models.video_diffusion.latent import load_frame_vae

        mp = Path(model_path)
        vae = load_frame_vae((mp / "model" if (mp / "model" / "config.json").exists() else mp) / "vae")
    if steps is None:
        steps = _run_sample_steps(Path(model_path))
    if sampler is None:
        sampler = _run_sampler(Path(model_path))
    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return model, ddpm, vae, steps, sampler


def evaluate_model(model_path: str | Path, data: str | Path, limit: int = 0, steps: int | None = None,
                   batch: int = 32, seed: int = 0, video: str | Path | None = None,
                   verify: bool = False, progress: bool | None = None,
                   on_batch: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], None] | None = None,
                   sampler: str | None = None) -> dict[str, Any]:
    """Generate from a dataset's condition frames and score model and references.

    Args:
        model_path: a run directory or a saved model directory.
        data: a collision2d dataset (resolution and frame count must match the model).
        limit: score the first ``limit`` videos (0 = all).
        steps: sampler steps (default: the run's ``sample_steps``, else 20).
        batch: videos generated together.
        seed: noise seed (batch ``i`` uses ``seed + first index``).
        video: optional mp4: ground truth | model | error of the 4 worst videos.
        on_batch: called after each batch with the dataset's arrays of that batch (states,
            ``param_*``, ``frames``) and ``{predictor: (B, T, H, W, 3) uint8}`` (the probes of
            :mod:`.probes` score them their own way). Attribute-scene datasets are accepted only
            with it: they are not velocity-scored here, and only the header fields are returned.
        sampler: ``ddim`` or ``euler`` (default: the run's ``sampler``, else ddim).

    A model trained in a frame VAE's latent space is sampled there and decoded by the VAE copy saved
    next to its weights (``model/vae``).

    Returns:
        A JSON-ready dict; ``predictors[name]`` holds ``velocity_error``,
        ``frame_velocity_error`` and ``missing_frac`` stats (mean, ci95, ...).
    """
    import os

    import torch
    from tqdm import tqdm

    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.envs.collision2d.parse import evaluate_videos
    from simlab.world_models.video_diffusion.baselines import constant_velocity, repeat_last
    from simlab.world_models.video_diffusion.data import check_compatible
    from simlab.world_models.video_diffusion.robust_parse import evaluate_videos_robust
    from simlab.world_models.video_diffusion.sampling import generate

    if limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    model, ddpm, vae, steps, sampler = load_for_sampling(model_path, steps, sampler)
    ds = VideoDataset(data, verify=verify)
    if ds.attributes and on_batch is None:
        raise ConfigError(f"{data}: attribute scenes have no velocity law to score; use a physics scenario")
    c = model.config.cond_frames
    check_compatible(ds, model.config.num_frames, model.config.resolution)
    n = len(ds) if limit == 0 else min(limit, len(ds))
    parts: dict[str, dict[str, list]] = {p: {} for p in PREDICTORS}
    worst: list[tuple[float, np.ndarray, np.ndarray]] = []
    t_gen = 0.0
    show = progress if progress is not None else os.isatty(2)
    with tqdm(total=n, desc="eval physics (generate)", unit="video", disable=not show, leave=False) as bar:
        for lo in range(0, n, batch):
            st = ds.load(lo, min(n, lo + batch))
            gt = st["frames"]
            t0 = time.perf_counter()
            with torch.inference_mode():
                gen = generate(model, gt[:, :c], steps, seed=seed + lo, scheduler=ddpm, sampler_kind=sampler,
                               vae=vae)
            t_gen += time.perf_counter() - t0
            preds = {"model": gen, "ground_truth": gt, "repeat_last": repeat_last(gt, c)}
            if not ds.attributes:
                preds["constant_velocity"] = constant_velocity(gt, c, ds.num_balls)
            if on_batch is not None:
                on_batch(st, preds)
            for name, frames in preds.items() if not ds.attributes else ():
                r = evaluate_videos(frames, st["pos"], st["radii"], st["t_contact"], ds.collision, cond_frames=c)
                rob = evaluate_videos_robust(frames, st["pos"], st["radii"], st["t_contact"], ds.collision,
                                             cond_frames=c)
                for k, v in [*r.items(), *((f"{k}_robust", v) for k, v in rob.items())]:
                    parts[name].setdefault(k, []).append(v)
                if name == "model" and video is not None:
                    err = np.nan_to_num(r["velocity_error"], nan=np.inf)
                    worst.extend((float(e), gt[i], gen[i]) for i, e in enumerate(err))
                    worst = sorted(worst, key=lambda w: -w[0])[:4]
            bar.update(len(gt))
    if ds.attributes:
        return {"model": str(model_path), "data": str(data), "scenario": ds.config.scenario,
                "split": ds.config.split, "resolution": ds.config.resolution, "videos": n, "cond_frames": c,
                "sample_steps": steps, "sampler": sampler, "latent": bool(model.latent),
                "backbone": model.config.backbone,
                "generated_frames_per_s": n * (model.config.num_frames - c) / max(t_gen, 1e-9)}
    res = {p: {k: np.concatenate(v) for k, v in d.items()} for p, d in parts.items()}
    predictors = {p: {"velocity_error": mean_ci(r["velocity_error"]),
                      "frame_velocity_error": mean_ci(r["frame_velocity_error"]),
                      "missing_frac": mean_ci(r["missing"]),
                      "velocity_error_robust": mean_ci(r["velocity_error_robust"]),
                      "missing_frac_robust": mean_ci(r["missing_robust"])} for p, r in res.items()}
    mr = predictors["model"]["velocity_error_robust"]["mean"]
    m = predictors["model"]["velocity_error"]["mean"]
    out: dict[str, Any] = {
        "model": str(model_path), "data": str(data), "scenario": ds.config.scenario, "split": ds.config.split,
        "resolution": ds.config.resolution, "videos": n, "cond_frames": c, "sample_steps": steps,
        "sampler": sampler, "latent": bool(model.latent), "backbone": model.config.backbone, "units": "world units / s (world 10 x 10, frame dt 0.1 s)",
        "predictors": predictors,
        "ratio_to_repeat_last": m / predictors["repeat_last"]["velocity_error"]["mean"],
        "ratio_to_constant_velocity": m / predictors["constant_velocity"]["velocity_error"]["mean"],
        "ratio_to_repeat_last_robust": mr / predictors["repeat_last"]["velocity_error_robust"]["mean"],
        "generated_frames_per_s": n * (model.config.num_frames - c) / max(t_gen, 1e-9),
        "video": None,
    }
    if video is not None and worst:
        from simlab.video import grid, side_by_side, write_mp4

        write_mp4(video, grid(np.stack([side_by_side(g, p) for _, g, p in worst]), ncols=1), fps=5)
        out["video"] = str(video)
        out["worst_velocity_errors"] = [w[0] for w in worst]
    return out


def _run_sample_steps(path: Path) -> int:
    """``sample_steps`` of the run's config.yaml, or 20 for a bare saved model."""
    if (path / "config.yaml").exists():
        from simlab.config import load_yaml
        from simlab.world_models.video_diffusion.config import VideoDiffusionConfig

        return load_yaml(VideoDiffusionConfig, path / "config.yaml").sample_steps
    return 20


def _run_sampler(path: Path) -> str:
    """``sampler`` of the run's config.yaml, or ``ddim`` for a bare saved model."""
    if (path / "config.yaml").exists():
        from simlab.config import load_yaml
        from simlab.world_models.video_diffusion.config import VideoDiffusionConfig

        return load_yaml(VideoDiffusionConfig, path / "config.yaml").sampler
    return "ddim"


def format_report(out: dict[str, Any]) -> str:
    """A small text table of :func:`evaluate_model`'s result."""
    lines = [(f"{out['scenario']}/{out['split']} @ {out['resolution']}px, {out['videos']} videos, "
              f"{out['backbone']} model, {out['sample_steps']} {out.get('sampler', 'ddim').upper()} steps; velocity error in {out['units']}"),
             (f"  {'predictor':<18} {'mean':>8} {'95% CI':>8} {'median':>8} {'missing':>8}  "
              f"{'robust parser':>13} {'95% CI':>8}")]
    for name, s in out["predictors"].items():
        ve, mi, vr = s["velocity_error"], s["missing_frac"], s["velocity_error_robust"]
        lines.append(f"  {name:<18} {ve['mean']:>8.4f} {ve['ci95']:>8.4f} {ve['median']:>8.4f} {mi['mean']:>8.1%}  "
                     f"{vr['mean']:>13.4f} {vr['ci95']:>8.4f}")
    lines.append(f"  model / repeat_last = {out['ratio_to_repeat_last']:.3f}; "
                 f"model / constant_velocity = {out['ratio_to_constant_velocity']:.3f}")
    if out.get("video"):
        lines.append(f"  worst cases: {out['video']}")
    return "\n".join(lines)
