"""When is ``box-tuned``'s first mask worse than ``parent+grabcut``'s? Per frame, both masks
from a box (the annotation's bounding box + 5 %), their IoU with the annotation, and what can be
read without the annotation: the two masks' agreement (IoU between them), each one's solidity
(share of its convex hull) and share of the box. Rules that pick one of the two from those are
then scored offline (``--score``).

    python experiments/study_box_fallback.py --root ../shared/data/davis2016-train-240p \\
        --resolution 240p --frames 0 10 20 30 40 50 60 70 80 --sequences bmx-bumps ... --out F
    python experiments/study_box_fallback.py --score F [F ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_first_mask import box_of, first_mask, frame_and_truth, grabcut_conf, iou  # noqa: E402

from osvos_pl.model.checkpoint import load_checkpoint  # noqa: E402
from osvos_pl.model.factory import build_network  # noqa: E402
from osvos_pl.tasks.first_mask import GrabCut, parent_prior, solidity  # noqa: E402
from osvos_pl.utils.normalization import get_normalization  # noqa: E402


def measure(args) -> None:
    torch.set_num_threads(2)
    root = Path(args.root)
    net = build_network(weights=None)
    normalization = get_normalization(load_checkpoint(net, "davis2016").normalization or "imagenet")
    conf = grabcut_conf()
    rows = []
    for name in args.sequences:
        for f in args.frames:
            if not (root / "Annotations" / args.resolution / name / f"{f:05d}.png").is_file():
                continue
            image, truth = frame_and_truth(root, args.resolution, name, f)
            if not truth.any():
                continue
            box = box_of(truth, 0.05)
            x0, y0, x1, y1 = box
            tuner = GrabCut(**{**conf, "method": "box-tuned"})
            tuned_p = tuner.prior(net, normalization, image, box)
            prior = parent_prior(net, normalization, image, int(conf["prior_height"]))
            tuned = first_mask(tuner, image, box, tuned_p)
            pg = first_mask(GrabCut(**{**conf, "method": "parent+grabcut"}), image, box, prior)
            row = {"sequence": name, "frame": f, "tuned_ran": tuned_p is not None,
                   "iou_tuned": iou(truth, tuned), "iou_pg": iou(truth, pg),
                   "agreement": iou(pg, tuned),
                   "solidity_tuned": solidity(tuned[y0:y1, x0:x1]),
                   "solidity_pg": solidity(pg[y0:y1, x0:x1]),
                   "share_tuned": float(tuned[y0:y1, x0:x1].mean()),
                   "share_pg": float(pg[y0:y1, x0:x1].mean())}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)
    Path(args.out).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                          "rows": rows}, indent=1))


def rules():
    """name → function(row) → the IoU of the mask that rule keeps."""
    out = {"box-tuned": lambda r: r["iou_tuned"], "parent+grabcut": lambda r: r["iou_pg"]}
    for a in (0.3, 0.4, 0.5, 0.6, 0.7):
        out[f"agreement<{a}: the fuller"] = (
            lambda r, a=a: r["iou_tuned"] if r["agreement"] >= a else
            (r["iou_tuned"] if r["share_tuned"] >= r["share_pg"] else r["iou_pg"]))
    for s in (0.3, 0.4, 0.5, 0.6, 0.7):
        out[f"solidity_tuned<{s}: parent+grabcut"] = (
            lambda r, s=s: r["iou_tuned"] if r["solidity_tuned"] >= s else r["iou_pg"])
        out[f"the more solid, if below {s}"] = (
            lambda r, s=s: r["iou_tuned"] if r["solidity_tuned"] >= s
            or r["solidity_tuned"] >= r["solidity_pg"] else r["iou_pg"])
    return out


def score(files: list[str]) -> None:
    table = {}
    for f in files:
        rows = json.loads(Path(f).read_text())["rows"]
        for name, rule in rules().items():
            table.setdefault(name, []).append((float(np.mean([rule(r) for r in rows])), len(rows)))
    print("| rule | " + " | ".join(f"{Path(f).stem} ({n})" for f, (_, n)
                                    in zip(files, next(iter(table.values())))) + " |")
    print("|---|" + "---:|" * len(files))
    for name, vals in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v, _ in vals) + " |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root")
    ap.add_argument("--resolution", default="480p")
    ap.add_argument("--sequences", nargs="*")
    ap.add_argument("--frames", type=int, nargs="+", default=[0])
    ap.add_argument("--out")
    ap.add_argument("--score", nargs="*")
    a = ap.parse_args()
    score(a.score) if a.score else measure(a)
