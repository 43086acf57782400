"""Time the OSVOS pipeline against its fp32 eager reference: ``python benchmarks/bench_pipeline.py``.

Needs the package importable (``pip install -e .``, as the README installs it), and for the
fine-tuning and DataModule figures the real DAVIS sample (``../shared/data/davis-sample``
beside the checkout, or ``--root``).

In one process, on whatever device it runs (CUDA when there is one, else the CPU), at each
``--sizes`` input size (240p = 240x427, 480p = 480x854, 1080p = 1080x1922: the 480p DAVIS frame
scaled by 0.5, 1 and 2.25, as ``data.scale`` would):

- **peak**: GFLOP/s of a large matmul and of a 3x3 256->256 conv at 120x214 (NCHW and
  channels_last), fp32 and bf16 — the machine's attainable peak, the yardstick for the rest;
- **train**: one parent training step — ``OSVOSNet`` forward with the four side outputs, the
  class-balanced loss on all five logits (deep supervision), backward and an Adam step over the
  project's parameter groups — in ms per frame at batch 1 and larger batches;
- **infer**: ``forward_fused`` + sigmoid + resize to the native size, as ``segment_stream`` runs
  it per batch under ``torch.inference_mode``, ms per frame at batch 1 and 4;
- **finetune**: the project's real ``osvos_pl.stages.finetune.finetune`` (a Lightning Trainer
  built from ``trainer.*``) on car-shadow's first frame for ``--iterations`` updates, steady
  iterations/s, and the seconds ``online.iterations=500`` would take;
- **data**: the parent training loader (``DAVISDataModule.train_dataloader``, paper augmentation)
  on the real sample with 2 workers and with 0, frames/s, against the training step's frames/s;
- **memory**: peak RSS of each measurement (Linux: the high-water mark is reset before each one;
  elsewhere the process peak) and ``torch.cuda.max_memory_allocated`` on CUDA.

Each of train / infer / finetune runs in several variants: ``fp32`` (plain fp32 eager, NCHW: the
reference), ``channels_last``, ``bf16`` (autocast), ``bf16+cl`` and, with ``--compile``,
``torch.compile`` twins. Every figure is given as a speed-up over the reference at the same
size and as a fraction of the measured peak of its dtype (FLOPs counted with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device). Where the CPU has no native
bf16 (no AVX512-BF16 / AMX: oneDNN then emulates it, 10-50x slower than fp32), the bf16
variants are skipped and the peak section shows why. Sizes above 480p measure the reference
and the fastest variant of the 480p run only. ``--all-variants`` measures everything.

Prints a table per size and a summary against the issue's targets (training step >= 2.5x,
inference >= 2.5x, fine-tuning to 500 iterations >= 3x, DataModule never the bottleneck), and
writes everything to ``--out`` (JSON). Timings are the best of ``--repeat`` runs after one
warm-up; the JSON keeps every run.

The pieces live in ``benchmarks/pipeline/``: ``variants`` (sizes, the switches), ``timing``
(wall time, peak memory), ``peak`` (GFLOP/s, FLOPs per frame), ``measure`` (the four
measurements), ``bench`` (the run, section by section) and ``report`` (ratios, tables, summary).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402
from pipeline.bench import Bench  # noqa: E402
from pipeline.measure import measure_train  # noqa: E402
from pipeline.variants import SIZES, Variant  # noqa: E402

__all__ = ["Variant", "main", "measure_train"]  # bench_data.py times the training step with these

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared/data/davis-sample"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        default=list(SIZES), help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--repeat", type=int, default=2,
                        help="timed runs after one warm-up (best of them is reported); sizes "
                             "above 480p use at most 2")
    parser.add_argument("--iterations", type=int, default=8,
                        help="fine-tuning updates measured (above 480p a third, at least 3)")
    parser.add_argument("--train-batches", type=lambda s: [int(x) for x in s.split(",")],
                        default=None, help="training batch sizes (default 1,2 on CPU, 1,4,8 on "
                                           "CUDA; batch 1 only above 480p on CPU)")
    parser.add_argument("--infer-batches", type=lambda s: [int(x) for x in s.split(",")],
                        default=None, help="inference batch sizes (default 1,4; batch 1 only "
                                           "above 480p on CPU)")
    parser.add_argument("--data-frames", type=int, default=30, help="frames read per loader run")
    parser.add_argument("--sections", type=lambda s: [x.strip() for x in s.split(",")],
                        default=["peak", "train", "infer", "finetune", "data"],
                        help="comma-separated subset of peak,train,infer,finetune,data")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile variants of fp32 and of the fast path (slow warm-up)")
    parser.add_argument("--all-variants", action="store_true",
                        help="measure every variant at every size, emulated bf16 included")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 60p and 120p, 1 timed run, 3 fine-tuning iterations")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, one per core); on a machine "
                             "shared with other work, 2 threads on 2 busy cores run several "
                             "times slower than 1")
    parser.add_argument("--root", type=Path,
                        default=Path(os.environ.get("DAVIS_SAMPLE", DEFAULT_ROOT)),
                        help="DAVIS-layout root with blackswan and car-shadow (the real sample)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="VGG16 weights for the fine-tuning runs (default: random backbone; "
                             "the time does not depend on the weights)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/pipeline-<host>.json)")
    return parser


def parse_args() -> tuple[argparse.Namespace, torch.device]:
    """The options with their defaults filled in (they depend on the device and ``--quick``)."""
    parser = _parser()
    args = parser.parse_args()
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeat, args.iterations, args.data_frames = 1, 3, 10
        args.train_batches = args.train_batches or [1, 2]
        args.infer_batches = args.infer_batches or [1, 2]
    if args.train_batches is None:
        args.train_batches = [1, 4, 8] if device.type == "cuda" else [1, 2]
    if args.infer_batches is None:
        args.infer_batches = [1, 4]
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / f"pipeline-{socket.gethostname()}.json"
    return args, device


def main() -> None:
    args, device = parse_args()
    start = time.perf_counter()
    result = Bench(args, device).run()
    result["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(args.out)
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
