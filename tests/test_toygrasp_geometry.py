"""Toy grasping, engine-free parts: toys, mass properties, OBJ parts, objects, kinematics, grasp planner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simlab.envs.toygrasp import panda
from simlab.envs.toygrasp.expert import closing_axis, plan_grasp
from simlab.envs.toygrasp.geometry import mat_to_quat, quat_to_mat, random_rotation
from simlab.envs.toygrasp.kinematics import Chain, ik
from simlab.envs.toygrasp.objects import OBJECT_NAMES, collision_geoms, object_body, urdf_of
from simlab.envs.toygrasp.objfile import read_obj_parts, write_obj_parts
from simlab.envs.toygrasp.shapes import Geom, make_body, mass_properties
from simlab.envs.toygrasp.splits import body_of, split_objects
from simlab.envs.toygrasp.toys import (
    COLORS,
    PRIMITIVES,
    RING_SEGMENTS,
    Primitive,
    ToySpec,
    primitive_geoms,
    spec_body,
    toy_spec,
)
from simlab.errors import ConfigError

pytest.importorskip("pybullet_data")


# ---- toys --------------------------------------------------------------------------------------
def test_toy_is_a_pure_function_of_its_seed() -> None:
    toy_spec.cache_clear()
    a = toy_spec(7)
    toy_spec.cache_clear()
    assert toy_spec(7) == a
    assert toy_spec(8) != a


def test_toy_distribution_covers_counts_kinds_and_colours() -> None:
    specs = [toy_spec(s) for s in range(200)]
    assert {len(s.primitives) for s in specs} == {1, 2, 3, 4, 5}
    assert {p.kind for s in specs for p in s.primitives} == set(PRIMITIVES)
    assert {s.color for s in specs} == set(COLORS)


@pytest.mark.parametrize("seed", range(40))
def test_every_primitive_intersects_an_earlier_one(seed: int) -> None:
    spec = toy_spec(seed)
    geoms = [primitive_geoms(p) for p in spec.primitives]
    for k in range(1, len(geoms)):
        pts = mass_properties(geoms[k], max_points=10**7).points  # all voxel centres inside primitive k
        earlier = [g for gs in geoms[:k] for g in gs]
        inside = np.zeros(len(pts), bool)
        for g in earlier:
            inside |= g.local_points_inside((pts - np.asarray(g.pos)) @ quat_to_mat(g.quat))
        assert inside.any(), f"toy {seed}: primitive {k} touches no earlier primitive"


def test_toys_are_graspable_sized() -> None:
    for s in range(100):
        for p in toy_spec(s).primitives:
            if p.kind == "cuboid":
                assert min(p.size) <= 0.025
            assert max(p.size) <= 0.05


def test_bad_toy_specs_raise_one_line_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least one primitive"):
        ToySpec(0, "red", ())
    bad = Primitive("sphere", (-0.01,), (0, 0, 0), (1, 0, 0, 0))
    with pytest.raises(ConfigError, match="positive") as e:
        ToySpec(0, "red", (bad,))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="unknown kind"):
        ToySpec(0, "red", (Primitive("cone", (0.01,), (0, 0, 0), (1, 0, 0, 0)),))
    with pytest.raises(ConfigError, match="colour"):
        ToySpec(0, "purple", (Primitive("sphere", (0.01,), (0, 0, 0), (1, 0, 0, 0)),))
    with pytest.raises(ConfigError, match="sizes must be finite and positive"):
        Geom("box", (0.01, 0.0, 0.01))
    with pytest.raises(ConfigError):
        toy_spec(-1)


# ---- mass properties -------------------------------------------------------------------------
def _one(kind: str, size: tuple[float, ...]):
    return spec_body(ToySpec(0, "red", (Primitive(kind, size, (0.0, 0.0, 0.0), tuple(mat_to_quat(
        random_rotation(np.random.default_rng(1))))),)))


@pytest.mark.parametrize(("kind", "size", "volume"), [
    ("sphere", (0.03,), 4 / 3 * np.pi * 0.03 ** 3),
    ("cuboid", (0.04, 0.02, 0.01), 8 * 0.04 * 0.02 * 0.01),
    ("cylinder", (0.02, 0.04), np.pi * 0.02 ** 2 * 0.08),
    ("ring", (0.035, 0.008), 2 * np.pi ** 2 * 0.035 * 0.008 ** 2),
])
def test_mass_and_volume_match_the_analytic_values(kind: str, size: tuple[float, ...], volume: float) -> None:
    body = _one(kind, size)
    mass = 400.0 * volume
    tol = 0.06 if kind == "ring" else 0.03  # the 12-capsule ring is a polygonal torus
    assert body.mass == pytest.approx(mass, rel=tol)
    assert np.abs(body.points.mean(0)).max() < 2e-3  # geoms are re-expressed about the COM (subset mean)


def test_inertia_of_a_box_matches_the_formula() -> None:
    h = np.array([0.04, 0.02, 0.01])
    mp = mass_properties([Geom("box", tuple(h))])
    m = mp.mass
    expect = sorted(m / 3 * np.array([h[1] ** 2 + h[2] ** 2, h[0] ** 2 + h[2] ** 2, h[0] ** 2 + h[1] ** 2]))
    np.testing.assert_allclose(mp.inertia, expect, rtol=0.03)
    # principal axes are the box axes: smallest moment about x (longest side), largest about z
    np.testing.assert_allclose(np.abs(mp.axes[:, 0]), [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.abs(mp.axes[:, 2]), [0, 0, 1], atol=1e-6)


def test_bounds_are_exact_for_rotated_round_shapes() -> None:
    rot = random_rotation(np.random.default_rng(3))
    q = tuple(mat_to_quat(rot))
    lo, hi = Geom("sphere", (0.02,), (0.1, 0, 0), q).world_bounds()
    np.testing.assert_allclose(hi - lo, 0.04)
    lo, hi = Geom("capsule", (0.01, 0.03), (0, 0, 0), q).world_bounds()
    ends = np.array([rot[:, 2] * 0.03, -rot[:, 2] * 0.03])
    np.testing.assert_allclose(hi, ends.max(0) + 0.01)


def test_ring_is_twelve_capsules_on_a_circle() -> None:
    p = Primitive("ring", (0.03, 0.006), (0.1, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
    gs = primitive_geoms(p)
    assert len(gs) == RING_SEGMENTS and {g.kind for g in gs} == {"capsule"}
    centres = np.array([g.pos for g in gs]) - [0.1, 0.0, 0.0]
    r = np.linalg.norm(centres[:, :2], axis=1)
    np.testing.assert_allclose(r, 0.03 * np.cos(np.pi / RING_SEGMENTS), rtol=1e-9)
    assert np.abs(centres[:, 2]).max() < 1e-12
    # the hole is empty: the ring's centre is outside every capsule
    assert not any(g.local_points_inside((np.array([[0.1, 0, 0]]) - g.pos) @ quat_to_mat(g.quat))[0] for g in gs)


# ---- OBJ parts and unseen objects --------------------------------------------------------------
@pytest.mark.parametrize(("name", "parts"), [("duck", 5), ("teddy", 15), ("mug", 6), ("random/000", 5)])
def test_multi_part_objs_split_into_one_geom_per_part(name: str, parts: int) -> None:
    geoms = collision_geoms(urdf_of(name))
    assert len(geoms) == parts and all(g.kind == "mesh" for g in geoms)


def test_box_collision_objects_and_sizes() -> None:
    jenga = object_body("jenga")
    assert [g.kind for g in jenga.geoms] == ["box"]
    assert jenga.mass == pytest.approx(400 * 0.15 * 0.05 * 0.03, rel=0.03)
    ext = np.ptp(object_body("duck").points, 0)
    assert 0.05 < ext.max() < 0.1  # duck is ~9 cm (scale 0.05)


def test_obj_parts_round_trip(tmp_path: Path) -> None:
    parts = read_obj_parts(Path(urdf_of("duck")).parent / "duck_vhacd.obj")
    write_obj_parts(tmp_path / "d.obj", parts)
    back = read_obj_parts(tmp_path / "d.obj")
    assert len(back) == len(parts)
    for (v, f), (v2, f2) in zip(parts, back):
        np.testing.assert_allclose(v, v2, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(f, f2)


def test_objects_split_and_unknown_names() -> None:
    objs = split_objects("objects")
    assert len(objs) == 106 and "duck" in objs and "random/990" in objs and "random/001" not in objs
    assert OBJECT_NAMES == objs
    assert split_objects("toys-train", 5) == tuple(f"toy/{i}" for i in range(5))
    assert not set(split_objects("toys-train")) & set(split_objects("toys-test"))
    with pytest.raises(ConfigError, match="unknown object 'teapot'"):
        body_of("teapot")
    with pytest.raises(ConfigError, match="unknown toygrasp split"):
        split_objects("toys-val")


def test_missing_mesh_file_is_a_config_error(tmp_path: Path) -> None:
    urdf = tmp_path / "x.urdf"
    urdf.write_text('<robot name="x"><link name="a"><collision><geometry><mesh filename="gone.obj"/>'
                    '</geometry></collision></link></robot>')
    with pytest.raises(ConfigError, match="gone.obj: mesh file not found"):
        collision_geoms(urdf)


# ---- kinematics and planner ---------------------------------------------------------------------
def test_ik_reaches_top_down_targets() -> None:
    from simlab.envs.toygrasp.env import tcp_rotation

    chain = Chain.from_urdf(panda.lowpoly_urdf_text(), "panda_link0", panda.TCP_LINK)
    q = panda.HOME_Q.copy()
    for target, yaw in (([0.5, 0.1, 0.05], 0.5), ([0.65, -0.2, 0.2], -1.2), ([0.35, 0.0, 0.02], 1.5)):
        for _ in range(5):  # the env calls IK once per step from the last solution
            q = ik(chain, np.array(target), tcp_rotation(yaw), q, panda.SOFT_LOWER, panda.SOFT_UPPER, panda.HOME_Q)
        pos, rot = chain.fk(q)
        assert np.linalg.norm(pos - target) < 1e-3
        assert np.abs(rot - tcp_rotation(yaw)).max() < 1e-2
        assert (q >= panda.SOFT_LOWER).all() and (q <= panda.SOFT_UPPER).all()


def test_planner_closes_across_the_narrow_side_of_a_bar() -> None:
    bar = mass_properties([Geom("box", (0.06, 0.015, 0.02))]).points  # in the box's own frame
    rot = quat_to_mat([np.cos(0.3), 0, 0, np.sin(0.3)])  # bar turned by 0.6 rad about z
    pts = bar @ rot.T + [0.5, 0.0, 0.02]
    g = plan_grasp(pts)
    assert g.feasible and g.width == pytest.approx(0.03, abs=0.004)
    c = closing_axis(g.yaw)
    assert abs(c @ rot[:, 1]) > 0.95  # closes along the bar's short (y) axis
    assert np.linalg.norm(g.pos[:2] - [0.5, 0.0]) < 0.01


def test_planner_reports_infeasible_for_a_wide_block() -> None:
    block = mass_properties([Geom("box", (0.06, 0.06, 0.02))]).points
    assert not plan_grasp(block + [0.5, 0, 0.02]).feasible  # no corner grasps: faces at 45 degrees


def test_make_body_puts_the_frame_on_the_principal_axes() -> None:
    body = make_body("bar", [Geom("box", (0.06, 0.015, 0.02), (0.01, 0.0, 0.0))], (1, 0, 0, 1))
    assert body.inertia_quat == (1.0, 0.0, 0.0, 0.0)
    assert list(body.inertia) == sorted(body.inertia)
    ext = np.ptp(body.points, 0)
    assert ext[0] > ext[1] > ext[2]  # longest side along the smallest moment (body x)
    assert body.half_height == pytest.approx(0.015, abs=1e-9)


def test_spec_body_rejects_empty_and_replace_keeps_validation() -> None:
    spec = toy_spec(3)
    with pytest.raises(ConfigError):
        replace(spec, primitives=())


def test_missing_panda_mesh_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    from simlab.envs.toygrasp.deps import MissingExtraError

    (tmp_path / "franka_panda").mkdir()
    (tmp_path / "franka_panda" / "panda.urdf").write_text(
        '<robot name="p"><link name="a"><visual><geometry><mesh filename="package://meshes/visual/x.obj"/>'
        "</geometry></visual></link></robot>")
    monkeypatch.setattr(panda, "pybullet_data_path", lambda: str(tmp_path))
    with pytest.raises(MissingExtraError, match="x.obj: a Panda mesh file is missing") as e:
        panda.lowpoly_urdf_text()
    assert "\n" not in str(e.value)
