"""How fast the parent's training loader feeds the network: ``python benchmarks/bench_data.py``.

Measures, in one process on whatever machine it runs on, with the CPU model, its flags and the
load average recorded beside every number:

- **loader**: frames/s that the parent's training loader delivers (decode + augmentation +
  collate; ``DAVISDataModule.train_dataloader``'s dataset, sampler and worker options) at 240p
  (``../shared/data/davis2016-train-240p``, ``data.resolution=240p``, all 30 sequences) and 480p
  (``../shared/data/davis-sample``, its old ``train`` split: throughput data only), for each
  ``data.augment``, with 0 workers (in the main process: one worker's rate without transfer)
  and ``--workers`` (total), in the variants
  ``before`` (``decode_cache=none augment_on=workers``, the default),
  ``memory`` / ``mmap`` (``decode_cache=memory|mmap``) and
  ``device`` (``decode_cache=memory augment_on=device``: workers decode and draw parameters;
  the batched warp/recolour is timed apart, on this machine's CPU, as ``device augment``).
  The variants are interleaved round by round (``--rounds``) so that a neighbour's load hits all
  of them alike; each ratio is the median over rounds of that round's ratio to ``before``;
- **model**: one parent training step on synthetic batches (forward with the side outputs, the
  class-balanced loss on all five logits, backward, Adam) at the loader's batch size and
  resolution, bf16 autocast where the CPU has it natively, channels-last — the rate the
  loader has to meet — and the Adam step alone, ``foreach`` against ``fused``.

Writes every run to ``--out`` (JSON) and prints a table. Run torch single-threaded
(``OMP_NUM_THREADS=1``) on a shared machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from osvos_pl.data.datamodule import DAVISDataModule  # noqa: E402
from osvos_pl.data.datasets import TrainingDraws  # noqa: E402
from osvos_pl.data.workers import loader_options  # noqa: E402
from osvos_pl.utils.hardware import bf16_is_native  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = {  # size: (root, resolution, train split)
    "240p": (SHARED / "data/davis2016-train-240p", "240p", "train"),
    "480p": (SHARED / "data/davis-sample", "480p", "train"),
}
AUGMENTS = ("paper", "pytorch", "strong", "shift", "none")
VARIANTS = {  # name: (decode_cache, augment_on)
    "before": ("none", "workers"),
    "memory": ("memory", "workers"),
    "mmap": ("mmap", "workers"),
    "device": ("memory", "device"),
}
KEY_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def machine() -> dict:
    """CPU model, flags (from lscpu / cpuinfo), cores, torch and its threads."""
    model, flags = "", []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = fields.get("Model name", "").strip()
        flags = fields.get("Flags", "").split()
        model += f" (family {fields.get('CPU family', '?').strip()}, model " \
                 f"{fields.get('Model', '?').strip()})"
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"host": socket.gethostname(), "cpu": model, "cpu_count": os.cpu_count(),
            "key_flags": [f for f in KEY_FLAGS if f in flags], "flags": flags,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "bf16_native": bf16_is_native("cpu")}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def build(size: str, augment: str, variant: str, batch: int, cache_dir: str) -> dict:
    """The parent's training dataset as ``train_dataloader`` builds it (decoding the cache)."""
    root, resolution, split = DATA[size]
    decode_cache, augment_on = VARIANTS[variant]
    dm = DAVISDataModule(root=str(root), resolution=resolution, train_split=split, scale=1.0,
                         batch_size=batch, num_workers=0, augment=augment,
                         normalization="imagenet", validate="none", cache_dir=cache_dir,
                         decode_cache=decode_cache, augment_on=augment_on)
    start = time.perf_counter()
    dataset = dm.train_dataloader().dataset
    return {"dataset": dataset, "augment": dm.device_augment, "batch": batch,
            "setup_s": time.perf_counter() - start}


def loader_rate(built: dict, workers: int, batches: int, offset: int) -> dict:
    """Frames/s over ``batches`` batches after the first one (worker start-up excluded);
    ``offset`` starts each measurement at new draws."""
    ds, batch = built["dataset"], built["batch"]
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, pin_memory=False,
                        sampler=TrainingDraws(ds, batch, seed=1337, start_batch=offset),
                        **loader_options(workers))
    before = load()
    it = iter(loader)
    raw = next(it)
    start = time.perf_counter()
    for _ in range(batches):
        raw = next(it)
    seconds = time.perf_counter() - start
    del it, loader
    gc.collect()
    return {"frames_per_s": batches * batch / seconds, "seconds": seconds, "load": before,
            "raw": raw}


def augment_rate(built: dict, raw: dict, repeat: int = 3) -> dict:
    """The device path's batched augmentation, timed on this CPU (best of ``repeat``)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        built["augment"](raw)
        times.append(time.perf_counter() - start)
    return {"frames_per_s": built["batch"] / min(times), "ms_per_batch": 1000 * min(times)}


def measure_loaders(args, cache_dir: str, log) -> list[dict]:
    rows = []
    for size in args.sizes:
        for augment in args.augments:
            batch = 1 if augment == "paper" else args.batch  # paper: frames of 3 sizes
            variants = [v for v in args.variants if not (v == "device" and augment == "paper")]
            built = {v: build(size, augment, v, batch, cache_dir) for v in variants}
            for v in variants:
                log(f"{size} {augment:7s} {v:7s} set-up {built[v]['setup_s']:6.1f} s")
            for r in range(args.rounds):
                for workers in (0, args.workers):
                    for v in variants:  # interleaved: a neighbour's load hits every variant
                        n = max(2, args.frames // batch)
                        m = loader_rate(built[v], workers, n, offset=r * (n + 1))
                        row = {"size": size, "augment": augment, "variant": v,
                               "workers": workers, "batch": batch, "round": r,
                               "frames_per_s": m["frames_per_s"], "load": m["load"],
                               "setup_s": built[v]["setup_s"]}
                        if v == "device":
                            row["device_augment"] = augment_rate(built[v], m["raw"])
                        rows.append(row)
                        extra = (f"  device augment {row['device_augment']['frames_per_s']:7.1f}"
                                 " frames/s" if v == "device" else "")
                        log(f"{size} {augment:7s} {v:7s} {workers} workers round {r}: "
                            f"{m['frames_per_s']:8.1f} frames/s  load {m['load']}{extra}")
            del built
            gc.collect()
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per size / augment / workers / variant: median frames/s and the median over rounds of
    the ratio to ``before`` in the same round."""
    out = []
    keys = sorted({(r["size"], r["augment"], r["workers"]) for r in rows})
    for size, augment, workers in keys:
        group = [r for r in rows if (r["size"], r["augment"], r["workers"]) ==
                 (size, augment, workers)]
        base = {r["round"]: r["frames_per_s"] for r in group if r["variant"] == "before"}
        for variant in dict.fromkeys(r["variant"] for r in group):
            mine = [r for r in group if r["variant"] == variant]
            entry = {"size": size, "augment": augment, "workers": workers, "variant": variant,
                     "frames_per_s": statistics.median(r["frames_per_s"] for r in mine),
                     "x_before": statistics.median(r["frames_per_s"] / base[r["round"]]
                                                   for r in mine if r["round"] in base)}
            if variant == "device":
                entry["device_augment_frames_per_s"] = statistics.median(
                    r["device_augment"]["frames_per_s"] for r in mine)
            out.append(entry)
    return out


def measure_model(args, log) -> list[dict]:
    """The parent's training step on synthetic batches (bench_pipeline.measure_train), and the
    Adam step alone, foreach against fused, interleaved."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_pipeline import Variant, measure_train

    native = bf16_is_native("cpu")
    variant = Variant("bf16+cl" if native else "channels_last", native, True)
    rows = []
    for size, batch in zip(args.sizes, args.model_batches, strict=True):
        hw = (240, 427) if size == "240p" else (480, 854)
        before = load()
        r = measure_train(variant, hw, batch, torch.device("cpu"), 1, args.model_repeat)
        best = min(r["times"])
        rows.append({"size": size, "batch": batch, "variant": variant.name, "step_s": best,
                     "frames_per_s": batch / best, "times": r["times"],
                     "warmup_times": r["warmup_times"], "load": before})
        log(f"model {size} batch {batch} {variant.name}: {best:7.2f} s/step = "
            f"{batch / best:6.2f} frames/s  load {before}")
    rows.append(adam_step(log))
    return rows


def adam_step(log, repeat: int = 5) -> dict:
    """ms of one Adam step over the OSVOS network's parameters, foreach vs fused, interleaved."""
    from osvos_pl.model.factory import build_network

    net = build_network(weights=None, init="port")
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    optims = {fused: torch.optim.Adam(net.parameters(), lr=1e-5, foreach=not fused, fused=fused)
              for fused in (False, True)}
    times: dict = {False: [], True: []}
    for _ in range(repeat + 1):
        for fused, opt in optims.items():
            start = time.perf_counter()
            opt.step()
            times[fused].append(time.perf_counter() - start)
    row = {"size": "-", "variant": "adam_step", "foreach_ms": 1000 * min(times[False][1:]),
           "fused_ms": 1000 * min(times[True][1:]), "load": load(),
           "parameters": sum(p.numel() for p in net.parameters())}
    log(f"Adam step over {row['parameters'] / 1e6:.1f} M parameters: foreach "
        f"{row['foreach_ms']:.1f} ms, fused {row['fused_ms']:.1f} ms")
    return row


def table(summary: list[dict], model: list[dict]) -> str:
    lines = ["| size | augment | workers | variant | frames/s | x before | device augment fr/s |",
             "|---|---|---:|---|---:|---:|---:|"]
    for e in summary:
        dev = e.get("device_augment_frames_per_s")
        lines.append(f"| {e['size']} | {e['augment']} | {e['workers']} | {e['variant']} | "
                     f"{e['frames_per_s']:.1f} | {e['x_before']:.2f} | "
                     f"{'' if dev is None else f'{dev:.1f}'} |")
    for m in model:
        if m["variant"] != "adam_step":
            lines.append(f"| {m['size']} | model step, batch {m['batch']} | - | {m['variant']} | "
                         f"{m['frames_per_s']:.2f} | | |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["240p", "480p"], choices=list(DATA))
    parser.add_argument("--augments", nargs="+", default=list(AUGMENTS), choices=AUGMENTS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=16, help="loader batch (paper: always 1)")
    parser.add_argument("--workers", type=int, default=2, help="the 'total' worker count")
    parser.add_argument("--frames", type=int, default=96, help="frames per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-batches", type=int, nargs="+", default=None,
                        help="model-step batch per size (default: --batch for each)")
    parser.add_argument("--model-repeat", type=int, default=1)
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--cache-dir", default=None, help="where mmap caches go (default: temp)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/data-vm.json")
    args = parser.parse_args(argv)
    args.model_batches = args.model_batches or [args.batch] * len(args.sizes)
    info = machine()
    print(f"cpu: {info['cpu']}; {info['cpu_count']} cores; flags {' '.join(info['key_flags'])}; "
          f"torch {info['torch']} threads {info['torch_threads']}; load {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure_loaders(args, args.cache_dir or tmp, lambda m: print(m, flush=True))
    model = [] if args.no_model else measure_model(args, lambda m: print(m, flush=True))
    summary = summarise(rows)
    print("\n" + table(summary, model))
    result = {"machine": info, "args": {k: str(v) if isinstance(v, Path) else v
                                        for k, v in vars(args).items()},
              "summary": summary, "loader_runs": rows, "model": model, "load_end": load()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
