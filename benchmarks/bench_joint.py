"""Several objects, two ways (issue 35): ``online.objects=per-object`` (the paper's: one binary
network per object, the highest probability wins) against ``joint`` (one network, background +
K classes, one fine-tuning and one forward pass per frame for all objects), on one sequence for
K = 1, 3, 7 objects, in one run: per-object J&F and seconds per sequence.

``OMP_NUM_THREADS=1 python benchmarks/bench_joint.py --parent CKPT [--scale 0.6] [--objects 1,3,7]``

The sequence (default: schoolgirls of ``../shared/data/davis2017-sample`` at 240p, a DAVIS 2017
*train* sequence: the dev sequence) runs through the online stage's objects (data module,
``OneShotSegmenter`` from the config with the shipped ``online.*`` defaults: 100 updates, VGG
stages 1-3 frozen, 12 fixed shift views, parent weight 0.3 with a parent, shared trunk), at
``--scale`` of 240p. K objects are objects 1..K; the other objects are background in the scored
ground truth (they are not asked for).

- **per-object**: objects fine-tuned one after another from one seeding, the views' frozen
  stages shared (``TrunkPrefixes``, as ``OneShotSegmenter.finetune`` does); a K-object sequence
  does exactly the work of the first K of them, so its fine-tuning seconds are the sum over the
  first K. Inference: every frame segmented by the first K networks (shared trunk).
- **joint**: for each K one fine-tuning on the class-index views of objects 1..K, and inference.

Seconds per sequence = building the views + fine-tuning + inference (the whole sequence as the
online stage runs it, minus decoding the annotated frame). Joint and per-object fine-tunings
alternate (joint K, then the per-object objects that K adds), and so do the inferences, so that
a change of load on this shared machine falls on both. Per K and mode it also counts **swaps**:
the pixels of each ground-truth object labelled as another object (a confusion matrix over the
scored frames). ``--overlays DIR`` writes a few frames at the largest K, both modes side by side.
Writes ``benchmarks/results/joint-<host>.json`` (machine: lscpu model and flags, torch threads,
load average around every timed part).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_multiobject import build, timed  # noqa: E402
from bench_oneshot import SHARED, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODES = ("per-object", "joint")


def segment(segmenter, dm, args, nets) -> tuple[tuple[np.ndarray, np.ndarray, list], dict]:
    """Every frame: ``((N, H, W) predicted ids, (N, H, W) truth, raw frames kept for overlays)``
    and the timing."""
    keep = set(args.overlay_frames)

    def run():
        pred, truth, raw = [], [], []
        for item, labels in segmenter.segment(nets, dm.sequence_dataloader(args.sequence),
                                              sequence=args.sequence):
            pred.append(labels)
            truth.append(item["labels"].numpy())
            raw.append(item["raw"].numpy() if int(item["frame"]) in keep else None)
        return np.stack(pred), np.stack(truth), raw

    return timed(run)


def score(pred: np.ndarray, truth: np.ndarray, k: int) -> dict:
    """Per-object J/F of objects 1..k (the others background in the truth), their mean, and the
    confusion of truth objects (rows 0..k) with predicted labels (columns 0..k)."""
    from osvos_pl.metrics import evaluate_sequence, object_row

    truth = np.where(truth <= k, truth, 0).astype(np.uint8)
    per = evaluate_sequence(truth, pred, multi_object=True)
    rows = {oid: object_row(v["J"], v["F"]) for oid, v in per.items()}
    jf = [(r["J-Mean"] + r["F-Mean"]) / 2 for r in rows.values()]
    scored = slice(1, len(truth) - 1)
    confusion = np.zeros((k + 1, k + 1), np.int64)
    np.add.at(confusion, (truth[scored].ravel(), pred[scored].ravel()), 1)
    off = confusion[1:, 1:].sum() - np.trace(confusion[1:, 1:])
    return {"J&F": float(np.mean(jf)), "J": float(np.mean([r["J-Mean"] for r in rows.values()])),
            "F": float(np.mean([r["F-Mean"] for r in rows.values()])),
            "objects": {int(o): {"J": r["J-Mean"], "F": r["F-Mean"]} for o, r in rows.items()},
            "confusion": confusion.tolist(),
            "swapped_share": float(off / max(1, confusion[1:].sum()))}


def finetune_per_object(segmenter, dm, views, args, ids) -> tuple[dict, dict]:
    """Each object fine-tuned as ``segmenter.finetune`` does (one seeding, shared view prefixes);
    yields after each object so the caller can interleave the joint runs."""
    from osvos_pl.tasks.finetuning import TrunkPrefixes

    prefixes = TrunkPrefixes() if segmenter.share_trunk else None
    for oid in ids:
        dataset, view = timed(views.of, dm, args.sequence, segmenter.finetuning.samples,
                              object_id=oid, seed=args.seed)
        net, tuning = timed(segmenter.finetune_object, dataset, f"{args.sequence}_{oid}", prefixes)
        print(f"  per-object object {oid}: views {view['seconds']:5.1f} s, fine-tuning "
              f"{tuning['seconds']:6.1f} s (load {tuning['load_before']:.1f})", flush=True)
        yield oid, net, {"views": view, "finetune": tuning}


def finetune_joint(segmenter, dm, views, args, ids) -> tuple[object, dict]:
    from osvos_pl.tasks.joint import joint_views

    dataset, view = timed(joint_views, views, dm, args.sequence, segmenter.finetuning.samples,
                          ids, True, args.seed)
    (net, _), tuning = timed(segmenter.finetune_joint, dataset, ids, args.sequence)
    print(f"  joint K={len(ids)}: views {view['seconds']:5.1f} s, fine-tuning "
          f"{tuning['seconds']:6.1f} s (load {tuning['load_before']:.1f})", flush=True)
    return net, {"views": view, "finetune": tuning}


def warm_up(segmenter, dm, views, args, ids) -> float:
    """One short joint fine-tuning and a pass over the frames before anything is timed: the
    frozen prefix (``online.prefix``: int8 or compiled) and the kernels are set up once per
    process and input shape, and that set-up would otherwise land on whichever run came first."""
    from osvos_pl.tasks.joint import joint_views

    start, ft = time.perf_counter(), segmenter.finetuning
    iterations, ft.iterations = ft.iterations, 2
    try:
        dataset = joint_views(views, dm, args.sequence, ft.samples, ids[:1], True, args.seed)
        net, _ = segmenter.finetune_joint(dataset, ids[:1], args.sequence)
        for _ in segmenter.segment(net, dm.sequence_dataloader(args.sequence), args.sequence):
            pass
    finally:
        ft.iterations = iterations
    return time.perf_counter() - start


def run(args, segmenter, dm, views, ids, ks) -> tuple[list, dict]:
    import pytorch_lightning as pl

    print(f"warm-up (prefix set-up, first kernels): {warm_up(segmenter, dm, views, args, ids):.1f} s",
          flush=True)
    pl.seed_everything(args.seed, workers=True, verbose=False)
    per_object = finetune_per_object(segmenter, dm, views, args, ids)
    nets, times, joint, rows, shown = {}, {}, {}, [], {}
    for k in ks:
        pl.seed_everything(args.seed + 1000 * k, workers=True, verbose=False)
        if "joint" in args.modes:
            joint[k] = finetune_joint(segmenter, dm, views, args, ids[:k])
        for oid, net, t in per_object if "per-object" in args.modes else ():
            nets[oid], times[oid] = net, t
            if len(nets) == k:
                break
    for k in ks:
        row = {"objects": k}
        for mode in (args.modes if k % 2 else args.modes[::-1]):  # alternate which goes first
            subset = joint[k][0] if mode == "joint" else {o: nets[o] for o in ids[:k]}
            (pred, truth, raw), inference = segment(segmenter, dm, args, subset)
            parts = [joint[k][1]] if mode == "joint" else [times[o] for o in ids[:k]]
            view = sum(t["views"]["seconds"] for t in parts)
            tuning = sum(t["finetune"]["seconds"] for t in parts)
            row[mode] = {"views_seconds": view, "finetune_seconds": tuning,
                         "inference_seconds": inference["seconds"],
                         "inference_load": [inference["load_before"], inference["load_after"]],
                         "finetune_load": [t["finetune"]["load_before"] for t in parts],
                         "sequence_seconds": view + tuning + inference["seconds"],
                         **score(pred, truth, k)}
            if k == max(ks):
                shown[mode] = (pred, truth, raw)
        if len(args.modes) == 2:
            row["ratio"] = (row["joint"]["sequence_seconds"]
                            / row["per-object"]["sequence_seconds"])
        rows.append(row)
        print(f"K={k}: " + "; ".join(
            f"{m} J&F {row[m]['J&F']:.3f} (J {row[m]['J']:.3f}, F {row[m]['F']:.3f}), "
            f"{row[m]['sequence_seconds']:.1f} s (fine-tuning {row[m]['finetune_seconds']:.1f}, "
            f"inference {row[m]['inference_seconds']:.1f}), swapped {row[m]['swapped_share']:.3f}"
            for m in args.modes) + f"; time ratio joint/per-object {row.get('ratio', 0):.2f}",
              flush=True)
    return rows, shown


def write_overlays(shown: dict, folder: Path, frames: list[int]) -> None:
    """Per frame a jpg: per-object (left) and joint (right), the truth outlined in white."""
    import cv2

    from osvos_pl.data.overlays import overlay

    folder.mkdir(parents=True, exist_ok=True)
    for i in frames:
        raw = shown["joint"][2][i]
        if raw is None:
            continue
        truth = shown["joint"][1][i]
        tiles = [overlay(raw, shown[m][0][i], truth=truth) for m in MODES]
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(np.concatenate(tiles, 1),
                                                               cv2.COLOR_RGB2BGR))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHARED / "data/davis2017-sample")
    parser.add_argument("--resolution", default="240p")
    parser.add_argument("--sequence", default="schoolgirls")
    parser.add_argument("--scale", type=float, default=0.6)
    parser.add_argument("--iterations", type=int, default=100, help="online.iterations")
    parser.add_argument("--objects", default="1,3,7", help="K values (objects 1..K)")
    parser.add_argument("--parent", type=Path,
                        default=SHARED / "weights/osvos_parent_davis2016_train.ckpt")
    parser.add_argument("--weights", type=Path,
                        default=SHARED / "weights/vgg16_imagenet_features_torchvision.pth")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--override", action="append", default=[], help="extra config override")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="per-object,joint (one alone: a quick look, no time ratio)")
    parser.add_argument("--overlays", type=Path, default=None, help="folder for overlay jpgs")
    parser.add_argument("--overlay-frames", default="10,30,45,60,75")
    parser.add_argument("--out", type=Path,
                        default=REPO / f"benchmarks/results/joint-{socket.gethostname()}.json")
    args = parser.parse_args()
    args.overlay_frames = [int(i) for i in args.overlay_frames.split(",")]
    args.modes = [m for m in MODES if m in args.modes.split(",")]
    return args


def main() -> None:
    import torch

    args = parse_args()
    ks = sorted({int(k) for k in args.objects.split(",")})
    info = machine()
    print(f"{info['lscpu'].get('Model name', '?')}, {info['cpu_count']} CPUs, torch {info['torch']} "
          f"({info['torch_threads']} threads), load {info['load_average_at_start']}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        segmenter, dm, views, overrides = build(args, Path(tmp))
        ids = dm.object_ids(args.sequence)[: max(ks)]
        if len(ids) < max(ks):
            raise SystemExit(f"{args.sequence} has {len(ids)} objects; --objects asks for {max(ks)}")
        frames = len(dm.frame_names(args.sequence))
        print(f"{args.sequence}: {frames} frames, objects {ids}, frozen stages "
              f"{segmenter.finetuning.frozen_stages}, {args.iterations} updates, parent weight "
              f"{segmenter.parent_weight}, joint head {segmenter.joint_head}", flush=True)
        rows, shown = run(args, segmenter, dm, views, ids, ks)
        joint = {"head": segmenter.joint_head,
                 "balance": segmenter.joint_loss.keywords.get("balance", "classes")}
    if args.overlays is not None and len(args.modes) == 2:
        write_overlays(shown, args.overlays, args.overlay_frames)
    info["load_average_at_end"] = os.getloadavg()
    result = {"machine": info, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "overrides": overrides, "joint": joint, "frames": frames, "rows": rows,
              "total_seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
