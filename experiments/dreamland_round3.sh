#!/usr/bin/env bash
# Dream Land round 3, 2026-11-30 (docs/results.md, "What moved the controller, on one world model"):
# controller settings compared on round 2's world models (runs/v4) by forking the run, then the new default.
set -e
S=.venv/bin/simlab
P=.venv/bin/python
R2="danger_starts=0 upper_generations=10"   # round 2's defaults
[ -d runs/v4 ] || $S train dreamland --out runs/v4 --resume $R2
for f in "p64:popsize=64" "d16:danger_starts=16" "d16p64:danger_starts=16 popsize=64" "d32:danger_starts=32" \
         "d16g60:danger_starts=16 generations=60"; do
  name=${f%%:*}; ov=${f#*:}
  # later overrides win: round 2's settings, then the fork's
  [ -d runs/v4$name ] || $P experiments/dreamland_fork.py runs/v4 runs/v4$name $R2 $ov torch_threads=1
  OMP_WAIT_POLICY=PASSIVE $S train dreamland --out runs/v4$name --resume $R2 $ov torch_threads=1
done
$S train dreamland --out runs/v5 --resume   # the new default
