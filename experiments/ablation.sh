#!/usr/bin/env bash
# The paper's ablation (Table 1 rows OSVOS, -BS, -PN, -OS) end to end, then the table.
#   experiments/ablation.sh DATA_ROOT|generated [paper|cpu|quick|smoke] [OUT]
# PARENT=path/to/parent.ckpt reuses a parent instead of training one; CONTOUR_MAPS=DIR trains the
# contour branch on those maps and adds the row that snaps to them directly; DEV_SEQ=<train
# sequence> selects the parent on it.
# On DAVIS 2016: experiments/ablation.sh /data/DAVIS paper
source "$(dirname "$0")/common.sh"
OUT=${3:-experiments/results/ablation-$SCALE}
set -x
P=${PARENT:-}
if [ -z "$P" ]; then
  $PY -m osvos_pl +experiment=parent $PARENT_ARGS $COMMON parent.updates=$PARENT_UPDATES parent.accumulate=$ACC hydra.run.dir=$OUT/parent
  P=$OUT/parent/parent.ckpt
  [ -f $OUT/parent/checkpoints/best.ckpt ] && P=$OUT/parent/checkpoints/best.ckpt
fi
# The contour branch: trained on the maps (soft targets) when CONTOUR_MAPS is given, else on the
# mask boundaries of the training split.
if [ -n "$MAPS" ]; then CONTOUR_SOURCE="contour.source=maps contour.maps_root=$MAPS"; else CONTOUR_SOURCE=""; fi
$PY -m osvos_pl +experiment=contour $CONTOUR_ARGS $COMMON $CONTOUR_SOURCE contour.updates=$CONTOUR_UPDATES contour.accumulate=$ACC hydra.run.dir=$OUT/contour
C=$OUT/contour/contour.ckpt
$PY -m osvos_pl +experiment=online $COMMON online.iterations=$ITERS parent_ckpt=$P contour_ckpt=$C $SNAP_ARGS hydra.run.dir=$OUT/osvos
if [ -n "$MAPS" ]; then
  $PY -m osvos_pl +experiment=online $COMMON online.iterations=$ITERS parent_ckpt=$P contour_maps=$MAPS hydra.run.dir=$OUT/osvos-maps
fi
$PY -m osvos_pl +experiment=online_bs $COMMON online.iterations=$ITERS parent_ckpt=$P hydra.run.dir=$OUT/bs
$PY -m osvos_pl +experiment=online_pn $COMMON online.iterations=$ITERS hydra.run.dir=$OUT/pn
$PY -m osvos_pl +experiment=online_os $COMMON parent_ckpt=$P hydra.run.dir=$OUT/os
$PY -m osvos_pl.report $OUT --table ablation --format md --out $OUT/ablation.md
$PY -m osvos_pl.report $OUT --table ablation --format latex --out $OUT/ablation.tex
$PY -m osvos_pl.report $OUT --table sequences --format md --out $OUT/sequences.md
cat $OUT/ablation.md
