# Shared by the recipes: argument parsing and the scale presets.
#   $1 DATA_ROOT  a DAVIS root, or "generated" for the generated default dataset
#   $2 SCALE      paper | cpu | quick | smoke  (how long each stage trains; see below)
#   $3 OUT        where the runs go (default experiments/results/<recipe>-<scale>)
# PARENT_UPDATES, CONTOUR_UPDATES, ITERS, DATA_SCALE, ACC and SWEEP override the preset's values.
# Extra Hydra overrides for every stage can be passed in $OVERRIDES (e.g. "trainer.precision=bf16-mixed").
set -euo pipefail
PY=${PYTHON:-python}
ROOT=${1:-generated}
SCALE=${2:-quick}
case "$SCALE" in
  paper) P_UPD=50000; C_UPD=20000; IT=500; DS=1.0; A=10; SW="0,50,200,500,2000"; PA=""; CA=""; OA="" ;;
  cpu)   P_UPD=3000;  C_UPD=400;   IT=100; DS=0.3; A=1;  SW="0,25,50,100,200"
         # few training sequences on 2 cores: keep VGG stages 1-3 at ImageNet, colour/zoom
         # augmentation, Adam at 1e-4 (chosen on held-out train sequences, results/ablation-davis-sample-cpu)
         PA="parent.frozen_stages=3 data.augment=strong optim.optimizer.lr=1e-4 parent.val_every=500"
         CA="optim.optimizer.lr=1e-4"
         # the contour branch sees frames at 0.6 (twice data.scale): snapping to a map made at
         # 0.3 and upsampled gained 1.3 J&F points on train sequences, at 0.6 4.7
         OA="online.contour_scale=0.6" ;;
  quick) P_UPD=200;   C_UPD=100;   IT=100; DS=0.5; A=2;  SW="0,25,100"; PA=""; CA=""; OA="" ;;
  smoke) P_UPD=2;     C_UPD=2;     IT=3;   DS=0.5; A=1;  SW="0,2,4"; PA=""; CA=""; OA="" ;;
  *) echo "unknown SCALE '$SCALE' (paper | cpu | quick | smoke)" >&2; exit 2 ;;
esac
# Each preset value can be overridden from the environment, e.g. ITERS=50 DATA_SCALE=0.25.
PARENT_UPDATES=${PARENT_UPDATES:-$P_UPD}; CONTOUR_UPDATES=${CONTOUR_UPDATES:-$C_UPD}
ITERS=${ITERS:-$IT}; DATA_SCALE=${DATA_SCALE:-$DS}; ACC=${ACC:-$A}; SWEEP=${SWEEP:-$SW}
if [ "$ROOT" = generated ]; then DATA="data.root=null"; else DATA="data.root=$ROOT"; fi
# The parent's model selection: with DEV_SEQ set, the parent trains on the train split without it
# and keeps checkpoints/best.ckpt by J&F on it (a held-out *training* sequence, never val).
PARENT_ARGS="$PA"; CONTOUR_ARGS="$CA"; SNAP_ARGS="$OA"
if [ -n "${DEV_SEQ:-}" ]; then
  TRAIN_SEQS=$(cut -d/ -f4 "$ROOT/ImageSets/480p/train.txt" | sort -u | grep -vx "$DEV_SEQ" | paste -sd,)
  PARENT_ARGS="$PARENT_ARGS data.train_sequences=[$TRAIN_SEQS] data.sequences=[$DEV_SEQ] parent.keep_best=true parent.val_every=250"
fi
# Contour maps (a DAVIS-layout folder, e.g. $ROOT/Contours/480p): the contour branch learns from
# them, and an extra OSVOS row snaps to them directly.
MAPS=${CONTOUR_MAPS:-}
COMMON="$DATA data.scale=$DATA_SCALE ${OVERRIDES:-}"
