"""Train the diffusion dream: the EDM next-frame denoiser and the reward/termination head, together.

Each optimizer step draws one batch of real windows (:mod:`.data`) and takes a
step on both networks (separate AdamW optimizers; the head sees the real next
frame). Terminal transitions are rare (Dodge-v1: ~0.4% of steps), so the head's
batches over-sample them to ``done_fraction`` and the trained logit is shifted
back by the log prior-odds ratio (``RewardDoneHead.done_logit_offset``), which
keeps ``p_done`` calibrated to the data.

The run directory (:class:`simlab.runs.RunDir`)::

    RUN/config.yaml            resolved DiffusionDreamTrainConfig (sealed)
    RUN/metrics.jsonl          train/edm_loss, train/reward_mse, train/done_bce, time/seconds_per_step
    RUN/checkpoints/latest/    denoiser/, head/ (diffusers save_pretrained), optimizer.safetensors,
                               trainer_state.json (sealed: step)
    RUN/model/                 the final denoiser/ and head/

Determinism: the windows, noise levels and noise of step ``s`` are pure functions of
``(seed, s)``, so ``resume`` from a checkpoint continues exactly as the unbroken run
would (tested: equal weights). A NaN or infinite loss stops training before the
update (:func:`simlab.training.check_loss`); the last checkpoint stays.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simlab.errors import CheckpointError, ConfigError
from simlab.runs import RunDir
from simlab.training import check_loss, check_weights
from simlab.world_models.diffusion_dream.config import DiffusionDreamTrainConfig
from simlab.world_models.diffusion_dream.data import Windows, to_model
from simlab.world_models.diffusion_dream.model import (
    ActionFrameDenoiser,
    RewardDoneHead,
    edm_loss,
    load_module,
)

TRAINER_STATE = "trainer_state.json"


def lr_at(step: int, cfg: DiffusionDreamTrainConfig) -> float:
    """Learning rate of step ``step`` (0-based): linear warmup, then constant."""
    return cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def build_networks(cfg: DiffusionDreamTrainConfig, n_actions: int) -> tuple[ActionFrameDenoiser, RewardDoneHead]:
    """Fresh denoiser and head of the configured sizes (seeded by ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    den = ActionFrameDenoiser(n_actions=n_actions, resolution=cfg.resolution, context=cfg.context,
                              channels=tuple(cfg.channels), layers_per_block=cfg.layers_per_block)
    head = RewardDoneHead(n_actions=n_actions, resolution=cfg.resolution, context=cfg.context,
                          width=cfg.head_width)
    return den, head


def _rng(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    ss = np.random.SeedSequence([int(seed), int(step), 0xD1F])
    a, b = ss.generate_state(2, np.uint64)
    return np.random.default_rng(int(a)), torch.Generator().manual_seed(int(b >> np.uint64(1)))


def step_batch(w: Windows, cfg: DiffusionDreamTrainConfig, step: int, deaths: np.ndarray
               ) -> dict[str, torch.Tensor]:
    """The tensors of step ``step`` (a pure function of ``(cfg.seed, step)``): denoiser windows,
    head windows (terminal ones over-sampled), noise levels and noise."""
    rng, gen = _rng(cfg.seed, step)
    b = cfg.batch_size
    idx = rng.integers(0, len(w), b)
    n_done = round(b * cfg.done_fraction) if len(deaths) else 0
    hidx = np.concatenate([rng.integers(0, len(w), b - n_done), deaths[rng.integers(0, len(deaths), n_done)]]) \
        if n_done else idx
    d, h = w.batch(idx), w.batch(hidx)
    log_sigma = torch.randn(b, generator=gen) * cfg.sigma_scale + cfg.sigma_loc
    sigma = log_sigma.exp().clamp(cfg.sigma_min_train, cfg.sigma_max_train)
    noise = torch.randn(b, 3, cfg.resolution, cfg.resolution, generator=gen)
    ctx = to_model(d["ctx"])
    if cfg.cond_noise > 0:
        level = torch.rand(b, 1, 1, 1, 1, generator=gen) * cfg.cond_noise
        ctx = ctx + level * torch.randn(ctx.shape, generator=gen)
    return {"ctx": ctx, "ctx_actions": torch.as_tensor(d["ctx_actions"]), "next": to_model(d["next"]),
            "sigma": sigma, "noise": noise, "h_ctx": to_model(h["ctx"]), "h_action": torch.as_tensor(h["action"]),
            "h_next": to_model(h["next"]), "h_reward": torch.as_tensor(h["reward"]),
            "h_done": torch.as_tensor(h["done"]).float()}


# ---- optimizer state as safetensors (no pickles) -------------------------------------------------
def _save_optimizers(path: Path, opts: dict[str, torch.optim.Optimizer]) -> None:
    from safetensors.torch import save_file

    from simlab.data import atomic_path

    flat: dict[str, torch.Tensor] = {}
    for name, opt in opts.items():
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                flat[f"{name}.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp))


def _load_optimizers(path: Path, opts: dict[str, torch.optim.Optimizer]) -> None:
    from safetensors.torch import load_file

    flat = load_file(str(path))
    for name, opt in opts.items():
        sd = opt.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, v in flat.items():
            n, i, k = key.split(".", 2)
            if n == name:
                state.setdefault(int(i), {})[k] = v
        sd["state"] = state
        opt.load_state_dict(sd)


def _replace_dir(tmp: Path, dst: Path) -> None:
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        dst.rename(old)
    tmp.rename(dst)
    if old.exists():
        shutil.rmtree(old)


def train_diffusion_dream(w: Windows, cfg: DiffusionDreamTrainConfig, out: str | Path, resume: bool = False,
                          progress: bool = True, stop_at: int | None = None,
                          log: Any = None) -> tuple[ActionFrameDenoiser, RewardDoneHead, dict[str, Any]]:
    """Train on the windows ``w`` into the run directory ``out``.

    Args:
        w: training windows (:func:`~.data.build_windows`) at ``cfg.resolution`` and ``cfg.context``.
        cfg: the config; out: run directory (created; ``resume`` continues from ``checkpoints/latest``).
        progress: tqdm bar; stop_at: stop after this many steps without finishing (simulates a kill).
        log: optional ``log(step, metrics)`` called beside the run's own metrics.

    Returns:
        ``(denoiser, head, info)``, the networks in eval mode; ``info``: steps, final losses,
        seconds, seconds per step, parameters, done prior.

    Raises:
        DivergedError: a NaN/inf loss (nothing saved for that step); ConfigError: windows of
        another resolution/context, or a resumed run with another config; CheckpointError: a
        checkpoint that cannot be read.
    """
    from tqdm import tqdm

    if (w.resolution, w.context) != (cfg.resolution, cfg.context):
        raise ConfigError(f"windows are {w.resolution}px with context {w.context}; the config says "
                          f"{cfg.resolution}px, context {cfg.context}")
    out = Path(out)
    run = RunDir.create(out, cfg, resume=resume)
    den, head = build_networks(cfg, w.n_actions)
    prior = float(w.dones.mean())
    deaths = np.flatnonzero(w.dones)
    if len(deaths) and cfg.done_fraction > 0 and 0 < prior < 1:
        trained = (1 - cfg.done_fraction) * prior + cfg.done_fraction
        head.register_to_config(done_logit_offset=math.log(prior / (1 - prior)) - math.log(trained / (1 - trained)))
    opts = {"denoiser": torch.optim.AdamW(den.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            "head": torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
    ckpt = run.checkpoint("latest")
    step = 0
    if resume and (ckpt / TRAINER_STATE).exists():
        from simlab.integrity import read_sealed_json

        st = read_sealed_json(ckpt / TRAINER_STATE, CheckpointError, "diffusion dream trainer state")
        d0 = load_module(ActionFrameDenoiser, ckpt / "denoiser")
        h0 = load_module(RewardDoneHead, ckpt / "head")
        den.load_state_dict(d0.state_dict())
        head.load_state_dict(h0.state_dict())
        try:
            _load_optimizers(ckpt / "optimizer.safetensors", opts)
        except Exception as e:  # noqa: BLE001 - any failure to read the state is a bad checkpoint
            raise CheckpointError(f"{ckpt / 'optimizer.safetensors'}: cannot restore the optimizers "
                                  f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        step = int(st["step"])
    if resume:
        run.truncate_metrics(step)

    def checkpoint() -> None:
        from simlab.integrity import write_sealed_json

        tmp = ckpt.with_name(f"tmp-{step}")
        if tmp.exists():
            shutil.rmtree(tmp)
        den.save_pretrained(tmp / "denoiser")
        head.save_pretrained(tmp / "head")
        _save_optimizers(tmp / "optimizer.safetensors", opts)
        write_sealed_json(tmp / TRAINER_STATE, {"step": step})
        _replace_dir(tmp, ckpt)

    bar = tqdm(total=cfg.steps, initial=step, desc="train diffusion dream", unit="step", disable=not progress,
               dynamic_ncols=True)
    den.train()
    head.train()
    t0 = time.perf_counter()
    t_log, start = t0, step
    acc: dict[str, list[float]] = {"edm": [], "rew": [], "done": []}
    while step < cfg.steps:
        lr = lr_at(step, cfg)
        for o in opts.values():
            for g in o.param_groups:
                g["lr"] = lr
        bt = step_batch(w, cfg, step, deaths)
        loss = edm_loss(den, bt["next"], bt["ctx"], bt["ctx_actions"], bt["sigma"], bt["noise"])
        r_pred, d_logit = head(bt["h_ctx"], bt["h_action"], bt["h_next"])
        l_rew = (r_pred - bt["h_reward"]).pow(2).mean()
        l_done = torch.nn.functional.binary_cross_entropy_with_logits(d_logit, bt["h_done"])
        edm = check_loss(loss.detach(), step, "diffusion dream denoiser")
        check_loss((l_rew + l_done).detach(), step, "diffusion dream reward/termination head")
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        (loss + l_rew + cfg.done_weight * l_done).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(den.parameters(), cfg.grad_clip)
            torch.nn.utils.clip_grad_norm_(head.parameters(), cfg.grad_clip)
        for o in opts.values():
            o.step()
        step += 1
        acc["edm"].append(edm)
        acc["rew"].append(float(l_rew.detach()))
        acc["done"].append(float(l_done.detach()))
        bar.update(1)
        bar.set_postfix(edm=f"{edm:.4f}")
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            m = {"train/edm_loss": float(np.mean(acc["edm"])), "train/reward_mse": float(np.mean(acc["rew"])),
                 "train/done_bce": float(np.mean(acc["done"])), "train/lr": lr,
                 "time/seconds_per_step": (now - t_log) / len(acc["edm"])}
            run.log(step, m)
            if log is not None:
                log(step, m)
            t_log, acc = now, {"edm": [], "rew": [], "done": []}
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            check_weights(den, "diffusion dream denoiser")
            check_weights(head, "diffusion dream reward/termination head")
            checkpoint()
        if stop_at is not None and step >= stop_at and step < cfg.steps:
            bar.close()
            return den.eval(), head.eval(), {"steps": step, "stopped_early": True}
    bar.close()
    seconds = time.perf_counter() - t0
    mtmp = out / "model.tmp"
    if mtmp.exists():
        shutil.rmtree(mtmp)
    den.save_pretrained(mtmp / "denoiser")
    head.save_pretrained(mtmp / "head")
    _replace_dir(mtmp, out / "model")
    recs = [r for r in run.metrics() if "train/edm_loss" in r]
    info = {"steps": step, "seconds": round(seconds, 1),
            "seconds_per_step": seconds / max(1, step - start),
            "final_edm_loss": recs[-1]["train/edm_loss"] if recs else None,
            "final_done_bce": recs[-1]["train/done_bce"] if recs else None,
            "denoiser_parameters": sum(p.numel() for p in den.parameters()),
            "head_parameters": sum(p.numel() for p in head.parameters()),
            "done_prior": prior, "windows": len(w)}
    return den.eval(), head.eval(), info


__all__ = ["DiffusionDreamTrainConfig", "build_networks", "lr_at", "step_batch", "train_diffusion_dream"]
