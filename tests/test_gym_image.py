"""Image gymnasium envs outside simlab (CarRacing-v3): checks, preprocessing, collection, evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from simlab.envs.gym_image import (
    GymTransitionDataset,
    RandomActions,
    check_image_env,
    collect_gym,
    evaluate_gym,
    preprocess_frames,
    split_seeds,
)
from simlab.errors import ActionError, ConfigError, DatasetError

pytest.importorskip("Box2D")
CAR = "CarRacing-v3"


# ---- preprocessing ---------------------------------------------------------------------------------
def test_preprocess_crops_the_car_racing_dashboard_and_resizes() -> None:
    frames = np.zeros((2, 96, 96, 3), np.uint8)
    frames[:, :84] = (0, 0, 200)       # the track view: blue
    frames[:, 84:] = (255, 0, 0)       # the dashboard (bottom 12 rows): red
    frames[1, :42, :, 1] = 100         # frame 1: a green top half
    out = preprocess_frames(frames, CAR)
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 0).all(), "no dashboard pixel survives the crop"
    assert (out[..., 2] == 200).all()
    assert (out[1, :30, :, 1] == 100).all() and (out[1, 34:, :, 1] == 0).all()  # 84 rows -> 64 rows
    np.testing.assert_array_equal(out, preprocess_frames(frames, "gymnasium/CarRacing-v2"))
    generic = preprocess_frames(frames, "Other-v0")  # no crop: the red band stays at the bottom
    assert generic.shape == (2, 64, 64, 3)
    assert (generic[:, -7:, :, 0] == 255).all() and (generic[:, :50, :, 0] == 0).all()
    assert preprocess_frames(frames[0], CAR).shape == (64, 64, 3)  # a single frame
    same = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_frames(same, "simlab/Maze-v0"), same)  # already 64 x 64
    np.testing.assert_array_equal(frames[0, 0, 0], [0, 0, 200]), "input untouched"
    for bad in (frames.astype(np.float32), frames[..., :2], np.zeros((2, 96), np.uint8)):
        with pytest.raises(ConfigError, match="uint8"):
            preprocess_frames(bad, CAR)


# ---- env checks -------------------------------------------------------------------------------------
def test_check_image_env() -> None:
    info = check_image_env(CAR)
    assert info.observation_shape == (96, 96, 3) and info.continuous and info.action_dim == 3
    assert info.action_space == spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    assert info.max_episode_steps == 1000 and info.to_json()["action_space"]["type"] == "Box"
    maze = check_image_env("simlab/Maze-v0")
    assert maze.n_actions == 15 and not maze.continuous
    with pytest.raises(ConfigError, match="unknown") as e:
        check_image_env("NoSuchEnv-v0")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="observations are not images"):
        check_image_env("CartPole-v1")


def test_random_behaviour_policies() -> None:
    box = spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    pol = RandomActions(box, "random", np.random.default_rng(0))
    pol.reset()
    a = np.stack([pol() for _ in range(200)])
    assert a.dtype == np.float32 and (a >= box.low).all() and (a <= box.high).all()
    steps = np.abs(np.diff(a, axis=0))
    assert steps.max() < 0.8 and steps[:, 0].mean() < 0.2, "Brownian: small moves"
    pol = RandomActions(spaces.Discrete(5), "random", np.random.default_rng(0))
    ids, left = [], []
    for _ in range(300):
        ids.append(pol())
        left.append(pol.left)
    runs = np.diff(np.flatnonzero(np.diff(ids) != 0))
    assert set(ids) == set(range(5)) and runs.mean() > 2
    assert min(left) == 0 and max(left) <= 9, "each id is held for 1-10 steps"
    u = RandomActions(box, "uniform", np.random.default_rng(0))
    b = np.stack([u() for _ in range(200)])
    assert np.abs(np.diff(b, axis=0)).mean() > 0.2
    with pytest.raises(ConfigError):
        RandomActions(box, "expert", np.random.default_rng(0))


# ---- collection ------------------------------------------------------------------------------------
def _shard_digests(root: Path) -> list[str]:
    return [s["sha256"] for s in json.loads((root / "manifest.json").read_text())["shards"]]


def test_collect_car_racing_is_deterministic_resumable_and_readable(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"transitions": 60, "seeds": (0, 10), "seed": 3, "max_episode_steps": 30,
                          "transitions_per_shard": 30, "progress": False}
    full = collect_gym(CAR, tmp_path / "full", **kw)
    assert full.complete and full.written == [0, 1] and full.items_written == 60
    # a killed collection: only shard 0 exists; resuming it writes shard 1 and gives the same bytes
    part = collect_gym(CAR, tmp_path / "part", shard=(0, 2), **kw)
    assert not part.complete and part.written == [0]
    res = collect_gym(CAR, tmp_path / "part", resume=True, **kw)
    assert res.complete and res.skipped == [0] and res.written == [1]
    assert _shard_digests(tmp_path / "part") == _shard_digests(tmp_path / "full")

    ds = GymTransitionDataset(tmp_path / "full", verify=True)
    assert len(ds) == 60 and ds.num_episodes == 2 and ds.continuous and ds.action_dim == 3
    eps = list(ds.episodes())
    assert len(eps) == 2
    for ep in eps:
        t = len(ep["actions"])
        assert t == 30 and ep["observations"].shape == (31, 64, 64, 3) and ep["observations"].dtype == np.uint8
        assert ep["actions"].shape == (30, 3) and ep["actions"].dtype == np.float32
        assert ep["rewards"].dtype == np.float32 and ep["terminations"].dtype == bool
        assert ep["truncations"][-1] and not ep["cut"] and 0 <= ep["level_seed"][0] < 10
        assert (ep["actions"] >= [-1, 0, 0]).all() and (ep["actions"] <= 1).all()
    assert ds.load(0, 5)["obs"].shape == (5, 64, 64, 3)

    with pytest.raises(ConfigError, match="seed"):  # resuming with other arguments
        collect_gym(CAR, tmp_path / "full", **{**kw, "seed": 4})
    with pytest.raises(ConfigError, match="already holds"):
        collect_gym(CAR, tmp_path / "full", resume=False, **kw)
    with pytest.raises(ConfigError, match="observations are not images"):
        collect_gym("CartPole-v1", tmp_path / "cp", transitions=5, progress=False)
    with pytest.raises(ConfigError):
        collect_gym(CAR, tmp_path / "bad", transitions=0, progress=False)
    (tmp_path / "full" / "shards" / "shard-00001.h5").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="shard-00001"):
        GymTransitionDataset(tmp_path / "full")


def test_collect_discrete_image_env(tmp_path: Path) -> None:
    collect_gym("simlab/Maze-v0", tmp_path / "maze", transitions=40, seeds=(5, 3), max_episode_steps=15,
                transitions_per_shard=20, progress=False)
    ds = GymTransitionDataset(tmp_path / "maze")
    eps = list(ds.episodes())
    assert sum(len(e["actions"]) for e in eps) == len(ds) == 40 and not ds.continuous and ds.n_actions == 15
    assert all(e["actions"].dtype == np.int64 and e["actions"].ndim == 1 for e in eps)
    assert all(5 <= e["level_seed"][0] < 8 for e in eps)
    assert eps[1]["cut"] and not eps[0]["cut"]  # 15 + 5 (cut by the end of shard 0)


# ---- evaluation ------------------------------------------------------------------------------------
class ConstantPolicy:
    def __init__(self, action: Any) -> None:
        self.action, self.resets, self.seen = np.asarray(action), 0, []

    def reset(self, mask: Any = None) -> None:
        self.resets += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.seen.append(obs.shape)
        assert obs.dtype == np.uint8
        return self.action[None]


def test_evaluate_gym_result_structure(tmp_path: Path) -> None:
    pol = ConstantPolicy([0.0, 0.3, 0.0])
    res = evaluate_gym(pol, CAR, {"train": (0, 100), "test": (10_000, 50)}, episodes=1, max_episode_steps=20,
                       out_dir=tmp_path)
    assert list(res) == ["train", "test"] and pol.resets == 2 and set(pol.seen) == {(1, 64, 64, 3)}
    for split, r in res.items():
        assert {"mean_return", "std_return", "ci95", "mean_length", "n_episodes", "episodes"} <= set(r)
        assert r["n_episodes"] == 1 and r["mean_length"] == 20 and r["std_return"] == 0.0
        (ep,) = r["episodes"]
        assert ep["length"] == 20 and ep["truncated"] and ep["return"] == r["mean_return"]
        lo = 0 if split == "train" else 10_000
        assert lo <= ep["seed"] < lo + 100
    doc = json.loads((tmp_path / "eval_info.json").read_text())
    assert len(doc["per_episode"]) == 2 and doc["splits"]["test"] == [10_000, 50]
    from simlab.policies.evaluate import format_table

    assert "train" in format_table(res)
    with pytest.raises(ActionError, match="outside"):
        evaluate_gym(ConstantPolicy([0.0, 2.0, 0.0]), CAR, {"t": (0, 1)}, episodes=1, max_episode_steps=3)
    with pytest.raises(ConfigError):
        evaluate_gym(pol, CAR, {"t": (0, 0)}, episodes=1)
    with pytest.raises(ConfigError):
        evaluate_gym(pol, CAR, {"t": (0, 1)}, episodes=0)


def test_split_seeds() -> None:
    s = split_seeds(100, 10, 10, seed=0)
    assert sorted(s.tolist()) == list(range(100, 110))
    np.testing.assert_array_equal(s, split_seeds(100, 10, 10, seed=0))
    assert not np.array_equal(s, split_seeds(100, 10, 10, seed=1))
    many = split_seeds(0, 3, 7)
    assert len(many) == 7 and sorted(many[:3].tolist()) == [0, 1, 2]


# ---- end to end ------------------------------------------------------------------------------------
def test_car_racing_world_model_pipeline_end_to_end(tmp_path: Path) -> None:
    """Collect -> encode -> continuous MDN-RNN -> dream -> CMA-ES -> agent in the real CarRacing."""
    torch = pytest.importorskip("torch")
    from simlab.policies.cmaes import (
        CMAESConfig,
        DropoutWorldModelView,
        WorldModelAgent,
        train_cmaes,
    )
    from simlab.world_models.dropout import (
        ConvVAE,
        DropoutWorldModel,
        RNNTrainConfig,
        encode_frames,
        train_mdnrnn,
    )

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        collect_gym(CAR, tmp_path / "data", transitions=40, seeds=(0, 5), max_episode_steps=20,
                    transitions_per_shard=40, progress=False)
        ds = GymTransitionDataset(tmp_path / "data")
        torch.manual_seed(0)
        vae = ConvVAE(z_dim=8).eval()
        eps = list(ds.episodes())
        zs = [encode_frames(vae, e["observations"]) for e in eps]
        rnn = train_mdnrnn(zs, [e["actions"] for e in eps], [e["rewards"] for e in eps],
                           [e["terminations"] for e in eps],
                           RNNTrainConfig(action_dim=ds.action_dim, hidden=16, mixtures=2, epochs=1, batch_size=4,
                                          seq_len=10))
        model = DropoutWorldModel(vae, rnn, np.stack([z[0] for z in zs]), env_id=CAR, action_space=ds.action_space)
        model.save_pretrained(tmp_path / "wm")
        model = DropoutWorldModel.from_pretrained(tmp_path / "wm")
        ctrl, _ = train_cmaes(lambda n, s: model.as_vec_env(n, seed=s, max_episode_steps=10), model.obs_dim,
                              model.action_space, CMAESConfig(popsize=4, episodes_per_candidate=1, generations=2,
                                                              max_episode_steps=10, eval_every=0),
                              progress=False)
        agent = WorldModelAgent(DropoutWorldModelView(model), ctrl)
        res = evaluate_gym(agent, CAR, {"test": (1000, 10)}, episodes=1, max_episode_steps=10)
        assert res["test"]["n_episodes"] == 1 and np.isfinite(res["test"]["mean_return"])
    finally:
        torch.set_num_threads(n_threads)
