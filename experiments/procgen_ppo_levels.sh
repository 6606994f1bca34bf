#!/usr/bin/env bash
# Held-out return vs number of training levels (10 / 50 / 200 / unlimited) at a fixed step budget,
# PPO `cpu` preset. Each run is evaluated on its own training levels and on held-out levels 250+
# (EPISODES episodes each, 95% CI); writes runs/ppo_levels/<game>/{table.md,levels.json,levels.png}.
# Usage: bash experiments/procgen_ppo_levels.sh [Game-v0] [BUDGET]
#   REUSE200=runs/ppo_bigfish_cpu: take the 200-level point from that cpu-preset run's kept checkpoint
#   at BUDGET steps (same config and seed, constant learning rate) instead of training it again.
set -euo pipefail
GAME=${1:-BigFish-v0}
BUDGET=${2:-131072}
EPISODES=${EPISODES:-200}
NAME=$(echo "${GAME%-v0}" | tr '[:upper:]' '[:lower:]' | tr '-' '_')  # CoinRun-v1 -> coinrun_v1 (the game id)
OUT=runs/ppo_levels/$NAME
N="nice -n 19 env OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
mkdir -p $OUT
for L in 10 50 200 0; do
  POL=$OUT/L$L
  if [ "$L" = 200 ] && [ -n "${REUSE200:-}" ]; then
    POL=$REUSE200/checkpoints/step_$BUDGET/policy
  else
    $N .venv/bin/simlab train ppo --env simlab/$GAME --num-levels $L --total-timesteps $BUDGET --preset cpu \
      --out $OUT/L$L --resume eval_every=0 baseline_episodes=0 keep_checkpoints=false --json
  fi
  if [ "$L" = 0 ]; then OWN=train; else OWN=levels:0:$L; fi
  $N .venv/bin/simlab eval transfer --policy $POL --env simlab/$GAME --splits $OWN,test --episodes $EPISODES \
    --videos-per-split 0 --out $OUT/eval_L$L --json > $OUT/eval_L$L.json
done
$N .venv/bin/python - "$OUT" "simlab/$GAME" "$EPISODES" "$BUDGET" <<'PY'
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from simlab.policies.evaluate import evaluate
from simlab.policies.fixed import UniformRandom
out, env, eps, budget = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = evaluate(UniformRandom(0), env, ["test"], eps, num_envs=50)["test"]
rows = []
for L in (10, 50, 200, 0):
    res = json.loads((out / f"eval_L{L}.json").read_text())
    own, test = [v for k, v in res.items() if k != "test"][0], res["test"]
    rows.append({"levels": L or "unlimited", "own_mean": own["mean_return"], "own_ci95": own["ci95"],
                 "test_mean": test["mean_return"], "test_ci95": test["ci95"]})
(out / "levels.json").write_text(json.dumps({"env": env, "budget": budget, "episodes": eps, "rows": rows,
                                              "uniform_random_test": rnd["mean_return"]}, indent=2))
lines = [f"{env}, PPO cpu preset, {budget:,} steps per run, {eps} episodes per split (95% CI)", "",
         "| training levels | return on its training levels | return on held-out levels 250+ |", "|---|---:|---:|"]
lines += [f"| {r['levels']} | {r['own_mean']:.2f} ± {r['own_ci95']:.2f} | {r['test_mean']:.2f} ± {r['test_ci95']:.2f} |"
          for r in rows]
lines.append(f"| uniform random | | {rnd['mean_return']:.2f} ± {rnd['ci95']:.2f} |")
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
x = range(len(rows))
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.errorbar(x, [r["own_mean"] for r in rows], [r["own_ci95"] for r in rows], marker="o", capsize=3, label="own training levels")
ax.errorbar(x, [r["test_mean"] for r in rows], [r["test_ci95"] for r in rows], marker="s", capsize=3, label="held-out levels 250+")
ax.axhline(rnd["mean_return"], color="0.5", ls="--", label="uniform random (held-out)")
ax.set_xticks(list(x), [str(r["levels"]) for r in rows])
ax.set_xlabel("number of training levels"); ax.set_ylabel("mean episode return")
ax.set_title(f"{env}: PPO, {budget:,} steps per run", fontsize=9); ax.legend(fontsize=7); ax.grid(alpha=0.3)
fig.tight_layout(); fig.savefig(out / "levels.png", dpi=110)
PY
