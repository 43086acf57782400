#!/usr/bin/env bash
# Quality against fine-tuning effort: J&F vs online.iterations and vs seconds per sequence.
#   experiments/sweep.sh ROOT|generated [paper|cpu|quick|smoke] [OUT]
# Reuses PARENT=path/to/parent.ckpt (e.g. the ablation recipe's) or $OUT/parent/parent.ckpt if it
# exists; the protocol's data (TRAIN_ROOT, TRAIN_RES, EVAL_SPLIT, DEV_SEQ) as in common.sh.
source "$(dirname "$0")/common.sh"
OUT=${3:-experiments/results/sweep-$SCALE}
mkdir -p "$OUT"
P=${PARENT:-$OUT/parent/parent.ckpt}
set -x
if [ ! -f "$P" ]; then
  step parent $PY -m osvos_pl +experiment=parent $PARENT_ARGS $PARENT_DATA parent.updates=$PARENT_UPDATES parent.accumulate=$ACC hydra.run.dir=$OUT/parent
  P=$OUT/parent/parent.ckpt
  [ -f $OUT/parent/checkpoints/best.ckpt ] && P=$OUT/parent/checkpoints/best.ckpt
fi
step "sweep ($SWEEP)" $PY -m osvos_pl -m +experiment=online_bs $COMMON parent_ckpt=$P online.iterations=$SWEEP hydra.sweep.dir=$OUT/sweep
$PY -m osvos_pl.report $OUT/sweep --table sweep --format md --out $OUT/sweep.md --plot $OUT/sweep.png
cat $OUT/sweep.md $OUT/steps.md
