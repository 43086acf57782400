#!/usr/bin/env bash
# Parent training on a lent GPU before / after the fast input pipeline (issue 34), in ONE device
# call: frames/s and nvidia-smi utilisation per variant. Not run yet (no GPU was lent to the
# session that wrote it); checked on the CPU with DRY=1 (prints the commands).
#
# Prepare on the CPU machine, from the repository root (packs hydra, albumentations, ... the
# ImageNet weights and 537 training frames of 25 sequences into .gpu-kit/, ignored by git):
#   bash ../shared/tools/gpu-kit/build.sh
# Then one device call:  command "bash benchmarks/gpu_parent_throughput.sh"
#                        carry [".gpu-kit"], timeout_s 560
#
# Each variant trains the parent as ../shared/weights/SOURCES.md did (strong, batch 16, 427x240,
# bf16-mixed, channels-last, 14 workers, Adam lr 5e-5, accumulate 1) twice, SHORT and LONG
# updates; the steady rate is (LONG - SHORT) x 16 frames over the difference of the two runs'
# train_seconds, so start-up (imports, cache, workers) and the one validation at the end cancel.
# nvidia-smi samples utilisation every 0.5 s; the summary averages it over the LONG run from the
# first to the last busy sample (Adam is fused in all of them: conf/optim/adam.yaml). Variants (VARIANTS="..."):
#   before        data.decode_cache=none   data.augment_on=workers   (what SOURCES.md measured)
#   cache         data.decode_cache=memory data.augment_on=workers
#   device        data.decode_cache=memory data.augment_on=device
#   pinned        device + data.pin_memory=true (not in the default list: add it if time allows)
# The LONG run's record also gives J on dog-agility (the kit's dev sequence) per variant.
# SHORT=0 LONG=6000 VARIANTS="before device" runs SOURCES.md's whole schedule each way instead
# (frames/s then includes start-up; about 4 min + 1-2 min: raise LIMIT, fits one 10-min call).
# Writes $OUT/throughput.json and $OUT/logs.tar.gz (logs, nvidia-smi CSVs, metrics.json files):
# two files, within the call's 8-file limit.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-throughput}
SHORT=${SHORT:-150}; LONG=${LONG:-600}; WORKERS=${WORKERS:-14}; BATCH=${BATCH:-16}
LIMIT=${LIMIT:-120}   # seconds per training run (a SIGTERM checkpoints and ends it)
VARIANTS=${VARIANTS:-"before cache device"}
DRY=${DRY:-0}
declare -A OPTS=(
  [before]="data.decode_cache=none data.augment_on=workers"
  [cache]="data.decode_cache=memory data.augment_on=workers"
  [device]="data.decode_cache=memory data.augment_on=device"
  [pinned]="data.decode_cache=memory data.augment_on=device data.pin_memory=true"
)
mkdir -p "$OUT/logs"
if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-python}; KIT_DATA=${KIT_DATA:-KIT_DATA} KIT_WEIGHTS=${KIT_WEIGHTS:-KIT_WEIGHTS}
  KIT_TRAIN=${KIT_TRAIN:-KIT_TRAIN}
else
  PY=python3
  source .gpu-kit/env.sh || { echo "no .gpu-kit: run ../shared/tools/gpu-kit/build.sh first" >&2; exit 3; }
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/logs/gpu.txt"
  nproc > "$OUT/logs/nproc.txt"
fi

train() {  # variant updates
  local v=$1 n=$2 dir=/tmp/parent-$1-$2
  local cmd=(timeout "$LIMIT" "$PY" -m osvos_pl +experiment=parent "data.root=$KIT_DATA"
    data.resolution=240p data.scale=1.0 "data.train_sequences=[$KIT_TRAIN]"
    "data.sequences=[dog-agility]" data.augment=strong "model.weights=$KIT_WEIGHTS"
    model.channels_last=true parent.frozen_stages=0 optim.optimizer.lr=5e-5
    "data.batch_size=$BATCH" "data.num_workers=$WORKERS" "parent.updates=$n"
    parent.accumulate=1 parent.val_every=100000 parent.checkpoint_every=100000 logger=csv
    trainer.enable_progress_bar=false ${OPTS[$v]} "hydra.run.dir=$dir")
  if [ "$DRY" = 1 ]; then echo "${cmd[*]}"; return; fi
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 500 > "$OUT/logs/smi-$v-$n.csv" &
  local smi=$!
  "${cmd[@]}" > "$OUT/logs/log-$v-$n.txt" 2>&1
  echo "rc=$?" >> "$OUT/logs/log-$v-$n.txt"
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  cp "$dir/metrics.json" "$OUT/logs/metrics-$v-$n.json" 2>/dev/null
}

for v in $VARIANTS; do
  [ "$SHORT" -gt 0 ] && train "$v" "$SHORT"
  train "$v" "$LONG"
done
[ "$DRY" = 1 ] && exit 0

"$PY" - "$OUT" "$SHORT" "$LONG" "$BATCH" $VARIANTS <<'PY'
import json, sys
from pathlib import Path
out, short, long_, batch, variants = Path(sys.argv[1]), *map(int, sys.argv[2:5]), sys.argv[5:]
logs, result = out / "logs", {"short": short, "long": long_, "batch": batch, "variants": {}}
def record(v, n):
    p = logs / f"metrics-{v}-{n}.json"
    return json.loads(p.read_text()) if p.is_file() else {}
def seconds(v, n):
    return record(v, n).get("timing", {}).get("train_seconds") if n else 0.0
def utilisation(v, n):
    rows = [line.split(",") for line in (logs / f"smi-{v}-{n}.csv").read_text().splitlines()]
    util = [float(r[1]) for r in rows if len(r) > 2 and r[1].strip().replace(".", "").isdigit()]
    busy = [i for i, u in enumerate(util) if u > 0]
    span = util[busy[0]:busy[-1] + 1] if busy else []
    return {"mean_busy_span": sum(span) / len(span) if span else None, "samples": len(util)}
for v in variants:
    s, l = seconds(v, short), seconds(v, long_)
    rate = (long_ - short) * batch / (l - s) if s is not None and l is not None and l > s else None
    result["variants"][v] = {"train_seconds": [s, l], "frames_per_s": rate,
                             "includes_start_up": short == 0,
                             "gpu_util_percent": utilisation(v, long_),
                             "dev_J_after_long": record(v, long_).get("global", {}).get("J-Mean")}
base = result["variants"].get("before", {}).get("frames_per_s")
for v, r in result["variants"].items():
    r["x_before"] = r["frames_per_s"] / base if base and r["frames_per_s"] else None
(out / "throughput.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
PY
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
