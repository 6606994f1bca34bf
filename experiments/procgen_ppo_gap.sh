#!/usr/bin/env bash
# PPO (IMPALA-CNN) on 200 maze levels; train vs test return. Small CPU scale.
set -e
S=.venv/bin/simlab
$S train ppo --env simlab/Maze-v0 --num-levels 200 --total-timesteps 100000 --out runs/exp/ppo-maze-200 --resume \
  num_envs=64 n_steps=128 batch_size=1024 n_epochs=2 eval_every=0 checkpoint_every=32768 torch_threads=1 --json
$S eval transfer --policy runs/exp/ppo-maze-200 --env simlab/Maze-v0 --splits train,test --episodes 200 --videos-per-split 1 --json > runs/exp/ppo-maze-200.eval.json
echo PPO_DONE
