"""Training samples/s and generated frames/s of the video diffusion world model, per backbone and resolution.

What is timed
-------------
:class:`simlab.world_models.video_diffusion.model.VideoDiffusionModel` with
the sizes of the ``cpu-small`` preset (UNet2DModel (32, 64, 128) with
attention at the lowest level; DiT 6 layers x 4 heads x 32, patch 4; the
spatio-temporal transformers at the same ``dit_*`` sizes: Latte 6 spatial +
6 temporal blocks, CogVideoX 6 blocks of full 3D attention, patch 4), 32
frames, 3 condition frames, at 32 and 64 px:

- *train*: one optimizer step = :func:`diffusion_loss` (prediction loss over the 29
  generated frames) forward + backward + AdamW, batch ``--batch`` videos,
  frames rendered from a states-only collision2d dataset outside the timer.
  Reported as training samples (videos) per second.
- *generate*: :func:`generate` of ``--batch`` videos with ``--steps`` steps
  of each sampler of ``--samplers`` (``ddim``, ``euler``); reported as
  generated frames (29 per video) per second and seconds per step. The
  row's ``generated_frames_per_s`` is the first sampler's (DDIM by default);
  ``samplers[name]`` holds each one's figures.

Each figure is the median over ``--repeats`` timed runs after one untimed
warm-up, wall clock and CPU time (``process_time``) side by side: on a
shared machine CPU time is the steadier figure. One process; it pins itself
to one CPU (``sched_setaffinity``) and runs torch with one thread
(``OMP_NUM_THREADS=1`` set before torch is imported), so CPU figures are per
core. ``--device cuda`` times on a GPU instead (not pinned).

Usage::

    python benchmarks/video_diffusion_speed.py
    python benchmarks/video_diffusion_speed.py --resolutions 32 --repeats 5 --json
    python benchmarks/video_diffusion_speed.py --backbones latte,cogvideox --samplers euler
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, pin_one_core


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bench_one(backbone: str, resolution: int, batch: int, steps: int, repeats: int, device: str,
              data_root: Path, samplers: tuple[str, ...] = ("ddim",)) -> dict:
    """Train and generation throughput of one (backbone, resolution)."""
    import torch

    from simlab.envs.collision2d.dataset import CollectConfig, VideoDataset, collect
    from simlab.world_models.video_diffusion.conditioning import to_model_space
    from simlab.world_models.video_diffusion.config import video_diffusion_config
    from simlab.world_models.video_diffusion.data import TrainStream
    from simlab.world_models.video_diffusion.diffusion import diffusion_loss, train_scheduler
    from simlab.world_models.video_diffusion.model import VideoDiffusionModel, model_kwargs
    from simlab.world_models.video_diffusion.sampling import generate

    data = data_root / f"uniform{resolution}"
    if not data.exists():
        collect(CollectConfig(scenario="uniform", split="train", size=256, resolution=resolution,
                              store_frames=False), data, progress=False)
    cfg = video_diffusion_config(["cpu-small"], [f"backbone={backbone}", f"resolution={resolution}"])
    torch.manual_seed(0)
    model = VideoDiffusionModel(**model_kwargs(cfg)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ddpm = train_scheduler()
    stream = TrainStream(VideoDataset(data), batch, seed=0)
    video = to_model_space(stream.batch(0)).to(device)
    gen = torch.Generator().manual_seed(0)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def train_step() -> None:
        loss = diffusion_loss(model, ddpm, video, cfg.cond_frames, gen)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()

    model.train()
    tw, tc = _timed(train_step, repeats)
    model.eval()
    frames = stream.batch(1)

    gen_frames = batch * (cfg.num_frames - cfg.cond_frames)
    per_sampler = {}
    for kind in samplers:
        def sample(kind: str = kind) -> None:
            generate(model, frames, steps, seed=0, sampler_kind=kind)
            sync()

        gw, gc = _timed(sample, repeats)
        per_sampler[kind] = {"generate_s": gw, "generate_cpu_s": gc, "generated_frames_per_s": gen_frames / gw,
                             "generated_frames_per_cpu_s": gen_frames / gc, "step_s": gw / steps}
    first = per_sampler[samplers[0]]
    return {"backbone": backbone, "resolution": resolution, "batch": batch, "ddim_steps": steps,
            "sample_steps": steps, "sampler": samplers[0],
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_step_s": tw, "train_step_cpu_s": tc, "train_samples_per_s": batch / tw,
            "train_samples_per_cpu_s": batch / tc,
            "generate_s": first["generate_s"], "generate_cpu_s": first["generate_cpu_s"],
            "generated_frames_per_s": first["generated_frames_per_s"],
            "generated_frames_per_cpu_s": first["generated_frames_per_cpu_s"], "ddim_step_s": first["step_s"],
            "samplers": per_sampler}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", default="unet,dit,latte,cogvideox")
    ap.add_argument("--samplers", default="ddim,euler", help="samplers timed when generating (first = headline)")
    ap.add_argument("--resolutions", default="32,64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="sampler steps when generating")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda not available")
        return
    pinned = pin_one_core(None) if args.device == "cpu" else None
    torch.set_num_threads(1) if args.device == "cpu" else None
    import diffusers

    samplers = tuple(args.samplers.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in (int(r) for r in args.resolutions.split(",")):
            for bb in args.backbones.split(","):
                rows.append(bench_one(bb, res, args.batch, args.steps, args.repeats, args.device, Path(tmp),
                                      samplers))
                if not args.json:
                    r = rows[-1]
                    gen = "  ".join(f"{k} {g['generated_frames_per_s']:8.1f} frames/s (cpu-time "
                                    f"{g['generated_frames_per_cpu_s']:8.1f}), {g['step_s']:.3f} s/step"
                                    for k, g in r["samplers"].items())
                    print(f"{bb:>9} {res:>3}px  params {r['parameters'] / 1e6:5.2f}M  train "
                          f"{r['train_samples_per_s']:7.2f} samples/s (cpu-time {r['train_samples_per_cpu_s']:7.2f})"
                          f"  generate {gen}", flush=True)
    info = machine_info(pinned, torch=torch.__version__, diffusers=diffusers.__version__,
                        threads=torch.get_num_threads(), device=args.device,
                        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))
    if args.json:
        print(json.dumps({"machine": info, "rows": rows}, indent=2))
    else:
        print(json.dumps(info))


if __name__ == "__main__":
    main()
