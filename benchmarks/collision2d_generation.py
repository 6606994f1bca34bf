"""Throughput and physics exactness of simlab's collision2d video generator
against a phyworld-style reference generator (pybox2d + full-frame numpy masks).

What is compared
----------------
*simlab*: ``generate_states`` (parameter sampling, placement, closed-form
trajectories; see ``simlab.envs.collision2d.physics``) followed by
``render_balls`` (batched anti-aliased patch renderer) into one reusable
``(batch, 32, res, res, 3)`` uint8 buffer, ``--batch`` videos at a time.

*reference* ("phyworld-style"): the recipe of the generator released with
Kang et al. 2024, "How Far is Video Generation from World Model": one pybox2d
world per video, bodies from ``CreateDynamicBody(position, linearVelocity)``
with ``CreateCircleFixture(radius=r, density=1, restitution=1.0)``, gravity
``(0, 0)`` (``(0, -2.5)`` for parabola), 320 steps of
``world.Step(0.01, 15, 20)`` with ball positions recorded every 10 steps
(32 frames, 0.1 s apart), then every frame rendered by blending a soft
circular mask computed over the *whole* frame for each ball (float64),
converted to uint8 and flipped vertically (re-implemented in
:func:`reference_render`).

Why the comparison is fair
--------------------------
- Same scenes: the reference simulates the start states (``p0``, ``v0``,
  ``radii``) that simlab's ``generate_states`` produced for videos
  ``0 .. ref_videos-1`` of the same scenario/split/seed. The reference gets
  these start states for free (its parameter sampling is not timed), while
  simlab's timing includes its own sampling and placement.
- Same output: 32 frames per video, same resolution, same colours (red ball 1,
  blue ball 2, white background), kept in memory as uint8. Neither side
  encodes mp4 or touches the disk.
- Same hardware budget: the process pins itself to one CPU
  (``sched_setaffinity``) and sets ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` before
  numpy is imported, so both figures are videos/s *per core*. Both are timed in
  the same process run, after a warm-up of each, so machine load affects
  both alike; CPU-time throughputs are reported next to wall-clock ones.
- simlab reuses its output buffer (its documented usage: fresh large
  allocations page-fault heavily on VMs); the reference allocates per video
  as its own recipe does (a few MB at most per video).

Physics exactness: the reference's Box2D trajectories are compared with
simlab's closed-form ones for the same videos (max / mean absolute position
error, world units). For two-ball scenarios the relative kinetic-energy change
across the collision is reported for both. Stock pybox2d keeps Box2D's
restitution velocity threshold (``b2_velocityThreshold`` = 1 m/s): contacts
closing slower than that are resolved inelastically, which a dedicated slow
head-on case (v1 = v2 = 0.3, closing speed 0.6) shows next to a fast one
(v1 = v2 = 2.0). In oblique collisions Box2D also loses linear kinetic
energy to spin: the recipe leaves the fixture friction at Box2D's default 0.2,
so the tangential contact impulse sets the balls rotating (the closed form,
like the paper's stated physics, has frictionless balls).

Usage::

    python benchmarks/collision2d_generation.py --scenario collision --resolution 64
    python benchmarks/collision2d_generation.py --scenario parabola --json
"""

from __future__ import annotations

import os

# Must happen before numpy is imported: one thread per process for a per-core figure.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import json
import sys
import time

import numpy as np
from _machine import loadavg, machine_info, pin_one_core  # sibling module

from simlab.envs.collision2d.physics import (
    FRAME_DT,
    NUM_FRAMES,
    WORLD_SIZE,
    frame_times,
    kinetic_energy,
    masses_from_radii,
    simulate_balls,
)
from simlab.envs.collision2d.render import BALL_COLORS, render_balls
from simlab.envs.collision2d.scenarios import (
    SCENARIOS,
    VideoSpec,
    generate_states,
    gravity,
    split_names,
)

TARGET_RATIO = 10.0
"""simlab must generate at least this many times more videos/s per core than the reference."""

BOX2D_DT = 0.01
BOX2D_VEL_ITERS = 15
BOX2D_POS_ITERS = 20
STEPS_PER_FRAME = round(FRAME_DT / BOX2D_DT)  # 10 -> 320 steps for 32 frames


# --------------------------------------------------------------------------- machine

def _box2d_version() -> str | None:
    try:
        import Box2D
        return getattr(Box2D, "__version__", "unknown")
    except ImportError:
        return None


# --------------------------------------------------------------------------- reference

def box2d_simulate(p0: np.ndarray, v0: np.ndarray, radii: np.ndarray,
                   grav: tuple[float, float], num_frames: int = NUM_FRAMES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One video with pybox2d, phyworld-style. p0/v0 ``(K, 2)``, radii ``(K,)``.

    Returns positions and velocities ``(T, K, 2)`` recorded every 10 steps of
    0.01 s, starting with the initial state (frame ``t`` at ``t * 0.1`` s).
    """
    from Box2D import b2World

    world = b2World(gravity=tuple(float(g) for g in grav))
    bodies = []
    for k in range(len(radii)):
        body = world.CreateDynamicBody(position=(float(p0[k, 0]), float(p0[k, 1])),
                                       linearVelocity=(float(v0[k, 0]), float(v0[k, 1])))
        body.CreateCircleFixture(radius=float(radii[k]), density=1, restitution=1.0)
        bodies.append(body)
    pos = np.empty((num_frames, len(bodies), 2))
    vel = np.empty((num_frames, len(bodies), 2))
    for t in range(num_frames):
        for k, body in enumerate(bodies):
            p, v = body.position, body.linearVelocity
            pos[t, k, 0], pos[t, k, 1] = p[0], p[1]
            vel[t, k, 0], vel[t, k, 1] = v[0], v[1]
        for _ in range(STEPS_PER_FRAME):
            world.Step(BOX2D_DT, BOX2D_VEL_ITERS, BOX2D_POS_ITERS)
    return pos, vel


def reference_render(pos: np.ndarray, radii: np.ndarray, res: int) -> np.ndarray:
    """Phyworld-style renderer: a soft disc mask over the whole frame per ball.

    pos ``(T, K, 2)`` world units, radii ``(K,)``. Returns ``(T, res, res, 3)``
    uint8 (a vertically flipped view, as in the original).
    """
    t = pos.shape[0]
    frames = np.ones((t, res, res, 3), np.uint8) * 255
    gx, gy = np.meshgrid(np.linspace(0, 1, res), np.linspace(0, 1, res))
    for i in range(pos.shape[1]):
        cx = (pos[:, i, 0] / WORLD_SIZE)[:, None, None]
        cy = (pos[:, i, 1] / WORLD_SIZE)[:, None, None]
        dist2 = (gx - cx) ** 2 + (gy - cy) ** 2  # (T, H, W)
        rad2 = (radii[i] / WORLD_SIZE) ** 2
        alpha = np.clip((rad2 - dist2) / (rad2 * 0.03), 0, 1)[..., None]
        frames = (1 - alpha) * frames + alpha * BALL_COLORS[i].astype(np.float64)
    return frames.astype(np.uint8)[:, ::-1]


def reference_video(p0, v0, radii, grav, res):
    pos, vel = box2d_simulate(p0, v0, radii, grav)
    return pos, vel, reference_render(pos, radii, res)


# --------------------------------------------------------------------------- timing

def time_simlab(spec: VideoSpec, n_videos: int, batch: int, res: int, buf: np.ndarray) -> dict:
    """Generate videos [0, n_videos) in batches into ``buf``; returns timings."""
    t_phys = t_render = 0.0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for lo in range(0, n_videos, batch):
        hi = min(n_videos, lo + batch)
        a = time.perf_counter()
        st = generate_states(spec, lo, hi)
        b = time.perf_counter()
        render_balls(st["pos"], st["radii"], res, out=buf[: hi - lo])
        c = time.perf_counter()
        t_phys += b - a
        t_render += c - b
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"videos": n_videos, "wall_s": wall, "cpu_s": cpu,
            "videos_per_s": n_videos / wall, "videos_per_cpu_s": n_videos / cpu,
            "physics_s": t_phys, "render_s": t_render}


def time_reference(states: dict, n_videos: int, grav, res: int) -> tuple[dict, np.ndarray]:
    """Reference generator over the first ``n_videos`` start states; returns timings and positions."""
    k = states["radii"].shape[1]
    all_pos = np.empty((n_videos, NUM_FRAMES, k, 2))
    t_phys = t_render = 0.0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n_videos):
        a = time.perf_counter()
        pos, _ = box2d_simulate(states["p0"][i], states["v0"][i], states["radii"][i], grav)
        b = time.perf_counter()
        frames = reference_render(pos, states["radii"][i], res)
        c = time.perf_counter()
        t_phys += b - a
        t_render += c - b
        all_pos[i] = pos
        del frames
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return ({"videos": n_videos, "wall_s": wall, "cpu_s": cpu,
             "videos_per_s": n_videos / wall, "videos_per_cpu_s": n_videos / cpu,
             "physics_s": t_phys, "render_s": t_render}, all_pos)


# --------------------------------------------------------------------------- exactness

def rel_energy_change(vel: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(KE at the last frame - KE at frame 0) / KE at frame 0; vel ``(N, T, K, 2)``, radii ``(N, K)``."""
    m = masses_from_radii(radii)  # Box2D masses are pi * r^2: same ratios, same relative change
    ke = kinetic_energy(vel, m[:, None, :])  # (N, T)
    return (ke[:, -1] - ke[:, 0]) / ke[:, 0]


def head_on_case(v: float, r: float = 1.0, gap: float = 1.0) -> dict:
    """Head-on collision of two equal balls at speed ``v`` each: Box2D vs closed form."""
    p0 = np.array([[[3.0, 5.0], [3.0 + 2 * r + gap, 5.0]]])
    v0 = np.array([[[v, 0.0], [-v, 0.0]]])
    radii = np.array([[r, r]])
    exact = simulate_balls(p0, v0, radii, frame_times(), (0.0, 0.0))
    bpos, bvel = box2d_simulate(p0[0], v0[0], radii[0], (0.0, 0.0))
    return {
        "v1": v, "v2": v, "r1": r, "r2": r, "closing_speed": 2 * v,
        "t_contact_s": float(exact["t_contact"][0]),
        "box2d_rel_energy_change": float(rel_energy_change(bvel[None], radii)[0]),
        "simlab_rel_energy_change": float(rel_energy_change(exact["vel"], radii)[0]),
        "box2d_final_velocities": bvel[-1, :, 0].tolist(),
        "simlab_final_velocities": exact["vel"][0, -1, :, 0].tolist(),
        "box2d_max_pos_error": float(np.abs(bpos - exact["pos"][0]).max()),
    }


def exactness(scenario: str, states: dict, ref_pos: np.ndarray, grav, res: int,
              n_render_check: int) -> dict:
    m = len(ref_pos)
    err = np.abs(ref_pos - states["pos"][:m])
    out = {
        "videos": m,
        "max_abs_pos_error": float(err.max()) if m else None,
        "mean_abs_pos_error": float(err.mean()) if m else None,
        "final_frame_max_abs_pos_error": float(err[:, -1].max()) if m else None,
    }
    if states["radii"].shape[1] == 2 and m:
        # Energy across the collision, for videos whose contact falls inside the clip.
        hit = states["t_contact"][:m] < (NUM_FRAMES - 1) * FRAME_DT
        if hit.any():
            vel_b = np.stack([box2d_simulate(states["p0"][i], states["v0"][i], states["radii"][i],
                                             grav)[1] for i in np.flatnonzero(hit)])
            de_b = rel_energy_change(vel_b, states["radii"][:m][hit])
            de_s = rel_energy_change(states["vel"][:m][hit], states["radii"][:m][hit])
            out["collision_videos"] = int(hit.sum())
            out["box2d_rel_energy_change_mean"] = float(de_b.mean())
            out["box2d_rel_energy_change_max_abs"] = float(np.abs(de_b).max())
            out["simlab_rel_energy_change_max_abs"] = float(np.abs(de_s).max())
    # Sanity check that both generators draw the same scene: fraction of pixels
    # whose colour class (each channel > 127) differs between the two renderers.
    k = min(n_render_check, m)
    if k:
        mine = render_balls(states["pos"][:k], states["radii"][:k], res)
        theirs = np.stack([reference_render(ref_pos[i], states["radii"][i], res) for i in range(k)])
        diff = ((mine > 127) != (theirs > 127)).any(-1)
        out["pixel_class_mismatch_frac"] = float(diff.mean())
    return out


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=SCENARIOS, default="collision")
    ap.add_argument("--split", default="id", help="split of the scenario (default: id)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--videos", type=int, default=4096, help="videos timed for simlab")
    ap.add_argument("--ref-videos", type=int, default=200, help="videos timed for the reference")
    ap.add_argument("--batch", type=int, default=256, help="simlab videos per batch")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: first allowed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    if args.videos < 1 or args.ref_videos < 1 or args.batch < 1 or args.resolution < 8:
        ap.error("--videos, --ref-videos, --batch must be >= 1 and --resolution >= 8")
    if args.split not in split_names(args.scenario):
        ap.error(f"unknown split {args.split!r} for {args.scenario}; "
                 f"choose one of {', '.join(split_names(args.scenario))}")

    pinned = pin_one_core(args.cpu)
    info = machine_info(pinned, box2d=_box2d_version())
    res = args.resolution
    spec = VideoSpec(args.scenario, split=args.split, seed=args.seed)
    grav = gravity(args.scenario)
    batch = min(args.batch, args.videos)

    # Start states of the reference's videos (same scenes as simlab's first videos).
    ref_states = generate_states(spec, 0, args.ref_videos)

    # Warm-up: imports, code paths, and the first touch of simlab's reusable buffer.
    buf = np.empty((batch, NUM_FRAMES, res, res, 3), np.uint8)
    time_simlab(spec, batch, batch, res, buf)
    time_reference(ref_states, min(2, args.ref_videos), grav, res)

    sim = time_simlab(spec, args.videos, batch, res, buf)
    ref, ref_pos = time_reference(ref_states, args.ref_videos, grav, res)
    ratio = sim["videos_per_s"] / ref["videos_per_s"]
    ratio_cpu = sim["videos_per_cpu_s"] / ref["videos_per_cpu_s"]

    phys = exactness(args.scenario, ref_states, ref_pos, grav, res, n_render_check=min(8, args.ref_videos))
    phys["slow_head_on"] = head_on_case(0.3)
    phys["fast_head_on"] = head_on_case(2.0)
    info["loadavg_end_1_5_15"] = loadavg()

    result = {
        "scenario": args.scenario, "split": args.split, "seed": args.seed,
        "resolution": res, "frames_per_video": NUM_FRAMES, "batch": batch,
        "simlab": sim, "reference": ref,
        "ratio": ratio, "ratio_cpu_time": ratio_cpu,
        "target_ratio": TARGET_RATIO, "pass": bool(ratio >= TARGET_RATIO),
        "physics": phys, "machine": info,
        "command": "python benchmarks/collision2d_generation.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    p = phys
    print(f"collision2d generation: scenario={args.scenario} split={args.split} res={res} "
          f"frames={NUM_FRAMES} (one core: cpu {pinned})")
    print(f"machine: {info['cpu_model']}, {info['logical_cpus']} logical CPUs, load {info['loadavg_1_5_15']}, "
          f"python {info['python']}, numpy {info['numpy']}, box2d {info['box2d']}")
    print(f"simlab    : {sim['videos_per_s']:10.1f} videos/s  ({sim['videos']} videos, {sim['wall_s']:.2f} s; "
          f"physics {sim['physics_s']:.2f} s, render {sim['render_s']:.2f} s; "
          f"{sim['videos_per_cpu_s']:.1f} videos/CPU-s)")
    print(f"reference : {ref['videos_per_s']:10.1f} videos/s  ({ref['videos']} videos, {ref['wall_s']:.2f} s; "
          f"box2d {ref['physics_s']:.2f} s, render {ref['render_s']:.2f} s; "
          f"{ref['videos_per_cpu_s']:.1f} videos/CPU-s)")
    print(f"ratio     : {ratio:.1f}x (CPU-time ratio {ratio_cpu:.1f}x), target >= {TARGET_RATIO:g}x: "
          f"{'PASS' if result['pass'] else 'FAIL'}")
    print(f"physics   : Box2D vs closed form over {p['videos']} videos: max |dpos| "
          f"{p['max_abs_pos_error']:.3g}, mean |dpos| {p['mean_abs_pos_error']:.3g} world units "
          f"(world {WORLD_SIZE:g} x {WORLD_SIZE:g})")
    if "collision_videos" in p:
        print(f"            relative KE change across the collision ({p['collision_videos']} videos): "
              f"Box2D mean {p['box2d_rel_energy_change_mean']:+.2e}, max |.| "
              f"{p['box2d_rel_energy_change_max_abs']:.2e}; simlab max |.| "
              f"{p['simlab_rel_energy_change_max_abs']:.2e}")
    if "pixel_class_mismatch_frac" in p:
        print(f"            renderer sanity: {p['pixel_class_mismatch_frac']:.4f} of pixels differ in colour class")
    for name in ("slow_head_on", "fast_head_on"):
        c = p[name]
        print(f"{name:12s}: v1=v2={c['v1']:g} (closing {c['closing_speed']:g}): relative KE change "
              f"Box2D {c['box2d_rel_energy_change']:+.3f}, simlab {c['simlab_rel_energy_change']:+.1e}; "
              f"final vx Box2D {np.round(c['box2d_final_velocities'], 3).tolist()}, "
              f"simlab {np.round(c['simlab_final_velocities'], 3).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
