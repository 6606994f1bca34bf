"""The slot encoder of the shortcut probe: per-object masks, image-order slots, instruction-chosen attention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simlab.cli import main
from simlab.errors import ConfigError, DatasetError
from simlab.policies.grasp_net import GraspBCNet
from simlab.policies.grasp_slots import SlotSelector, slot_features, slot_order

RES = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blob(h: int, w: int, cy: int, cx: int, r: int = 2) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[max(0, cy - r):cy + r + 1, max(0, cx - r):cx + r + 1] = 255
    return m


def test_slot_order_is_centroid_u_then_v_empty_last_and_matches_the_env() -> None:
    from simlab.envs.toygrasp.env import position_order

    h = w = 32
    masks = np.stack([np.zeros((h, w), np.uint8), _blob(h, w, 20, 25), _blob(h, w, 25, 5),
                      _blob(h, w, 6, 5)])  # empty; right; left-low; left-high (same u as left-low)
    expect = [3, 2, 1, 0]  # u ascending (5, 5, 25), ties by v (6 before 25), empty last
    assert position_order(masks).tolist() == expect
    got = slot_order(torch.from_numpy(masks)[None])
    assert got[0].tolist() == expect
    for perm in ([1, 0, 3, 2], [2, 3, 0, 1]):  # the order depends on the masks, never on their input order
        assert masks[perm][slot_order(torch.from_numpy(masks[perm])[None])[0].numpy()].tolist() == \
            masks[expect].tolist()
        assert masks[perm][position_order(masks[perm])].tolist() == masks[expect].tolist()


def test_slots_are_detection_pooled_per_object_and_invariant_to_mask_order() -> None:
    torch.manual_seed(0)
    net = GraspBCNet("slots", RES, 4, 8, 2, 4, 16, goal_dim=2, pooled_coords=True, slots=2).eval()
    rgb = torch.randint(0, 256, (1, RES, RES, 3), dtype=torch.uint8)
    a, b = _blob(RES, RES, 10, 24), _blob(RES, RES, 22, 6)
    fmap = net.feature_map(rgb)
    s_ab, vis = slot_features(fmap, torch.from_numpy(np.stack([a, b]))[None], 4)
    s_ba, _ = slot_features(fmap, torch.from_numpy(np.stack([b, a]))[None], 4)
    assert torch.equal(s_ab, s_ba) and vis.all()
    from simlab.policies.grasp_net import mask_weights, weighted_pool

    left = weighted_pool(fmap, mask_weights(torch.from_numpy(b)[None], 4))  # b is left (u = 6): slot 0
    assert torch.allclose(s_ab[0, 0], left[0]) and not torch.allclose(s_ab[0, 0], s_ab[0, 1])
    # the slot's pooled coordinates are its object's centroid (the last two channels)
    assert s_ab[0, 0, -2] < 0 < s_ab[0, 1, -2]
    empty, vis = slot_features(fmap, torch.from_numpy(np.stack([a, np.zeros_like(a)]))[None], 4)
    assert vis[0].tolist() == [True, False] and not empty[0, 1].any()
    with pytest.raises(ValueError, match="object masks"):
        net.encode(rgb, torch.from_numpy(np.stack([a, b, a]))[None])  # three masks for two slots


def test_swapping_the_instruction_swaps_the_attended_slot() -> None:
    sel = SlotSelector(4, 2)
    with torch.no_grad():
        sel.key.weight.copy_(torch.eye(4))
        sel.key.bias.zero_()
        sel.query.weight.copy_(torch.tensor([[20.0, 0], [0, 20.0], [0, 0], [0, 0]]))  # red -> ch 0, blue -> ch 1
        sel.query.bias.zero_()
    red_obj, blue_obj = torch.tensor([1.0, 0, 0.3, -0.2]), torch.tensor([0.0, 1.0, -0.4, 0.5])
    for slots in (torch.stack([red_obj, blue_obj]), torch.stack([blue_obj, red_obj])):
        x = slots[None, None].expand(1, 2, 2, 4)
        f_red, att_red = sel(x, torch.tensor([[1.0, 0.0]]))
        f_blue, att_blue = sel(x, torch.tensor([[0.0, 1.0]]))
        i_red = 0 if torch.equal(slots[0], red_obj) else 1
        assert att_red[0, 0].argmax() == i_red and att_blue[0, 0].argmax() == 1 - i_red
        assert att_red[0, 0, i_red] > 0.99 and att_blue[0, 0, 1 - i_red] > 0.99
        assert torch.allclose(f_red[0, 0], red_obj, atol=0.02) and torch.allclose(f_blue[0, 0], blue_obj, atol=0.02)
    # an empty slot is never attended; an all-empty frame gives zeros
    z = torch.zeros(4)
    _, att = sel(torch.stack([z, blue_obj])[None, None], torch.tensor([[1.0, 0.0]]))
    assert att[0, 0].tolist() == [0.0, 1.0]
    f, att = sel(torch.zeros(1, 1, 2, 4), torch.tensor([[1.0, 0.0]]))
    assert not f.any() and not att.any()


def test_the_network_output_follows_the_instruction_through_the_attention() -> None:
    torch.manual_seed(0)
    net = GraspBCNet("slots", RES, 4, 8, 2, 4, 16, goal_dim=2, pooled_coords=True, slots=2).eval()
    d = net.feature_dim
    with torch.no_grad():
        net.selector.key.weight.copy_(torch.eye(d))
        net.selector.key.bias.zero_()
        net.selector.query.weight.zero_()
        net.selector.query.weight[d - 2] = torch.tensor([-50.0, 50.0])  # red: left slot (x < 0), blue: right
        net.selector.query.bias.zero_()
    rgb = torch.randint(0, 256, (1, 2, RES, RES, 3), dtype=torch.uint8)
    masks = torch.from_numpy(np.stack([_blob(RES, RES, 16, 26), _blob(RES, RES, 16, 5)]))[None, None].expand(
        1, 2, 2, RES, RES)
    prop = torch.zeros(1, 2, 8)
    red, blue = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    out_red = net(rgb, masks, prop, red)
    att_red = net.last_attention.clone()
    out_blue = net(rgb, masks, prop, blue)
    att_blue = net.last_attention.clone()
    assert att_red[0, :, 0].min() > 0.9 and att_blue[0, :, 1].min() > 0.9  # slot 0 is the left object
    assert not torch.allclose(out_red, out_blue)
    assert torch.allclose(net(rgb, masks.flip(2), prop, red), out_red)  # mask order does not matter


def test_old_network_configs_and_collect_configs_load_unchanged(tmp_path: Path) -> None:
    from simlab.envs.toygrasp.dataset import GraspCollectConfig
    from simlab.policies.grasp_bc import load_grasp_network, save_grasp_policy

    old = {"encoder": "detpool", "image_size": RES, "patch": 4, "channels": 8, "context": 2, "chunk": 4,
           "hidden": 16, "goal_dim": 0, "pooled_coords": True}  # a config.json written before slots existed
    net = GraspBCNet(**old)
    assert net.config == old and not hasattr(net, "selector")
    save_grasp_policy(tmp_path / "p", net)
    doc = json.loads((tmp_path / "p" / "config.json").read_text())
    assert "slots" not in doc["network"] and "objects" not in doc["observation_space"]
    assert load_grasp_network(tmp_path / "p").config == old
    assert "object_masks" not in GraspCollectConfig().record()
    assert GraspCollectConfig(object_masks=True).record()["object_masks"] is True
    slot = GraspBCNet("slots", RES, 4, 8, 2, 4, 16, goal_dim=2, pooled_coords=True, slots=2)
    save_grasp_policy(tmp_path / "s", slot)
    assert load_grasp_network(tmp_path / "s").config == slot.config
    for bad in ({"encoder": "slots"}, {"encoder": "detpool", "slots": 2}):
        with pytest.raises(ValueError, match="slots"):
            GraspBCNet(**bad)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_env_records_one_mask_per_object_body(tmp_path: Path) -> None:
    pytest.importorskip("pybullet")
    from simlab.envs.toygrasp.dataset import GraspCollectConfig, GraspDemos, collect_toygrasp
    from simlab.envs.toygrasp.env import ToyGraspEnv, position_order
    from simlab.envs.toygrasp.shortcut import VIEW_EYES, probe_options

    env = ToyGraspEnv("pybullet", resolution=64, object_masks=True)
    try:
        assert env.observation_space["objects"].shape == (2, 64, 64)
        for seed, view in ((1, "A"), (2, "B")):
            obs, _ = env.reset(seed=seed, options=probe_options("toy/3", "toy/7", "red", VIEW_EYES[view][1]))
            assert env.observation_space.contains(obs)
            seg = env.sim.last_seg
            bodies = [seg == env.sim.obj, seg == env.sim.distractor]
            assert all(b.sum() > 10 for b in bodies)
            objs = obs["objects"] > 0
            got = sorted(objs.reshape(2, -1).tolist())
            assert got == sorted(np.stack(bodies).reshape(2, -1).tolist())  # one mask per body, exactly
            assert position_order(obs["objects"]).tolist() == [0, 1]  # recorded in image order
            assert any(np.array_equal(o, obs["mask"][..., 0] > 0) for o in objs)  # the target is among them
        obs, _ = env.reset(seed=3, options={"object": "toy/3"})  # one object: second mask empty
        assert np.array_equal(obs["objects"][0], obs["mask"][..., 0]) and not obs["objects"][1].any()
    finally:
        env.close()
    cfg = GraspCollectConfig(toys=4, demos=2, demos_per_shard=2, resolution=RES, scene="shortcut",
                             object_masks=True)
    assert collect_toygrasp(cfg, tmp_path / "d", progress=False).complete
    for ep in GraspDemos(tmp_path / "d").episodes():
        om = ep["object_masks"]
        assert om.shape == (len(ep["actions"]), 2, RES, RES) and om.dtype == np.uint8
        first = om[0] > 0
        assert first.any((1, 2)).all() and not (first[0] & first[1]).any()  # two disjoint visible objects
        assert ((first[0] | first[1]) | ~(ep["mask"][0] > 0)).all()  # the target mask lies in their union


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_slots_on_a_dataset_without_object_masks_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pybullet")
    from simlab.envs.toygrasp.dataset import GraspCollectConfig, collect_toygrasp
    from simlab.policies.grasp_bc import load_grasp_data

    old = GraspCollectConfig(toys=4, demos=1, demos_per_shard=1, resolution=RES, scene="shortcut")
    assert collect_toygrasp(old, tmp_path / "old", progress=False).complete
    assert load_grasp_data(str(tmp_path / "old")).object_masks is None  # old datasets still load
    with pytest.raises(DatasetError, match="object-masks"):
        load_grasp_data(str(tmp_path / "old"), object_masks=True)
    argv = ["train", "bc", "--data", str(tmp_path / "old"), "--encoder", "slots", "--out", str(tmp_path / "r0"),
            "--preset", "debug", "steps=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "object-masks" in err and "\n" not in err
    assert not (tmp_path / "r0").exists()
    assert main(["eval", "shortcut-probe", "--out", str(tmp_path / "p"), "--encoder", "detpool"]) == 2
    err = capsys.readouterr().err.strip()
    assert "meanpool or slots" in err and "\n" not in err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_slot_policy_trains_acts_on_the_instruction_and_refuses_a_slot_count_mismatch(tmp_path: Path) -> None:
    pytest.importorskip("pybullet")
    from simlab.envs.toygrasp.dataset import GraspCollectConfig, collect_toygrasp
    from simlab.policies.grasp_bc import GraspBCPolicy, grasp_bc_config, train_grasp_bc

    new = GraspCollectConfig(toys=4, demos=2, demos_per_shard=2, resolution=RES, scene="shortcut",
                             object_masks=True)
    assert collect_toygrasp(new, tmp_path / "new", progress=False).complete
    run = train_grasp_bc(grasp_bc_config(["debug"], [f"data={tmp_path / 'new'}", "encoder=slots", "steps=2",
                                                     "shift=2"]), tmp_path / "r", progress=False)
    pol = GraspBCPolicy.load(run.path / "policy")
    assert pol.network.slots == 2 and pol.network.goal_dim == 2
    rng = np.random.default_rng(0)
    obs = {"rgb": rng.integers(0, 256, (RES, RES, 3), dtype=np.uint8), "mask": np.zeros((RES, RES, 1), np.uint8),
           "proprio": np.zeros(8, np.float32),
           "objects": np.stack([_blob(RES, RES, 16, 6), _blob(RES, RES, 16, 25)])}
    acts = {}
    for goal in ((1.0, 0.0), (0.0, 1.0)):
        pol.goal = np.array(goal, np.float32)
        pol.reset()
        acts[goal] = pol.act(obs)
        assert pol.last_attention is not None and pol.last_attention.shape == (2,)
        assert abs(pol.last_attention.sum() - 1) < 1e-5
    assert not np.array_equal(acts[(1.0, 0.0)], acts[(0.0, 1.0)])  # the instruction reaches the action
    pol.reset()
    with pytest.raises(ConfigError, match="one mask per slot"):
        pol.act({**obs, "objects": obs["objects"][:1]})  # a slot count mismatch
    with pytest.raises(ConfigError, match="objects"):
        pol.act({k: v for k, v in obs.items() if k != "objects"})


def test_a_probe_directory_of_another_encoder_is_refused(tmp_path: Path) -> None:
    from simlab.policies.grasp_shortcut import run_shortcut_probe

    (tmp_path / "probe_results.json").write_text(json.dumps({"fragmented": {"conditions": {}}}))  # meanpool, pre-slots
    with pytest.raises(ConfigError, match="meanpool encoder, not slots"):
        run_shortcut_probe(tmp_path, demos=2, steps=1, episodes=1, toys=4, encoder="slots", progress=False)


@pytest.mark.slow
def test_slot_probe_runs_end_to_end_and_reports_the_attention(tmp_path: Path) -> None:
    pytest.importorskip("pybullet")
    from simlab.policies.grasp_shortcut import run_shortcut_probe

    rep = run_shortcut_probe(tmp_path, demos=4, steps=3, episodes=1, toys=4, resolution=RES, encoder="slots",
                             variants=("fragmented",), bc_overrides=("patch=4", "channels=8", "hidden=16"),
                             progress=False)
    conds = rep["variants"]["fragmented"]["conditions"]
    for c in conds.values():
        assert c["attended_instructed"] + c["attended_other"] == c["n"] == 1  # the first frame sees both toys
        assert 0.0 <= c["episodes"][0]["attention_on_instructed"] <= 1.0
    md = (tmp_path / "report.md").read_text()
    assert "attended the instructed toy" in md and md.count("| BC, fragmented") == 4
