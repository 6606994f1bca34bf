"""The diffusion dream (issue 12): networks, EDM maths, save/load, dream envs, trainer, pipeline wiring."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from simlab.errors import ActionError, CheckpointError, ConfigError, DivergedError, ResetNeededError

pytest.importorskip("diffusers")

from simlab.world_models.diffusion_dream.data import build_windows, downscale, start_windows
from simlab.world_models.diffusion_dream.model import (
    ActionFrameDenoiser,
    RewardDoneHead,
    edm_precondition,
)
from simlab.world_models.diffusion_dream.train import (
    DiffusionDreamTrainConfig,
    train_diffusion_dream,
)
from simlab.world_models.diffusion_dream.world_model import (
    DiffusionWorldModel,
    karras_sigmas,
    sample_next,
)

RES, CTX, NA = 16, 4, 15


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def moving_square_episodes(n_eps: int = 2, steps: int = 12, seed: int = 0) -> list[dict]:
    """64x64 episodes of a white 16-px square on black that moves 8 px left (action 1) or right (7)
    per step, wrapping: the next frame depends on the action, so "repeat last frame" is wrong."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(n_eps):
        x = int(rng.integers(0, 4)) * 16
        obs, acts = [], []
        for t in range(steps + 1):
            f = np.zeros((64, 64, 3), np.uint8)
            f[24:40, x % 64:x % 64 + 16] = 255
            obs.append(f)
            if t < steps:
                a = int(rng.choice([1, 7]))
                acts.append(a)
                x += 8 if a == 7 else -8
        term = np.zeros(steps, bool)
        term[-1] = True
        eps.append({"observations": np.stack(obs), "actions": np.array(acts), "rewards": np.ones(steps, np.float32),
                    "terminations": term})
    return eps


def tiny_cfg(**kw) -> DiffusionDreamTrainConfig:
    base = {"resolution": RES, "channels": [8, 16], "head_width": 4, "steps": 4, "batch_size": 4,
            "checkpoint_every": 2, "log_every": 1, "warmup_steps": 0, "cond_noise": 0.0}
    base.update(kw)
    return DiffusionDreamTrainConfig(**base)


def tiny_model(seed: int = 0) -> DiffusionWorldModel:
    torch.manual_seed(seed)
    den = ActionFrameDenoiser(n_actions=NA, resolution=RES, context=CTX, channels=(8, 16))
    head = RewardDoneHead(n_actions=NA, resolution=RES, context=CTX, width=4)
    with torch.no_grad():
        head.mlp[-1].bias[1] = -30.0  # p_done ~ 0: episodes end by truncation only (tests count steps)
    w = build_windows(moving_square_episodes(), NA, CTX, RES)
    s = start_windows(w, 4)
    return DiffusionWorldModel(den, head, w.frames[w.ctx[s]], w.ctx_actions[s][:, :-1], env_id="simlab/Dodge-v1")


# ---- networks and EDM ------------------------------------------------------------------------------
def test_shapes() -> None:
    wm = tiny_model()
    b = 3
    ctx = torch.rand(b, CTX, 3, RES, RES) * 2 - 1
    acts = torch.randint(0, NA + 1, (b, CTX))
    out = wm.denoiser(torch.randn(b, 3, RES, RES), torch.full((b,), 0.7), ctx, acts)
    assert out.shape == (b, 3, RES, RES)
    r, p = wm.head.predict(ctx, acts[:, -1].clamp(max=NA - 1), out)
    assert r.shape == (b,) and p.shape == (b,) and bool(((p >= 0) & (p <= 1)).all())
    nxt = sample_next(wm.denoiser, ctx, acts, karras_sigmas(3), torch.Generator().manual_seed(0))
    assert nxt.shape == (b, 3, RES, RES) and float(nxt.abs().max()) <= 1.0


def test_edm_preconditioning_math() -> None:
    sd = 0.5
    sigma = torch.tensor([1e-3, 0.5, 2.0, 20.0], dtype=torch.float64)
    c_in, c_skip, c_out, c_noise = edm_precondition(sigma, sd)
    # Karras et al. Table 1 identities: unit-variance input, and c_skip^2 sd^2 + c_out^2 ... = sd^2 terms.
    torch.testing.assert_close(c_in ** 2 * (sigma ** 2 + sd ** 2), torch.ones_like(sigma))
    torch.testing.assert_close(c_skip, sd ** 2 / (sigma ** 2 + sd ** 2))
    torch.testing.assert_close(c_out, sigma * sd / torch.sqrt(sigma ** 2 + sd ** 2))
    torch.testing.assert_close(c_noise, torch.log(sigma) / 4)
    # the effective training target F* = (x0 - c_skip x) / c_out has unit variance when x0 ~ N(0, sd^2)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(200_000, generator=g, dtype=torch.float64) * sd
    for s in (0.1, 1.0, 5.0):
        _, cs, co, _ = edm_precondition(torch.tensor([s], dtype=torch.float64), sd)
        x = x0 + s * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        assert abs(float(((x0 - cs * x) / co).std()) - 1.0) < 0.01
    # small sigma: the denoiser is (almost) the identity
    assert float(c_skip[0]) > 0.9999 and float(c_out[0]) < 1.1e-3
    # the sampler's levels are diffusers' EDMEulerScheduler Karras levels (DIAMOND: 3 steps)
    torch.testing.assert_close(karras_sigmas(3), torch.tensor([5.0, 0.28308, 0.002, 0.0]), atol=1e-4, rtol=1e-4)
    rho = 7.0
    ramp = torch.linspace(0, 1, 3)
    k = (5.0 ** (1 / rho) + ramp * (0.002 ** (1 / rho) - 5.0 ** (1 / rho))) ** rho
    torch.testing.assert_close(karras_sigmas(3)[:3], k, atol=1e-5, rtol=1e-5)


def test_denoiser_applies_the_preconditioning() -> None:
    wm = tiny_model()
    ctx = torch.rand(2, CTX, 3, RES, RES) * 2 - 1
    acts = torch.randint(0, NA, (2, CTX))
    x = torch.randn(2, 3, RES, RES)
    sigma = torch.tensor([0.3, 3.0])
    _, c_skip, c_out, _ = edm_precondition(sigma)
    f = wm.denoiser.raw_output(x, sigma, ctx, acts)
    want = c_skip.view(-1, 1, 1, 1) * x + c_out.view(-1, 1, 1, 1) * f
    torch.testing.assert_close(wm.denoiser(x, sigma, ctx, acts), want)
    # actions change the output (the embedding reaches the UNet)
    with torch.no_grad():
        wm.denoiser.action_emb.weight.normal_()
    assert not torch.equal(wm.denoiser(x, sigma, ctx, acts), wm.denoiser(x, sigma, ctx, (acts + 1) % NA))


# ---- save / load -------------------------------------------------------------------------------------
def test_save_load_bit_exact(tmp_path: Path) -> None:
    wm = tiny_model()
    wm.save_pretrained(tmp_path / "wm")
    back = DiffusionWorldModel.from_pretrained(tmp_path / "wm")
    assert not list((tmp_path / "wm").rglob("*.pkl")) and not list((tmp_path / "wm").rglob("*.bin"))
    for a, b in ((wm.denoiser, back.denoiser), (wm.head, back.head)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(wm.start_frames, back.start_frames) and np.array_equal(wm.start_actions, back.start_actions)
    e1, e2 = wm.as_vec_env(2, seed=3), back.as_vec_env(2, seed=3)
    o1, _ = e1.reset(seed=3)
    o2, _ = e2.reset(seed=3)
    s1, s2 = e1.step([1, 7]), e2.step([1, 7])
    assert np.array_equal(o1, o2) and np.array_equal(s1[0], s2[0]) and np.array_equal(s1[1], s2[1])


@pytest.mark.parametrize("victim, needle", [
    ("starts.safetensors", "starts.safetensors"),
    ("denoiser/diffusion_pytorch_model.safetensors", "denoiser"),
    ("world_model.json", "world_model.json"),
])
def test_corrupt_checkpoint_is_one_line(tmp_path: Path, victim: str, needle: str) -> None:
    tiny_model().save_pretrained(tmp_path / "wm")
    p = tmp_path / "wm" / victim
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match=needle) as e:
        DiffusionWorldModel.from_pretrained(tmp_path / "wm")
    assert len(str(e.value).splitlines()) == 1


def test_incompatible_env_is_refused() -> None:
    wm = tiny_model()
    wm.check_compatible("simlab/Dodge-v1", 15, 64)
    with pytest.raises(ConfigError, match="15 actions"):
        wm.check_compatible("simlab/Dodge-v1", 5, 64)
    with pytest.raises(ConfigError, match="64x64"):
        wm.check_compatible("simlab/Dodge-v1", 15, 96)
    with pytest.raises(ConfigError, match="trained on simlab/Dodge-v1"):
        wm.check_compatible("simlab/Maze-v0", 15, 64)


# ---- dream envs ------------------------------------------------------------------------------------
def test_env_api() -> None:
    import gymnasium

    wm = tiny_model()
    env = wm.as_env(seed=0, max_episode_steps=3, render_mode="rgb_array")
    assert isinstance(env, gymnasium.Env)
    with pytest.raises(ResetNeededError):
        env.step(1)
    obs, info = env.reset(seed=1)
    assert obs.shape == (RES, RES, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    assert np.array_equal(obs, wm.start_frames[info["start_index"], -1])
    with pytest.raises(ActionError):
        env.step(15)
    with pytest.raises(ActionError):
        env.step(1.5)
    done, n = False, 0
    while not done:
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        assert isinstance(r, float) and env.observation_space.contains(obs)
        done, n = term or trunc, n + 1
    assert n <= 3
    with pytest.raises(ResetNeededError):
        env.step(1)
    assert env.render().shape == (256, 256, 3)
    assert wm.as_env().render() is None
    with pytest.raises(ConfigError):
        wm.as_env(num_steps=0)
    with pytest.raises(ConfigError):
        wm.as_env(noise_scale=float("nan"))


def test_vec_env_autoreset_and_seeding() -> None:
    from gymnasium.vector import VectorEnv

    wm = tiny_model()
    venv = wm.as_vec_env(4, seed=0, max_episode_steps=2)
    assert isinstance(venv, VectorEnv)
    with pytest.raises(ResetNeededError):
        venv.step([1, 1, 1, 1])
    o, _ = venv.reset(seed=5)
    assert o.shape == (4, RES, RES, 3)
    venv.step([1, 4, 7, 1])
    o2, _, term, trunc, info = venv.step([1, 4, 7, 1])
    assert (term | trunc).all() and info["_episode"].all() and info["reset_mask"].all()
    assert np.array_equal(o2, wm.start_frames[info["start_index"], -1])  # restarted in the same call
    with pytest.raises(ActionError):
        venv.step([1, 2])
    a, b = wm.as_vec_env(3, seed=9), wm.as_vec_env(3, seed=9)
    a.reset(seed=2)
    b.reset(seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a.step([1, 4, 7])[:3], b.step([1, 4, 7])[:3]))
    det = wm.as_vec_env(2, seed=0, noise_scale=0.0)
    det.reset(seed=0, options={"start_index": [0, 0]})
    f = det.step([4, 4])[0]
    assert np.array_equal(f[0], f[1])  # noise_scale 0: a deterministic dream


def test_overfits_a_few_transitions(tmp_path: Path) -> None:
    """A tiny model trained on a moving square predicts the next frame better than "repeat last"."""
    w = build_windows(moving_square_episodes(2, 10), NA, CTX, RES)
    cfg = tiny_cfg(steps=120, batch_size=8, lr=3e-3, checkpoint_every=120, log_every=40)
    den, _, info = train_diffusion_dream(w, cfg, tmp_path / "run", progress=False)
    idx = np.arange(len(w))
    bt = w.batch(idx)
    from simlab.world_models.diffusion_dream.data import to_model

    pred = sample_next(den, to_model(bt["ctx"]), torch.as_tensor(bt["ctx_actions"]), karras_sigmas(3),
                       torch.Generator().manual_seed(0))
    truth = to_model(bt["next"])
    err = float((pred - truth).pow(2).mean())
    repeat = float((to_model(bt["ctx"])[:, -1] - truth).pow(2).mean())
    assert err < 0.8 * repeat, (err, repeat, info)


# ---- trainer -------------------------------------------------------------------------------------------
def test_trainer_resume_equals_unbroken(tmp_path: Path) -> None:
    w = build_windows(moving_square_episodes(), NA, CTX, RES)
    den_a, head_a, _ = train_diffusion_dream(w, tiny_cfg(), tmp_path / "a", progress=False)
    _, _, early = train_diffusion_dream(w, tiny_cfg(), tmp_path / "b", progress=False, stop_at=2)
    assert early["stopped_early"]
    with pytest.raises(ConfigError, match="--resume"):
        train_diffusion_dream(w, tiny_cfg(), tmp_path / "b", progress=False)
    den_b, head_b, _ = train_diffusion_dream(w, tiny_cfg(), tmp_path / "b", resume=True, progress=False)
    for a, b in ((den_a, den_b), (head_a, head_b)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ConfigError, match="different config"):
        train_diffusion_dream(w, tiny_cfg(lr=1e-2), tmp_path / "b", resume=True, progress=False)


def test_nan_loss_stops_before_saving(tmp_path: Path, monkeypatch) -> None:
    import simlab.world_models.diffusion_dream.train as tr

    w = build_windows(moving_square_episodes(), NA, CTX, RES)
    real = tr.edm_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(tr, "edm_loss", flaky)
    with pytest.raises(DivergedError, match="loss is nan at step 2") as e:
        train_diffusion_dream(w, tiny_cfg(), tmp_path / "r", progress=False)
    assert len(str(e.value).splitlines()) == 1
    from simlab.integrity import read_sealed_json

    st = read_sealed_json(tmp_path / "r" / "checkpoints" / "latest" / "trainer_state.json", CheckpointError, "x")
    assert st["step"] == 2  # the last good checkpoint is kept
    assert not (tmp_path / "r" / "model").exists()


# ---- data and config ----------------------------------------------------------------------------------
def test_windows_and_downscale() -> None:
    f = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 256
    f = f.astype(np.uint8)
    assert downscale(f, 32).shape == (32, 32, 3)
    assert downscale(np.full((2, 64, 64, 3), 7, np.uint8), 16).max() == 7
    with pytest.raises(ConfigError):
        downscale(f, 24)
    eps = moving_square_episodes(2, 5)
    w = build_windows(eps, NA, CTX, RES)
    assert len(w) == 10 and w.frames.shape == (12, RES, RES, 3)
    assert list(w.ctx[0]) == [0, 0, 0, 0] and list(w.ctx_actions[0][:3]) == [NA] * 3
    assert w.ctx_actions[0][-1] == w.actions[0] and w.next[0] == 1
    assert list(w.ctx[6]) == [6, 6, 6, 7] and w.next[6] == 8  # second episode starts at frame 6
    assert set(start_windows(w, 100, danger=4)) == {0, 5, 2, 7}  # firsts + 2 and 4 steps before each death


@pytest.mark.parametrize("ov, needle", [
    (["world_model=bogus"], "unknown world_model"),
    (["world_model=diffusion", "diffusion.resolution=24"], "diffusion.resolution"),
    (["world_model=diffusion", "diffusion.nope=1"], "unknown config key 'diffusion.nope'"),
    (["world_model=diffusion", "controller=ppo"], "controller=cmaes"),
    (["world_model=diffusion", "diffusion.num_steps=0"], "diffusion.num_steps"),
])
def test_bad_config_is_one_line(ov: list[str], needle: str) -> None:
    from simlab.pipelines.dreamland import dreamland_config

    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(".", r"\.")) as e:
        dreamland_config(["debug"], ov)
    assert len(str(e.value).splitlines()) == 1


def test_cli_bad_world_model(tmp_path: Path, capsys) -> None:
    from simlab.cli import main

    rc = main(["train", "dreamland", "--out", str(tmp_path / "r"), "--world-model", "sora"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown world_model 'sora'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_default_stays_dropout() -> None:
    from simlab.pipelines.dreamland import DreamlandConfig

    assert DreamlandConfig().world_model == "dropout"
    assert math.isfinite(DreamlandConfig().diffusion.lr)


@pytest.mark.slow
def test_dreamland_diffusion_debug_end_to_end(tmp_path: Path) -> None:
    import json

    from simlab.pipelines.dreamland import dreamland_config, train_dreamland

    cfg = dreamland_config(["debug"], ["world_model=diffusion", "baseline=false"])
    train_dreamland(cfg, tmp_path / "run", progress=False)
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert set(rep["variants"]) == {"dreamland", "diffusion"}
    assert "diffusion" in rep["diagnostics"]["fidelity_panel"]
    assert rep["diagnostics"]["diffusion"]["multistep"]["horizon"] == [1, 2, 4]
    assert (tmp_path / "run" / "world_models" / "diffusion" / "world_model.json").exists()
    shutil.rmtree(tmp_path / "run")


def test_speed_benchmark_smoke() -> None:
    """``benchmarks/dream_speed.py --world-model diffusion`` (the diffusion dream's speed, folded into
    the dream benchmark): frames/s for each asked batch, DIAMOND's ratio and the trainer's s/step."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    assert not (root / "benchmarks" / "diffusion_dream_speed.py").exists()  # one copy only
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "dream_speed.py"), "--world-model", "diffusion",
                           "--resolution", "16", "--channels", "8,16", "--diffusion-batches", "1,4",
                           "--diffusion-steps", "2", "--train-batch", "4", "--repeats", "1", "--no-real", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["world_models"] == ["diffusion"] and res["dropout"] is None
    diff = res["diffusion"]
    assert diff["model"]["resolution"] == 16 and diff["model"]["channels"] == [8, 16] and diff["model"]["parameters"] > 0
    assert diff["reference"]["frames_per_s"] == 1570.0 and diff["reference"]["num_envs"] == 32
    assert [r["num_envs"] for r in diff["dream"]] == [1, 4]
    for r in diff["dream"]:
        assert math.isfinite(r["frames_per_s"]) and r["frames_per_s"] > 0
        assert r["frames_per_s"] == pytest.approx(r["env_steps"] / r["wall_s"]) and r["env_steps"] == 2 * r["num_envs"]
        assert r["diamond_ratio"] == pytest.approx(r["frames_per_s"] / 1570.0)
    assert diff["train"]["batch"] == 4 and 0 < diff["train"]["seconds_per_step"] < math.inf
