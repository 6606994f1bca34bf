"""``simlab eval combinatorial``: a video model on PHYRE-like scenes, in-template vs out-of-template.

The model generates frames ``c..T-1`` of each test video from its first ``c``
ground-truth frames (``c = 1`` for these scenes). The table of
:mod:`simlab.envs.combinatorial.report` (the automatic abnormality detector in
place of the paper's human raters, SSIM and PSNR against the ground truth) is
computed for the model and, in the same table, for the trivial predictor
"repeat the last condition frame". A frozen scene is never abnormal to the
detector (nothing moves, so nothing moves wrongly) but scores poorly on
SSIM / PSNR: the two columns together say whether a model is plausible *and*
follows the scene.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from simlab.errors import ConfigError, DatasetError


def evaluate_combinatorial(model_path: str | Path, data: dict[str, str | Path], limit: int = 0,
                           steps: int | None = None, batch: int = 32, seed: int = 0,
                           sampler: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate the test videos of each split and score them.

    Args:
        model_path: a video-diffusion run (or saved model) trained on combinatorial scenes.
        data: split name (e.g. ``test_in``, ``test_out``) -> a combinatorial dataset directory.
        limit: score the first ``limit`` videos of each split (0 = all).
        steps, sampler: sampler steps and kind (default: the run's).
        batch: videos generated together; seed: noise seed (batch ``i`` uses ``seed + first index``).

    Returns:
        JSON-ready ``{"meta", "model": report, "repeat_last": report}``, each report as
        :func:`simlab.envs.combinatorial.report.combinatorial_report`.
    """
    import torch
    from tqdm import tqdm

    from simlab.envs.combinatorial.dataset import CombinatorialDataset
    from simlab.envs.combinatorial.report import combinatorial_report
    from simlab.world_models.video_diffusion.baselines import repeat_last
    from simlab.world_models.video_diffusion.data import check_compatible
    from simlab.world_models.video_diffusion.evaluate import load_for_sampling
    from simlab.world_models.video_diffusion.sampling import generate

    if not data:
        raise ConfigError("give at least one --data DIR (a combinatorial test split)")
    if limit < 0 or batch < 1:
        raise ConfigError(f"need limit >= 0 and batch >= 1, got {limit}, {batch}")
    model, ddpm, vae, steps, sampler = load_for_sampling(model_path, steps, sampler)
    sets = {}
    for name, root in data.items():
        ds = CombinatorialDataset(root)  # DatasetError names a wrong kind, a missing or corrupt file
        if ds.cond_frames != model.config.cond_frames:
            raise DatasetError(f"{root}: scenes conditioned on {ds.cond_frames} frame(s), but the model "
                               f"takes cond_frames={model.config.cond_frames}")
        check_compatible(ds, model.config.num_frames, model.config.resolution)
        sets[name] = ds
    c = model.config.cond_frames
    gen_all: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rep_all: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    t_gen, frames_made = 0.0, 0
    for name, ds in sets.items():
        n = len(ds) if limit == 0 else min(limit, len(ds))
        gens, gts = [], []
        with tqdm(total=n, desc=f"eval combinatorial {name}", unit="video", disable=not progress,
                  leave=False) as bar:
            for lo in range(0, n, batch):
                gt = ds.load(lo, min(n, lo + batch))["frames"]
                t0 = time.perf_counter()
                with torch.inference_mode():
                    gens.append(generate(model, gt[:, :c], steps, seed=seed + lo, scheduler=ddpm,
                                         sampler_kind=sampler, vae=vae))
                t_gen += time.perf_counter() - t0
                frames_made += len(gt) * (model.config.num_frames - c)
                gts.append(gt)
                bar.update(len(gt))
        gt = np.concatenate(gts)
        gen_all[name] = (np.concatenate(gens), gt)
        rep_all[name] = (repeat_last(gt, c), gt)
    meta = {"model_path": str(model_path), "data": {k: str(v) for k, v in data.items()}, "cond_frames": c,
            "sample_steps": steps, "sampler": sampler, "backbone": model.config.backbone,
            "resolution": model.config.resolution, "seed": seed,
            "templates": {k: ds.manifest.get("templates") for k, ds in sets.items()},
            "generated_frames_per_s": frames_made / max(t_gen, 1e-9)}
    return {"meta": meta, "model": combinatorial_report(gen_all, meta=meta),
            "repeat_last": combinatorial_report(rep_all, meta=meta)}


def format_combinatorial(result: dict[str, Any]) -> str:
    """Markdown: the model's table, then repeat-last's."""
    from simlab.envs.combinatorial.report import format_markdown

    m = result["meta"]
    return (f"Model {m['model_path']} ({m['backbone']}, {m['resolution']} px, {m['cond_frames']} condition frame(s), "
            f"{m['sample_steps']} {m['sampler'].upper()} steps)\n\n" + format_markdown(result["model"])
            + "\nRepeat the last condition frame (trivial predictor):\n\n" + format_markdown(result["repeat_last"]))
