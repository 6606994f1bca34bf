"""The shortcut probe: does a goal-conditioned grasp policy follow the viewpoint instead of the instruction?

One call (``simlab eval shortcut-probe --out DIR``) runs, per variant of the
fragmented dataset (:mod:`~simlab.envs.toygrasp.shortcut`):

1. collect the demos (``scene="shortcut"``; skipped when complete),
2. train a goal-conditioned grasp BC policy on them (the target mask would
   give the answer away, so the policy never gets it): ``encoder="meanpool"``
   (the image, the proprioception and the target colour one-hot; does not
   localise) or ``encoder="slots"`` (one detection-pooled slot per object mask,
   every toy's, and the colour one-hot choosing among them by attention,
   :mod:`~simlab.policies.grasp_slots`; the demos then record per-object masks),
3. evaluate it in four conditions, ``episodes`` each: the two seen pairings
   (view A + "red", view B + "blue") and the two probes (view A + "blue",
   view B + "red"), counting per episode whether it lifted the instructed
   toy (the env's success), the other toy (>= 10 cm above its rest at any
   step), or neither, and, more sensitive when grasps fail, which toy was
   nearer the hand (horizontally) when it first closed the gripper; for the
   slot policy also whether its attention in the first frame put more than
   half its weight on the instructed toy's slot.

Variants: ``fragmented`` (no overlap), ``overlap`` (``overlap`` of the demos
carry the other sub-dataset's task) and ``view-aug`` (random viewpoint per
demo). The scripted expert (reads the geometry, so it grasps the instructed
toy whatever the view) is run on the same probe episodes as the ceiling.
Writes ``DIR/report.json`` and ``DIR/report.md``; every stage resumes.

Probe episodes: condition episode ``i`` resets with seed ``100000 + seed + i``,
target ``toy/(2 i mod toys)`` and distractor the toy half the list away (as
in the data), so all policies and variants see the same scenes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from simlab.data import write_json_atomic
from simlab.errors import ConfigError

CONDITIONS = (("A", "red", "seen"), ("B", "blue", "seen"), ("A", "blue", "probe"), ("B", "red", "probe"))
"""(view, instructed colour, kind) of the evaluation conditions."""
LIFT = 0.10
"""m; an object counts as grasped once its COM is this far above its rest height."""


def probe_episode(env: Any, actor: Any, view: str, color: str, i: int, seed: int, toys: int
                  ) -> dict[str, Any]:
    """One probe episode; returns ``{"instructed", "other", "neither"}`` flags and the episode's objects."""
    from simlab.envs.toygrasp.shortcut import VIEW_EYES, goal_onehot, probe_options

    objects = [f"toy/{k}" for k in range(toys)]
    target = objects[(2 * i) % toys]
    distractor = objects[(objects.index(target) + toys // 2) % toys]
    opts = probe_options(target, distractor, color, VIEW_EYES[view][1])
    obs, info = env.reset(seed=100_000 + seed + i, options=opts)
    actor.reset()
    if hasattr(actor, "goal"):
        actor.goal = goal_onehot(color)
    lift, other = 0.0, 0.0
    success = False
    went_for = None
    attended: float | None = None
    for t in range(50):
        a = np.asarray(actor.act(obs), np.float32)
        if t == 0 and getattr(actor, "last_attention", None) is not None and "objects" in obs:
            attended = attention_on_target(actor.last_attention, obs["objects"], obs["mask"])
        if went_for is None and a[4] > 0:  # the first closing action: which toy is under the hand?
            tcp = env.tcp_target[:2]
            d_t = np.linalg.norm(tcp - env.sim.body_pose()[0][:2])
            d_o = np.linalg.norm(tcp - env.sim.distractor_pose()[0][:2])
            went_for = "instructed" if d_t <= d_o else "other"
        obs, _, term, _, info = env.step(a)
        lift, other = max(lift, info["lift"]), max(other, info["distractor_lift"])
        success = success or bool(info["is_success"])
        if term:
            break
    instructed = success or lift >= LIFT
    grabbed_other = other >= LIFT
    return {"seed": 100_000 + seed + i, "target": target, "distractor": distractor, "view": view, "color": color,
            "instructed": bool(instructed), "other": bool(grabbed_other and not instructed),
            "neither": bool(not instructed and not grabbed_other), "max_lift": lift, "max_other_lift": other,
            "closed_at_instructed": went_for == "instructed", "closed_at_other": went_for == "other",
            "attention_on_instructed": attended,
            "attended_instructed": attended is not None and attended > 0.5,
            "attended_other": attended is not None and attended < 0.5}


def attention_on_target(attention: np.ndarray, objects: np.ndarray, mask: np.ndarray) -> float:
    """The attention weight on the instructed toy's slot.

    Args:
        attention: ``(K,)`` weights over the slots (the slot encoder's image order).
        objects: ``(K, H, W)`` the observation's per-object masks.
        mask: ``(H, W[, 1])`` the target's mask (the probe's ground truth, never the policy's input).

    Returns:
        The weight of the slot whose mask overlaps the target's most (0 when the target is hidden).
    """
    from simlab.envs.toygrasp.env import position_order

    objs = np.asarray(objects)[position_order(objects)] > 0
    target = np.asarray(mask).reshape(objs.shape[1:]) > 0
    overlap = (objs & target).sum((1, 2))
    return float(attention[int(overlap.argmax())]) if overlap.max() > 0 else 0.0


COUNTS = ("instructed", "other", "neither", "closed_at_instructed", "closed_at_other", "attended_instructed",
          "attended_other")
"""Per-condition episode counts of :func:`evaluate_probe`."""


def evaluate_probe(actor: Any, episodes: int, seed: int = 0, toys: int = 250, resolution: int = 96
                   ) -> dict[str, Any]:
    """The four conditions (:data:`CONDITIONS`) with ``episodes`` each, in pybullet.

    Returns ``{"A/red": {"kind", "instructed", "other", "neither", ..., "n", "episodes": [...]}, ...}``
    (counts of episodes, :data:`COUNTS`; the ``attended_*`` counts stay 0 for a policy without slots).
    """
    from simlab.envs.toygrasp.env import ToyGraspEnv

    slots = bool(getattr(getattr(actor, "network", None), "slots", 0))
    env = ToyGraspEnv("pybullet", resolution=resolution, object_masks=slots)
    if hasattr(actor, "bind"):
        actor.bind(env)
    out: dict[str, Any] = {}
    try:
        for view, color, kind in CONDITIONS:
            eps = [probe_episode(env, actor, view, color, i, seed, toys) for i in range(episodes)]
            out[f"{view}/{color}"] = {"kind": kind, "n": len(eps),
                                      **{k: int(sum(e[k] for e in eps)) for k in COUNTS},
                                      "episodes": eps}
    finally:
        env.close()
    return out


def run_shortcut_probe(out: str | Path, demos: int = 200, steps: int = 1000, episodes: int = 20,
                       overlap: float = 0.2, toys: int = 250, seed: int = 0, variants: tuple[str, ...] = (
                           "fragmented", "overlap", "view-aug"), bc_overrides: tuple[str, ...] = (),
                       resolution: int = 96, progress: bool = True, noise: float = 0.0,
                       encoder: str = "meanpool") -> dict[str, Any]:
    """Run the probe (module docstring) into ``out``; returns the report dict (also ``report.json``).

    ``noise``: DART noise of the collected demos (:class:`~simlab.envs.toygrasp.dataset.GraspCollectConfig`).
    ``encoder``: meanpool | slots (module docstring; detpool would be handed the answer).
    """
    from simlab.envs.toygrasp.dataset import GraspCollectConfig, collect_toygrasp
    from simlab.policies.grasp_bc import GraspBCPolicy, grasp_bc_config, train_grasp_bc
    from simlab.policies.grasp_eval import ExpertActor
    from simlab.stats import wilson

    settings = {"fragmented": (0.0, False), "overlap": (overlap, False), "view-aug": (0.0, True)}
    for v in variants:
        if v not in settings:
            raise ConfigError(f"unknown shortcut-probe variant {v!r}; one of {', '.join(settings)}")
    if encoder not in ("meanpool", "slots"):
        raise ConfigError(f"the shortcut probe's encoder must be meanpool or slots (detpool is given the "
                          f"target's mask), got {encoder!r}")
    if demos < 2 or steps < 1 or episodes < 1:
        raise ConfigError(f"need demos >= 2, steps >= 1, episodes >= 1; got {demos}, {steps}, {episodes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"resolution": resolution, "demos": demos, "steps": steps, "episodes_per_condition": episodes,
                              "overlap": overlap, "toys": toys, "seed": seed, "noise": noise,
                              "bc_overrides": list(bc_overrides), "encoder": encoder, "variants": {}}
    done_path = out / "probe_results.json"
    done = json.loads(done_path.read_text()) if done_path.exists() else {}
    if done and done.get("encoder", "meanpool") != encoder:
        raise ConfigError(f"{out} holds a probe of the {done.get('encoder', 'meanpool')} encoder, not {encoder}")
    done["encoder"] = encoder
    for v in variants:
        ov, aug = settings[v]
        t0 = time.perf_counter()
        if v not in done:
            cfg = GraspCollectConfig(backend="pybullet", toys=toys, demos=demos, seed=seed, scene="shortcut",
                                     overlap=ov, view_aug=aug, demos_per_shard=50,
                                     resolution=resolution, noise=noise, object_masks=encoder == "slots")
            data = out / f"data_{v}"
            collect_toygrasp(cfg, data, resume=True, progress=progress)
            run = out / f"run_{v}"
            bc = grasp_bc_config([], [f"encoder={encoder}", f"data={data}", f"steps={steps}", f"seed={seed}",
                                      *bc_overrides])
            train_grasp_bc(bc, run, resume=run.exists(), progress=progress)
            pol = GraspBCPolicy.load(run / "policy")
            res = evaluate_probe(pol, episodes, seed, toys, resolution)
            done[v] = {"overlap": ov, "view_aug": aug, "seconds": time.perf_counter() - t0, "conditions": res}
            write_json_atomic(done_path, done)
        report["variants"][v] = done[v]
    if "expert" not in done:
        done["expert"] = {"conditions": evaluate_probe(ExpertActor(), episodes, seed, toys, resolution)}
        write_json_atomic(done_path, done)
    report["expert"] = done["expert"]
    for entry in [*report["variants"].values(), report["expert"]]:
        for c in entry["conditions"].values():
            for k in ("instructed", "other"):
                c[f"{k}_ci95"] = list(wilson(c[k], c["n"]))
    write_json_atomic(out / "report.json", report)
    (out / "report.md").write_text(format_probe(report))
    return report


def format_probe(report: dict[str, Any]) -> str:
    """Markdown table: per variant and condition, instructed / other (the shortcut) / neither (and, for
    the slot encoder, which toy the first frame's attention chose)."""
    slots = report.get("encoder") == "slots"
    head = ("| policy | condition | kind | lifted instructed toy | lifted other toy | neither | closed nearer "
            "the instructed toy | closed nearer the other toy |")
    lines = [head + (" attended the instructed toy | attended the other toy |" if slots else ""),
             "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if slots else "")]
    rows = [(f"BC, {v}", e) for v, e in report["variants"].items()] + [("scripted expert", report["expert"])]
    order = {f"{view}/{color}": i for i, (view, color, _) in enumerate(CONDITIONS)}
    for label, entry in rows:
        for cond, c in sorted(entry["conditions"].items(), key=lambda kv: order.get(kv[0], len(order))):
            n = c["n"]
            att = (f" {c.get('attended_instructed', 0)}/{n} | {c.get('attended_other', 0)}/{n} |"
                   if slots and label != "scripted expert" else " - | - |" if slots else "")
            lines.append(f"| {label} | view {cond.replace('/', ', goal ')} | {c['kind']} | {c['instructed']}/{n} | "
                         f"{c['other']}/{n} | {c['neither']}/{n} | {c['closed_at_instructed']}/{n} | "
                         f"{c['closed_at_other']}/{n} |" + att)
    return "\n".join(lines) + "\n"
