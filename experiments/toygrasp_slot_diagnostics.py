"""Where does a slot policy of the shortcut probe go wrong? (docs/toygrasp.md, stop 20)

    python experiments/toygrasp_slot_diagnostics.py PROBE_DIR [--variants fragmented,overlap,view-aug]
        [--episodes 20]

For each variant's run (``PROBE_DIR/run_<variant>``, trained by ``simlab eval shortcut-probe
--encoder slots``), on the probe's scenes (condition episode ``i`` as in
:func:`simlab.policies.grasp_shortcut.probe_episode`), from the first frame only (no rollout):

- the attention weight on the instructed toy's slot (the target mask is the label, never an input);
- the policy's first chunk (summed first 5 moves, dx and dy in action units) against the scripted
  expert's first 5 moves from the same start: Pearson r and mean |error|, with
  (``soft``) the policy's own attention, (``hard``) the instructed toy's slot alone, an oracle
  selector that isolates the head, and (``hard, view goal``) the same with the head given the goal
  of the view's training task instead of the instruction (does the head read the view from the
  goal input?).

With ``--trace``: the probe episodes themselves rolled out with the policy
(:func:`~simlab.policies.grasp_shortcut.probe_episode`'s scenes), the attention weight on the instructed
toy at every chunk prediction, averaged over the approach (steps before the gripper first closes) and
the fraction of predictions attending it (> 0.5).

A head that maps a slot to a move well in the seen conditions but not in the probes, even with the
oracle selector, has tied its image-to-table mapping to the appearance of the object it attends to
(in the fragmented data the colour of the grasped toy tells the viewpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from simlab.envs.toygrasp.env import ToyGraspEnv, position_order
from simlab.envs.toygrasp.expert import ScriptedExpert
from simlab.envs.toygrasp.shortcut import SUB_TASK, VIEW_EYES, goal_onehot, probe_options
from simlab.policies.grasp_bc import load_grasp_network
from simlab.policies.grasp_shortcut import CONDITIONS

MOVES = 5
"""Moves summed into the first-chunk displacement."""


def first_moves(net, obs: dict[str, np.ndarray], goal: np.ndarray, head_goal: np.ndarray, hard: bool
                ) -> tuple[np.ndarray, float]:
    """Summed first ``MOVES`` (dx, dy) of the network's first chunk on ``obs`` (history: the frame twice),
    and the attention weight on the target's slot."""
    t = net.context
    rgb = torch.from_numpy(obs["rgb"])[None].expand(t, -1, -1, -1)
    om = torch.from_numpy(obs["objects"])[None].expand(t, -1, -1, -1)
    prop = torch.from_numpy(obs["proprio"])[None].expand(t, -1)[None]
    with torch.no_grad():
        slots = net.encode(rgb, om)[None]  # (1, T, K, D), image order
        objs = obs["objects"][position_order(obs["objects"])] > 0
        ti = int((objs & (obs["mask"][..., 0] > 0)).sum((1, 2)).argmax())
        f, att = net.selector(slots, torch.from_numpy(goal)[None])
        if hard:
            f = slots[:, :, ti]
        p = (prop - net.proprio_mean) / net.proprio_std
        x = torch.cat([torch.cat([f, p], -1).flatten(1), torch.from_numpy(head_goal)[None]], 1)
        a = torch.tanh(net.head(x)).view(1, net.chunk, 5)[0]
    return a[:MOVES, :2].sum(0).numpy(), float(att[0, -1, ti])


def attention_trace(net, run: Path, episodes: int, toys: int) -> None:
    """Print, per condition, the attention on the instructed toy over the approach of each probe episode."""
    from simlab.policies.grasp_bc import GraspBCPolicy
    from simlab.policies.grasp_shortcut import attention_on_target

    pol = GraspBCPolicy.load(run / "policy")
    env = ToyGraspEnv("pybullet", resolution=net.image_size, object_masks=True)
    try:
        for view, color, kind in CONDITIONS:
            means, fracs = [], []
            for i in range(episodes):
                objects = [f"toy/{k}" for k in range(toys)]
                target = objects[(2 * i) % toys]
                distractor = objects[(objects.index(target) + toys // 2) % toys]
                obs, _ = env.reset(seed=100_000 + i, options=probe_options(target, distractor, color,
                                                                           VIEW_EYES[view][1]))
                pol.reset()
                pol.goal = goal_onehot(color)
                ws = []
                for _ in range(50):
                    planned = len(pol.queue)
                    a = pol.act(obs)
                    if planned == 0:  # a chunk was predicted on this frame
                        ws.append(attention_on_target(pol.last_attention, obs["objects"], obs["mask"]))
                    if a[4] > 0:
                        break
                    obs, _, term, _, _ = env.step(a)
                    if term:
                        break
                means.append(np.mean(ws))
                fracs.append(np.mean(np.array(ws) > 0.5))
            print(f"| view {view}, goal {color} | {kind} | {np.mean(means):.2f} | {np.mean(fracs):.2f} | "
                  f"{sum(m > 0.5 for m in means)}/{episodes} |", flush=True)
    finally:
        env.close()


def score(expert: np.ndarray, pred: np.ndarray) -> str:
    """``r(dx) r(dy)``, mean abs error ``dx dy`` of ``(N, 2)`` predictions against the expert's."""
    r = [np.corrcoef(expert[:, k], pred[:, k])[0, 1] for k in range(2)]
    e = np.abs(expert - pred).mean(0)
    return f"r {r[0]:+.2f} / {r[1]:+.2f}, err {e[0]:.2f} / {e[1]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probe_dir", type=Path)
    ap.add_argument("--variants", default="fragmented,overlap,view-aug")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--toys", type=int, default=250)
    ap.add_argument("--trace", action="store_true", help="the attention over the approach of probe rollouts")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.trace:
        print("| condition | kind | attention on instructed, mean over the approach | predictions attending it "
              "| episodes attending it on average |")
        print("|---|---|---:|---:|---:|")
        for variant in args.variants.split(","):
            run = args.probe_dir / f"run_{variant}"
            if (run / "policy").exists():
                print(f"| **{variant}** | | | | |")
                attention_trace(load_grasp_network(run / "policy"), run, args.episodes, args.toys)
        return
    print("| variant | condition | kind | attention on instructed (mean) | first move, soft: r dx / dy, mean abs err dx / dy "
          "| hard (oracle slot) | hard, head given the view's goal |")
    print("|---|---|---|---:|---|---|---|")
    for variant in args.variants.split(","):
        run = args.probe_dir / f"run_{variant}"
        if not (run / "policy").exists():
            continue
        net = load_grasp_network(run / "policy")
        env = ToyGraspEnv("pybullet", resolution=net.image_size, object_masks=True)
        try:
            for view, color, kind in CONDITIONS:
                rows: dict[str, list[np.ndarray]] = {"expert": [], "soft": [], "hard": [], "view": []}
                weights = []
                for i in range(args.episodes):
                    objects = [f"toy/{k}" for k in range(args.toys)]
                    target = objects[(2 * i) % args.toys]
                    distractor = objects[(objects.index(target) + args.toys // 2) % args.toys]
                    obs, _ = env.reset(seed=100_000 + i,
                                       options=probe_options(target, distractor, color, VIEW_EYES[view][1]))
                    g, gv = goal_onehot(color), goal_onehot(SUB_TASK[view])
                    m, w = first_moves(net, obs, g, g, hard=False)
                    rows["soft"].append(m)
                    weights.append(w)
                    rows["hard"].append(first_moves(net, obs, g, g, hard=True)[0])
                    rows["view"].append(first_moves(net, obs, g, gv, hard=True)[0])
                    expert, moves = ScriptedExpert(env), []
                    for _ in range(MOVES):
                        a = expert.act(obs)
                        moves.append(a[:2])
                        obs, *_ = env.step(a)
                    rows["expert"].append(np.sum(moves, 0))
                ex = np.array(rows["expert"])
                print(f"| {variant} | view {view}, goal {color} | {kind} | {np.mean(weights):.2f} | "
                      f"{score(ex, np.array(rows['soft']))} | {score(ex, np.array(rows['hard']))} | "
                      f"{score(ex, np.array(rows['view']))} |", flush=True)
        finally:
            env.close()


if __name__ == "__main__":
    main()
