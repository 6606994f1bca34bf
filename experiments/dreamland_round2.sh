#!/usr/bin/env bash
# Dream Land, 2026-11-30 (docs/results.md, "Why the dream could not rank controllers"): one world model
# trained on 100k transitions (mirrored), then controller settings compared on it by forking the run.
set -e
S=.venv/bin/simlab
P=.venv/bin/python
V2="rnn_epochs=6 popsize=16 episodes_per_candidate=16 common_starts=false eval_dream_episodes=64 upper_generations=20 counterfactual_branches=12"
$S train dreamland --out runs/v2 --resume $V2
for f in "crn:common_starts=true" "h100:max_dream_steps=100" "pop:common_starts=true popsize=32 episodes_per_candidate=32"; do
  name=${f%%:*}; ov=${f#*:}
  [ -d runs/v2$name ] || $P experiments/dreamland_fork.py runs/v2 runs/v2$name ${V2//common_starts=false/} $ov
  $S train dreamland --out runs/v2$name --resume ${V2//common_starts=false/} $ov
done
$S train dreamland --out runs/v4 --resume   # the new default
