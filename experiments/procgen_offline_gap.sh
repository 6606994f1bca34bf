#!/usr/bin/env bash
# The offline generalization gap at CPU scale (Mediratta et al. 2023, gen_dgrl's three datasets):
#   expert     = the PPO run's final policy (actions sampled from its softmax)
#   mixed      = final policy on half the env slots, an early checkpoint on the other half
#   suboptimal = the early checkpoint
# TRANS transitions each from the 200 training levels; BC, CQL and IQL (TorchRL) on each; every policy
# evaluated on training levels 0-199 and held-out levels 250+ (EPISODES episodes, 95% CI) beside
# online PPO and uniform-random play. Writes data/ppo_<game>_<kind>/, runs/ppo_offline/<game>/ and
# runs/ppo_offline/<game>/table.md.
# Usage: bash experiments/procgen_offline_gap.sh [Game-v0] [EARLY_STEP]
#   env: TRANS (50000) STEPS (gradient steps, 1500) EPISODES (200) KINDS ("expert mixed suboptimal")
#        ALGOS ("bc cql iql") PPO (runs/ppo_<game>_cpu) EXPERT (final) OUT (runs/ppo_offline/<game>)
#        DATA (data/ppo_<game>, suffixed _<kind>) EXTRA (more key=value for train offline)
set -euo pipefail
GAME=${1:-BigFish-v0}
EARLY=${2:-131072}
NAME=$(echo "${GAME%-v0}" | tr '[:upper:]' '[:lower:]' | tr '-' '_')  # CoinRun-v1 -> coinrun_v1 (the game id)
PPO=${PPO:-runs/ppo_${NAME}_cpu}
EXPERT=${EXPERT:-final}
OUT=${OUT:-runs/ppo_offline/$NAME}
DATA=${DATA:-data/ppo_$NAME}
TRANS=${TRANS:-50000}; STEPS=${STEPS:-1500}; EPISODES=${EPISODES:-200}
KINDS=${KINDS:-expert mixed suboptimal}; ALGOS=${ALGOS:-bc cql iql}
N="nice -n 19 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
mkdir -p $OUT
declare -A POLICY=([expert]="$PPO@$EXPERT" [mixed]="$PPO@$EXPERT,$PPO@$EARLY" [suboptimal]="$PPO@$EARLY")
for KIND in $KINDS; do
  D=${DATA}_${KIND}
  $N .venv/bin/simlab collect procgen --game $NAME --policy "${POLICY[$KIND]}" --levels 0:200 \
    --transitions $TRANS --out $D --resume --json
  for ALGO in $ALGOS; do
    $N .venv/bin/simlab train offline --algo $ALGO --data $D --out $OUT/${KIND}_$ALGO --resume \
      steps=$STEPS eval_episodes=$EPISODES ${EXTRA:-} --json > $OUT/${KIND}_$ALGO.json
  done
done
$N .venv/bin/python - "$OUT" "simlab/$GAME" "$EPISODES" "$PPO" "$TRANS" "$STEPS" <<'PY'
import json, sys
from pathlib import Path
from simlab.policies.evaluate import evaluate
from simlab.policies.fixed import UniformRandom
out, env, eps, ppo, trans, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5], sys.argv[6]
def fmt(m, c): return f"{m:.2f} ± {c:.2f}"
lines = [f"{env}: offline policies trained on {int(trans):,} transitions from levels 0-199 ({steps} gradient "
         f"steps), {eps} greedy episodes per split (95% CI)", "",
         "| policy | data | training levels 0-199 | held-out levels 250+ |", "|---|---|---:|---:|"]
if (ppo / "eval.json").exists():
    e = json.loads((ppo / "eval.json").read_text())
    lines.append(f"| online PPO (behaviour policy, final) | - | {fmt(e['train']['mean_return'], e['train']['ci95'])} | "
                 f"{fmt(e['test']['mean_return'], e['test']['ci95'])} |")
for f in sorted(out.glob("*_*.json")):
    kind, algo = f.stem.split("_", 1)
    if kind not in ("expert", "mixed", "suboptimal"):  # e.g. procgen_offline_diversity.sh's runs
        continue
    m = json.loads(f.read_text())
    lines.append(f"| {algo.upper()} | {kind} | {fmt(m['eval/train/mean_return'], m['eval/train/ci95'])} | "
                 f"{fmt(m['eval/test/mean_return'], m['eval/test/ci95'])} |")
r = evaluate(UniformRandom(0), env, ["train", "test"], eps, num_envs=50)
lines.append(f"| uniform random | - | {fmt(r['train']['mean_return'], r['train']['ci95'])} | "
             f"{fmt(r['test']['mean_return'], r['test']['ci95'])} |")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
