"""Grasp BC: detection pooling really pools the target only, action chunks, overfitting, exact reload,
bit-exact resume, the grasp evaluator and its baselines, one-line CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")
torch = pytest.importorskip("torch")

from simlab.cli import main
from simlab.envs.toygrasp.dataset import GraspCollectConfig, collect_toygrasp
from simlab.errors import CheckpointError, ConfigError, DatasetError
from simlab.policies.grasp_bc import (
    GraspBCPolicy,
    balanced_subset,
    grasp_bc_config,
    load_grasp_data,
    load_grasp_network,
    make_batch,
    save_grasp_policy,
    train_grasp_bc,
)
from simlab.policies.grasp_net import GraspBCNet, mask_weights, weighted_pool

RES = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """4 scripted-expert demos of 2 toys at 32 px (pybullet)."""
    out = tmp_path_factory.mktemp("gbc") / "demos"
    cfg = GraspCollectConfig(backend="pybullet", toys=2, demos=4, demos_per_shard=4, resolution=RES, seed=1)
    assert collect_toygrasp(cfg, out, progress=False).complete
    return out


def _cfg(data: Path, *extra: str):
    return grasp_bc_config(["debug"], [f"data={data}", *extra])


# ---- the encoder -------------------------------------------------------------------------------

def test_detpool_ignores_pixels_outside_the_mask_and_meanpool_does_not() -> None:
    torch.manual_seed(0)
    det = GraspBCNet("detpool", image_size=96, patch=8, channels=8, context=1, chunk=2, hidden=16)
    mean = GraspBCNet("meanpool", image_size=96, patch=8, channels=8, context=1, chunk=2, hidden=16)
    mean.load_state_dict(det.state_dict())  # the same network: only the pooling differs
    assert sum(p.numel() for p in det.parameters()) == sum(p.numel() for p in mean.parameters())
    rgb = torch.randint(0, 256, (1, 96, 96, 3), dtype=torch.uint8)
    mask = torch.zeros(1, 96, 96, dtype=torch.uint8)
    mask[0, 8:24, 8:24] = 255  # target in the top-left cells
    far = rgb.clone()
    far[0, 64:, 64:] = 255 - far[0, 64:, 64:]  # change pixels beyond the convs' receptive field of the target
    assert torch.equal(det.encode(rgb, mask), det.encode(far, mask))
    assert not torch.allclose(mean.encode(rgb, mask), mean.encode(far, mask))
    # and the pooled feature is the mask-weighted mean of the feature map's cells
    fmap = det.feature_map(rgb)
    w = mask_weights(mask, 8)
    assert w[0, 1:3, 1:3].eq(1).all() and w.sum() == 4
    want = fmap[0, :, 1:3, 1:3].mean((1, 2))
    assert torch.allclose(det.encode(rgb, mask)[0], want, atol=1e-6)


def test_pooled_coords_carry_the_targets_centroid_only_under_detection_pooling() -> None:
    torch.manual_seed(0)
    det = GraspBCNet("detpool", 96, 8, 8, 1, 2, 16, pooled_coords=True)
    mean = GraspBCNet("meanpool", 96, 8, 8, 1, 2, 16, pooled_coords=True)
    assert det.feature_dim == 10 and det.head[0].in_features == 10 + 8
    rgb = torch.randint(0, 256, (2, 96, 96, 3), dtype=torch.uint8)
    mask = torch.zeros(2, 96, 96, dtype=torch.uint8)
    mask[0, 8:24, 72:88] = 255  # top right
    mask[1, 64:80, 0:16] = 255  # bottom left
    xy = det.encode(rgb, mask)[:, -2:]
    centre = torch.tensor([[79.5, 15.5], [7.5, 71.5]]) / 95 * 2 - 1  # the masks' pixel centroids in [-1, 1]
    assert torch.allclose(xy, centre, atol=1e-5)
    assert torch.allclose(mean.encode(rgb, mask)[:, -2:], torch.zeros(2, 2), atol=1e-6)  # mean pooling: no position
    # a policy saved before the option existed has no key in its config and rebuilds without the channels
    old = GraspBCNet("detpool", 96, 8, 8, 1, 2, 16)
    cfg = dict(old.config)
    del cfg["pooled_coords"]
    assert GraspBCNet(**cfg).feature_dim == 8


def test_weighted_pool_of_an_empty_mask_is_zero_and_weights_are_pixel_fractions() -> None:
    fmap = torch.randn(2, 3, 4, 4)
    assert torch.equal(weighted_pool(fmap, torch.zeros(2, 4, 4)), torch.zeros(2, 3))
    m = torch.zeros(1, 8, 8, dtype=torch.uint8)
    m[0, 0, 0] = 255  # 1 of 4 pixels of cell (0, 0)
    w = mask_weights(m, 2)
    assert w.shape == (1, 4, 4) and float(w[0, 0, 0]) == 0.25 and float(w.sum()) == 0.25


def test_action_chunks_and_history_indices_stay_inside_their_demo(demos: Path) -> None:
    data = load_grasp_data(str(demos))
    starts = np.unique(data.start)
    assert data.demos == len(starts) >= 3 and data.objects == 2
    first, second = starts[0], starts[1]
    ci = data.context_index(np.array([first, first + 1, second]), 3)
    assert ci.tolist() == [[first] * 3, [first, first, first + 1], [second] * 3]
    last = second - 1  # final step of the first demo
    ch = data.chunk_index(np.array([last - 1]), 4)
    assert ch.tolist() == [[last - 1, last, last, last]]  # the last action repeats after the end
    b = make_batch(data, np.array([first, last]), context=2, chunk=4, shift=2, rng=np.random.default_rng(0))
    assert b["rgb"].shape == (2, 2, RES, RES, 3) and b["mask"].shape == (2, 2, RES, RES)
    assert b["proprio"].shape == (2, 2, 8) and b["actions"].shape == (2, 4, 5)
    net = GraspBCNet("detpool", RES, 4, 8, 2, 4, 16)
    out = net(torch.from_numpy(b["rgb"]), torch.from_numpy(b["mask"]), torch.from_numpy(b["proprio"]))
    assert out.shape == (2, 4, 5) and out.abs().max() < 1


def test_balanced_subset_spreads_demos_over_objects() -> None:
    eps = [{"object": o, "i": i} for i, o in enumerate("aaaabbbbcc")]
    assert [e["i"] for e in balanced_subset(eps, 6)] == [0, 1, 4, 5, 8, 9]
    assert [e["i"] for e in balanced_subset(eps, 3)] == [0, 4, 8]


# ---- training, saving, resuming ----------------------------------------------------------------

def test_tiny_bc_overfits_a_handful_of_demos(demos: Path, tmp_path: Path) -> None:
    cfg = _cfg(demos, "steps=300", "lr=3e-3", "shift=0", "channels=16", "hidden=64", "log_every=50")
    run = train_grasp_bc(cfg, tmp_path / "run", progress=False)
    losses = [m["train/loss"] for m in run.metrics()]
    assert losses[-1] < 0.35 * losses[0] and losses[-1] < 0.08, losses
    # the saved policy replays the demos' chunks from their own observations
    data = load_grasp_data(str(demos))
    net = load_grasp_network(run.path / "policy")
    idx = np.arange(len(data))
    b = make_batch(data, idx, cfg.context, cfg.chunk)
    with torch.no_grad():
        pred = net(*(torch.from_numpy(b[k]) for k in ("rgb", "mask", "proprio"))).numpy()
    assert np.abs(pred - b["actions"]).mean() < 0.1
    assert ((pred[..., 4] > 0) == (b["actions"][..., 4] > 0)).mean() > 0.95  # gripper open/close


def test_saved_policy_reloads_bit_exactly_and_corruption_is_one_error(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = GraspBCNet("meanpool", RES, 4, 8, 2, 4, 16)
    net.set_proprio_stats(np.arange(8), np.full(8, 2.0))
    save_grasp_policy(tmp_path / "p", net, {"note": "x"})
    back = load_grasp_network(tmp_path / "p")
    for k, v in net.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    rng = np.random.default_rng(0)
    obs = [{"rgb": rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8),
            "mask": rng.integers(0, 2, (RES, RES, 1), dtype=np.uint8) * 255,
            "proprio": rng.normal(size=8).astype(np.float32)} for _ in range(5)]
    a, b = GraspBCPolicy(net, execute=2), GraspBCPolicy.load(tmp_path / "p", execute=2)
    acts_a, acts_b = [a.act(o) for o in obs], [b.act(o) for o in obs]
    assert all(np.array_equal(x, y) and x.shape == (5,) for x, y in zip(acts_a, acts_b))
    with pytest.raises(ConfigError, match="expects rgb"):
        a.act({"rgb": obs[0]["rgb"][:16], "mask": obs[0]["mask"], "proprio": obs[0]["proprio"]})
    w = tmp_path / "p" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-7])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_grasp_network(tmp_path / "p")


def test_resume_after_a_kill_gives_the_same_weights(demos: Path, tmp_path: Path, monkeypatch) -> None:
    from safetensors.torch import load_file

    import simlab.policies.bc as bcmod

    cfg = _cfg(demos, "steps=20", "checkpoint_every=10")
    train_grasp_bc(cfg, tmp_path / "a", progress=False)
    real = bcmod.save_checkpoint

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the step-10 checkpoint

    monkeypatch.setattr(bcmod, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        train_grasp_bc(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(bcmod, "save_checkpoint", real)
    assert not (tmp_path / "b" / "policy").exists()
    train_grasp_bc(cfg, tmp_path / "b", resume=True, progress=False)
    wa = load_file(str(tmp_path / "a" / "policy" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "policy" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_grasp_data_is_one_error(demos: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset"):
        load_grasp_data(str(tmp_path / "none"))
    assert load_grasp_data(str(demos), toys=1).objects == 1  # only toy/0's demos
    with pytest.raises(ConfigError, match="unknown encoder"):
        _cfg(demos, "encoder=cls")
    with pytest.raises(ConfigError, match="execute"):
        _cfg(demos, "chunk=2", "execute=3")


# ---- evaluation --------------------------------------------------------------------------------

def test_evaluator_runs_baselines_and_writes_eval_info(tmp_path: Path) -> None:
    from simlab.envs.toygrasp.splits import split_objects
    from simlab.policies.grasp_eval import FixedActor, episode_plan, evaluate_grasp, make_baseline

    plan = episode_plan("objects", 4)
    names = split_objects("objects")
    assert [o for _, o in plan] == [names[i * len(names) // 4] for i in range(4)] and plan[0] == (0, "duck")
    assert len(episode_plan("objects", 500)) == 106
    # the fixed baseline ignores its input entirely
    f = FixedActor()
    seq = [f.act({}) for _ in range(12)]
    assert all(s.shape == (5,) and np.abs(s).max() <= 1 for s in seq) and seq[-1][4] == 1.0
    res = evaluate_grasp(make_baseline("expert"), "pybullet", ["toys-train"], 1, resolution=RES,
                         out_dir=tmp_path)
    r = res["toys-train"]
    assert r["n_episodes"] == 1 and r["successes"] == 1 and r["success_ci95"][1] == 1.0
    assert r["closed_episodes"] == 1 and r["median_close_xy_error"] < 0.05  # closed over the toy
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert info["env_id"] == "simlab/ToyGrasp-v0" and info["per_episode"][0]["success"] is True
    assert info["aggregated"]["toys-train"]["success_rate"] == 1.0


# ---- CLI ---------------------------------------------------------------------------------------

def test_cli_trains_then_evaluates_a_grasp_policy(demos: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "bc", "--data", str(demos), "--out", str(run), "--encoder", "meanpool",
                 "--preset", "debug", "steps=4", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["encoder"] == "meanpool" and (run / "policy" / "config.json").exists()
    assert main(["eval", "toygrasp", "--policy", str(run), "--backends", "pybullet", "--splits", "objects",
                 "--episodes", "1", "--videos-per-split", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"]["pybullet"]["objects"]["n_episodes"] == 1
    assert (run / "eval" / "pybullet" / "eval_info.json").exists()
    # the shared evaluator takes the same policy on a toy-grasp env id; train/test mean the toy splits
    shared = tmp_path / "shared"
    assert main(["eval", "transfer", "--policy", str(run), "--env", "simlab/ToyGrasp-v0", "--splits", "test,objects",
                 "--episodes", "1", "--videos-per-split", "0", "--out", str(shared), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"toys-test", "objects"} and out["objects"]["n_episodes"] == 1
    info = json.loads((shared / "pybullet" / "eval_info.json").read_text())
    assert info["env_id"] == "simlab/ToyGrasp-v0" and len(info["per_episode"]) == 2


@pytest.mark.parametrize("argv, msg", [
    (["train", "bc", "--data", "{demos}", "--out", "{tmp}/r1", "--encoder", "cls"], "unknown encoder"),
    (["train", "bc", "--data", "{tmp}/nope", "--out", "{tmp}/r2", "--encoder", "detpool"], "nope"),
    (["train", "bc", "--data", "{demos}", "--out", "{tmp}/r3", "--encoder", "detpool", "steps=-1"], "steps"),
    (["train", "bc", "--data", "{demos}", "--out", "{tmp}/r5", "--encoder", "detpool", "loss=huber"], "unknown loss"),
    (["train", "bc", "--data", "{demos}", "--out", "{tmp}/r4", "--env", "simlab/Maze-v0"], "--env must be"),
    (["eval", "toygrasp", "--policy", "{tmp}/nothing"], "nothing"),
    (["eval", "toygrasp", "--policy", "random", "--backends", "bullet"], "--backends"),
    (["eval", "toygrasp", "--policy", "random", "--splits", "ycb"], "unknown toygrasp split"),
    (["eval", "toygrasp", "--policy", "random", "--episodes", "0"], "episodes"),
    (["eval", "transfer", "--policy", "random", "--env", "simlab/ToyGraspMJ-v0", "--splits", "ycb"],
     "unknown toygrasp split"),
])
def test_cli_bad_input_is_one_line_exit_2(argv: list[str], msg: str, demos: Path, tmp_path: Path, capsys) -> None:
    args = [a.format(demos=demos, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and msg in err and "\n" not in err
    assert not any(p.name.startswith("r") for p in tmp_path.iterdir())  # nothing half-written
