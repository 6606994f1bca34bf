"""The shared evaluator (splits, episode accounting, CI, eval_info.json, videos) and the saved-policy format."""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import simlab  # noqa: F401
from simlab.envs.procgen.maze import AGENT_COLOR, CHEESE_COLOR, generate_maze
from simlab.errors import CheckpointError, ConfigError
from simlab.integrity import seal
from simlab.policies.evaluate import (
    EVAL_INFO,
    episode_success,
    evaluate,
    format_table,
    load_policy,
    procgen_game,
    summarize,
)
from simlab.policies.saved import ImpalaActor, SavedPolicy, save_policy

TILE, BOARD = 4, 16  # easy maze: 16x16 tiles of 4 px


class RandomPolicy:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, 15, size=len(obs))


class NoopPolicy:
    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.full(len(obs), 4)


class MazeSolver:
    """Scripted policy reading the frame: BFS from the agent sprite to the cheese sprite."""

    MOVES: ClassVar[dict[tuple[int, int], int]] = {(-1, 0): 5, (1, 0): 3, (0, -1): 1, (0, 1): 7}  # UP, DOWN, LEFT, RIGHT

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.array([self._one(o) for o in obs])

    def _one(self, o: np.ndarray) -> int:
        px = o[1::TILE, 1::TILE]  # one pixel inside every tile
        wall = (px == o[0, 0]).all(-1)  # tile (0, 0) is always wall
        agent = tuple(np.argwhere((px == AGENT_COLOR).all(-1))[0])
        goal = tuple(np.argwhere((px == CHEESE_COLOR).all(-1))[0])
        prev = {goal: None}
        q = deque([goal])
        while q:  # BFS from the goal, then step to the neighbour closer to it
            cur = q.popleft()
            for d in self.MOVES:
                nxt = (cur[0] + d[0], cur[1] + d[1])
                if 0 <= nxt[0] < BOARD and 0 <= nxt[1] < BOARD and not wall[nxt] and nxt not in prev:
                    prev[nxt] = cur
                    q.append(nxt)
        step = prev[agent]
        return self.MOVES[(step[0] - agent[0], step[1] - agent[1])]


def bfs_len(board: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> int:
    q, seen = deque([(start, 0)]), {start}
    while q:
        (r, c), d = q.popleft()
        if (r, c) == goal:
            return d
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            n = (r + dr, c + dc)
            if board[n] == 0 and n not in seen:
                seen.add(n)
                q.append((n, d + 1))
    raise AssertionError("unsolvable")


def test_random_policy_exact_episodes_ci_eval_info_and_videos(tmp_path: Path) -> None:
    res = evaluate(RandomPolicy(), "simlab/Maze-v0", ["train", "test"], episodes=5, seed=1, num_envs=3,
                   video_dir=tmp_path / "videos", videos_per_split=2, out_dir=tmp_path, max_episode_steps=40)
    assert list(res) == ["train", "test"]
    for split, r in res.items():
        assert r["n_episodes"] == 5 and len(r["episodes"]) == 5
        rets = np.array([e["return"] for e in r["episodes"]])
        assert r["mean_return"] == pytest.approx(rets.mean())
        assert r["std_return"] == pytest.approx(rets.std(ddof=1))
        assert r["ci95"] == pytest.approx(1.96 * rets.std(ddof=1) / math.sqrt(5))
        succ = [e["success"] for e in r["episodes"]]
        assert succ == [e["return"] >= 10 for e in r["episodes"]]
        assert r["success_rate"] == pytest.approx(np.mean(succ))
        seeds = [e["level_seed"] for e in r["episodes"]]
        assert all(0 <= s < 200 for s in seeds) if split == "train" else all(s >= 250 for s in seeds)
        assert all(1 <= e["length"] <= 40 for e in r["episodes"])
    info = json.loads((tmp_path / EVAL_INFO).read_text())
    assert len(info["per_episode"]) == 10 and info["env_id"] == "simlab/Maze-v0"
    assert set(info["aggregated"]) == {"train", "test"}
    assert {"split", "level_seed", "return", "length", "success"} <= set(info["per_episode"][0])
    assert info["aggregated"]["test"]["ci95"] == pytest.approx(res["test"]["ci95"])
    import imageio.v3 as iio

    for split in ("train", "test"):
        for k in range(2):
            p = tmp_path / "videos" / f"{split}_{k}.mp4"
            assert p.exists() and info["per_episode"][(split == "test") * 5 + k]["video"] == str(p)
            assert len(iio.imread(p)) == res[split]["episodes"][k]["length"] + 1  # first frame .. final frame
    assert not (tmp_path / "videos" / "train_2.mp4").exists()
    table = format_table(res)
    assert "train" in table and "test" in table and "95% CI" in table


def test_same_seed_same_episodes_and_no_length_bias() -> None:
    a = evaluate(RandomPolicy(3), "simlab/Maze-v0", ["val"], episodes=6, seed=2, num_envs=4, max_episode_steps=30)
    b = evaluate(RandomPolicy(3), "simlab/Maze-v0", ["val"], episodes=6, seed=2, num_envs=4, max_episode_steps=30)
    assert a == b
    slots = [e["slot"] for e in a["val"]["episodes"]]
    assert sorted(slots) == [0, 1, 2, 2, 3, 3]  # per-slot quotas (6 + i) // 4 = 1, 1, 2, 2


def test_scripted_solver_succeeds_and_level_seeds_are_right() -> None:
    res = evaluate(MazeSolver(), "simlab/Maze-v0", ["train", "vis_test"], episodes=6, seed=0, num_envs=3)
    for r in res.values():
        assert r["success_rate"] == 1.0 and r["mean_return"] == 10.0 and r["std_return"] == 0.0 and r["ci95"] == 0.0
        for e in r["episodes"]:
            board, agent, cheese = generate_maze(e["level_seed"])
            assert e["length"] == bfs_len(board, agent, cheese), "episode length = shortest path of its level"
            assert e["terminated"] and not e["truncated"]


def test_noop_policy_truncates_and_fails() -> None:
    res = evaluate(NoopPolicy(), "simlab/Maze-v0", ["hard"], episodes=3, max_episode_steps=7)
    r = res["hard"]
    assert r["mean_return"] == 0 and r["success_rate"] == 0 and r["ci95"] == 0 and r["mean_length"] == 7
    assert all(e["truncated"] and e["level_seed"] >= 250 for e in r["episodes"])


def test_success_rules_and_summary() -> None:
    assert episode_success("maze", 10.0, True, False) and not episode_success("maze", 0.0, False, True)
    assert episode_success("bigfish", 10.0, False, False) and not episode_success("bigfish", 1.0, True, False)
    assert episode_success("dodge", 1.0, False, True) and not episode_success("dodge", 1.0, True, False)
    s = summarize([1.0, 3.0])
    assert s["mean_return"] == 2.0 and s["ci95"] == pytest.approx(1.96 * math.sqrt(2) / math.sqrt(2))
    assert summarize([4.0]) == {"mean_return": 4.0, "std_return": 0.0, "ci95": 0.0}


def test_errors_name_the_bad_split_or_env() -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        evaluate(NoopPolicy(), "simlab/Maze-v0", ["train", "nope"], episodes=1)
    with pytest.raises(ConfigError, match="simlab/Nope-v0"):
        evaluate(NoopPolicy(), "simlab/Nope-v0", ["train"], episodes=1)
    with pytest.raises(ConfigError, match="Collision2D"):
        procgen_game("simlab/Collision2D-v0")
    assert procgen_game("simlab/CoinRun-v0") == "coinrun"
    with pytest.raises(ConfigError):
        evaluate(NoopPolicy(), "simlab/Maze-v0", ["train"], episodes=0)


# ---- saved-policy format -----------------------------------------------------------------------------
def small_actor(seed: int = 0) -> ImpalaActor:
    torch.manual_seed(seed)
    return ImpalaActor(depths=(4, 8, 8), features_dim=32)


def test_save_load_roundtrip_and_evaluate_torch_policy(tmp_path: Path) -> None:
    net = small_actor()
    save_policy(tmp_path / "pol", net, {"trainer": "test", "env_id": "simlab/Maze-v0"})
    cfg = json.loads((tmp_path / "pol" / "config.json").read_text())
    assert cfg["class"] == "ImpalaActor" and cfg["format_version"] == 1 and cfg["simlab_version"]
    assert cfg["action_space"] == {"type": "Discrete", "n": 15}
    assert cfg["observation_space"]["shape"] == [64, 64, 3] and cfg["meta"]["trainer"] == "test"
    pol = load_policy(tmp_path / "pol")
    obs = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        want = net(torch.from_numpy(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(pol.act(obs), want)
    assert pol.act(obs[0]).shape == (1,)
    assert pol.act(obs, deterministic=False).shape == (5,)
    res = evaluate(pol, "simlab/Maze-v0", ["val"], episodes=2, max_episode_steps=5)
    assert res["val"]["n_episodes"] == 2
    # a run directory resolves to its final policy
    pol.save(tmp_path / "run" / "policy")
    np.testing.assert_array_equal(load_policy(tmp_path / "run").act(obs), want)
    with pytest.raises(CheckpointError, match="neither a saved policy"):
        load_policy(tmp_path)


def test_bc_style_module_saves_through_the_format(tmp_path: Path) -> None:
    class BCNet(nn.Module):  # another trainer's module with ImpalaActor's layout
        def __init__(self) -> None:
            super().__init__()
            ref = small_actor(1)
            self.encoder, self.head = ref.encoder, ref.head

    net = BCNet()
    with pytest.raises(ConfigError, match="config\\['network'\\]"):
        save_policy(tmp_path / "a", net)
    save_policy(tmp_path / "a", net, {"network": small_actor().config, "trainer": "bc"})
    assert SavedPolicy.load(tmp_path / "a").meta["trainer"] == "bc"
    with pytest.raises(ConfigError, match="not an ImpalaActor"):
        save_policy(tmp_path / "b", nn.Linear(3, 4), {"network": small_actor().config})


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "garbage"])
def test_damaged_weights_raise_checkpoint_error(tmp_path: Path, damage: str) -> None:
    save_policy(tmp_path / "p", small_actor())
    w = tmp_path / "p" / "model.safetensors"
    data = w.read_bytes()
    if damage == "truncate":
        w.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        w.write_bytes(data[:-100] + bytes(b ^ 0xFF for b in data[-100:]))
    elif damage == "delete":
        w.unlink()
    else:
        w.write_bytes(b"not a safetensors file")
        cfg = json.loads((tmp_path / "p" / "config.json").read_text())
        del cfg["weights_sha256"]  # the safetensors reader itself must catch it too
        (tmp_path / "p" / "config.json").write_text(json.dumps(seal(cfg)))
    with pytest.raises(CheckpointError, match="model.safetensors") as e:
        SavedPolicy.load(tmp_path / "p")
    assert "\n" not in str(e.value)


def test_bad_config_raises_checkpoint_error(tmp_path: Path) -> None:
    save_policy(tmp_path / "p", small_actor())
    cfg_path = tmp_path / "p" / "config.json"
    good = json.loads(cfg_path.read_text())
    for bad, match in (({**good, "network": {**good["network"], "features_dim": 16}}, "do not match"),
                       ({**good, "class": "Mystery"}, "unknown policy class"),
                       ({**good, "format_version": 99}, "newer"),
                       ({**good, "network": {"bogus": 1}}, "bad network config")):
        cfg_path.write_text(json.dumps(seal(bad)))
        with pytest.raises(CheckpointError, match=match):
            SavedPolicy.load(tmp_path / "p")
    cfg_path.write_text("{truncated")
    with pytest.raises(CheckpointError, match="config.json"):
        SavedPolicy.load(tmp_path / "p")
    cfg_path.unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        SavedPolicy.load(tmp_path / "p")
    with pytest.raises(CheckpointError, match="no such"):
        load_policy(tmp_path / "missing")
