# Shared by the recipes: argument parsing, the scale presets and the protocol's data.
#   $1 ROOT       the evaluated DAVIS root, or "generated" for the generated default dataset
#   $2 SCALE      paper | cpu | quick | smoke  (how long each stage trains; see below)
#   $3 OUT        where the runs go (default experiments/results/<recipe>-<scale>)
# The paper's protocol trains on one set of sequences and scores another:
#   TRAIN_ROOT    where the parent learns (default ROOT: one DAVIS root with both splits), at
#   TRAIN_RES     its resolution folder (default 480p; 240p for ../shared/data/davis2016-train-240p)
#   EVAL_SPLIT    the scored split of ROOT (default val; trainval for all ten sample sequences)
#   DEV_SEQ       comma-separated TRAIN_ROOT sequences held out of the parent: it validates on
#                 them and keeps checkpoints/best.ckpt by their J&F (model selection on
#                 training data, never on the scored split); dev.sh chooses one-shot settings
#                 on them
# PARENT_UPDATES, CONTOUR_UPDATES, ITERS, DATA_SCALE, ACC and SWEEP override the preset's values.
# Extra Hydra overrides for every stage can be passed in $OVERRIDES (e.g. "trainer.precision=bf16-mixed").
set -euo pipefail
PY=${PYTHON:-python}
ROOT=${1:-generated}
SCALE=${2:-quick}
case "$SCALE" in
  paper) P_UPD=50000; C_UPD=20000; IT=500; DS=1.0; A=10; SW="0,50,200,500,2000"; PA=""; CA=""; OA="" ;;
  cpu)   P_UPD=5000;  C_UPD=400;   IT=100; DS=0.3; A=1;  SW="0,25,50,100,200"
         # 2 cores: VGG stages 1-3 kept at ImageNet, colour/zoom augmentation, Adam at 1e-4
         # (experiments/results/dev-davis2016-train-cpu/README.md: how it was chosen)
         PA="parent.frozen_stages=3 data.augment=strong optim.optimizer.lr=1e-4 parent.val_every=1000 parent.checkpoint_every=500"
         CA="optim.optimizer.lr=1e-4"
         # the contour branch sees frames at 0.6 (twice data.scale): a map made at 0.3 and
         # upsampled has blurred edges to snap to
         OA="online.contour_scale=0.6" ;;
  quick) P_UPD=200;   C_UPD=100;   IT=100; DS=0.5; A=2;  SW="0,25,100"; PA=""; CA=""; OA="" ;;
  smoke) P_UPD=2;     C_UPD=2;     IT=3;   DS=0.5; A=1;  SW="0,2,4"; PA=""; CA=""; OA="" ;;
  *) echo "unknown SCALE '$SCALE' (paper | cpu | quick | smoke)" >&2; exit 2 ;;
esac
# Each preset value can be overridden from the environment, e.g. ITERS=50 DATA_SCALE=0.25.
PARENT_UPDATES=${PARENT_UPDATES:-$P_UPD}; CONTOUR_UPDATES=${CONTOUR_UPDATES:-$C_UPD}
ITERS=${ITERS:-$IT}; DATA_SCALE=${DATA_SCALE:-$DS}; ACC=${ACC:-$A}; SWEEP=${SWEEP:-$SW}
if [ "$ROOT" = generated ]; then DATA="data.root=null"; else DATA="data.root=$ROOT"; fi
TRAIN_ROOT=${TRAIN_ROOT:-$ROOT}; TRAIN_RES=${TRAIN_RES:-480p}; EVAL_SPLIT=${EVAL_SPLIT:-val}
if [ "$TRAIN_ROOT" = generated ]; then TRAIN_DATA="data.root=null"; else TRAIN_DATA="data.root=$TRAIN_ROOT"; fi
# the scale at which a TRAIN_RES frame reaches the network at the evaluated (480p) input size
TRAIN_SCALE=$($PY -c "print(round($DATA_SCALE * 480 / ${TRAIN_RES%p}, 6))")
COMMON="$DATA data.scale=$DATA_SCALE data.eval_split=$EVAL_SPLIT ${OVERRIDES:-}"
# The parent: with DEV_SEQ it trains on TRAIN_ROOT's train split without those sequences and is
# validated (and selected) on them; without, it trains on TRAIN_ROOT and is validated on the
# scored split (a curve only: the last checkpoint is used).
PARENT_ARGS="$PA"; CONTOUR_ARGS="$CA"; SNAP_ARGS="$OA"
if [ -n "${DEV_SEQ:-}" ]; then
  TRAIN_SEQS=$(cut -d/ -f4 "$TRAIN_ROOT/ImageSets/$TRAIN_RES/train.txt" | sort -u | grep -vxF "$(echo "$DEV_SEQ" | tr , '\n')" | paste -sd,)
  PARENT_DATA="$TRAIN_DATA data.resolution=$TRAIN_RES data.scale=$TRAIN_SCALE data.train_sequences=[$TRAIN_SEQS] data.sequences=[$DEV_SEQ] parent.keep_best=true ${OVERRIDES:-}"
else
  PARENT_DATA="$COMMON data.train_root=${TRAIN_ROOT/#generated/null} data.train_resolution=$TRAIN_RES"
fi
# Contour maps (a DAVIS-layout folder, e.g. $ROOT/Contours/480p): the contour branch learns from
# them, and an extra OSVOS row snaps to them directly.
MAPS=${CONTOUR_MAPS:-}

# step NAME CMD...: run a stage and append its wall time to $OUT/steps.md
step() {
  local name=$1 start=$SECONDS
  shift
  [ -f "$OUT/steps.md" ] || printf '| step | wall |\n|---|---:|\n' > "$OUT/steps.md"
  "$@"
  local s=$((SECONDS - start))
  printf '| %s | %d min %02d s |\n' "$name" $((s / 60)) $((s % 60)) >> "$OUT/steps.md"
}
