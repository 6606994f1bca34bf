"""Video diffusion world model: model, diffusion, baselines, training run directory, resume, NaN stop,
evaluation CLI and one-line errors. Tiny models on 16 px data; the whole file runs in well under a minute."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from simlab.cli import main
from simlab.errors import ConfigError, DatasetError, SimlabError


def run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def data16(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vd")
    out = {"train": root / "train", "id": root / "id", "d32": root / "d32"}
    assert main(["collect", "collision2d", "--scenario", "uniform", "--split", "train", "--size", "64",
                 "--resolution", "16", "--no-store-frames", "--out", str(out["train"]), "--json"]) == 0
    assert main(["collect", "collision2d", "--scenario", "uniform", "--split", "id", "--size", "6",
                 "--resolution", "16", "--seed", "1", "--out", str(out["id"]), "--json"]) == 0
    assert main(["collect", "collision2d", "--scenario", "uniform", "--split", "id", "--size", "2",
                 "--resolution", "32", "--out", str(out["d32"]), "--json"]) == 0
    return out


def debug_cfg(*overrides: str):
    from simlab.world_models.video_diffusion.config import video_diffusion_config

    return video_diffusion_config(["debug"], list(overrides))


# ---- import cost ------------------------------------------------------------------------------
def test_import_simlab_does_not_import_diffusers() -> None:
    code = ("import sys, time; t = time.perf_counter(); import simlab; import simlab.cli; "
            "import simlab.world_models.video_diffusion.config; "
            "print(time.perf_counter() - t, 'diffusers' in sys.modules, 'accelerate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"]


# ---- config -----------------------------------------------------------------------------------
def test_config_presets_and_errors() -> None:
    from simlab.world_models.video_diffusion.config import PRESETS, video_diffusion_config

    assert {"cpu-small", "gpu-s", "gpu-b", "debug"} <= set(PRESETS)
    cfg = video_diffusion_config(["cpu-small"], ["backbone=dit", "lr=0.0003"])
    assert cfg.backbone == "dit" and cfg.lr == 0.0003 and cfg.resolution == 32
    assert cfg.prediction_type == "sample" and video_diffusion_config().prediction_type == "v_prediction"
    for bad in (["backbone=unet3d"], ["nope=1"], ["cond_frames=32"], ["lr_schedule=linear"],
                ["prediction_type=epsilon"]):
        with pytest.raises(ConfigError):
            video_diffusion_config(["cpu-small"], bad)
    with pytest.raises(ConfigError, match="unknown preset"):
        video_diffusion_config(["gpu-xl"])


# ---- model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", ["unet", "dit"])
def test_model_shapes_and_save_load_bit_exact(backbone: str, tmp_path: Path) -> None:
    from simlab.world_models.video_diffusion.conditioning import condition
    from simlab.world_models.video_diffusion.model import (
        VideoDiffusionModel,
        load_model,
        model_kwargs,
    )

    torch.manual_seed(0)
    model = VideoDiffusionModel(**model_kwargs(debug_cfg(f"backbone={backbone}"))).eval()
    x = torch.randn(2, 32, 3, 16, 16)
    cond, mask = condition(x, 3)
    t = torch.tensor([0, 999])
    y = model(x, cond, mask, t)
    assert y.shape == (2, 32, 3, 16, 16)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "diffusion_pytorch_model.safetensors"}
    again = load_model(tmp_path / "m")
    assert again.config.backbone == backbone
    assert torch.equal(again(x, cond, mask, t), y)


def test_dit_label_dropout_is_off_in_training_mode() -> None:
    from simlab.world_models.video_diffusion.conditioning import condition
    from simlab.world_models.video_diffusion.model import VideoDiffusionModel, model_kwargs

    torch.manual_seed(0)
    model = VideoDiffusionModel(**model_kwargs(debug_cfg("backbone=dit"))).train()
    x = torch.randn(64, 32, 3, 16, 16)
    cond, mask = condition(x, 3)
    t = torch.full((64,), 500)
    with torch.no_grad():  # with diffusers' default 10% label dropout, 64 samples differ from eval mode
        assert torch.equal(model(x, cond, mask, t), model.eval()(x, cond, mask, t))


def test_condition_and_pixel_round_trip() -> None:
    from simlab.world_models.video_diffusion.conditioning import (
        condition,
        to_model_space,
        to_pixels,
    )

    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 4, 3), dtype=np.uint8)
    x = to_model_space(frames)
    assert x.shape == (2, 5, 3, 4, 4) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_pixels(x), frames)
    cond, mask = condition(x, 2)
    assert torch.equal(cond[:, :2], x[:, :2]) and not cond[:, 2:].any()
    assert mask.shape == (2, 5, 1, 4, 4) and mask[:, :2].all() and not mask[:, 2:].any()


def test_generate_keeps_condition_frames_and_is_seeded() -> None:
    from simlab.world_models.video_diffusion.model import VideoDiffusionModel, model_kwargs
    from simlab.world_models.video_diffusion.sampling import generate

    torch.manual_seed(0)
    model = VideoDiffusionModel(**model_kwargs(debug_cfg())).eval()
    given = np.random.default_rng(1).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    a = generate(model, given, steps=2, seed=5)
    assert a.shape == (2, 32, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a[:, :3], given)
    assert np.array_equal(a, generate(model, given, steps=2, seed=5))
    with pytest.raises(ConfigError):
        generate(model, given[:, :, :8], steps=2)


def test_zero_terminal_snr_v_prediction_schedule() -> None:
    from simlab.world_models.video_diffusion.diffusion import sampler, train_scheduler

    ddpm = train_scheduler()
    assert ddpm.config.prediction_type == "v_prediction"
    assert float(ddpm.alphas_cumprod[-1]) < 1e-8  # zero terminal SNR
    ddim = sampler(ddpm, 4)
    assert int(ddim.timesteps[0]) == 999  # trailing spacing starts from pure noise


# ---- trivial predictors -----------------------------------------------------------------------
def test_trivial_predictors_on_ground_truth(data16: dict[str, Path]) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.envs.collision2d.parse import evaluate_videos
    from simlab.world_models.video_diffusion.baselines import (
        constant_velocity,
        fit_constant_velocity,
        repeat_last,
    )

    st = VideoDataset(data16["id"]).load()
    f = st["frames"]
    rep = repeat_last(f, 3)
    assert np.array_equal(rep[:, :3], f[:, :3]) and (rep[:, 3:] == f[:, 2:3]).all()
    e_rep = evaluate_videos(rep, st["pos"], st["radii"], None, False)["velocity_error"]
    e_cv = evaluate_videos(constant_velocity(f, 3, 1), st["pos"], st["radii"], None, False)["velocity_error"]
    speed = np.abs(st["param_v"])
    assert np.allclose(e_rep, speed, rtol=0.25)  # a ball standing still misses by its speed
    assert e_cv.mean() < 0.5 * e_rep.mean()
    c = np.array([[[[1.0, 2.0]], [[2.0, 2.0]], [[np.nan, np.nan]]]])  # (1, 3, 1, 2): a missed frame
    p, v = fit_constant_velocity(c)
    assert np.allclose(v, [[[1.0, 0.0]]]) and np.allclose(p, [[[3.0, 2.0]]])


# ---- training ---------------------------------------------------------------------------------
def _read_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_train_run_dir_and_resume_equals_unbroken(data16: dict[str, Path], tmp_path: Path) -> None:
    from simlab.world_models.video_diffusion.train import train_video_diffusion

    cfg = debug_cfg("max_steps=6", "checkpoint_every=3", "sample_every=3", "sample_videos=1")
    info = train_video_diffusion(cfg, data16["train"], tmp_path / "a")
    a = tmp_path / "a"
    assert info["steps"] == 6 and np.isfinite(info["final_loss"]) and info["processes"] == 1
    assert (a / "config.yaml").exists() and (a / "train_info.json").exists()
    assert {p.name for p in (a / "model").iterdir()} >= {"config.json", "diffusion_pytorch_model.safetensors",
                                                          "scheduler_config.json"}
    assert (a / "videos" / "samples_step000003.mp4").stat().st_size > 1000
    assert (a / "plots" / "samples_step000006.png").exists()
    recs = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert all(r["time/samples_per_s"] > 0 for r in recs if "train/loss" in r)

    # killed after step 4 (checkpoint at 3), then resumed: identical to the unbroken run
    part = train_video_diffusion(cfg, data16["train"], tmp_path / "b", stop_at=4)
    assert part["stopped_early"] and part["steps"] == 4
    train_video_diffusion(cfg, data16["train"], tmp_path / "b", resume=True)
    b = tmp_path / "b"
    for rel in ("checkpoints/latest/model.safetensors", "model/diffusion_pytorch_model.safetensors"):
        wa, wb = _read_weights(a / rel), _read_weights(b / rel)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), rel
    recs_b = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs_b if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["train/loss"] for r in recs_b if "train/loss" in r] == [r["train/loss"] for r in recs
                                                                     if "train/loss" in r]
    with pytest.raises(ConfigError, match="different config"):
        train_video_diffusion(debug_cfg("max_steps=7"), data16["train"], b, resume=True)
    with pytest.raises(ConfigError, match="not empty"):
        train_video_diffusion(cfg, data16["train"], b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data16: dict[str, Path], tmp_path: Path,
                                                       capsys, monkeypatch) -> None:
    from simlab.world_models.video_diffusion import train as train_mod

    calls = {"n": 0}
    real = train_mod.diffusion_loss

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_mod, "diffusion_loss", flaky)
    out = tmp_path / "nan"
    rc, _, err = run(["train", "video-diffusion", "--data", str(data16["train"]), "--preset", "debug",
                      "--out", str(out)], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "step 2: training loss is nan" in lines[0] and "step 2" in lines[0]
    assert json.loads((out / "checkpoints" / "latest" / "trainer_state.json").read_text())["step"] == 2
    w = _read_weights(out / "checkpoints" / "latest" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in w.values())


# ---- evaluation and one-line errors -----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(data16: dict[str, Path], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vdrun") / "run"
    assert main(["train", "video-diffusion", "--data", str(data16["train"]), "--preset", "debug",
                 "--out", str(out), "--json"]) == 0
    return out


def test_eval_physics_model_json(trained: Path, data16: dict[str, Path], tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    rc, out, _ = run(["eval", "physics", "--model", str(trained), "--data", str(data16["id"]), "--json",
                      "--video", str(tmp_path / "worst.mp4")], capsys)
    assert rc == 0
    res = json.loads(out)
    assert res["videos"] == 6 and res["sample_steps"] == 2 and res["cond_frames"] == 3
    assert set(res["predictors"]) == {"model", "ground_truth", "repeat_last", "constant_velocity"}
    for p in res["predictors"].values():
        ve = p["velocity_error"]
        assert ve["n"] == 6 and np.isfinite(ve["mean"]) and ve["ci95"] >= 0
    assert res["predictors"]["ground_truth"]["velocity_error"]["mean"] < 0.2
    assert (tmp_path / "worst.mp4").stat().st_size > 1000 and len(res["worst_velocity_errors"]) == 4
    rc, out, _ = run(["eval", "physics", "--model", str(trained), "--data", str(data16["id"]), "--limit", "2",
                      "--steps", "1"], capsys)
    assert rc == 0 and "repeat_last" in out and "2 videos" in out


def _one_line_error(args: list[str], capsys, match: str) -> None:
    rc, _, err = run(args, capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err


def test_bad_input_is_one_line_exit_2(trained: Path, data16: dict[str, Path], tmp_path: Path, capsys) -> None:
    tr = str(data16["train"])
    _one_line_error(["train", "video-diffusion", "--data", str(data16["d32"]), "--preset", "debug",
                     "--out", str(tmp_path / "x")], capsys, "32px frames, but the config works at 16px")
    _one_line_error(["train", "video-diffusion", "--data", tr, "--preset", "debug", "--out", str(tmp_path / "y"),
                     "num_frames=16"], capsys, "32 frames per video")
    _one_line_error(["train", "video-diffusion", "--data", tr, "--preset", "debug", "--out", str(tmp_path / "z"),
                     "backbone=unet3d"], capsys, "unknown backbone")
    _one_line_error(["train", "video-diffusion", "--data", tr, "--preset", "gpu-xl"], capsys, "unknown preset")
    _one_line_error(["eval", "physics", "--model", str(trained), "--data", str(data16["d32"])], capsys,
                    "32px frames, but the model works at 16px")
    _one_line_error(["eval", "physics", "--model", str(tmp_path), "--data", tr], capsys,
                    "no saved video diffusion model")
    _one_line_error(["collect", "collision2d", "--scenario", "bouncing", "--out", str(tmp_path / "c")], capsys,
                    "unknown scenario")
    _one_line_error(["collect", "collision2d", "--scenario", "uniform", "--split", "ood_r1",
                     "--out", str(tmp_path / "c")], capsys, "unknown split")


def test_corrupt_checkpoints_are_one_line_errors(trained: Path, data16: dict[str, Path], tmp_path: Path,
                                                  capsys) -> None:
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    weights = run_dir / "model" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _one_line_error(["eval", "physics", "--model", str(run_dir), "--data", str(data16["id"])], capsys,
                    "cannot load the video diffusion model")
    (run_dir / "model" / "config.json").write_text("{not json")
    _one_line_error(["eval", "physics", "--model", str(run_dir), "--data", str(data16["id"])], capsys,
                    "cannot load the video diffusion model")
    state = run_dir / "checkpoints" / "latest" / "model.safetensors"
    state.write_bytes(state.read_bytes()[:100])
    _one_line_error(["train", "video-diffusion", "--data", str(data16["train"]), "--preset", "debug",
                     "--out", str(run_dir), "--resume"], capsys, "cannot resume from this checkpoint")


def test_train_stream_is_a_pure_function_of_seed_step_rank(data16: dict[str, Path]) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.world_models.video_diffusion.data import TrainStream, check_compatible

    ds = VideoDataset(data16["train"])
    s = TrainStream(ds, 4, seed=0)
    assert np.array_equal(s.indices(7, 0), TrainStream(ds, 4, seed=0).indices(7, 0))
    assert not np.array_equal(s.indices(7, 0), s.indices(7, 1))  # ranks see different videos
    b = s.batch(7, 1)
    full = ds.load(0, len(ds))  # states-only dataset: load() renders the same frames
    assert b.shape == (4, 32, 16, 16, 3) and np.array_equal(b, full["frames"][s.indices(7, 1)])
    with pytest.raises(DatasetError):
        check_compatible(ds, 32, 32)
    assert issubclass(DatasetError, SimlabError)


def test_speed_benchmark_runs(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "video_diffusion_speed.py"
    proc = subprocess.run([sys.executable, str(script), "--backbones", "unet,dit", "--samplers", "ddim",
                           "--resolutions", "16", "--batch", "2", "--steps", "2", "--repeats", "1", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert [(r["backbone"], r["resolution"]) for r in res["rows"]] == [("unet", 16), ("dit", 16)]
    for r in res["rows"]:
        assert r["train_samples_per_s"] > 0 and r["generated_frames_per_s"] > 0 and r["parameters"] > 1e6
    assert res["machine"]["threads"] == 1


def test_robust_parser_equals_paper_parser_on_clean_frames_and_resists_speckle(data16: dict[str, Path]) -> None:
    from simlab.envs.collision2d.dataset import VideoDataset
    from simlab.envs.collision2d.parse import evaluate_videos, parse_balls
    from simlab.world_models.video_diffusion.robust_parse import (
        evaluate_videos_robust,
        robust_centers,
    )

    st = VideoDataset(data16["id"]).load()
    f = st["frames"]
    valid = np.isfinite(parse_balls(f, 1)["center"])
    assert np.allclose(robust_centers(f, 1)[valid], parse_balls(f, 1)["center"][valid])
    rng = np.random.default_rng(0)
    noisy = f.copy()
    speck = rng.random(f.shape[:4]) < 0.15
    noisy[speck] = rng.integers(0, 256, (int(speck.sum()), 3))
    paper = evaluate_videos(noisy, st["pos"], st["radii"], None, False)["velocity_error"]
    robust = evaluate_videos_robust(noisy, st["pos"], st["radii"], None, False)["velocity_error"]
    assert robust.mean() < 0.5 * paper.mean()


def test_x0_prediction_run_saves_its_scheduler_and_evaluates(data16: dict[str, Path], tmp_path: Path,
                                                             capsys) -> None:
    from simlab.world_models.video_diffusion.evaluate import load_scheduler
    from simlab.world_models.video_diffusion.train import train_video_diffusion

    out = tmp_path / "x0"
    info = train_video_diffusion(debug_cfg("prediction_type=sample", "max_steps=2"), data16["train"], out)
    assert info["steps"] == 2 and np.isfinite(info["final_loss"])
    assert json.loads((out / "model" / "scheduler_config.json").read_text())["prediction_type"] == "sample"
    assert load_scheduler(out).config.prediction_type == "sample"
    rc, text, _ = run(["eval", "physics", "--model", str(out), "--data", str(data16["id"]), "--limit", "2",
                       "--json"], capsys)
    assert rc == 0 and json.loads(text)["videos"] == 2
