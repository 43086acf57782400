"""A first mask from a box: GrabCut alone against the shipped parent's probabilities in the box
(alone, or as GrabCut's initial labels) and against a copy of the parent fine-tuned on the frame
with the box as its label (``box-tuned``, the conf's ``grabcut.tune_*`` / ``pair_*``), IoU
against the annotation on frame 0 of each sequence (`--frames`: on more annotated frames of each).

The box is the annotation's bounding box plus ``--margin`` of its width / height on each side
(clipped to the frame), as a user would draw it. Settings are to be chosen on sequences the
parent never trained on (the dev split of DAVIS 2016 train: bmx-bumps, dance-jump, dog-agility,
drift-turn, motocross-bumps) and reported on DAVIS val (the shared sample's ten); the parent's
own 25 training sequences are listed apart (it has seen their frames).

    OMP_NUM_THREADS=1 python benchmarks/bench_first_mask.py --root ../shared/data/davis-sample \\
        --resolution 480p --out benchmarks/results/first_mask_val.json
    OMP_NUM_THREADS=1 python benchmarks/bench_first_mask.py \\
        --root ../shared/data/davis2016-train-240p --resolution 240p \\
        --out benchmarks/results/first_mask_train.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from osvos_pl.metrics import db_eval_iou
from osvos_pl.model.checkpoint import load_checkpoint
from osvos_pl.model.factory import build_network
from osvos_pl.model.shipped import SHIPPED
from osvos_pl.tasks.first_mask import METHODS, GrabCut, parent_prior
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.normalization import get_normalization

DEV = ("bmx-bumps", "dance-jump", "dog-agility", "drift-turn", "motocross-bumps")


def box_of(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """The mask's bounding box grown by ``margin`` of its size on each side, inside the frame."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    h, w = mask.shape
    return (max(0, int(round(x0 - dx))), max(0, int(round(y0 - dy))),
            min(w, int(round(x1 + dx))), min(h, int(round(y1 + dy))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="a DAVIS root")
    ap.add_argument("--resolution", default="480p")
    ap.add_argument("--sequences", nargs="*", help="default: every sequence of the root")
    ap.add_argument("--frames", type=int, nargs="+", default=[0],
                    help="annotated frames of each sequence to make a box of (those past its "
                         "end skipped): more frames than the dev split's five first ones")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--parent", default="davis2016")
    ap.add_argument("--heights", type=int, nargs="+", default=[240],
                    help="px: the frame's height for the parent (grabcut.prior_height)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root = Path(args.root)
    names = args.sequences or sorted(p.name for p in (root / "JPEGImages" / args.resolution)
                                     .iterdir())
    net = build_network(weights=None)
    normalization = get_normalization(load_checkpoint(net, args.parent).normalization or "imagenet")
    trained = set(load_trained_on(args.parent))
    conf = grabcut_conf()
    rows = []
    frames = [(name, f) for name in names for f in args.frames
              if (root / "Annotations" / args.resolution / name / f"{f:05d}.png").is_file()]
    for name, f in frames:
        image, truth = frame_and_truth(root, args.resolution, name, f)
        if not truth.any():
            continue  # the object is out of view: no box to draw
        box = box_of(truth, args.margin)
        row = {"sequence": name, "frame": f, "size": list(image.shape[:2]), "box": list(box),
               "group": "dev" if name in DEV else "parent-trained" if name in trained else "other"}
        start = time.perf_counter()
        row["grabcut"] = iou(truth, first_mask(GrabCut(method="grabcut"), image, box))
        row["seconds grabcut"] = time.perf_counter() - start
        for height in args.heights:
            start = time.perf_counter()
            prior = parent_prior(net, normalization, image, height)
            row[f"seconds prior@{height}px"] = time.perf_counter() - start
            start = time.perf_counter()
            tuner = GrabCut(**{**conf, "method": "box-tuned", "prior_height": height})
            tuned = tuner.prior(net, normalization, image, box)
            row[f"seconds tuning@{height}px"] = time.perf_counter() - start
            for t in args.thresholds:
                for method in METHODS[1:]:
                    start = time.perf_counter()
                    mask = first_mask(GrabCut(**{**conf, "method": method, "threshold": t}), image,
                                      box, tuned if method == "box-tuned" else prior)
                    row[f"{method}@{height}px,t{t:g}"] = iou(truth, mask)
                    row[f"seconds {method}@{height}px,t{t:g}"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
    summary = {}
    for group in sorted({r["group"] for r in rows}) + ["all"]:
        chosen = [r for r in rows if group in ("all", r["group"])]
        keys = [k for k in chosen[0] if k not in ("sequence", "frame", "size", "box", "group")]
        summary[group] = {k: float(np.mean([r[k] for r in chosen])) for k in keys}
        summary[group]["frames"] = len(chosen)
        summary[group]["sequences"] = len({r["sequence"] for r in chosen})
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows, "summary": summary}, indent=1))


def frame_and_truth(root: Path, resolution: str, name: str, frame: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``frame`` of sequence ``name`` as ``(H, W, 3) uint8`` RGB and its annotation as one
    ``(H, W) bool`` foreground (every object of a palette mask)."""
    image = np.asarray(Image.open(root / "JPEGImages" / resolution / name / f"{frame:05d}.jpg")
                       .convert("RGB"))
    truth = np.asarray(Image.open(root / "Annotations" / resolution / name / f"{frame:05d}.png"))
    return image, (truth > 0) if truth.ndim == 2 else truth.any(-1)


def grabcut_conf() -> dict:
    """``conf/predict.yaml``'s ``grabcut`` knobs (the tuning's among them), without its target."""
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"),
                               version_base=None):
        node = compose("predict").grabcut
    return dataclasses.asdict(instantiate(node))


def first_mask(grabcut: GrabCut, image: np.ndarray, box, prior=None) -> np.ndarray:
    """The method's mask; an empty one where it finds no object (IoU 0: a failure counts)."""
    try:
        return grabcut(image, box, prior=prior)
    except DataError:
        return np.zeros(image.shape[:2], bool)


def iou(truth: np.ndarray, mask: np.ndarray) -> float:
    """The official J of one frame (``db_eval_iou``)."""
    return float(np.mean(db_eval_iou(truth[None], mask[None])))


def load_trained_on(name: str) -> list[str]:
    """The sequences the shipped parent ``name`` trained on (its ``trained_on``)."""
    ckpt = torch.load(SHIPPED[name].path, map_location="cpu", weights_only=True, mmap=True)
    return list((ckpt.get("trained_on") or {}).get("sequences") or [])


if __name__ == "__main__":
    main()
