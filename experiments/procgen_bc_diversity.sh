#!/usr/bin/env bash
# BC on the same number of expert transitions from 10 vs 200 maze levels.
set -e
S=.venv/bin/simlab
for L in 10 200; do
  $S collect procgen --game maze --policy oracle --levels 0:$L --transitions 50000 --out data/maze-oracle-$L --resume --json
  $S train bc --data data/maze-oracle-$L --env simlab/Maze-v0 --out runs/exp/bc-$L --resume epochs=4 --json
  $S eval transfer --policy runs/exp/bc-$L --env simlab/Maze-v0 --splits levels:0:10,train,test --episodes 200 --videos-per-split 1 --json > runs/exp/bc-$L.eval.json
done
echo BC_DONE
