"""Toy grasping in both engines: same robot, same bodies, API checkers, physics and the expert."""

from __future__ import annotations

import sys
import warnings

import gymnasium
import numpy as np
import pytest

pytest.importorskip("pybullet")
pytest.importorskip("mujoco")

import simlab  # noqa: F401  (registers the envs)
from simlab.envs.toygrasp import panda
from simlab.envs.toygrasp.env import ToyGraspEnv
from simlab.envs.toygrasp.expert import ScriptedExpert
from simlab.envs.toygrasp.geometry import quat_to_mat
from simlab.envs.toygrasp.kinematics import Chain
from simlab.envs.toygrasp.splits import body_of
from simlab.errors import ActionError, ConfigError

IDS = {"pybullet": "simlab/ToyGrasp-v0", "mujoco": "simlab/ToyGraspMJ-v0"}


@pytest.fixture(scope="module", params=["pybullet", "mujoco"])
def env(request):
    e = gymnasium.make(IDS[request.param], render_mode="rgb_array")
    yield e
    e.close()


def test_import_simlab_does_not_import_the_engines() -> None:
    import subprocess

    code = "import sys, simlab; print('pybullet' in sys.modules, 'mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_engine_is_a_one_line_error_naming_the_extra(monkeypatch) -> None:
    from simlab.envs.toygrasp import deps

    monkeypatch.setitem(sys.modules, "mujoco", None)  # makes `import mujoco` raise ImportError
    with pytest.raises(deps.MissingExtraError, match=r"simlab\[grasp\]") as e:
        deps.import_mujoco()
    assert "\n" not in str(e.value)


def test_tcp_forward_kinematics_agree_with_both_engines() -> None:
    from simlab.envs.toygrasp.sim_mujoco import MuJoCoSim
    from simlab.envs.toygrasp.sim_pybullet import PyBulletSim

    chain = Chain.from_urdf(panda.lowpoly_urdf_text(), "panda_link0", panda.TCP_LINK)
    sims = [PyBulletSim(32, 32), MuJoCoSim(32, 32)]
    sims[1].load_body(body_of("toy/0"), np.array([0.5, 0, 0.1]), np.array([1.0, 0, 0, 0]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(panda.SOFT_LOWER, panda.SOFT_UPPER)
        pos, rot = chain.fk(q)
        for sim in sims:
            sim.reset_robot(q, 0.02)
            p2, r2 = sim.tcp_pose()
            assert np.abs(p2 - pos).max() < 1e-6, sim.name
            assert np.abs(r2 - rot).max() < 1e-6, sim.name
    for sim in sims:
        sim.close()


def test_both_engines_build_the_same_body() -> None:
    a = ToyGraspEnv("pybullet", resolution=32)
    b = ToyGraspEnv("mujoco", resolution=32)
    for name in ("toy/9", "mug"):  # toy 9: 3 rings (38 shapes, over pybullet's 16-shape array limit)
        body = body_of(name)
        for e in (a, b):
            e.reset(seed=0, options={"object": name})
        p, c = a.sim.p, a.sim.cid
        assert p.getDynamicsInfo(a.sim.obj, -1, physicsClientId=c)[0] == pytest.approx(body.mass, rel=1e-6)
        np.testing.assert_allclose(p.getDynamicsInfo(a.sim.obj, -1, physicsClientId=c)[2], body.inertia, rtol=1e-5)
        m = b.sim.model
        assert m.body_mass[b.sim.obj_body] == pytest.approx(body.mass, rel=1e-6)
        np.testing.assert_allclose(m.body_inertia[b.sim.obj_body], body.inertia, rtol=1e-5)
        assert len(b.sim.obj_geoms) == len(body.geoms)  # one MuJoCo geom per capsule / mesh part
    mug_parts = [g for g in body_of("mug").geoms if g.kind == "mesh"]
    assert len(mug_parts) == 6
    a.close()
    b.close()


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_objects_come_to_rest_on_the_table_not_in_it(backend: str) -> None:
    e = ToyGraspEnv(backend, resolution=32)
    for seed, name in enumerate(("toy/0", "toy/9", "duck", "random/010")):
        e.reset(seed=seed, options={"object": name})
        pts = e.object_points()
        assert -0.003 < pts[:, 2].min() < 0.006, (name, pts[:, 2].min())  # resting on z = 0
        assert np.isclose(e.rest_z, e.sim.body_pose()[0][2])
        v0 = e.sim.body_pose()[0]
        e.sim.step(48)  # settled: it does not move any more
        assert np.linalg.norm(e.sim.body_pose()[0] - v0) < 2e-3, name
    e.close()


def test_gymnasium_and_sb3_checkers_pass(env) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(env.unwrapped, warn=True)
    msgs = [str(w.message) for w in caught if "spec" not in str(w.message)]
    assert not msgs


def test_observation_layout_and_mask(env) -> None:
    obs, info = env.reset(seed=3)
    assert obs["rgb"].shape == (96, 96, 3) and obs["rgb"].dtype == np.uint8
    assert obs["mask"].shape == (96, 96, 1) and set(np.unique(obs["mask"])) <= {0, 255}
    assert 10 < (obs["mask"] > 0).sum() < 96 * 96 // 4  # the object is visible, not the whole frame
    # the masked pixels have the toy's colour (no other object in the scene has it)
    rgba = np.array(body_of(info["object"]).rgba[:3]) * 255
    masked = obs["rgb"][obs["mask"][..., 0] > 0].astype(float)
    assert np.abs(masked.mean(0) - rgba).max() < 110
    np.testing.assert_allclose(obs["proprio"][:7], env.unwrapped.sim.arm_q(), atol=1e-6)
    assert obs["proprio"][7] == pytest.approx(0.08, abs=2e-3)  # open gripper
    assert np.array_equal(env.render(), obs["rgb"])


def test_reset_is_deterministic(env) -> None:
    a, _ = env.reset(seed=11)
    acts = [np.array([0.3, -0.2, -0.5, 0.4, -1.0], np.float32)] * 3
    for x in acts:
        a2 = env.step(x)[0]
    b, _ = env.reset(seed=11)
    for x in acts:
        b2 = env.step(x)[0]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a2[k], b2[k])


def test_actions_move_the_tcp_and_bad_actions_raise(env) -> None:
    env.reset(seed=1)
    u = env.unwrapped
    p0 = u.sim.tcp_pose()[0]
    for _ in range(3):
        env.step(np.array([1.0, 0.0, 0.0, 0.0, -1.0], np.float32))
    p1 = u.sim.tcp_pose()[0]
    assert p1[0] - p0[0] == pytest.approx(0.12, abs=0.015)  # 3 x 4 cm along x
    assert abs(p1[1] - p0[1]) < 0.01 and abs(p1[2] - p0[2]) < 0.01
    assert np.abs(u.sim.tcp_pose()[1] - np.diag([1.0, -1.0, -1.0])).max() < 0.05  # still pointing down
    for bad in (np.full(5, np.nan), np.zeros(4), np.array([0, 0, 1.5, 0, 0])):
        with pytest.raises(ActionError) as e:
            env.step(bad)
        assert "\n" not in str(e.value)


def test_noop_does_not_lift_and_expert_lifts_and_holds(env) -> None:
    env.reset(seed=0, options={"object": "toy/15"})  # a single cuboid
    for _ in range(5):
        *_, info = env.step(np.zeros(5, np.float32))
    assert abs(info["lift"]) < 0.005 and not info["is_success"]
    obs, info = env.reset(seed=0, options={"object": "toy/15"})
    expert = ScriptedExpert(env)
    for t in range(50):
        obs, r, term, _, info = env.step(expert.act(obs))
        if term:
            break
    assert term and r == 1.0 and info["is_success"] and info["lift"] >= 0.10
    assert info["lifted_steps"] == 10 and t < 40
    width = obs["proprio"][7]
    assert 0.01 < width < 0.07  # the fingers hold the cuboid, not nothing


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'bullet'"):
        ToyGraspEnv("bullet")
    with pytest.raises(ConfigError, match="unknown split"):
        ToyGraspEnv("pybullet", split="nope")
    e = ToyGraspEnv("pybullet", resolution=32)
    with pytest.raises(ConfigError, match="unknown object"):
        e.reset(seed=0, options={"object": "teapot"})
    e.close()


def test_unseen_object_pose_matches_engine_geometry() -> None:
    """The planner's points (spec + engine pose) agree with pybullet's own ray casts onto the duck."""
    e = ToyGraspEnv("pybullet", resolution=32)
    e.reset(seed=2, options={"object": "duck"})
    pts = e.object_points()
    p, c = e.sim.p, e.sim.cid
    top = pts[np.argmax(pts[:, 2])]
    hit = p.rayTest([top[0], top[1], 0.5], [top[0], top[1], 0.0], physicsClientId=c)[0]
    assert hit[0] == e.sim.obj and abs(hit[3][2] - top[2]) < 0.01
    _, quat = e.sim.body_pose()
    assert np.allclose(quat_to_mat(quat) @ quat_to_mat(quat).T, np.eye(3), atol=1e-9)
    e.close()


@pytest.mark.parametrize("backend", ["pybullet", "mujoco"])
def test_a_ring_has_a_hole_in_both_engines(backend: str) -> None:
    """A ray down through a flat ring's centre reaches the table; one through its rim hits the ring."""
    from simlab.envs.toygrasp.toys import Primitive, ToySpec, spec_body

    e = ToyGraspEnv(backend, resolution=32)
    ring = spec_body(ToySpec(999_999, "red", (Primitive("ring", (0.035, 0.008), (0.0, 0.0, 0.0),
                                                        (1.0, 0.0, 0.0, 0.0)),)))
    e.sim.load_body(ring, np.array([0.55, 0.0, 0.2]), np.array([1.0, 0.0, 0.0, 0.0]))
    e.sim.reset_robot(panda.HOME_Q, panda.FINGER_OPEN)
    e.sim.step(240)
    pos, quat = e.sim.body_pose()
    up = quat_to_mat(quat)[:, 2]
    assert abs(up[2]) > 0.99 and pos[2] == pytest.approx(0.008, abs=0.002)  # lies flat on its tube

    def first_hit(x: float, y: float) -> str:
        if backend == "pybullet":
            p, c = e.sim.p, e.sim.cid
            hit = p.rayTest([x, y, 0.3], [x, y, -0.01], physicsClientId=c)[0][0]
            return "object" if hit == e.sim.obj else "table" if hit == e.sim.table else str(hit)
        import mujoco

        m, d = e.sim.model, e.sim.data
        gid = np.array([-1], np.int32)
        mujoco.mj_ray(m, d, np.array([x, y, 0.3]), np.array([0.0, 0.0, -1.0]), None, 1, -1, gid)
        return "object" if gid[0] in e.sim.obj_geoms else m.geom(gid[0]).name

    assert first_hit(pos[0], pos[1]) == "table"
    rim = pos + quat_to_mat(quat) @ np.array([0.035 * np.cos(np.pi / 12), 0.0, 0.0])
    assert first_hit(rim[0], rim[1]) == "object"
    e.close()


@pytest.mark.parametrize("kwargs", [{"resolution": "96"}, {"resolution": 1.5}, {"resolution": 8}, {"backend": "bullet"},
                                    {"split": "nope"}, {"train_toys": -1}, {"render_mode": 5}])
def test_bad_constructor_arguments_are_one_line_config_errors(kwargs: dict) -> None:
    import gymnasium

    with pytest.raises(ConfigError) as e:
        gymnasium.make("simlab/ToyGrasp-v0", **kwargs)
    assert "\n" not in str(e.value)


def test_bad_reset_arguments_are_one_line_config_errors() -> None:
    import gymnasium

    env = gymnasium.make("simlab/ToyGrasp-v0")
    for seed, options in ((-1, None), (None, {"bogus": 1}), (None, "x")):
        with pytest.raises(ConfigError):
            env.reset(seed=seed, options=options)
    env.reset(seed=np.int64(3))  # numpy integer seeds work
    env.close()
