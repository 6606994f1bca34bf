#!/usr/bin/env bash
# PPO `cpu` preset on one game (default BigFish) with 200 training levels, then the Procgen
# protocol evaluation: training levels (0-199) vs held-out levels (250+), 200 episodes each, beside
# uniform-random and stand-still play on the same levels. Writes runs/ppo_<game>_cpu/ (learning curve
# CSV/JSON/PNG, checkpoints) and runs/ppo_<game>_cpu/eval/{eval_info.json,table.md}.
# Usage: bash experiments/procgen_ppo_cpu.sh [Game-v0] [extra key=value overrides...]
#   SKIP_TRAIN=1: only evaluate an existing run (its policy/, else checkpoints/latest/policy).
set -euo pipefail
GAME=${1:-BigFish-v0}; shift || true
NAME=$(echo "${GAME%-v0}" | tr '[:upper:]' '[:lower:]' | tr '-' '_')  # CoinRun-v1 -> coinrun_v1
RUN=${RUN:-runs/ppo_${NAME}_cpu}
EPISODES=${EPISODES:-200}
N="nice -n 19 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
[ -n "${SKIP_TRAIN:-}" ] || $N .venv/bin/simlab train ppo --env simlab/$GAME --num-levels 200 --preset cpu --out $RUN --resume "$@" --json
$N .venv/bin/simlab eval transfer --policy $RUN --env simlab/$GAME --splits train,test --episodes $EPISODES \
  --videos-per-split 1 --json > $RUN/eval.json
$N .venv/bin/python - "$RUN" "simlab/$GAME" "$EPISODES" <<'PY'
import json, sys
from pathlib import Path
from simlab.policies.evaluate import evaluate
from simlab.policies.fixed import StandStill, UniformRandom
run, env, eps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
from simlab.policies.evaluate import load_policy
pol = load_policy(run / ("policy" if (run / "policy").exists() else "checkpoints/latest/policy"))
rows = {"PPO, greedy": json.loads((run / "eval.json").read_text()),
        "PPO, sampled actions": evaluate(pol, env, ["train", "test"], eps, num_envs=50, deterministic=False)}
for name, pol in (("uniform random", UniformRandom(0)), ("stand still", StandStill())):
    rows[name] = evaluate(pol, env, ["train", "test"], eps, num_envs=50)
cur = json.loads((run / "learning_curve.json").read_text())["rows"]
cpu = max(r.get("time/process_cpu_s", 0) for r in cur)
lines = [f"{env}, {eps} episodes per split (95% CI = 1.96 sd / sqrt(n)); PPO trained "
         f"{max(r['step'] for r in cur):,} steps, {cpu:.0f} CPU-s of its process", "",
         "| policy | training levels 0-199 | held-out levels 250+ | success train / held-out |",
         "|---|---:|---:|---:|"]
for name, res in rows.items():
    tr, te = res["train"], res["test"]
    sr = lambda r: "-" if r.get("success_rate") is None else f"{100 * r['success_rate']:.1f}%"
    lines.append(f"| {name} | {tr['mean_return']:.2f} ± {tr['ci95']:.2f} | {te['mean_return']:.2f} ± "
                 f"{te['ci95']:.2f} | {sr(tr)} / {sr(te)} |")
(run / "eval" ).mkdir(exist_ok=True)
(run / "eval" / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
