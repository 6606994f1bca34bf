#!/usr/bin/env bash
# BC vs offline RL (CQL, IQL through TorchRL) on Maze expert data from the BFS oracle (TRANS transitions
# from levels 0-199), evaluated (greedy) on training levels 0-199 and held-out levels 250+ beside
# uniform-random play. Writes data/ppo_maze_oracle/, runs/ppo_offline/maze/oracle_<algo>/ and
# runs/ppo_offline/maze/table.md.
# Usage: bash experiments/procgen_offline_oracle.sh   (env: TRANS 30000, STEPS 1000, EPISODES 200, ALGOS)
set -euo pipefail
TRANS=${TRANS:-30000}; STEPS=${STEPS:-1000}; EPISODES=${EPISODES:-200}; ALGOS=${ALGOS:-bc cql iql}
OUT=runs/ppo_offline/maze; D=data/ppo_maze_oracle
N="nice -n 19 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
mkdir -p $OUT
$N .venv/bin/simlab collect procgen --game maze --policy oracle --levels 0:200 --transitions $TRANS --out $D --resume --json
for ALGO in $ALGOS; do
  $N .venv/bin/simlab train offline --algo $ALGO --data $D --out $OUT/oracle_$ALGO --resume \
    steps=$STEPS eval_episodes=$EPISODES --json > $OUT/oracle_$ALGO.json
done
$N .venv/bin/python - "$OUT" simlab/Maze-v0 "$EPISODES" "$TRANS" "$STEPS" <<'PY'
import json, sys
from pathlib import Path
from simlab.policies.evaluate import evaluate
from simlab.policies.fixed import UniformRandom
out, env, eps, trans, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
f = lambda m, c, s=None: f"{m:.2f} ± {c:.2f}" + ("" if s is None else f" ({100 * s:.1f}%)")
lines = [f"{env}: {trans:,} BFS-oracle transitions from levels 0-199, {steps} gradient steps, {eps} greedy "
         "episodes per split; mean return ± 95% CI (success rate)", "",
         "| policy | training levels 0-199 | held-out levels 250+ |", "|---|---:|---:|"]
for p in sorted(out.glob("oracle_*.json")):
    m = json.loads(p.read_text())
    lines.append(f"| {p.stem.split('_', 1)[1].upper()} | {f(m['eval/train/mean_return'], m['eval/train/ci95'], m.get('eval/train/success_rate'))} | "
                 f"{f(m['eval/test/mean_return'], m['eval/test/ci95'], m.get('eval/test/success_rate'))} |")
r = evaluate(UniformRandom(0), env, ["train", "test"], eps, num_envs=50)
lines.append(f"| uniform random | {f(r['train']['mean_return'], r['train']['ci95'], r['train']['success_rate'])} | "
             f"{f(r['test']['mean_return'], r['test']['ci95'], r['test']['success_rate'])} |")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
