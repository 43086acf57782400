#!/usr/bin/env bash
# Every setting chosen on training sequences, never on the scored split: a parent trained
# without DEV_SEQ (selected on them), then one-shot variants fine-tuned on the first frame of
# each DEV_SEQ sequence and scored on the rest of it, then one choice table.
#   DEV_SEQ=a,b,c experiments/dev.sh TRAIN_ROOT [paper|cpu|quick|smoke] [OUT]
# TRAIN_RES as in common.sh; PARENT=path/to/parent.ckpt reuses a parent (the ablation recipe's
# with the same DEV_SEQ is the same run); CONTOUR=path/to/contour.ckpt adds the snapping rows.
# The committed run (experiments/results/dev-davis2016-train-cpu):
#   DEV_SEQ=bmx-bumps,dance-jump,dog-agility,drift-turn,motocross-bumps TRAIN_RES=240p \
#   experiments/dev.sh ../shared/data/davis2016-train-240p cpu
export TRAIN_ROOT=$1
source "$(dirname "$0")/common.sh"
OUT=${3:-experiments/results/dev-$SCALE}
mkdir -p "$OUT"
: "${DEV_SEQ:?DEV_SEQ=comma-separated training sequences to choose settings on}"
set -x
P=${PARENT:-}
if [ -z "$P" ]; then
  step parent $PY -m osvos_pl +experiment=parent $PARENT_ARGS $PARENT_DATA parent.updates=$PARENT_UPDATES parent.accumulate=$ACC hydra.run.dir=$OUT/parent
  P=$OUT/parent/checkpoints/best.ckpt
fi
DEV="$TRAIN_DATA data.resolution=$TRAIN_RES data.scale=$TRAIN_SCALE data.sequences=[$DEV_SEQ] ${OVERRIDES:-}"
# NAME | overrides of the -BS run (online.* and optim.*), each one change from "default": the
# one-shot recipe as it was before this protocol (6 fixed paper views; the shipped default is now
# shift12, the winner here)
LARGE=$($PY -c "print(round($TRAIN_SCALE * 5 / 3, 6))")  # 5/3 the input side: 0.3 -> 0.5 on 480p
CHOICES=(
  "os|online.iterations=0"
  "os-prior|online.iterations=0 online.calibration=prior"
  "default|online.augment=null"
  "prior|online.calibration=prior"
  "lr1e-4|optim.finetune_lr=1e-4"
  "l2sp1e-3|online.l2sp=1e-3"
  "l2sp1e-2|online.l2sp=1e-2"
  "shift12|online.augment=shift online.views=12"
  "zoom12|online.augment=zoom online.views=12"
  # combinations with the winner, and a larger input (427x240 = data.scale 0.5 on 480p)
  "shift12-l2sp1e-3|online.augment=shift online.views=12 online.l2sp=1e-3"
  "shift12-lr1e-4|online.augment=shift online.views=12 optim.finetune_lr=1e-4"
  "os-large|online.iterations=0 data.scale=$LARGE"
  "shift12-large|online.augment=shift online.views=12 data.scale=$LARGE"
  # the parent keeps a say in every frame (online.parent_weight, shipped 0.3 with a parent; these
  # rows are the shipped views with the weight set, at the recipe's scale and the larger one)
  "blend0|online.augment=shift online.views=12 online.parent_weight=0"
  "blend0.5|online.augment=shift online.views=12 online.parent_weight=0.5"
  "blend0-large|online.augment=shift online.views=12 online.parent_weight=0 data.scale=$LARGE"
  "blend0.3-large|online.augment=shift online.views=12 online.parent_weight=0.3 data.scale=$LARGE"
)
# JOBS=2 runs two choices at a time, one thread each (seconds per sequence then compare only
# among themselves); ONLY="name ..." runs a subset
JOBS=${JOBS:-1}
[ "$JOBS" -gt 1 ] && export OMP_NUM_THREADS=1 && DEV="$DEV num_threads=1"
run_choice() {
  local name=${1%%|*} args=${1#*|}
  local base="parent_ckpt=$P online.iterations=$ITERS"  # unless the choice sets them itself
  [[ $args == *parent_ckpt=* ]] && base=${base/parent_ckpt=$P/}
  [[ $args == *online.iterations=* ]] && base=${base/online.iterations=$ITERS/}
  step "$name" $PY -m osvos_pl +experiment=online_bs $DEV $base $args hydra.run.dir=$OUT/oneshot/$name > $OUT/oneshot/$name.log 2>&1
}
mkdir -p $OUT/oneshot
running=0
for choice in "${CHOICES[@]}"; do
  name=${choice%%|*}
  [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]] && continue
  run_choice "$choice" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
RAN=()
for c in "${CHOICES[@]}"; do  # every choice run must have finished with a record
  [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${c%%|*} "* ]] && continue
  [ -f $OUT/oneshot/${c%%|*}/metrics.json ] || { echo "choice ${c%%|*} has no record: see $OUT/oneshot/${c%%|*}.log" >&2; exit 1; }
  RAN+=("$OUT/oneshot/${c%%|*}")
done
$PY -m osvos_pl.report "${RAN[@]}" --table choice --format md --out $OUT/choice.md
cat $OUT/choice.md $OUT/steps.md
