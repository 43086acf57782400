# Shared by the recipes: argument parsing and the scale presets.
#   $1 DATA_ROOT  a DAVIS root, or "generated" for the generated default dataset
#   $2 SCALE      paper | quick | smoke  (how long each stage trains; see below)
#   $3 OUT        where the runs go (default experiments/results/<recipe>-<scale>)
# Extra Hydra overrides for every stage can be passed in $OVERRIDES (e.g. "trainer.precision=bf16-mixed").
set -euo pipefail
PY=${PYTHON:-python}
ROOT=${1:-generated}
SCALE=${2:-quick}
case "$SCALE" in
  paper) PARENT_UPDATES=50000; CONTOUR_UPDATES=20000; ITERS=500;  DATA_SCALE=1.0; ACC=10; SWEEP="0,50,200,500,2000" ;;
  quick) PARENT_UPDATES=200;   CONTOUR_UPDATES=100;   ITERS=100;  DATA_SCALE=0.5; ACC=2;  SWEEP="0,25,100" ;;
  smoke) PARENT_UPDATES=2;     CONTOUR_UPDATES=2;     ITERS=3;    DATA_SCALE=0.5; ACC=1;  SWEEP="0,2,4" ;;
  *) echo "unknown SCALE '$SCALE' (paper | quick | smoke)" >&2; exit 2 ;;
esac
if [ "$ROOT" = generated ]; then DATA="data.root=null"; else DATA="data.root=$ROOT"; fi
COMMON="$DATA data.scale=$DATA_SCALE ${OVERRIDES:-}"
