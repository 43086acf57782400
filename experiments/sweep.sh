#!/usr/bin/env bash
# Quality against fine-tuning effort: J&F vs online.iterations and vs seconds per sequence.
#   experiments/sweep.sh DATA_ROOT|generated [paper|quick|smoke] [OUT]
# Reuses $OUT/parent/parent.ckpt if it exists (e.g. from the ablation recipe: PARENT=...).
source "$(dirname "$0")/common.sh"
OUT=${3:-experiments/results/sweep-$SCALE}
P=${PARENT:-$OUT/parent/parent.ckpt}
set -x
if [ ! -f "$P" ]; then
  $PY -m osvos_pl +experiment=parent $PARENT_ARGS $COMMON parent.updates=$PARENT_UPDATES parent.accumulate=$ACC hydra.run.dir=$OUT/parent
  P=$OUT/parent/parent.ckpt
fi
$PY -m osvos_pl -m +experiment=online_bs $COMMON parent_ckpt=$P online.iterations=$SWEEP hydra.sweep.dir=$OUT/sweep
$PY -m osvos_pl.report $OUT/sweep --table sweep --format md --out $OUT/sweep.md --plot $OUT/sweep.png
cat $OUT/sweep.md
