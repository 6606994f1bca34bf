"""Evaluate grasp policies in the real toy-grasp envs (either engine) over named object splits.

The grasp counterpart of :mod:`simlab.policies.evaluate` (whose batched loop
is for the procgen games): the same per-split statistics (mean return, std,
95% CI via :func:`~simlab.policies.evaluate.summarize`), a success rate with
its Wilson 95% interval, ``eval_info.json`` in the same LeRobot layout
(``per_episode`` with seeds and objects, ``aggregated``) and one mp4 per
recorded episode::

    from simlab.policies.grasp_eval import evaluate_grasp, make_baseline
    res = evaluate_grasp(make_baseline("random"), "mujoco", ["toys-test", "objects"], episodes=50)

Episodes (identical for every policy and both engines, so rows are paired):
on ``toys-train`` / ``toys-test`` episode ``i`` resets with ``seed + i`` and
the env draws the toy (as :mod:`~simlab.envs.toygrasp.ceiling` does, so with
``seed=0`` the expert rows reproduce the ceiling); on ``objects`` episode
``i`` grasps object ``i * 106 // episodes`` (every object once when
``episodes >= 106``; then exactly 106 episodes).

``python -m simlab.policies.grasp_eval DIR ...`` prints the markdown table of the
``eval_info.json`` files under each ``DIR/<backend>/`` (or ``RUN/eval/<backend>/``).

A policy here is anything with ``act(obs: dict) -> (5,) action`` for one env
(``obs``: the env's Dict observation), ``reset()`` called at each episode
start, and optionally ``bind(env)`` called once with the env (the scripted
expert reads the object's geometry from it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simlab.data import write_json_atomic
from simlab.errors import ConfigError

FORMAT_VERSION = 1
EVAL_INFO = "eval_info.json"
MAX_STEPS = 50
BASELINES = ("expert", "random", "fixed")
ENV_IDS = {"pybullet": "simlab/ToyGrasp-v0", "mujoco": "simlab/ToyGraspMJ-v0"}


class GraspActor(Protocol):
    """One env's policy: ``reset()`` per episode, ``act(obs) -> (5,)`` per step."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


# ---- baselines ---------------------------------------------------------------------------------

class ExpertActor:
    """The scripted expert (:class:`~simlab.envs.toygrasp.expert.ScriptedExpert`): reads the geometry."""

    name = "expert"

    def __init__(self) -> None:
        self.expert: Any = None

    def bind(self, env: Any) -> None:
        from simlab.envs.toygrasp.expert import ScriptedExpert

        self.expert = ScriptedExpert(env)

    def reset(self) -> None:
        if self.expert is not None:
            self.expert.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.expert is None:
            raise ConfigError("the expert needs bind(env) before act()")
        return self.expert.act(obs)


class RandomActor:
    """Uniform random actions in ``[-1, 1]^5`` (seeded per episode by the evaluator's order)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng([seed, 0xA1])

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, 5).astype(np.float32)


class FixedActor:
    """A blind grasp at the centre of the spawn area: the best policy that ignores the observation.

    Moves the TCP from its start (:data:`~simlab.envs.toygrasp.env.HOME_TCP`) above the spawn
    centre, down to :data:`GRASP_Z`, closes for 4 steps, lifts 16 cm and holds; heading 0. It
    tracks its own commanded TCP position with the env's action scale, so it never reads ``obs``.
    """

    name = "fixed"
    GRASP_Z = 0.02
    """m; TCP height of the blind grasp."""

    def __init__(self) -> None:
        from simlab.envs.toygrasp import scene
        from simlab.envs.toygrasp.env import HOME_TCP, MOVE_SCALE

        cx, cy = float(np.mean(scene.SPAWN_X)), float(np.mean(scene.SPAWN_Y))
        self.scale = MOVE_SCALE
        self.waypoints = [(np.array([cx, cy, 0.12]), False, 0), (np.array([cx, cy, self.GRASP_Z]), False, 0),
                          (np.array([cx, cy, self.GRASP_Z]), True, 4), (np.array([cx, cy, 0.18]), True, 10**6)]
        self.home = HOME_TCP.copy()
        self.reset()

    def reset(self) -> None:
        self.pos, self.phase, self.count = self.home.copy(), 0, 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        target, closed, wait = self.waypoints[self.phase]
        delta = np.clip((target - self.pos) / self.scale, -1.0, 1.0)
        if np.abs(target - self.pos).max() < 1e-6:
            self.count += 1
            if self.count > wait and self.phase < len(self.waypoints) - 1:
                self.phase, self.count = self.phase + 1, 0
        self.pos = self.pos + delta * self.scale
        return np.concatenate([delta, [0.0], [1.0 if closed else -1.0]]).astype(np.float32)


def make_baseline(name: str, seed: int = 0) -> Any:
    """A baseline actor by name: ``expert`` | ``random`` | ``fixed``; ConfigError otherwise."""
    if name == "expert":
        return ExpertActor()
    if name == "random":
        return RandomActor(seed)
    if name == "fixed":
        return FixedActor()
    raise ConfigError(f"unknown baseline {name!r}; one of {', '.join(BASELINES)}")


# ---- evaluation --------------------------------------------------------------------------------

def episode_plan(split: str, episodes: int, seed: int = 0) -> list[tuple[int, str | None]]:
    """``(reset seed, object name or None)`` of each episode of a split (module docstring)."""
    from simlab.envs.toygrasp.splits import SPLIT_NAMES, split_objects

    if split not in SPLIT_NAMES:
        raise ConfigError(f"unknown toygrasp split {split!r}; one of {', '.join(SPLIT_NAMES)}")
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    if split == "objects":
        names = split_objects(split)
        n = min(episodes, len(names))
        return [(seed + i, names[i * len(names) // n]) for i in range(n)]
    return [(seed + i, None) for i in range(episodes)]


def closing_error(env: Any) -> float:
    """m; horizontal distance between the commanded TCP and the target's COM (a diagnostic of where a
    policy closes its gripper; the env's state is read, never changed)."""
    u = env.unwrapped
    return float(np.linalg.norm(u.tcp_target[:2] - u.sim.body_pose()[0][:2]))


def run_episode(env: Any, actor: Any, reset_seed: int, obj: str | None, record: bool = False
                ) -> tuple[dict[str, Any], np.ndarray | None]:
    """One episode of at most 50 steps; returns its record and (if ``record``) frames ``(T, H, W, 3)``."""
    obs, info = env.reset(seed=reset_seed, options=None if obj is None else {"object": obj})
    actor.reset()
    frames = [obs["rgb"]] if record else None
    ret, max_lift, t = 0.0, 0.0, 0
    term = False
    close_err = None
    for t in range(MAX_STEPS):
        a = np.asarray(actor.act(obs), np.float32)
        if close_err is None and a.shape == (5,) and a[4] > 0:
            close_err = closing_error(env)
        obs, r, term, _, info = env.step(a)
        ret += float(r)
        max_lift = max(max_lift, float(info["lift"]))
        if frames is not None:
            frames.append(obs["rgb"])
        if term:
            break
    rec = {"seed": int(reset_seed), "object": info["object"], "success": bool(info["is_success"]),
           "return": ret, "length": t + 1, "max_lift": max_lift, "terminated": bool(term),
           "truncated": not term, "close_xy_error": close_err}
    return rec, (np.stack(frames) if frames is not None else None)


def evaluate_grasp(actor: Any, backend: str, splits: list[str] | tuple[str, ...], episodes: int, seed: int = 0,
                   resolution: int = 96, video_dir: Path | str | None = None, videos_per_split: int = 2,
                   out_dir: Path | str | None = None, progress: bool = False, policy_name: str = "",
                   env_kwargs: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``actor`` on each split in one engine.

    Args:
        actor: a :class:`GraspActor` (``bind(env)`` is called if it has one).
        backend: ``pybullet`` | ``mujoco``.
        splits: ``toys-train`` | ``toys-test`` | ``objects``.
        episodes: episodes per split (``objects``: at most 106, one per object).
        seed: first reset seed (episode ``i`` uses ``seed + i``).
        resolution: image side, px (the policy's training resolution).
        video_dir: where to write ``<backend>_<split>_<k>.mp4`` of the first ``videos_per_split`` episodes.
        out_dir: where to write ``eval_info.json`` (default: ``video_dir``; neither: not written).
        progress: a tqdm bar over episodes on stderr.
        policy_name: recorded in ``eval_info.json``.
        env_kwargs: extra :class:`~simlab.envs.toygrasp.env.ToyGraspEnv` arguments.

    Returns:
        ``{split: {"success_rate", "success_ci95" [lo, hi], "successes", "closed_episodes",
        "median_close_xy_error" (m, over episodes where the gripper closed; :func:`closing_error`
        at the first closing action), "mean_return", "std_return", "ci95", "mean_length",
        "n_episodes", "seconds", "episodes": [...]}}``.
    """
    from tqdm.auto import tqdm

    from simlab.envs.toygrasp.env import ToyGraspEnv
    from simlab.policies.evaluate import summarize
    from simlab.stats import wilson

    splits = list(splits)
    if not splits:
        raise ConfigError("evaluate_grasp needs at least one split")
    if getattr(getattr(actor, "network", None), "slots", 0):  # the slot encoder reads every object's mask
        env_kwargs = {"object_masks": True, **(env_kwargs or {})}
    plans = {s: episode_plan(s, episodes, seed) for s in splits}
    n_videos = max(0, int(videos_per_split)) if video_dir is not None else 0
    result: dict[str, dict[str, Any]] = {}
    per_episode: list[dict[str, Any]] = []
    bar = tqdm(total=sum(len(p) for p in plans.values()), desc=f"eval grasp ({backend})", unit="ep",
               disable=not progress, dynamic_ncols=True)
    for split in splits:
        env = ToyGraspEnv(backend, split=split, resolution=resolution, **(env_kwargs or {}))
        if hasattr(actor, "bind"):
            actor.bind(env)
        eps: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        try:
            for i, (rs, obj) in enumerate(plans[split]):
                rec, frames = run_episode(env, actor, rs, obj, record=i < n_videos)
                rec.update(split=split, index=i, backend=backend)
                if frames is not None:
                    from simlab.video import write_mp4

                    p = Path(video_dir) / f"{backend}_{split}_{i}.mp4"  # type: ignore[arg-type]
                    write_mp4(p, frames, fps=10)
                    rec["video"] = str(p)
                eps.append(rec)
                bar.update(1)
        finally:
            env.close()
        k, n = sum(e["success"] for e in eps), len(eps)
        errs = [e["close_xy_error"] for e in eps if e["close_xy_error"] is not None]
        result[split] = {"success_rate": k / n, "success_ci95": list(wilson(k, n)), "successes": k,
                         "closed_episodes": len(errs),
                         "median_close_xy_error": float(np.median(errs)) if errs else None,
                         **summarize([e["return"] for e in eps]),
                         "mean_length": float(np.mean([e["length"] for e in eps])), "n_episodes": n,
                         "seconds": time.perf_counter() - t0, "episodes": eps}
        per_episode.extend(eps)
    bar.close()
    info_dir = out_dir if out_dir is not None else video_dir
    if info_dir is not None:
        import simlab

        write_json_atomic(Path(info_dir) / EVAL_INFO, {
            "format_version": FORMAT_VERSION, "simlab_version": simlab.__version__, "env_id": ENV_IDS[backend],
            "backend": backend, "policy": policy_name, "seed": seed, "episodes_per_split": episodes,
            "resolution": resolution, "success_rule": "lifted >= 10 cm and held 1 s within 50 steps",
            "per_episode": per_episode,
            "aggregated": {s: {k: v for k, v in r.items() if k != "episodes"} for s, r in result.items()},
        })
    return result


def format_grasp_table(rows: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Plain-text table: ``rows[label][split]`` = an :func:`evaluate_grasp` split result."""
    head = ("policy", "split", "episodes", "success", "95% CI")
    out = [head]
    for label, res in rows.items():
        for split, r in res.items():
            lo, hi = r["success_ci95"]
            rate = f"{r['successes']}/{r['n_episodes']} = {r['success_rate']:.2f}"
            out.append((label, split, str(r["n_episodes"]), rate, f"{lo:.2f}-{hi:.2f}"))
    w = [max(len(row[c]) for row in out) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w[c]) for c, cell in enumerate(row)) for row in out]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def load_grasp_actor(policy: str, seed: int = 0, execute: int | None = None) -> tuple[Any, str]:
    """``(actor, label)`` for a baseline name (``expert`` | ``random`` | ``fixed``) or a grasp BC run /
    saved-policy directory (CheckpointError when it is neither)."""
    if policy in BASELINES:
        return make_baseline(policy, seed), policy
    from simlab.policies.grasp_bc import GraspBCPolicy

    pol = GraspBCPolicy.load(policy, execute=execute)
    return pol, f"grasp_bc/{pol.network.encoder_kind}:{policy}"


def eval_toygrasp_cli(policy: str, backends: list[str], splits: list[str], episodes: int, seed: int,
                      out: Path | None, videos: int, execute: int | None) -> dict[str, Any]:
    """``simlab eval toygrasp``: evaluate one policy in each engine; writes ``OUT/<backend>/eval_info.json``."""
    if not backends or any(b not in ENV_IDS for b in backends):
        raise ConfigError(f"--backends must list pybullet and/or mujoco, got {','.join(backends)!r}")
    if not splits:
        raise ConfigError("--splits is empty")
    for s in splits:
        episode_plan(s, max(1, episodes), seed)  # validates names and counts
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    actor, label = load_grasp_actor(policy, seed, execute)
    if out is None:
        base = Path(policy)
        out = base / "eval" if base.is_dir() else Path("runs") / f"toygrasp_eval_{policy}"
    results: dict[str, Any] = {}
    for b in backends:
        res = evaluate_grasp(actor, b, splits, episodes, seed=seed, resolution=_resolution(actor),
                             video_dir=Path(out) / b / "videos" if videos else None, videos_per_split=videos,
                             out_dir=Path(out) / b, progress=True, policy_name=label)
        results[b] = {s: {k: v for k, v in r.items() if k != "episodes"} for s, r in res.items()}
    return {"policy": label, "out": str(out), "results": results}


def _resolution(actor: Any) -> int:
    net = getattr(actor, "network", None)
    return int(net.image_size) if net is not None else 96


def markdown_table(eval_dirs: list[str]) -> str:
    """Markdown table (policy x engine x split: successes, rate, Wilson 95% CI) of the
    ``<dir>/<backend>/eval_info.json`` files under each of ``eval_dirs`` (run dirs: ``RUN/eval``)."""
    import json

    lines = ["| policy | engine | split | successes | rate | 95% CI | median closing xy error |",
             "|---|---|---|---:|---:|---|---:|"]
    for d in eval_dirs:
        root = Path(d)
        if (root / "eval").is_dir():
            root = root / "eval"
        for backend in ENV_IDS:
            p = root / backend / EVAL_INFO
            if not p.exists():
                continue
            info = json.loads(p.read_text())
            for split, r in info["aggregated"].items():
                lo, hi = max(0.0, r["success_ci95"][0]), r["success_ci95"][1]
                err = r.get("median_close_xy_error")
                err_s = "-" if err is None else f"{100 * err:.1f} cm ({r['closed_episodes']} closed)"
                lines.append(f"| {info['policy'] or d} | {backend} | {split} | {r['successes']}/{r['n_episodes']} | "
                             f"{r['success_rate']:.2f} | {lo:.2f}-{hi:.2f} | {err_s} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown_table(sys.argv[1:]))
