"""Dodge-v1: the danger made visible (agent-centred view, growing fireballs, lead shots), and
Dodge-v0 left exactly as it was."""

from __future__ import annotations

import hashlib

import gymnasium
import numpy as np
import pytest

import simlab  # noqa: F401
from simlab.envs.procgen import dodge_v1 as V1
from simlab.envs.procgen.base import ProcgenOptions
from simlab.envs.procgen.dodge import AGENT_W, AGENT_Y, SPAWN_Y, Dodge
from simlab.envs.procgen.vec import ProcgenEnv, ProcgenVecEnv

V0_DIGEST = "e27a702bac00e0ac9a959c834e2d2f0284c162cdd031c8a9218c84086c77d109"
"""Frames, rewards and terminations of 300 random steps of Dodge-v0, computed with the code as it
was before Dodge-v1 existed: old results must reproduce."""


def _digest(cls: type) -> str:
    g = cls(8, ProcgenOptions(num_levels=50, use_backgrounds=True))
    g.load(np.arange(8), np.arange(8) * 7 + 1)
    obs = np.empty((8, 64, 64, 3), np.uint8)
    h = hashlib.sha256()
    rng = np.random.default_rng(0)
    for t in range(300):
        r, d = g.step(rng.integers(0, 15, 8))
        g.render(obs)
        h.update(obs.tobytes())
        h.update(r.tobytes())
        h.update(d.tobytes())
        if d.any():
            idx = np.flatnonzero(d)
            g.load(idx, idx + 100 + t)
    return h.hexdigest()


def test_dodge_v0_is_unchanged() -> None:
    assert _digest(Dodge) == V0_DIGEST


def test_v1_is_registered_and_passes_the_checkers() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gymnasium.make("simlab/Dodge-v1")
    check_env(env.unwrapped)
    sb3_check(ProcgenEnv("dodge_v1"))
    vec = gymnasium.make_vec("simlab/Dodge-v1", num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, 64, 64, 3) and obs.dtype == np.uint8


def _play(n: int = 16, steps: int = 300, hard: bool = False, seed: int = 0):
    env = ProcgenVecEnv("dodge_v1", n, num_levels=200, use_backgrounds=False,
                        distribution_mode="hard" if hard else "easy")
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        yield env, obs
        obs, *_ = env.step(rng.integers(0, 15, n))


def test_view_is_centred_on_the_agent() -> None:
    """The agent's white sprite is always at view columns 28-35 wherever it is in the arena, and
    the grey beyond the walls shows exactly when the agent is near one."""
    seen_x = set()
    for env, obs in _play(steps=200):
        g = env.game
        seen_x.update(g.agent_x.tolist())
        white = (obs[:, AGENT_Y + 2] == [240, 240, 240]).all(-1)  # a full row of the tank
        cols = [np.flatnonzero(w) for w in white]
        assert all(c.min() == V1.AGENT_COL and c.max() == V1.AGENT_COL + AGENT_W - 1 for c in cols)
        grey = (obs[:, 30] == V1.OUT_OF_ARENA).all(-1)  # a row through the middle of the view
        left_grey = grey[:, 0]
        assert np.array_equal(left_grey, g.agent_x < V1.AGENT_COL)
    assert min(seen_x) < 10 and max(seen_x) > 46  # the agent did roam


def test_fireballs_grow_and_have_one_colour_on_every_level() -> None:
    sides, colours = set(), set()
    for env, obs in _play(steps=300):
        boxes = env.game.hazard_boxes()
        for i, j in zip(*np.nonzero(boxes[..., 0] >= 0)):
            x0, y0, x1, y1 = boxes[i, j]
            if x1 - x0 == y1 - y0:  # not clipped by the frame
                sides.add(int(x1 - x0))
            patch = obs[i, y0:y1, x0:x1].reshape(-1, 3)
            colours.update(map(tuple, patch[(patch != 0).any(-1)]))
    assert min(sides) == V1.SHOT_MIN and max(sides) == V1.SHOT_MAX
    assert tuple(V1.HAZARD_COLOR) in colours and tuple(V1.HAZARD_CORE) in colours


def test_shot_side_is_monotone_from_spawn_to_agent_row() -> None:
    py = np.linspace(SPAWN_Y, 70, 50)
    s = V1.shot_side(py)
    assert s[0] == V1.SHOT_MIN and s[-1] == V1.SHOT_MAX and (np.diff(s) >= 0).all()


def test_reflect_bounces_off_both_walls() -> None:
    x = np.array([-10.0, 0.0, 20.0, 56.0, 60.0, 112.0, 130.0])
    np.testing.assert_allclose(V1.reflect(x, 56.0), [10.0, 0.0, 20.0, 56.0, 52.0, 0.0, 18.0])


def test_lead_shots_aim_where_a_steady_mover_will_be() -> None:
    """With every shot a lead shot, a fireball thrown while the agent moves right lands where the
    agent will be if it keeps moving (walls bounce it), not where it is now."""
    g = V1.DodgeV1(1, ProcgenOptions())
    g.load(np.array([0]), np.array([5]))
    g.aim_frac[:] = 0.0
    g.lead_frac[:] = 1.0
    g.agent_x[:] = 10
    g.agent_vx[:] = 3
    code = np.array([7])
    travel = np.array([40.0])
    target = g._aim(np.array([0]), code, np.array([0.5]), travel)  # v = 0.5: zero aim noise
    assert target[0] == pytest.approx(V1.reflect(np.array([10 + 3 * 40.0]), V1.ARENA_W)[0] + AGENT_W / 2)


def test_standing_still_dies_and_the_hard_mode_is_harder() -> None:
    def mean_len(hard: bool) -> float:
        env = ProcgenVecEnv("dodge_v1", 32, num_levels=200, use_backgrounds=False,
                            distribution_mode="hard" if hard else "easy")
        env.reset(seed=1)
        alive = np.ones(32, bool)
        length = np.zeros(32)
        for _ in range(1000):
            _, _, term, trunc, _ = env.step(np.full(32, 4))
            length += alive
            alive &= ~(term | trunc)
        return float(length.mean())
    easy, hard = mean_len(False), mean_len(True)
    assert easy < 400 and hard < easy


def test_hazard_boxes_are_recorded_in_datasets(tmp_path) -> None:
    from simlab.envs.procgen.dataset import ProcgenCollectConfig, TransitionDataset, collect_procgen

    cfg = ProcgenCollectConfig(game="dodge_v1", levels="0:20", transitions=600, policy="random_repeat",
                               num_envs=4, transitions_per_shard=256, use_backgrounds=False)
    collect_procgen(cfg, tmp_path / "d", progress=False)
    ds = TransitionDataset(tmp_path / "d")
    d = ds.get(np.arange(len(ds)), ("obs", "hazard_boxes"))
    boxes = d["hazard_boxes"]
    assert boxes.shape[0] == len(ds) and boxes.shape[2] == 4 and (boxes[..., 0] >= 0).any()
    for i, j in zip(*np.nonzero(boxes[..., 0] >= 0)):  # every recorded box shows a fireball
        x0, y0, x1, y1 = boxes[i, j]
        patch = d["obs"][i, y0:y1, x0:x1].reshape(-1, 3)
        assert ((patch == V1.HAZARD_COLOR).all(-1) | (patch == V1.HAZARD_CORE).all(-1)).any()
