"""``simlab train video-diffusion``: train the conditional video diffusion model with accelerate.

Runs unchanged in one process, under ``torchrun --nproc_per_node N`` or
``accelerate launch --multi_gpu --num_processes N`` (DDP; gloo on CPU, NCCL
on GPUs). ``Accelerator(cpu=True)`` is used when no GPU is visible: without
it a multi-process CPU launch silently trains N unsynchronised copies, so a
launch whose ``WORLD_SIZE`` disagrees with accelerate's process count is an
error, and every checkpoint checks that all ranks hold identical weights.

The run directory (:class:`simlab.runs.RunDir`)::

    RUN/config.yaml                  resolved VideoDiffusionConfig
    RUN/metrics.jsonl                train/loss, train/lr, time/samples_per_s, dist/* ...
    RUN/checkpoints/latest/          accelerate state (model, optimizer, EMA) + trainer_state.json
                                     + files.sha256.json (sealed size + SHA-256 of every file, written
                                     last; checked before --resume lets accelerate unpickle anything)
    RUN/model/                       EMA weights: config.json + diffusion_pytorch_model.safetensors
                                     + scheduler_config.json (what ``simlab eval physics --model`` loads)
                                     + vae/ (a copy of the frozen frame VAE, with ``latent_vae`` only)
                                     + files.sha256.json (their digest record)
    RUN/videos/samples_step*.mp4     ground truth | prediction | error of fixed training videos
    RUN/plots/samples_step*.png      the same, a few frames side by side
    RUN/train_info.json              summary of the finished run

Determinism: the batch, timesteps and noise of step ``s`` on rank ``r`` are
pure functions of ``(seed, s, r)`` and the learning rate is a pure function
of ``s``, so ``--resume`` from a checkpoint continues exactly as the unbroken
run would. A non-finite loss (all ranks agree through an all-reduce) stops
training before the update with a one-line error; the last checkpoint, taken
from finite weights, is left untouched.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlab.config import load_yaml, to_dict
from simlab.errors import CheckpointError, ConfigError, DatasetError, SimlabError
from simlab.integrity import verify_dir_digests, write_dir_digests
from simlab.runs import RunDir
from simlab.world_models.video_diffusion.conditioning import to_model_space
from simlab.world_models.video_diffusion.config import (
    VideoDiffusionConfig,
    check_backbone_resolution,
)
from simlab.world_models.video_diffusion.data import TrainStream, check_compatible
from simlab.world_models.video_diffusion.diffusion import diffusion_loss, train_scheduler
from simlab.world_models.video_diffusion.model import VideoDiffusionModel, model_kwargs

TRAINER_STATE = "trainer_state.json"


def lr_at(step: int, cfg: VideoDiffusionConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then constant or cosine to 0."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """CPU generator for the timesteps and noise of ``step`` on ``rank``."""
    s = int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(s)


def _precheck_run_dir(out: Path, cfg: VideoDiffusionConfig, resume: bool) -> None:
    """The errors ``RunDir.create`` would raise, checked read-only (safe on every rank before a barrier)."""
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise ConfigError(f"{out} is not empty; pass --resume to continue that run or choose another --out")
        if not (out / "config.yaml").exists():
            raise ConfigError(f"{out}: no config.yaml, so it is not a simlab run to resume")
        old = to_dict(load_yaml(VideoDiffusionConfig, out / "config.yaml"))
        new = to_dict(cfg)
        if old != new:
            diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise ConfigError(f"{out}: resumed with a different config ({', '.join(diff)} differ)")


def _replace_dir(tmp: Path, dst: Path) -> None:
    """Move a finished directory into place, replacing ``dst`` (old copy removed after the swap)."""
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    if old.exists():
        shutil.rmtree(old)


def _recover_checkpoint(ckpt: Path) -> None:
    """Undo a :func:`_replace_dir` killed between its renames: ``latest`` is gone but ``latest.old``
    (the previous complete checkpoint) is still there, so put it back."""
    old = ckpt.with_name(ckpt.name + ".old")
    if not ckpt.exists() and old.is_dir():
        old.rename(ckpt)


def load_checkpoint(acc: Any, ckpt: Path) -> int:
    """Restore the accelerate state of ``ckpt`` into ``acc``; returns the step it was taken at.

    Checked first, before accelerate reads (and unpickles) anything: the digest record
    ``files.sha256.json`` exists, every file has its recorded size and SHA-256 and no other file
    is present (:func:`simlab.integrity.verify_dir_digests`). CheckpointError, one line naming
    the checkpoint or file, for any failure, including one of accelerate's own reader.
    """
    try:
        verify_dir_digests(ckpt, CheckpointError, "video-diffusion checkpoint")
    except CheckpointError as e:
        raise CheckpointError(f"cannot resume from this checkpoint: {e}") from None
    try:
        acc.load_state(str(ckpt))
        return int(json.loads((ckpt / TRAINER_STATE).read_text())["step"])
    except Exception as e:  # noqa: BLE001 - any failure to read the state is a bad checkpoint
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{ckpt}: cannot resume from this checkpoint ({msg})") from None


def _param_checksum(model: torch.nn.Module) -> torch.Tensor:
    """float64 sum of all parameters, shape (1,): equal on every rank when DDP keeps them in sync."""
    return torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)


def write_sample_grid(model: VideoDiffusionModel, ddpm, frames: np.ndarray, steps: int, seed: int,
                      mp4: Path, png: Path, sampler_kind: str = "ddim", vae=None) -> None:
    """Generate from the condition frames of ``frames`` ``(N, T, H, W, 3)`` (with sampler ``sampler_kind``,
    through the frame VAE ``vae`` for a latent model) and write ground truth | prediction | error as an
    mp4 (all frames) and a png (a few frames)."""
    from PIL import Image

    from simlab.video import grid, side_by_side, write_mp4
    from simlab.world_models.video_diffusion.sampling import generate

    pred = generate(model, frames, steps, seed=seed, scheduler=ddpm, sampler_kind=sampler_kind, vae=vae)
    rows = grid(np.stack([side_by_side(g, p) for g, p in zip(frames, pred)]), ncols=1)  # (T, H', W', 3)
    write_mp4(mp4, rows, fps=5)
    t = rows.shape[0]
    picks = sorted({model.config.cond_frames - 1, t // 4, t // 2, 3 * t // 4, t - 1})
    gap = np.full((rows.shape[1], 4, 3), 255, np.uint8)
    strip = np.concatenate([x for i in picks for x in (rows[i], gap)][:-1], axis=1)
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).resize((strip.shape[1] * 4, strip.shape[0] * 4), Image.NEAREST).save(png)


def train_video_diffusion(cfg: VideoDiffusionConfig, data: str | Path, out: str | Path, resume: bool = False,
                          stop_at: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train on the collision2d dataset ``data``, writing the run directory ``out``.

    Args:
        cfg: resolved config.
        data: a collected collision2d dataset whose resolution and frame count match ``cfg``.
        out: run directory (created; with ``resume``, continued from ``checkpoints/latest``).
        resume: continue a killed run.
        stop_at: stop after this many steps without finishing the run (simulates a kill; tests).
        progress: show a tqdm bar (default: when stderr is a terminal).

    Returns:
        Summary: run, steps, final loss, seconds, samples/s, processes.
    """
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    from simlab.envs.combinatorial.dataset import open_dataset

    out = Path(out)
    acc = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != acc.num_processes:
        raise ConfigError(f"launched with WORLD_SIZE={world} but accelerate sees {acc.num_processes} process(es); "
                          "the ranks would train unsynchronised copies")
    rank, main = acc.process_index, acc.is_main_process
    ds = open_dataset(data)  # collision2d or combinatorial scenes, by the manifest's kind
    check_compatible(ds, cfg.num_frames, cfg.resolution, "the config")
    if getattr(ds, "cond_frames", cfg.cond_frames) != cfg.cond_frames:
        raise DatasetError(f"{data}: scenes conditioned on {ds.cond_frames} frame(s); set cond_frames={ds.cond_frames}")
    _precheck_run_dir(out, cfg, resume)
    acc.wait_for_everyone()
    run = RunDir.create(out, cfg, resume=resume) if main else RunDir(out)
    if main and resume:
        _recover_checkpoint(run.checkpoint("latest"))
    acc.wait_for_everyone()

    vae, latent_kw = None, {}
    if cfg.latent_vae:  # frozen frame VAE: diffuse its scaled latents (latent.py)
        from simlab.world_models.video_diffusion.latent import latent_geometry, load_frame_vae

        vae = load_frame_vae(cfg.latent_vae).to(acc.device)
        ch, factor = latent_geometry(vae, cfg.resolution)
        check_backbone_resolution(cfg, cfg.resolution // factor, "latent side")
        latent_kw = {"channels": ch, "latent_factor": factor}
    torch.manual_seed(cfg.seed)
    model = VideoDiffusionModel(**model_kwargs(cfg, **latent_kw))
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=True,
                   model_cls=VideoDiffusionModel, model_config=model.config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt = acc.prepare(model, opt)
    ema.to(acc.device)
    acc.register_for_checkpointing(ema)
    ddpm = train_scheduler(cfg.num_train_timesteps, cfg.prediction_type)
    stream = TrainStream(ds, cfg.batch_size, cfg.seed)
    ckpt = run.checkpoint("latest")

    step = 0
    # checkpoints/latest is renamed into place complete (_replace_dir), so any file in it means a
    # checkpoint to resume from; load_checkpoint checks it against its digest record first.
    if resume and ckpt.is_dir() and any(ckpt.iterdir()):
        step = load_checkpoint(acc, ckpt)
    if resume and main:
        run.truncate_metrics(step)  # drop what a killed run logged after its checkpoint (or all, if none)

    def checkpoint() -> float:
        """Save state (all ranks), export EMA weights (main); returns the cross-rank parameter spread."""
        sums = acc.gather(_param_checksum(model).to(acc.device)).cpu()
        spread = float(sums.max() - sums.min())
        if spread != 0.0:
            raise SimlabError(f"step {step}: ranks hold different weights (checksum spread {spread:g}); "
                              "the launch is not synchronising gradients")
        tmp = ckpt.with_name(f"tmp-{step}")
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if main:
            (tmp / TRAINER_STATE).write_text(json.dumps({"step": step, "processes": acc.num_processes}))
            write_dir_digests(tmp)  # last: a checkpoint without its record is an interrupted save
            _replace_dir(tmp, ckpt)
            net = acc.unwrap_model(model)
            ema.store(net.parameters())
            ema.copy_to(net.parameters())
            mtmp = out / "model.tmp"
            if mtmp.exists():
                shutil.rmtree(mtmp)
            net.save_pretrained(mtmp)
            ddpm.save_pretrained(mtmp)
            if vae is not None:
                vae.save_pretrained(mtmp / "vae")
            write_dir_digests(mtmp)
            ema.restore(net.parameters())
            _replace_dir(mtmp, out / "model")
        acc.wait_for_everyone()
        return spread

    def sample_grid() -> None:
        if main and cfg.sample_videos > 0:
            net = acc.unwrap_model(model)
            ema.store(net.parameters())
            ema.copy_to(net.parameters())
            net.eval()
            frames = stream.frames(np.arange(min(cfg.sample_videos, len(ds))))
            write_sample_grid(net, ddpm, frames, cfg.sample_steps, cfg.seed,
                              run.path / "videos" / f"samples_step{step:06d}.mp4",
                              run.path / "plots" / f"samples_step{step:06d}.png", cfg.sampler, vae)
            net.train()
            ema.restore(net.parameters())
        acc.wait_for_everyone()

    global_batch = cfg.batch_size * acc.num_processes
    show = main and (progress if progress is not None else os.isatty(2))
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train video-diffusion", unit="step", disable=not show,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    t_log, start_step, window = t0, step, []
    model.train()
    last = float("nan")
    while step < cfg.max_steps:
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        video = to_model_space(stream.batch(step, rank)).to(acc.device)
        if vae is not None:
            from simlab.world_models.video_diffusion.latent import encode_frames

            video = encode_frames(vae, video)  # (B, T, C, H/f, W/f) scaled latents, no gradient
        with acc.autocast():
            loss = diffusion_loss(model, ddpm, video, cfg.cond_frames, step_generator(cfg.seed, step, rank))
        mean_loss = float(acc.reduce(loss.detach().reshape(1), reduction="mean").item())
        if not math.isfinite(mean_loss):
            bar.close()
            kept = ckpt / TRAINER_STATE
            where = (f"the last good checkpoint (step {json.loads(kept.read_text())['step']}) is kept in {ckpt}"
                     if kept.exists() else "no checkpoint was written yet")
            raise SimlabError(f"step {step}: training loss is {mean_loss} (diverged); stopped, {where}")
        acc.backward(loss)
        if cfg.grad_clip > 0:
            acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(acc.unwrap_model(model).parameters())
        step += 1
        window.append(mean_loss)
        last = mean_loss
        elapsed = time.perf_counter() - t0
        sps = (step - start_step) * global_batch / max(elapsed, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}", samples_s=f"{sps:.1f}")
        if main and (step % cfg.log_every == 0 or step == cfg.max_steps):
            now = time.perf_counter()
            run.log(step, {"train/loss": float(np.mean(window)), "train/lr": lr,
                           "train/samples": step * global_batch, "time/samples_per_s": sps,
                           "time/seconds_per_step": (now - t_log) / len(window)})
            t_log, window = now, []
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            spread = checkpoint()
            if main:
                run.log(step, {"dist/world_size": acc.num_processes, "dist/param_spread": spread,
                               "dist/rank_samples": step * cfg.batch_size})
        if cfg.sample_every and step % cfg.sample_every == 0 and step != cfg.max_steps:
            sample_grid()
        if stop_at is not None and step >= stop_at and step < cfg.max_steps:
            bar.close()
            return {"run": str(out), "steps": step, "stopped_early": True}
    bar.close()
    seconds = time.perf_counter() - t0
    sample_grid()
    info = {"run": str(out), "data": str(data), "steps": step, "final_loss": last, "seconds": seconds,
            "samples_per_s": (step - start_step) * global_batch / max(seconds, 1e-9),
            "processes": acc.num_processes, "backbone": cfg.backbone,
            "parameters": sum(p.numel() for p in acc.unwrap_model(model).parameters())}
    if main:
        (out / "train_info.json").write_text(json.dumps(info, indent=2))
    acc.wait_for_everyone()
    acc.end_training()
    return info
