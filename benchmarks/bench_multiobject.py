"""Several objects: one-shot fine-tuning + inference of a sequence against K objects, with the
trunk shared by every object (``online.share_trunk=true``) and without (issue 24).

``OMP_NUM_THREADS=1 python benchmarks/bench_multiobject.py [--parent CKPT] [--objects 1,3,7]``

The sequence (default: schoolgirls of ``../shared/data/davis2017-sample`` at 240p, seven objects)
runs through the online stage's own objects (data module, ``OneShotSegmenter`` from the config,
``online.*`` defaults: 100 updates, VGG stages 1-3 frozen, 12 fixed shift views) at
``--scale`` (0.6: the input size the paper-protocol parent learnt at). Per path:

- **fine-tuning**: the first max(K) objects fine-tuned one after another, each timed. A K-object
  sequence does exactly the work of the first K of them (the shared path builds its view cache
  on object 1 and reuses it for the next ones), so the fine-tuning seconds of K objects are the
  sum over the first K. Each object is fine-tuned on both paths in turn (re-seeded);
- **inference**: every frame of the sequence segmented by the first K networks (frames decoded
  by the data module's loader, merged by highest probability), timed for each K.

Seconds per sequence = building the K objects' views + their fine-tuning + inference. The two
paths alternate (per object in fine-tuning, per K in inference, so that a change of load on this
shared machine falls on both), and their masks are compared byte for byte at every K. Writes ``benchmarks/results/multiobject-<host>.json``
(machine: lscpu model and flags, torch threads, load average around every timed part).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_oneshot import SHARED, compose, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PATHS = {True: "shared", False: "unshared"}


def build(args: argparse.Namespace, tmp: Path):
    """``(segmenter, data module)`` exactly as the online stage builds them."""
    from hydra.utils import instantiate

    from osvos_pl.stages.assembly import build_datamodule, build_engine
    from osvos_pl.stages.parent_network import parent_network as load_parent

    overrides = [
        "+experiment=online", "data=davis2017", f"data.root={args.root}",
        f"data.resolution={args.resolution}", f"data.sequences=[{args.sequence}]",
        f"data.scale={args.scale}", f"online.iterations={args.iterations}",
        f"model.weights={args.weights}", "logger=none", "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu", "data.num_workers=0",
        f"parent_ckpt={args.parent}" if args.parent else "parent_ckpt=null", *args.override,
    ]
    cfg = compose(overrides, tmp)
    parent, normalization = load_parent(cfg)
    dm = build_datamodule(cfg, normalization)
    segmenter = instantiate(cfg.task, parent=parent, engine=build_engine(cfg, tmp), progress=False)
    return segmenter, dm, instantiate(cfg.online.first_frames), overrides


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), {seconds, cpu_seconds, load average before and after})``.

    ``cpu_seconds`` (this process's CPU time, one thread) is the steadier figure on a shared
    machine: other jobs stretch the wall time of the same work (descheduled time) far more.
    """
    load, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                 "load_before": load, "load_after": os.getloadavg()[0]}


def finetune(segmenter, dm, first_views, args, ids: list[int]) -> tuple[dict, dict]:
    """Fine-tune the objects one after another as ``segmenter.finetune`` does, each object on
    the unshared path and then on the shared one (alternating keeps a load change on this
    shared machine from falling on one path); per-object times."""
    import pytorch_lightning as pl

    from osvos_pl.tasks.finetuning import TrunkPrefixes

    ft = segmenter.finetuning
    prefixes = {False: None, True: TrunkPrefixes()}
    nets, times = {False: {}, True: {}}, {False: {}, True: {}}
    for oid in ids:
        for share in (False, True):
            segmenter.share_trunk = share
            pl.seed_everything(args.seed + oid, workers=True, verbose=False)
            dataset, views = timed(first_views.of, dm, args.sequence, ft.samples, object_id=oid,
                                   seed=args.seed)
            nets[share][oid], tuning = timed(segmenter.finetune_object, dataset,
                                             f"{args.sequence}_{oid}", prefixes[share])
            times[share][oid] = {"views": views, "finetune": tuning}
            print(f"  {PATHS[share]:8s} object {oid}: views {views['seconds']:5.1f} s, "
                  f"fine-tuning {tuning['seconds']:6.1f} s (load {tuning['load_before']:.1f})",
                  flush=True)
    return nets, times


def infer(segmenter, dm, args, share: bool, nets: dict) -> tuple[np.ndarray, dict]:
    segmenter.share_trunk = share
    loader = dm.sequence_dataloader(args.sequence)
    masks, times = timed(lambda: np.stack(
        [labels for _, labels in segmenter.segment(nets, loader, sequence=args.sequence)]))
    return masks, times


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data/davis2017-sample")
    parser.add_argument("--resolution", default="240p")
    parser.add_argument("--sequence", default="schoolgirls")
    parser.add_argument("--scale", type=float, default=0.6)
    parser.add_argument("--iterations", type=int, default=100, help="online.iterations")
    parser.add_argument("--objects", default="1,3,7", help="K values (objects 1..K)")
    parser.add_argument("--parent", type=Path, default=None, help="parent checkpoint (default: -PN)")
    parser.add_argument("--weights", type=Path,
                        default=SHARED / "weights/vgg16_imagenet_features_torchvision.pth")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--override", action="append", default=[], help="extra config override")
    parser.add_argument("--out", type=Path,
                        default=REPO / f"benchmarks/results/multiobject-{socket.gethostname()}.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    ks = sorted({int(k) for k in args.objects.split(",")})
    info = machine()
    print(f"{info['lscpu'].get('Model name', '?')}, {info['cpu_count']} CPUs, torch {info['torch']} "
          f"({info['torch_threads']} threads), bf16 native: {info['bf16_native']}, load "
          f"{info['load_average_at_start']}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        segmenter, dm, first_views, overrides = build(args, Path(tmp))
        ids = dm.object_ids(args.sequence)[: max(ks)]
        if len(ids) < max(ks):
            raise SystemExit(f"{args.sequence} has {len(ids)} objects; --objects asks for {max(ks)}")
        print(f"{args.sequence}: {len(dm.frame_names(args.sequence))} frames, objects {ids}, "
              f"frozen stages {segmenter.finetuning.frozen_stages}, {args.iterations} updates",
              flush=True)
        nets, ft_times = finetune(segmenter, dm, first_views, args, ids)
        rows = []
        for k in ks:
            row = {"objects": k}
            masks = {}
            for share in ((False, True) if k % 2 else (True, False)):  # alternate which goes first
                subset = {oid: nets[share][oid] for oid in ids[:k]}
                masks[share], inference = infer(segmenter, dm, args, share, subset)
                first = [ft_times[share][oid] for oid in ids[:k]]
                views = sum(t["views"]["seconds"] for t in first)
                tuning = sum(t["finetune"]["seconds"] for t in first)
                cpu = sum(t[part]["cpu_seconds"] for t in first for part in ("views", "finetune"))
                row[PATHS[share]] = {"views_seconds": views, "finetune_seconds": tuning,
                                     "inference_seconds": inference["seconds"],
                                     "inference_load": [inference["load_before"], inference["load_after"]],
                                     "sequence_seconds": views + tuning + inference["seconds"],
                                     "sequence_cpu_seconds": cpu + inference["cpu_seconds"]}
            row["masks_identical"] = bool(np.array_equal(masks[True], masks[False]))
            row["ratio"] = row["shared"]["sequence_seconds"] / row["unshared"]["sequence_seconds"]
            row["cpu_ratio"] = (row["shared"]["sequence_cpu_seconds"]
                                / row["unshared"]["sequence_cpu_seconds"])
            row["inference_ratio"] = (row["shared"]["inference_seconds"]
                                      / row["unshared"]["inference_seconds"])
            rows.append(row)
            print(f"K={k}: unshared {row['unshared']['sequence_seconds']:7.1f} s "
                  f"(fine-tuning {row['unshared']['finetune_seconds']:.1f}, inference "
                  f"{row['unshared']['inference_seconds']:.1f}), shared "
                  f"{row['shared']['sequence_seconds']:7.1f} s (fine-tuning "
                  f"{row['shared']['finetune_seconds']:.1f}, inference "
                  f"{row['shared']['inference_seconds']:.1f}): {row['ratio']:.2f}x, inference "
                  f"{row['inference_ratio']:.2f}x; CPU time {row['cpu_ratio']:.2f}x; masks identical: "
                  f"{row['masks_identical']}",
                  flush=True)
    info["load_average_at_end"] = os.getloadavg()
    result = {"machine": info, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "overrides": overrides, "frames": len(dm.frame_names(args.sequence)),
              "rows": rows, "finetune_per_object": {PATHS[s]: t for s, t in ft_times.items()},
              "total_seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
