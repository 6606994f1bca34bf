#!/usr/bin/env bash
# Diversity vs size with offline RL (Mediratta et al. 2023, section 5 of the issue): the same number
# of expert transitions from 10, 50 and 200 training levels; BC and IQL (the best offline RL method
# on CoinRun-v1's expert data, docs/procgen_rl.md section 6) on each; every policy evaluated on
# training levels 0-199 and held-out levels 250+. The 200-level row reuses the expert data and runs
# of experiments/procgen_offline_gap.sh when they exist (same TRANS, STEPS, EPISODES).
# Writes data/ppo_<game>_expert_L<levels>/, runs/ppo_offline/<game>/diversity_L<levels>_<algo>(.json)
# and runs/ppo_offline/<game>/diversity.md.
# Usage: bash experiments/procgen_offline_diversity.sh [Game-v1]
#   env: TRANS (50000) STEPS (1500) EPISODES (100) LEVELS ("10 50 200") ALGOS ("bc iql")
#        PPO (runs/ppo_<game>_cpu) OUT (runs/ppo_offline/<game>) DATA (data/ppo_<game>_expert)
set -euo pipefail
GAME=${1:-CoinRun-v1}
NAME=$(echo "${GAME%-v0}" | tr '[:upper:]' '[:lower:]' | tr '-' '_')  # CoinRun-v1 -> coinrun_v1
PPO=${PPO:-runs/ppo_${NAME}_cpu}
OUT=${OUT:-runs/ppo_offline/$NAME}
DATA=${DATA:-data/ppo_${NAME}_expert}
TRANS=${TRANS:-50000}; STEPS=${STEPS:-1500}; EPISODES=${EPISODES:-100}
LEVELS=${LEVELS:-10 50 200}; ALGOS=${ALGOS:-bc iql}
N="nice -n 19 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
mkdir -p "$OUT"
for L in $LEVELS; do
  D=${DATA}_L$L
  if [ "$L" = 200 ] && [ -d "$DATA" ]; then D=$DATA; fi  # the gap table's expert data: levels 0-199
  $N .venv/bin/simlab collect procgen --game "$NAME" --policy "$PPO@final" --levels 0:$L \
    --transitions "$TRANS" --out "$D" --resume --json
  for ALGO in $ALGOS; do
    R=$OUT/diversity_L${L}_$ALGO
    if [ "$L" = 200 ] && [ -f "$OUT/expert_$ALGO.json" ]; then cp "$OUT/expert_$ALGO.json" "$R.json"; continue; fi
    $N .venv/bin/simlab train offline --algo "$ALGO" --data "$D" --out "$R" --resume \
      steps=$STEPS eval_episodes=$EPISODES --json > "$R.json"
  done
done
.venv/bin/python - "$OUT" "$GAME" "$TRANS" "$STEPS" "$EPISODES" <<'PY'
import json, sys
from pathlib import Path
out, game, trans, steps, eps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def fmt(m, k): return f"{m[f'eval/{k}/mean_return']:.2f} ± {m[f'eval/{k}/ci95']:.2f}"
lines = [f"simlab/{game}: {trans:,} expert transitions from the first N training levels, {steps} gradient steps, "
         f"{eps} greedy episodes per split (95% CI)", "",
         "| algorithm | training levels in the data | training levels 0-199 | held-out levels 250+ |", "|---|---:|---:|---:|"]
rows = []
for f in out.glob("diversity_L*_*.json"):
    lv, algo = f.stem[len("diversity_L"):].split("_", 1)
    rows.append((algo, int(lv), json.loads(f.read_text())))
for algo, lv, m in sorted(rows, key=lambda r: (r[0], r[1])):
    lines.append(f"| {algo.upper()} | {lv} | {fmt(m, 'train')} | {fmt(m, 'test')} |")
(out / "diversity.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
