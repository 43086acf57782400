#!/usr/bin/env bash
# The paper's ablation (Table 1 rows OSVOS, -BS, -PN, -OS) end to end, then the tables.
#   experiments/ablation.sh ROOT|generated [paper|cpu|quick|smoke] [OUT]
# The protocol's data (TRAIN_ROOT, TRAIN_RES, EVAL_SPLIT, DEV_SEQ) is described in common.sh.
# PARENT=path/to/parent.ckpt reuses a parent instead of training one, CONTOUR=path/to/contour.ckpt
# a contour branch; CONTOUR_MAPS=DIR trains the
# contour branch on the maps of the scored sequences (no mask involved) and adds the row that
# snaps to them directly; FIT_SEQ=a,b,c scores the parent (-OS) on some of its own training
# sequences; REFERENCE=DIR adds a row for a folder of published masks (<seq>/NNNNN.png),
# labelled $REFERENCE_LABEL.
# On DAVIS 2016: experiments/ablation.sh /data/DAVIS paper
# The official split on 2 cores (about 2 h 40 min; experiments/results/ablation-davis2016-cpu):
#   TRAIN_ROOT=../shared/data/davis2016-train-240p TRAIN_RES=240p EVAL_SPLIT=trainval \
#   DEV_SEQ=bmx-bumps,dance-jump,dog-agility,drift-turn,motocross-bumps FIT_SEQ=bear,surf,train \
#   CONTOUR_MAPS=../shared/data/davis-sample/Contours/480p REFERENCE=../shared/data/osvos-published/davis2016-val \
#   experiments/ablation.sh ../shared/data/davis-sample cpu
source "$(dirname "$0")/common.sh"
OUT=${3:-experiments/results/ablation-$SCALE}
mkdir -p "$OUT"
set -x
P=${PARENT:-}
if [ -z "$P" ]; then
  step parent $PY -m osvos_pl +experiment=parent $PARENT_ARGS $PARENT_DATA parent.updates=$PARENT_UPDATES parent.accumulate=$ACC hydra.run.dir=$OUT/parent
  P=$OUT/parent/parent.ckpt
  [ -f $OUT/parent/checkpoints/best.ckpt ] && P=$OUT/parent/checkpoints/best.ckpt
fi
# The contour branch: distilled from the maps of the scored sequences (soft targets, no mask)
# when CONTOUR_MAPS is given, else trained on the mask boundaries of the training sequences.
if [ -n "$MAPS" ]; then
  CONTOUR_DATA="$COMMON data.train_split=$EVAL_SPLIT contour.source=maps contour.maps_root=$MAPS"
else
  CONTOUR_DATA="$PARENT_DATA"
fi
C=${CONTOUR:-}
if [ -z "$C" ]; then
  step contour $PY -m osvos_pl +experiment=contour $CONTOUR_ARGS $CONTOUR_DATA contour.updates=$CONTOUR_UPDATES contour.accumulate=$ACC hydra.run.dir=$OUT/contour
  C=$OUT/contour/contour.ckpt
fi
RUNS="$OUT/osvos"
step OSVOS $PY -m osvos_pl +experiment=online $COMMON online.iterations=$ITERS parent_ckpt=$P contour_ckpt=$C $SNAP_ARGS hydra.run.dir=$OUT/osvos
if [ -n "$MAPS" ]; then
  step "OSVOS (contour maps)" $PY -m osvos_pl +experiment=online $COMMON online.iterations=$ITERS parent_ckpt=$P contour_maps=$MAPS hydra.run.dir=$OUT/osvos-maps
  RUNS="$RUNS $OUT/osvos-maps"
fi
step -BS $PY -m osvos_pl +experiment=online_bs $COMMON online.iterations=$ITERS parent_ckpt=$P hydra.run.dir=$OUT/bs
step -PN $PY -m osvos_pl +experiment=online_pn $COMMON online.iterations=$ITERS hydra.run.dir=$OUT/pn
step -OS $PY -m osvos_pl +experiment=online_os $COMMON parent_ckpt=$P hydra.run.dir=$OUT/os
RUNS="$RUNS $OUT/bs $OUT/pn $OUT/os"
REF=()
if [ -n "${REFERENCE:-}" ]; then
  SEQS=$($PY -c "from osvos_pl.data.davis import DAVISIndex as I; print(' '.join(I('$ROOT').resolve(None, '$EVAL_SPLIT')))")
  $PY -m osvos_pl.evaluate --pred $REFERENCE --gt $ROOT --sequences $SEQS --out $OUT/reference.json
  LABEL=${REFERENCE_LABEL:-"OSVOS, the authors' published masks"}
  REF=(--reference "$LABEL=$OUT/reference.json")
fi
if [ -n "${FIT_SEQ:-}" ]; then  # does the parent fit what it learnt from? (-OS on training sequences)
  step "-OS on training sequences" $PY -m osvos_pl +experiment=online_os $TRAIN_DATA data.resolution=$TRAIN_RES data.scale=$TRAIN_SCALE data.sequences=[$FIT_SEQ] ${OVERRIDES:-} parent_ckpt=$P hydra.run.dir=$OUT/fit/os-train
  $PY -m osvos_pl.report $OUT/fit --table sequences --format md --out $OUT/fit.md
fi
$PY -m osvos_pl.report $RUNS "${REF[@]}" --table ablation --format md --out $OUT/ablation.md
$PY -m osvos_pl.report $RUNS "${REF[@]}" --table ablation --format latex --out $OUT/ablation.tex
$PY -m osvos_pl.report $RUNS "${REF[@]}" --table choice --format md --out $OUT/by-sequence.md
$PY -m osvos_pl.report $RUNS --table sequences --format md --out $OUT/sequences.md
cat $OUT/ablation.md $OUT/steps.md
