"""The ``simlab`` command line.

Every user error (:class:`simlab.errors.SimlabError` or a bad option) prints
one line ``error: ...`` to stderr and exits with code 2, without a traceback.
Heavy modules are imported inside the commands so ``simlab --help`` is fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from simlab.cli_options import (
    check_option_keys,
    comma_list,
    count_opt,
    fraction_opt,
    int_selection,
    out_dir,
    out_file,
    positive_float_opt,
    rate_opt,
    seed_opt,
)
from simlab.errors import ConfigError, DatasetError, EnvIdError, SimlabError

app = typer.Typer(
    name="simlab",
    help="simlab: real simulators with generalization splits, world models and policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
collect_app = typer.Typer(help="Collect datasets from simlab simulators.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate data, models and policies.", no_args_is_help=True)
train_app = typer.Typer(help="Train world models and policies (each run writes a run directory).",
                        no_args_is_help=True)
app.add_typer(collect_app, name="collect")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as one JSON object.")]


def _print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=float))


# ---- envs ------------------------------------------------------------------------------
@app.command("envs")
def envs_cmd(as_json: JsonOpt = False) -> None:
    """List simlab environments, dataset generators and their splits."""
    import simlab  # noqa: F401  (registers envs)
    from simlab.envs.collision2d.scenarios import SCENARIOS, scenario_splits
    from simlab.registry import ENV_SPECS

    envs = []
    for s in ENV_SPECS:
        entry: dict[str, Any] = {"id": s.id, "summary": s.summary, "max_episode_steps": s.max_episode_steps}
        try:
            mod, cls = s.entry_point.split(":")
            env_cls = getattr(__import__(mod, fromlist=[cls]), cls)
            entry["splits"] = {k: v.to_dict() for k, v in getattr(env_cls, "splits", {}).items()}
        except ImportError as e:  # an optional extra is missing
            entry["unavailable"] = str(e)
        envs.append(entry)
    from simlab.envs.collision2d.attributes import attribute_splits

    gens = {"collision2d": {sc: {k: v.to_dict() for k, v in scenario_splits(sc).items()} for sc in SCENARIOS}}
    gens["collision2d"]["attributes"] = {k: v.to_dict() for k, v in attribute_splits().items()}
    if as_json:
        _print_json({"envs": envs, "generators": gens})
        return
    typer.echo("Environments (gymnasium.make after `import simlab`):")
    for e in envs:
        splits = ", ".join(e.get("splits", {})) or "-"
        typer.echo(f"  {e['id']:<28} {e['summary']}\n  {'':<28} splits: {splits}")
    typer.echo("\nDataset generators (simlab collect):")
    for sc in SCENARIOS:
        typer.echo(f"  collision2d --scenario {sc:<10} splits: {', '.join(gens['collision2d'][sc])}, ood")
    typer.echo(f"  collision2d --scenario attributes splits: {', '.join(gens['collision2d']['attributes'])}")


# ---- collect -----------------------------------------------------------------------------
@collect_app.command("collision2d")
def collect_collision2d(
    out: Annotated[Path, out_dir("Dataset directory.")],
    scenario: Annotated[str, typer.Option(
        help="uniform | collision | oblique | parabola | attributes (shape/colour/size/speed probe)")] = "collision",
    split: Annotated[str, typer.Option(help="train | id | ood | ood_* levels | gap_train | gap_test")] = "train",
    size: Annotated[int, count_opt("Number of videos (0 with --grid = whole grid).", minimum=0)] = 1000,
    resolution: Annotated[int, count_opt("Frame side in pixels (16-1024).", 16, 1024)] = 64,
    seed: Annotated[int, seed_opt("Seed of parameters and placement.")] = 0,
    grid: Annotated[str | None, typer.Option(help="Paper linspace grid: 30k | 300k | 3m.")] = None,
    store_frames: Annotated[bool, typer.Option(
        "--store-frames/--no-store-frames",
        help="Store frames (gzip) or only exact states; readers re-render bit-exactly.")] = True,
    videos_per_shard: Annotated[int, count_opt("Videos per shard file.")] = 4096,
    shard: Annotated[str, typer.Option(help="This worker's part, i/n: writes shards j with j % n == i.")] = "0/1",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted collection (skips finished shards).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate collision2d videos (frames uint8, exact per-frame states, parameters) as HDF5 shards."""
    from simlab.data import parse_shard
    from simlab.envs.collision2d.dataset import CollectConfig, collect

    cfg = CollectConfig(scenario=scenario, split=split, size=size, resolution=resolution, seed=seed,
                        grid=grid, store_frames=store_frames, videos_per_shard=videos_per_shard)
    res = collect(cfg, out, shard=parse_shard(shard), resume=resume)
    summary = {
        "out": str(out), "videos": cfg.total, "shards_written": len(res.written),
        "shards_skipped": len(res.skipped), "complete": res.complete, "seconds": round(res.seconds, 3),
        "videos_per_second": round(res.items_written / res.seconds, 1) if res.seconds > 0 and res.items_written else None,
    }
    if as_json:
        _print_json(summary)
    else:
        state = "complete" if res.complete else "partial (other shards still to be written)"
        typer.echo(f"{out}: {cfg.total} videos, {len(res.written)} shard(s) written, "
                   f"{len(res.skipped)} skipped, {state}, {res.seconds:.1f} s")


@collect_app.command("combinatorial")
def collect_combinatorial_cmd(
    out: Annotated[Path, out_dir("Dataset directory.")],
    split: Annotated[str, typer.Option(
        help="train | test_in (new variants of the training templates) | test_out (the 10 held-out templates)")
    ] = "train",
    size: Annotated[int, count_opt("Number of videos.")] = 1000,
    train_templates: Annotated[int, count_opt("Training templates: 6 | 30 | 60 (nested).", 1, 70)] = 30,
    resolution: Annotated[int, count_opt("Frame side in pixels: 32 | 64 | 128.", 16, 1024)] = 32,
    frames: Annotated[int, count_opt("Frames per video.", 2, 256)] = 32,
    seed: Annotated[int, seed_opt("Seed of the scene variants.")] = 0,
    videos_per_shard: Annotated[int, count_opt("Videos per shard file.")] = 1024,
    shard: Annotated[str, typer.Option(help="This worker's part, i/n: writes shards j with j % n == i.")] = "0/1",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted collection (skips finished shards).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """PHYRE-like scenes in pymunk (a red ball + 4 of 8 object types, 70 templates) as HDF5 video shards."""
    from simlab.data import parse_shard
    from simlab.envs.combinatorial.dataset import collect_combinatorial

    res = collect_combinatorial(out, split, size, resolution=resolution, frames=frames, seed=seed,
                                train_templates=train_templates, resume=resume, shard=parse_shard(shard),
                                videos_per_shard=videos_per_shard)
    summary = {"out": str(out), "videos": size, "split": split, "train_templates": train_templates,
               "shards_written": len(res.written), "shards_skipped": len(res.skipped), "complete": res.complete,
               "seconds": round(res.seconds, 3)}
    if as_json:
        _print_json(summary)
    else:
        typer.echo(f"{out}: {size} videos ({split}), {len(res.written)} shard(s) written, {len(res.skipped)} skipped, "
                   f"{'complete' if res.complete else 'partial'}, {res.seconds:.1f} s")


@collect_app.command("procgen")
def collect_procgen_cmd(
    out: Annotated[Path, out_dir("Dataset directory.")],
    game: Annotated[str, typer.Option(help="maze | coinrun | coinrun_v1 | bigfish | dodge | dodge_v1")] = "maze",
    policy: Annotated[str, typer.Option(help="random | random_repeat | oracle (maze) | a run or saved-policy "
                                             "directory | RUN@CKPT (final, latest, best, step_N or N); "
                                             "several comma-separated saved policies: a mixed dataset.")]
    = "random",
    levels: Annotated[str, typer.Option(help="Level seeds a:b (or a: for unlimited from a).")] = "0:200",
    distribution_mode: Annotated[str, typer.Option(help="easy | hard")] = "easy",
    transitions: Annotated[int, count_opt("Transitions to collect.")] = 100_000,
    seed: Annotated[int, seed_opt("Seed of level streams and policy sampling.")] = 0,
    num_envs: Annotated[int, count_opt("Envs stepped together (1-16384).", 1, 16384)] = 64,
    shard: Annotated[str, typer.Option(help="This worker's part, i/n.")] = "0/1",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted collection.")] = False,
    minari: Annotated[str | None, typer.Option(help="Also export as a Minari dataset with this id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Roll out a policy on procgen-like levels and store HDF5 episodes (obs, actions, rewards, level seeds)."""
    from simlab.data import parse_shard
    from simlab.envs.procgen.dataset import (
        ProcgenCollectConfig,
        check_minari_id,
        collect_procgen,
        export_minari,
    )

    cfg = ProcgenCollectConfig(game=game, levels=levels, distribution_mode=distribution_mode,
                               transitions=transitions, policy=policy, seed=seed, num_envs=num_envs)
    if minari is not None:
        check_minari_id(minari)  # a bad or taken id is refused before minutes of collection
    res = collect_procgen(cfg, out, shard=parse_shard(shard), resume=resume)
    summary: dict[str, Any] = {"out": str(out), "transitions": transitions, "shards_written": len(res.written),
                               "shards_skipped": len(res.skipped), "complete": res.complete,
                               "seconds": round(res.seconds, 3)}
    if minari is not None:
        if not res.complete:
            raise ConfigError("--minari needs the whole dataset; run the other shards first")
        summary["minari"] = str(export_minari(out, minari))
    if as_json:
        _print_json(summary)
    else:
        typer.echo(f"{out}: {transitions} transitions, {len(res.written)} shard(s) written, "
                   f"{len(res.skipped)} skipped, {'complete' if res.complete else 'partial'}, {res.seconds:.1f} s"
                   + (f"; Minari dataset {summary['minari']}" if minari else ""))


@collect_app.command("toygrasp")
def collect_toygrasp_cmd(
    out: Annotated[Path, out_dir("Dataset directory.")],
    backend: Annotated[str, typer.Option(help="pybullet | mujoco")] = "pybullet",
    toys: Annotated[int, count_opt("Training toys (toy seeds 0..toys-1).")] = 250,
    demos: Annotated[int, count_opt("Scripted-expert demos (attempts) to record.")] = 2500,
    split: Annotated[str, typer.Option(help="toys-train | toys-test | objects")] = "toys-train",
    seed: Annotated[int, seed_opt("Seed of the reset streams.")] = 0,
    resolution: Annotated[int, count_opt("Image side in pixels (16-512).", 16, 512)] = 96,
    demos_per_shard: Annotated[int, count_opt("Demos per shard file.")] = 50,
    shard: Annotated[str, typer.Option(help="This worker's part, i/n.")] = "0/1",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted collection.")] = False,
    scene: Annotated[str, typer.Option(help="single | shortcut (two toys, two viewpoints: the shortcut "
                                            "probe's fragmented dataset; pybullet).")] = "single",
    overlap: Annotated[float, fraction_opt("shortcut scene: fraction of demos with the other "
                                           "sub-dataset's task.")] = 0.0,
    view_aug: Annotated[bool, typer.Option(help="shortcut scene: random viewpoint per demo.")] = False,
    noise: Annotated[float, fraction_opt(
        "DART noise: std (action units) added to the executed approach moves; the labels stay the "
        "expert's corrections (0: off).")] = 0.0,
    object_masks: Annotated[bool, typer.Option(help="Also record one mask per object on the table (the "
                                                    "slots encoder's input).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Record scripted-expert grasps of toys (or unseen objects) as HDF5 demos (images, masks, actions, success)."""
    from simlab.data import parse_shard
    from simlab.envs.toygrasp.dataset import GraspCollectConfig, collect_toygrasp, summary_json

    cfg = GraspCollectConfig(backend=backend, split=split, toys=toys, demos=demos, seed=seed,
                             resolution=resolution, demos_per_shard=demos_per_shard, scene=scene,
                             overlap=overlap, view_aug=view_aug, noise=noise, object_masks=object_masks)
    res = collect_toygrasp(cfg, out, shard=parse_shard(shard), resume=resume)
    info = summary_json(res, cfg)
    if as_json:
        _print_json(info)
    else:
        succ = f", {info['successes']} successful" if res.complete else ""
        typer.echo(f"{out}: {demos} demos{succ}, {len(res.written)} shard(s) written, {len(res.skipped)} skipped, "
                   f"{'complete' if res.complete else 'partial'}, {res.seconds:.1f} s")


@app.command("render-toys")
def render_toys_cmd(
    out: Annotated[Path, out_file("Output .png file.", (".png",))],
    seeds: Annotated[str, typer.Option(help="Toy seeds, e.g. 0:16 or 3,7,9.")] = "0:16",
    resolution: Annotated[int, count_opt("Pixels per toy (16-512).", 16, 512)] = 128,
) -> None:
    """Draw toys (each resting on the table, pybullet) as one grid image."""
    from simlab.envs.toygrasp.render import parse_seeds, render_toys

    if not 16 <= resolution <= 512:
        raise ConfigError(f"--resolution must be in 16..512, got {resolution}")
    path = render_toys(parse_seeds(seeds), out, resolution)
    typer.echo(f"wrote {path}")


# ---- render -------------------------------------------------------------------------------
@app.command("render")
def render_cmd(
    out: Annotated[Path, out_file("Output .mp4 file.", (".mp4",))],
    data: Annotated[Path | None, typer.Option(help="A collected dataset directory.")] = None,
    env: Annotated[str | None, typer.Option(help="Or an env id: records a random-policy episode.")] = None,
    indices: Annotated[str, typer.Option(help="Videos to tile, e.g. 0:16 or 0,3,7.")] = "0:16",
    steps: Annotated[int, count_opt("With --env: number of steps (1-100000).", 1, 100_000)] = 100,
    seed: Annotated[int, seed_opt("With --env: reset seed.")] = 0,
    fps: Annotated[float, positive_float_opt("Frames per second (0-1000].", 1000.0)] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Render dataset videos (as a grid) or an env rollout to mp4, headless."""
    import numpy as np

    from simlab.video import grid, write_mp4

    if (data is None) == (env is None):
        raise ConfigError("give exactly one of --data DIR or --env ID")
    if data is not None:
        from simlab.envs.collision2d.dataset import VideoDataset

        ds = VideoDataset(data)
        idx = int_selection(indices, "--indices", 0, len(ds))
        videos = np.stack([ds.load(i, i + 1)["frames"][0] for i in idx])
        frames = grid(videos)
        what = {"data": str(data), "indices": idx}
    else:
        frames = _rollout_frames(env, steps, seed)  # type: ignore[arg-type]
        what = {"env": env, "steps": len(frames), "seed": seed}
    write_mp4(out, frames, fps=fps)
    info = {**what, "out": str(out), "frames": len(frames)}
    if as_json:
        _print_json(info)
    else:
        typer.echo(f"wrote {out} ({len(frames)} frames)")


def make_env(env_id: str, **kwargs: Any):  # -> gymnasium.Env
    """``gymnasium.make`` (through :func:`simlab.envs.gym_image.make_env`) with a one-line error
    listing simlab's ids for an unknown id."""
    import gymnasium

    import simlab  # noqa: F401

    if env_id not in gymnasium.registry:
        from simlab.registry import env_ids

        raise EnvIdError(f"unknown env id {env_id!r}; simlab envs: {', '.join(env_ids())}")
    from simlab.envs.gym_image import make_env as make_gym_env

    return make_gym_env(env_id, **kwargs)


def _rollout_frames(env_id: str, steps: int, seed: int):
    import numpy as np

    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    env = make_env(env_id, render_mode="rgb_array")
    env.reset(seed=seed)
    env.action_space.seed(seed)
    frames = [env.render()]
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        frames.append(env.render())
        if term or trunc:
            env.reset()
    env.close()
    return np.stack(frames)


# ---- eval physics -------------------------------------------------------------------------
PAPER_FLOORS = {"uniform": 0.0099, "collision": 0.0117, "parabola": 0.0210}


def _stats(x) -> dict[str, float]:
    import numpy as np

    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"mean": float("nan"), "std": float("nan"), "ci95": float("nan"), "median": float("nan"), "n": 0}
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "std": sd, "ci95": 1.96 * sd / np.sqrt(len(x)),
            "median": float(np.median(x)), "n": len(x)}


@eval_app.command("combinatorial")
def eval_combinatorial_cmd(
    model: Annotated[Path, typer.Option(help="A video-diffusion run trained on combinatorial scenes.")],
    data: Annotated[list[Path], typer.Option(
        help="Test splits (repeatable): NAME=DIR or DIR (named by its split, e.g. test_in, test_out).")],
    out: Annotated[Path | None, out_dir("Write combinatorial.json and combinatorial.md here "
                                        "(default: RUN/eval_combinatorial).")] = None,
    limit: Annotated[int, count_opt("Score at most this many videos per split (0 = all).", minimum=0)] = 0,
    steps: Annotated[int | None, count_opt("Sampler steps (default: the run's).", 1, 1000)] = None,
    sampler: Annotated[str | None, typer.Option(help="ddim | euler (default: the run's).")] = None,
    seed: Annotated[int, seed_opt("Sampling noise seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Abnormal-video rate (automatic detector), SSIM and PSNR in- vs out-of-template, beside repeat-last."""
    from simlab.data import read_manifest, write_json_atomic
    from simlab.paths import check_output_dir
    from simlab.world_models.video_diffusion.combinatorial_eval import (
        evaluate_combinatorial,
        format_combinatorial,
    )

    named: dict[str, Path] = {}
    for d in data:
        name, sep, path = str(d).partition("=")
        root = Path(path) if sep else d
        if not sep:
            name = str(read_manifest(root).get("config", {}).get("split", root.name))
        if name in named:
            raise ConfigError(f"two --data for the split {name!r}; name them NAME=DIR")
        named[name] = root
    dest = out if out is not None else model / "eval_combinatorial"
    check_output_dir(dest, "--out")
    res = evaluate_combinatorial(model, named, limit=limit, steps=steps, sampler=sampler, seed=seed)
    dest.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest / "combinatorial.json", res)
    text = format_combinatorial(res)
    (dest / "combinatorial.md").write_text(text)
    _print_json(res) if as_json else typer.echo(text)


@eval_app.command("physics")
def eval_physics(
    data: Annotated[Path, typer.Option(help="Ground-truth dataset directory.")],
    ground_truth: Annotated[bool, typer.Option(
        "--ground-truth", help="Score the dataset's own frames (the parse floor).")] = False,
    pred: Annotated[Path | None, typer.Option(
        help="HDF5 file with generated frames (N, 32, H, W, 3) uint8 in dataset 'frames' "
             "(and optionally 'index') to score against --data.")] = None,
    model: Annotated[Path | None, typer.Option(
        help="A video-diffusion run (or saved model) directory: generate from the condition frames and "
             "score it beside the parse floor and the repeat-last / constant-velocity predictors.")] = None,
    steps: Annotated[int | None, count_opt("With --model: DDIM steps (default: the run's).", 1, 1000)] = None,
    seed: Annotated[int, seed_opt("With --model: sampling noise seed.")] = 0,
    limit: Annotated[int, count_opt("Score at most this many videos (0 = all).", minimum=0)] = 0,
    verify: Annotated[bool, typer.Option(help="Check shard SHA-256 checksums first.")] = False,
    video: Annotated[Path | None, out_file(
        "Also write an mp4: ground truth | prediction | error for the first 4 scored videos.", (".mp4",),
        name="--video")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The paper's velocity error: parse frames, finite-difference velocities, compare with exact states."""
    import numpy as np

    from simlab.data import open_h5, read_h5_array
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.envs.collision2d.parse import evaluate_videos
    from simlab.video import grid, side_by_side, write_mp4

    if int(ground_truth) + (pred is not None) + (model is not None) != 1:
        raise ConfigError("give exactly one of --ground-truth, --pred FILE or --model RUN")
    if limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {limit}")
    if model is not None:
        if VideoDataset(data).attributes:  # which attributes the generated videos keep, beside references
            if video is not None:
                raise ConfigError("--video is not available for attribute scenes with --model "
                                  "(its worst cases are ranked by velocity error)")
            from simlab.world_models.video_diffusion.probes import (
                evaluate_attribute_model,
                format_attribute_report,
            )

            rep, _ = evaluate_attribute_model(model, data, limit=limit, steps=steps, seed=seed, verify=verify)
            _print_json(rep) if as_json else typer.echo(format_attribute_report(rep))
            return
        from simlab.world_models.video_diffusion.evaluate import evaluate_model, format_report

        res_model = evaluate_model(model, data, limit=limit, steps=steps, seed=seed, video=video, verify=verify)
        _print_json(res_model) if as_json else typer.echo(format_report(res_model))
        return
    ds = VideoDataset(data, verify=verify)
    n = len(ds) if limit == 0 else min(limit, len(ds))
    if pred is not None:
        with open_h5(pred) as f:
            pframes = read_h5_array(f, "frames")
            pidx = read_h5_array(f, "index") if "index" in f else np.arange(len(pframes))
        exp = (ds.config.resolution, ds.config.resolution, 3)
        if pframes.ndim != 5 or pframes.shape[1] != 32 or pframes.shape[2:] != exp or pframes.dtype != np.uint8:
            raise DatasetError(f"{pred}: frames must be uint8 (N, 32, {exp[0]}, {exp[1]}, 3), "
                               f"got {pframes.dtype} {pframes.shape}")
        if len(pframes) == 0:
            raise DatasetError(f"{pred}: holds no videos")
        if pidx.ndim != 1 or pidx.dtype.kind not in "iu" or len(pidx) != len(pframes) \
                or pidx.min() < 0 or pidx.max() >= len(ds):
            raise DatasetError(f"{pred}: 'index' must list one integer dataset index in 0..{len(ds) - 1} "
                               f"per video, got {pidx.dtype} {pidx.shape}")
        pframes, pidx = pframes[: n if limit else None], pidx[: n if limit else None]
    from tqdm import tqdm

    parts: dict[str, list] = {}
    done = 0

    shown: list = []

    def score(st: dict, frames) -> None:
        nonlocal done
        if video is not None and len(shown) < 4:
            gt = st["frames"] if "frames" in st else ds.render(st)
            shown.extend(side_by_side(gt[i], frames[i]) for i in range(min(4 - len(shown), len(frames))))
        if ds.attributes:  # priority probe: which attributes the frames keep
            from simlab.envs.collision2d.attributes import attribute_consistency

            r = attribute_consistency(frames, {"pos": st["pos"], "radii": st["radii"], "r": st["param_r"],
                                               "color": st["param_color"], "shape": st["param_shape"]})
            r = {k: v for k, v in r.items() if k.endswith(("_ok", "_error")) or k == "consistent"}
        else:
            r = evaluate_videos(frames, st["pos"], st["radii"], st["t_contact"], ds.collision)
        for k, v in r.items():
            parts.setdefault(k, []).append(v)
        done += len(frames)
        bar.update(len(frames))

    with tqdm(total=n if pred is None else len(pidx), desc="eval physics", unit="video", leave=False) as bar:
        if pred is None:
            for lo in range(0, n, 256):
                b = ds.load(lo, min(n, lo + 256))
                score(b, b["frames"])
        else:
            states = ds.load(0, len(ds), frames=False)  # exact states are small (~2 KB/video)
            for lo in range(0, len(pidx), 256):
                ids = pidx[lo:lo + 256]
                score({k: v[ids] for k, v in states.items()}, pframes[lo:lo + 256])
    res = {k: np.concatenate(v) for k, v in parts.items()}
    if video is not None and shown:
        write_mp4(video, grid(np.stack(shown), ncols=1), fps=5)
    sc = ds.config.scenario
    out = {
        "data": str(data), "source": "ground-truth" if pred is None else str(pred),
        "scenario": sc, "split": ds.config.split, "resolution": ds.config.resolution, "videos": done,
        "velocity_error": _stats(res["velocity_error"]),
        "video": str(video) if video is not None else None,
    }
    if ds.attributes:
        out["consistency_rate"] = {k.removesuffix("_ok"): float(np.mean(v))
                                   for k, v in res.items() if k.endswith("_ok") or k == "consistent"}
        out["size_error"] = _stats(res["size_error"])
    else:
        out.update({"frame_velocity_error": _stats(res["frame_velocity_error"]),
                    "radius_error": _stats(res["radius_error"]), "missing_frac": _stats(res["missing"]),
                    "paper_gt_floor": PAPER_FLOORS.get(sc)})
    if as_json:
        _print_json(out)
        return
    if ds.attributes:
        rates = ", ".join(f"{k} {v:.1%}" for k, v in out["consistency_rate"].items())
        typer.echo(f"attributes/{ds.config.split} @ {ds.config.resolution}px, {done} videos ({out['source']}): "
                   f"kept {rates}")
        return
    ve = out["velocity_error"]
    typer.echo(f"{sc} @ {ds.config.resolution}px, {done} videos ({out['source']}): velocity error "
               f"{ve['mean']:.4f} ± {ve['ci95']:.4f} (95% CI)"
               + (f"; paper's ground-truth floor {PAPER_FLOORS[sc]}" if sc in PAPER_FLOORS else ""))


# ---- eval gap-probe / attribute-probe (issue 11's case-based probes) -------------------------
@eval_app.command("gap-probe")
def eval_gap_probe_cmd(
    model: Annotated[Path, typer.Option(help="A video-diffusion run (or saved model) trained on gap_train.")],
    data: Annotated[Path, typer.Option(help="A one-ball dataset (uniform or parabola), normally --split gap_test.")],
    out: Annotated[Path | None, out_dir("Directory for gap_probe.json/.md/.png (default: MODEL/probes/gap).")]
    = None,
    limit: Annotated[int, count_opt("Score at most this many videos (0 = all).", minimum=0)] = 0,
    steps: Annotated[int | None, count_opt("Sampler steps (default: the run's).", 1, 1000)] = None,
    seed: Annotated[int, seed_opt("Sampling noise seed.")] = 0,
    edge_band: Annotated[float, positive_float_opt(
        "Half-width of the near-edge band, world units / s (0-0.5).", 0.5)] = 0.25,
    sampler: Annotated[str | None, typer.Option(help="ddim | euler (default: the run's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Velocity-gap probe: a model trained without speeds in [1.5, 3.5] continues videos of those speeds;
    does it predict them or snap to the gap's edges? Predicted vs true speed (PNG), snapping fractions and
    mean |v_pred - v_true| beside the trivial predictors (JSON + markdown)."""
    from simlab.world_models.video_diffusion.probes import format_gap_report, run_gap_probe

    rep = run_gap_probe(model, data, out=out, limit=limit, steps=steps, seed=seed, band=edge_band, sampler=sampler)
    if as_json:
        _print_json({k: v for k, v in rep.items() if k != "per_video"})
    else:
        typer.echo(format_gap_report(rep))


@eval_app.command("attribute-probe")
def eval_attribute_probe_cmd(
    model: Annotated[list[Path], typer.Option(help="A video-diffusion run trained on pair_<a>_<b>_train; "
                                                   "repeat, one per --data, in the same order.")],
    data: Annotated[list[Path], typer.Option(help="An attribute dataset of a pair_<a>_<b>_test split; repeat.")],
    out: Annotated[Path | None, out_dir("Directory for attribute_probe.json/.md (default with one model: "
                                        "MODEL/probes/attributes; required with several).")] = None,
    limit: Annotated[int, count_opt("Score at most this many videos per pair (0 = all).", minimum=0)] = 0,
    steps: Annotated[int | None, count_opt("Sampler steps (default: each run's).", 1, 1000)] = None,
    seed: Annotated[int, seed_opt("Sampling noise seed.")] = 0,
    sampler: Annotated[str | None, typer.Option(help="ddim | euler (default: the run's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Attribute priority probe: on each held-out pair combination, which attribute (colour, size,
    velocity, shape) does the model keep? Per-pair consistency rates and the priority ordering beside the
    paper's color > size > velocity > shape (JSON + markdown)."""
    from simlab.world_models.video_diffusion.probes import (
        format_attribute_probe,
        run_attribute_probe,
    )

    rep = run_attribute_probe(model, data, out=out, limit=limit, steps=steps, seed=seed, sampler=sampler)
    _print_json(rep) if as_json else typer.echo(format_attribute_probe(rep))


# ---- train dreamland ----------------------------------------------------------------------
@train_app.command("dreamland")
def train_dreamland_cmd(
    out: Annotated[Path, out_dir("Run directory.")] = Path("runs/dreamland"),
    env: Annotated[str | None, typer.Option(
        help="Real env: a procgen-like game id (default simlab/Dodge-v1) or an image gymnasium env "
             "(CarRacing-v3).")] = None,
    preset: Annotated[str, typer.Option(help="cpu (default) | gpu | carracing | debug")] = "cpu",
    dropout: Annotated[float | None, rate_opt("World-model LSTM dropout (Dream Land), in [0, 1).")] = None,
    mask: Annotated[str | None, typer.Option(help="Dream mask mode: per_episode | per_step | mc_mean | none")]
    = None,
    controller: Annotated[str | None, typer.Option(help="cmaes | ppo")] = None,
    seeds: Annotated[int | None, count_opt("Controller seeds per variant (1-100).", 1, 100)] = None,
    sweep: Annotated[str | None, typer.Option(
        help="Extra dropout rates, comma-separated (e.g. 0.1,0.2): one more Dream Land variant each.")] = None,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline",
                                           help="Also run the no-dropout World Models baseline.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue a killed run where it stopped.")] = False,
    world_model: Annotated[str | None, typer.Option(
        "--world-model", help="dropout (default): MDN-RNN dreams | diffusion: also a controller trained in a "
                              "DIAMOND-style pixel diffusion dream (diffusion.<key>=value overrides).")] = None,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Dropout's Dream Land: collect -> VAE -> MDN-RNN with dropout -> controller in dreams -> real-env test
    beside the fixed policies and a real-game upper bound; writes report.md and report.json."""
    from simlab.pipelines.dreamland import PRESETS, dreamland_config, train_dreamland

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    ov = [f"baseline={'true' if baseline else 'false'}"]
    for key, val in (("env", env), ("dropout", dropout), ("mask", mask), ("controller", controller), ("seeds", seeds),
                     ("world_model", world_model)):
        if val is not None:
            ov.append(f"{key}={val}")
    if sweep is not None:
        try:
            rates = [float(x) for x in comma_list(sweep, "--sweep")]
        except ValueError:
            raise ConfigError(f"--sweep must be comma-separated numbers, got {sweep!r}") from None
        ov.append(f"sweep=[{', '.join(repr(r) for r in rates)}]")
    cfg = dreamland_config([preset], [*ov, *(overrides or [])])
    res = train_dreamland(cfg, out, resume=resume)
    if as_json:
        _print_json({"run": str(out), **res})
        return
    typer.echo((out / "report.md").read_text())


# ---- train ppo ----------------------------------------------------------------------------
OverridesArg = Annotated[list[str] | None, typer.Argument(
    help="Config overrides key=value (e.g. lr=3e-4 num_envs=32), applied after presets.")]


@train_app.command("ppo")
def train_ppo_cmd(
    out: Annotated[Path, out_dir("Run directory.")],
    env: Annotated[str, typer.Option(help="A procgen-like env id, e.g. simlab/Maze-v0.")] = "simlab/Maze-v0",
    num_levels: Annotated[int | None, count_opt("Training levels (0 = unlimited).", minimum=0)] = None,
    total_timesteps: Annotated[int | None, count_opt("Environment steps to train for (up to 10**11).", 1,
                                                     10**11)] = None,
    preset: Annotated[list[str] | None, typer.Option(
        help="Named presets applied in order: debug | cpu (~30 CPU-minutes, CPU-sized network).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its latest checkpoint.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """PPO with an IMPALA-CNN (stable-baselines3) on a procgen-like game's training levels."""
    from simlab.policies.ppo import ppo_config, train_ppo

    check_option_keys(overrides, {"env_id": "--env"})
    ov = list(overrides or [])
    ov.append(f"env_id={env}")
    if num_levels is not None:
        ov.append(f"num_levels={num_levels}")
    if total_timesteps is not None:
        ov.append(f"total_timesteps={total_timesteps}")
    cfg = ppo_config(list(preset or []), ov)
    run = train_ppo(cfg, out, resume=resume)
    info = {"run": str(run.path), "env": cfg.env_id, "total_timesteps": cfg.total_timesteps}
    _print_json(info) if as_json else typer.echo(f"trained PPO on {cfg.env_id}: {run.path}")


@train_app.command("bc")
def train_bc_cmd(
    data: Annotated[str, typer.Option(help="A procgen or toygrasp dataset directory, or minari:<id or path>.")],
    out: Annotated[Path, out_dir("Run directory.")],
    env: Annotated[str, typer.Option(help="The env the data comes from, e.g. simlab/Maze-v0 "
                                          "(default: the dataset's).")] = "",
    encoder: Annotated[str | None, typer.Option(help="Grasp BC on a toygrasp dataset: detpool | meanpool | slots "
                                                     "(default detpool for a toygrasp dataset; slots needs "
                                                     "--object-masks demos).")] = None,
    preset: Annotated[list[str] | None, typer.Option(help="Named presets applied in order.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its latest checkpoint.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Behaviour cloning: IMPALA-CNN (cross-entropy) on procgen/Minari data, or on toygrasp demos an
    action-chunk policy with a detection-pooling or mean-pooling encoder (L1)."""
    from simlab.config import resolve
    from simlab.policies.bc import BCConfig, train_bc
    from simlab.policies.grasp_bc import is_grasp_dataset, train_grasp_bc_cli

    if encoder is not None or is_grasp_dataset(data):
        info = train_grasp_bc_cli(data, out, encoder or "detpool", list(preset or []), list(overrides or []),
                                  resume, env)
        _print_json(info) if as_json else typer.echo(f"trained grasp BC ({info['encoder']}) on {data}: {out}"
                                                     + "".join(f"\n  {k}" for k in info.get("eval_lines", [])))
        return
    check_option_keys(overrides, {"data": "--data", "env": "--env"})
    cfg = resolve(BCConfig, "bc", list(preset or []), [*(overrides or []), f"data={data}", f"env={env}"])
    run = train_bc(cfg, out, resume=resume)
    info = {"run": str(run.path), "env": cfg.env, "data": cfg.data}
    _print_json(info) if as_json else typer.echo(f"trained BC on {cfg.data}: {run.path}")


@train_app.command("offline")
def train_offline_cmd(
    data: Annotated[str, typer.Option(help="A procgen transition dataset directory (simlab collect procgen).")],
    out: Annotated[Path, out_dir("Run directory.")],
    algo: Annotated[str, typer.Option(help="bc | cql | iql (TorchRL losses; needs the offline-rl extra).")] = "cql",
    env: Annotated[str, typer.Option(help="The env the data comes from (default: the dataset's).")] = "",
    preset: Annotated[list[str] | None, typer.Option(help="Named presets applied in order (e.g. debug).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its latest checkpoint.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Offline RL (BC, discrete CQL, discrete IQL through TorchRL) on a procgen dataset; saved-policy output."""
    from simlab.policies.offline import ALGOS, offline_config, train_offline

    if algo not in ALGOS:
        raise ConfigError(f"unknown offline algorithm {algo!r}; choose one of {', '.join(ALGOS)}")
    try:
        import torchrl  # noqa: F401
    except ImportError:
        raise SimlabError("simlab train offline needs torchrl: pip install -e '.[offline-rl]'") from None
    cfg = offline_config(list(preset or []), [*(overrides or []), f"algo={algo}", f"data={data}", f"env={env}"])
    run = train_offline(cfg, out, resume=resume)
    evals = {k: v for k, v in (run.stage_done("eval") or {}).items() if k.startswith("eval/")}
    info = {"run": str(run.path), "algo": cfg.algo, "data": cfg.data, **evals}
    _print_json(info) if as_json else typer.echo(f"trained offline {cfg.algo} on {cfg.data}: {run.path}")


@train_app.command("frame-vae")
def train_frame_vae_cmd(
    data: Annotated[Path, typer.Option(help="A collision2d dataset (the VAE works at its resolution).")],
    out: Annotated[Path, out_dir("Output directory; latent_vae=OUT/vae points a video model at it.")]
    = Path("runs/frame_vae"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its latest checkpoint.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """The frozen frame VAE (diffusers AutoencoderKL) for latent video diffusion, trained on the testbed."""
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.world_models.video_diffusion.latent import frame_vae_config, train_frame_vae

    cfg = frame_vae_config(list(overrides or []), resolution=VideoDataset(data).config.resolution)
    info = train_frame_vae(cfg, data, out, resume=resume)
    _print_json(info) if as_json else typer.echo(f"trained frame VAE ({info.get('steps')} steps): {out}")


@train_app.command("video-diffusion")
def train_video_diffusion_cmd(
    data: Annotated[Path, typer.Option(help="A collision2d dataset (its resolution and frame count must match).")],
    preset: Annotated[str, typer.Option(help="cpu-small (default) | gpu-s | gpu-b | debug")] = "cpu-small",
    out: Annotated[Path, out_dir("Run directory.")] = Path("runs/video_diffusion"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run from its latest checkpoint.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Conditional video diffusion (diffusers UNet2DModel / DiT; DDPM, v- or x0-prediction) with accelerate."""
    from simlab.world_models.video_diffusion.config import video_diffusion_config

    cfg = video_diffusion_config([preset], list(overrides or []))
    from simlab.world_models.video_diffusion.train import train_video_diffusion

    info = train_video_diffusion(cfg, data, out, resume=resume)
    _print_json(info) if as_json else typer.echo(
        f"trained video diffusion ({cfg.backbone}, {info['steps']} steps, loss {info['final_loss']:.4f}): {out}")


@train_app.command("video-diffusion-grid")
def train_video_diffusion_grid_cmd(
    out: Annotated[Path, out_dir("Grid directory (cells, runs, scaling.json/.md/.png).")],
    data_sizes: Annotated[str, typer.Option(
        help="Comma-separated training-set sizes: the scenario's linspace grids 30k | 300k | 3m, or GRID:N "
             "(the grid's first N videos, e.g. 30k:2000).")] = "30k",
    model_sizes: Annotated[str, typer.Option(
        help="Comma-separated model sizes: xs | s | m | l | xl (0.5x / 1x / 2x / 4x / 8x the preset's widths).")]
    = "s",
    preset: Annotated[str, typer.Option(help="Video diffusion preset of every cell: cpu-small | gpu-s | gpu-b | "
                                             "debug")] = "cpu-small",
    steps: Annotated[int | None, count_opt("Training steps per cell (default: the preset's).", 1, 10**9)] = None,
    scenario: Annotated[str, typer.Option(help="uniform | parabola | collision | oblique")] = "uniform",
    id_split: Annotated[str, typer.Option(help="In-distribution evaluation split.")] = "id",
    ood_split: Annotated[str, typer.Option(help="Out-of-distribution evaluation split.")] = "ood_v",
    eval_videos: Annotated[int, count_opt("Videos scored per evaluation split.", 1, 10**6)] = 256,
    eval_seed: Annotated[int, seed_opt("Seed of the evaluation datasets.")] = 1,
    data_root: Annotated[Path | None, out_dir("Where datasets are found or collected (default: OUT/data).",
                                              name="--data-root")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the grid in OUT: finished cells are skipped, a killed "
                                              "training run continues.")] = False,
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Scaling grid: for every (data size, model size) collect the training set if missing (states only),
    train, evaluate ID and OOD; writes a table and a plot of velocity error vs data size (ID solid, OOD dashed)."""
    from simlab.world_models.video_diffusion.scaling import (
        ScalingGridConfig,
        format_summary,
        run_grid,
    )

    grid = ScalingGridConfig(data_sizes=comma_list(data_sizes, "--data-sizes"),
                             model_sizes=comma_list(model_sizes, "--model-sizes"), preset=preset,
                             overrides=list(overrides or []), steps=steps, scenario=scenario, id_split=id_split,
                             ood_split=ood_split, eval_videos=eval_videos, eval_seed=eval_seed,
                             data_root=str(data_root) if data_root is not None else None)
    rep = run_grid(grid, out, resume=resume)
    _print_json(rep) if as_json else typer.echo(format_summary(rep))


# ---- eval transfer -------------------------------------------------------------------------
@eval_app.command("transfer")
def eval_transfer(
    policy: Annotated[Path, typer.Option(help="A run directory or a saved-policy directory.")],
    env: Annotated[str, typer.Option(help="Real env id, e.g. simlab/Maze-v0.")],
    splits: Annotated[str, typer.Option(help="Comma-separated splits: train, val, test, vis_train, vis_test, hard.")]
    = "train,test",
    episodes: Annotated[int, count_opt("Episodes per split (1-100000).", 1, 100_000)] = 100,
    seed: Annotated[int, seed_opt("Seed of the level streams.")] = 0,
    num_envs: Annotated[int, count_opt("Envs stepped together (1-4096).", 1, 4096)] = 16,
    out: Annotated[Path | None, out_dir("Directory for eval_info.json and videos (default: POLICY/eval).")]
    = None,
    videos_per_split: Annotated[int, count_opt("Episodes recorded to mp4 per split.", 0, 100)] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a policy in the REAL env on named splits: mean, std, 95% CI, success rate per split.

    Toy-grasp envs (``simlab/ToyGrasp-v0``, ``simlab/ToyGraspMJ-v0``) go to the grasp evaluator
    (``simlab eval toygrasp``, one engine): splits ``toys-train``, ``toys-test``, ``objects``
    (``train`` / ``test`` mean the toy splits), the same ``eval_info.json`` layout."""
    from simlab.policies.evaluate import evaluate, format_table, load_policy
    from simlab.policies.grasp_eval import ENV_IDS as GRASP_ENV_IDS

    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    names = comma_list(splits, "--splits")
    backend = {v: k for k, v in GRASP_ENV_IDS.items()}.get(env)
    if backend is not None:
        from simlab.policies.grasp_eval import eval_toygrasp_cli, format_grasp_table

        names = [{"train": "toys-train", "test": "toys-test"}.get(n, n) for n in names]
        info = eval_toygrasp_cli(str(policy), [backend], names, episodes, seed, out, videos_per_split, None)
        if as_json:
            _print_json(info["results"][backend])
        else:
            typer.echo(format_grasp_table({f"{info['policy']} ({backend})": info["results"][backend]}))
            typer.echo(f"details: {info['out']}/{backend}/eval_info.json")
        return
    pol = load_policy(policy)
    out_dir = out if out is not None else (policy / "eval")
    res = evaluate(pol, env, names, episodes, seed=seed, num_envs=num_envs,
                   video_dir=out_dir / "videos" if videos_per_split > 0 else None,
                   videos_per_split=videos_per_split, out_dir=out_dir, progress=True)
    if as_json:
        _print_json({k: {kk: vv for kk, vv in v.items() if kk != "episodes"} for k, v in res.items()})
    else:
        typer.echo(format_table(res))
        typer.echo(f"details: {out_dir / 'eval_info.json'}")


@eval_app.command("toygrasp")
def eval_toygrasp_cmd(
    policy: Annotated[str, typer.Option(help="A grasp BC run / saved-policy directory, or a baseline: "
                                             "expert | random | fixed.")],
    backends: Annotated[str, typer.Option(help="Comma-separated engines: pybullet,mujoco.")] = "pybullet,mujoco",
    splits: Annotated[str, typer.Option(help="Comma-separated splits: toys-train, toys-test, objects.")]
    = "toys-test,objects",
    episodes: Annotated[int, count_opt("Episodes per split and engine (objects: at most 106).", 1, 100_000)] = 50,
    seed: Annotated[int, seed_opt("First reset seed (episode i resets with seed + i).")] = 0,
    out: Annotated[Path | None, out_dir("Directory for <backend>/eval_info.json and videos "
                                        "(default: POLICY/eval).")] = None,
    videos_per_split: Annotated[int, count_opt("Episodes recorded to mp4 per split and engine.", 0, 100)] = 2,
    execute: Annotated[int | None, count_opt("Actions run per predicted chunk (default: as trained).", 1, 1000)]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a grasp policy (or the expert / random / fixed baseline) in the REAL toy-grasp envs."""
    from simlab.policies.grasp_eval import eval_toygrasp_cli, format_grasp_table

    info = eval_toygrasp_cli(policy, comma_list(backends, "--backends"), comma_list(splits, "--splits"),
                             episodes, seed, out,
                             videos_per_split, execute)
    if as_json:
        _print_json(info)
    else:
        typer.echo(format_grasp_table({f"{info['policy']} ({b})": r for b, r in info["results"].items()}))
        typer.echo(f"details: {info['out']}/<backend>/eval_info.json")


@eval_app.command("shortcut-probe")
def eval_shortcut_probe_cmd(
    out: Annotated[Path, out_dir("Directory for the datasets, runs and report.")],
    demos: Annotated[int, count_opt("Demos per fragmented dataset.")] = 200,
    steps: Annotated[int, count_opt("BC gradient steps per variant.")] = 1000,
    episodes: Annotated[int, count_opt("Episodes per evaluation condition.", 1, 100_000)] = 20,
    overlap: Annotated[float, fraction_opt("Fraction of swapped-task demos in the 'overlap' variant.")] = 0.2,
    variants: Annotated[str, typer.Option(help="Comma-separated: fragmented, overlap, view-aug.")]
    = "fragmented,overlap,view-aug",
    noise: Annotated[float, fraction_opt("DART noise of the demos (std, action units; 0: off).")] = 0.0,
    seed: Annotated[int, seed_opt("Seed of data, training and probe episodes.")] = 0,
    encoder: Annotated[str, typer.Option(help="meanpool | slots (one detection-pooled slot per object, the "
                                              "instruction attends to one).")] = "meanpool",
    overrides: OverridesArg = None,
    as_json: JsonOpt = False,
) -> None:
    """Shortcut probe: train goal-conditioned grasp BC on viewpoint-fragmented two-toy demos, then ask for
    the other sub-dataset's toy and count how often the policy grasps the shortcut's toy instead."""
    from simlab.policies.grasp_shortcut import format_probe, run_shortcut_probe

    rep = run_shortcut_probe(out, demos, steps, episodes, overlap, seed=seed, noise=noise, encoder=encoder,
                             variants=tuple(comma_list(variants, "--variants")),
                             bc_overrides=tuple(overrides or ()))
    _print_json(rep) if as_json else typer.echo(format_probe(rep) + f"details: {out / 'report.json'}")


# ---- entry point ---------------------------------------------------------------------------
def _one_line(msg: object) -> str:
    """``msg`` with every run of whitespace (newlines too) collapsed: errors are one line by construction."""
    return " ".join(str(msg).split())


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the one error path of the CLI, which every command inherits.

    - a :class:`SimlabError` or a bad option: ``error: <one line>``, exit 2;
    - an OSError on a user path (unwritable, full disk, missing file): the same, exit 2;
    - Ctrl-C: ``interrupted; rerun with --resume to continue``, exit 130 (files are
      written atomically and SIGINT is deferred during writes, so the run resumes);
    - anything else is a simlab bug: one line naming it, exit 1 (``SIMLAB_DEBUG=1``
      re-raises it with the traceback).

    Click's exceptions are matched by class name: typer >= 0.2x vendors its
    own copy of click (same class names), older typer uses click itself.
    """
    import os

    from simlab.interrupt import INTERRUPT_MESSAGE

    cmd = typer.main.get_command(app)
    try:
        rv = cmd.main(args=argv if argv is not None else sys.argv[1:], prog_name="simlab", standalone_mode=False)
        if rv == 130:  # typer turns KeyboardInterrupt into Exit(130), which click returns here
            typer.echo(INTERRUPT_MESSAGE, err=True)
        return rv if isinstance(rv, int) else 0
    except SimlabError as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo(f"\n{INTERRUPT_MESSAGE}", err=True)
        return 130
    except MemoryError:
        typer.echo("error: out of memory (make the request smaller)", err=True)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        typer.echo(f"error: {where}{_one_line(e.strerror or e)}", err=True)
        return 2
    except Exception as e:
        names = {c.__name__ for c in type(e).__mro__}
        ctx = getattr(e, "ctx", None)
        if "NoArgsIsHelpError" in names:
            typer.echo(ctx.get_help() if ctx else str(e))
            return 0
        if "UsageError" in names:
            hint = f" (see `{ctx.command_path} --help`)" if ctx else ""
            typer.echo(f"error: {_one_line(e.format_message())}{hint}", err=True)  # type: ignore[attr-defined]
            return 2
        if "Exit" in names:
            code = int(getattr(e, "exit_code", 0) or 0)
            if code == 130:
                typer.echo(INTERRUPT_MESSAGE, err=True)
            return code
        if "Abort" in names:
            typer.echo(INTERRUPT_MESSAGE, err=True)
            return 130
        if os.environ.get("SIMLAB_DEBUG"):
            raise
        typer.echo(f"error: internal error, please report it: {type(e).__name__}: {_one_line(e)} "
                   "(SIMLAB_DEBUG=1 shows the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
