"""The shortcut probe: two-toy scenes, the fragmented dataset's tasks and views, goal-conditioned BC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")
torch = pytest.importorskip("torch")

from simlab.cli import main
from simlab.envs.toygrasp.dataset import GraspCollectConfig, GraspDemos, collect_toygrasp
from simlab.envs.toygrasp.shortcut import GOAL_COLORS, VIEW_EYES, probe_options, shortcut_demo
from simlab.errors import ConfigError

RES = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_two_toy_scene_masks_only_the_target_and_moves_the_camera() -> None:
    from simlab.envs.toygrasp.env import ToyGraspEnv

    env = ToyGraspEnv("pybullet", resolution=64)
    try:
        opts = probe_options("toy/3", "toy/7", "red", VIEW_EYES["A"][1])
        a, info = env.reset(seed=1, options=opts)
        assert info["distractor"] == "toy/7" and info["distractor_lift"] == 0.0
        red = (a["rgb"][..., 0] > 150) & (a["rgb"][..., 2] < 100)
        blue = (a["rgb"][..., 2] > 150) & (a["rgb"][..., 0] < 100)
        assert red.sum() > 3 and blue.sum() > 3  # both toys in view, recoloured
        mask = a["mask"][..., 0] > 0
        assert (mask & red).sum() > 0.5 * red.sum() and not (mask & blue).any()  # the mask is the target's
        b, _ = env.reset(seed=1, options={**opts, "camera_eye": VIEW_EYES["B"]})
        assert not np.array_equal(a["rgb"], b["rgb"])
        c, info = env.reset(seed=1, options={"object": "toy/3"})  # back to one object, default camera
        assert "distractor" not in info
        d, _ = env.reset(seed=1, options={"object": "toy/3"})
        assert np.array_equal(c["rgb"], d["rgb"])
        with pytest.raises(ConfigError, match="unknown colour"):
            env.reset(seed=1, options={**opts, "color": "purple"})
    finally:
        env.close()


def test_two_toy_scenes_are_pybullet_only() -> None:
    from simlab.envs.toygrasp.env import ToyGraspEnv

    env = ToyGraspEnv("mujoco", resolution=RES)
    try:
        with pytest.raises(ConfigError, match="pybullet-only"):
            env.reset(seed=0, options=probe_options("toy/3", "toy/7", "red", 0.4))
    finally:
        env.close()


def test_fragmented_tasks_follow_the_view_unless_overlap_or_view_aug() -> None:
    objects = tuple(f"toy/{i}" for i in range(10))
    frag = [shortcut_demo(0, d, objects[d % 10], objects, 0.0, False) for d in range(40)]
    for d, (opts, extra) in enumerate(frag):
        sub = "A" if d % 2 == 0 else "B"
        assert opts["camera_eye"][1] == VIEW_EYES[sub][1]
        assert opts["color"] == ("red" if sub == "A" else "blue") and not extra["swapped"]
        assert extra["goal"].tolist() == ([1.0, 0.0] if sub == "A" else [0.0, 1.0])
        assert opts["distractor"] != opts["object"] and opts["distractor_color"] != opts["color"]
    mixed = [shortcut_demo(0, d, "toy/1", objects, 0.5, False)[1]["swapped"] for d in range(200)]
    assert 60 < sum(mixed) < 140
    views = [shortcut_demo(0, d, "toy/1", objects, 0.0, True)[0]["camera_eye"][1] for d in range(50)]
    assert len(set(views)) == 50 and min(views) >= -0.4 and max(views) <= 0.4
    assert GOAL_COLORS == ("red", "blue")


def test_shortcut_dataset_stores_goals_and_bc_conditions_on_them(tmp_path: Path) -> None:
    from simlab.policies.grasp_bc import grasp_bc_config, load_grasp_network, train_grasp_bc

    cfg = GraspCollectConfig(toys=4, demos=4, demos_per_shard=4, resolution=RES, scene="shortcut")
    assert collect_toygrasp(cfg, tmp_path / "d", progress=False).complete
    eps = list(GraspDemos(tmp_path / "d").episodes())
    assert [e["goal"].tolist() for e in eps] == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert np.allclose([e["view_y"] for e in eps], [0.4, -0.4, 0.4, -0.4])
    run = train_grasp_bc(grasp_bc_config(["debug"], [f"data={tmp_path / 'd'}", "encoder=meanpool", "steps=2"]),
                         tmp_path / "r", progress=False)
    assert load_grasp_network(run.path / "policy").goal_dim == 2


def test_bad_shortcut_input_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    for argv, msg in [
        (["collect", "toygrasp", "--out", str(tmp_path / "a"), "--scene", "pair"], "unknown scene"),
        (["collect", "toygrasp", "--out", str(tmp_path / "b"), "--scene", "shortcut", "--backend", "mujoco"],
         "pybullet"),
        (["collect", "toygrasp", "--out", str(tmp_path / "c"), "--scene", "shortcut", "--overlap", "1.5"],
         "--overlap"),
        (["eval", "shortcut-probe", "--out", str(tmp_path / "p"), "--variants", "fragmented,mixed"], "mixed"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_shortcut_probe_runs_end_to_end(tmp_path: Path) -> None:
    from simlab.policies.grasp_shortcut import run_shortcut_probe

    rep = run_shortcut_probe(tmp_path, demos=4, steps=5, episodes=1, toys=4, resolution=RES,
                             bc_overrides=("patch=4", "channels=8", "hidden=16"), progress=False)
    assert set(rep["variants"]) == {"fragmented", "overlap", "view-aug"}
    for entry in [*rep["variants"].values(), rep["expert"]]:
        for c in entry["conditions"].values():
            assert c["instructed"] + c["other"] + c["neither"] == c["n"] == 1
    assert all(c["instructed"] == 1 for c in rep["expert"]["conditions"].values())
    assert (tmp_path / "report.md").read_text().count("| BC, ") == 12
