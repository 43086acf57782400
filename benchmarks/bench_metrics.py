"""Time our batched J/F against the official per-frame path: ``python benchmarks/bench_metrics.py``.

Needs the package importable (``pip install -e .``, as the README installs it).

"official" is a single-threaded re-creation of the official 2017 evaluation's per-frame work
(reference/davis_metrics.md sections 2-3): J batched with numpy sums, then for every frame a
void mask, two numpy ``seg2bmap`` and two ``cv2.dilate`` with the disk. "ours" is
``osvos_pl.metrics.jf_per_frame`` (bit planes, all frames at once). Both run on the same masks
in the same process, and their per-frame J and F are checked to agree exactly.

Inputs: the real DAVIS sample (blackswan, car-shadow; predictions = GT eroded 11×11) and
synthetic 480p 50-frame sequences (a small and a large moving disk, and a worst case: a dense
texture whose boundary covers the whole frame). Timings are the best of ``--repeat`` runs,
first with torch and OpenCV limited to 1 thread, then with their default thread counts (our
path is numpy, single-threaded either way).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.morphology import disk

from osvos_pl.data.io import read_mask
from osvos_pl.metrics import jf_per_frame

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared/data/davis-sample"
H, W, FRAMES = 480, 854, 50


def official_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map as the official code builds it: shifted copies, XOR, border fix-ups."""
    seg = seg.astype(bool)
    east, south, southeast = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1], south[:-1, :], southeast[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ southeast)
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = 0
    return b


def official_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """One frame's F, the official way: void mask, two seg2bmap, two cv2.dilate, counts."""
    void = np.zeros_like(pred).astype(bool)
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    fg_b, gt_b = official_seg2bmap(pred * ~void), official_seg2bmap(gt * ~void)
    kernel = disk(radius).astype(np.uint8)
    fg_dil, gt_dil = cv2.dilate(fg_b.astype(np.uint8), kernel), cv2.dilate(gt_b.astype(np.uint8), kernel)
    n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg_b * gt_dil) / float(n_fg), np.sum(gt_b * fg_dil) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def official_jf(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inter, union = np.sum(gt & pred, axis=(-2, -1)), np.sum(gt | pred, axis=(-2, -1))
    j = inter / np.where(union == 0, 1, union)
    j[union == 0] = 1
    return j, np.array([official_f(p, g) for p, g in zip(pred, gt)])


def sample_sequences(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real sample: GT and GT eroded by 11×11 ones, ``(N, H, W)`` bool each."""
    out = {}
    for seq in ("blackswan", "car-shadow"):
        gt = np.stack([read_mask(p) for p in sorted((root / "Annotations/480p" / seq).glob("*.png"))])
        pred = np.stack([cv2.erode(m, np.ones((11, 11), np.uint8)) for m in gt])
        out[seq] = (gt > 0, pred > 0)
    return out


def synthetic_sequences() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """480p, 50 frames: disks moving right; the prediction is shifted 4 px and 3 px down."""
    yy, xx = np.mgrid[:H, :W]
    out = {}
    for name, radius in (("disk r=60", 60), ("disk r=200", 200)):
        gt = np.stack([(yy - 240) ** 2 + (xx - 150 - 10 * t) ** 2 < radius**2 for t in range(FRAMES)])
        out[f"synthetic {name}"] = (gt, np.roll(gt, (3, 4), axis=(1, 2)))
    rng = np.random.default_rng(0)
    texture = rng.random((FRAMES, H, W)) < 0.5
    out["synthetic texture"] = (texture, np.roll(texture, 1, axis=2))
    return out


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(sequences: dict, repeat: int, label: str) -> None:
    print(f"\n{label} (torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()})")
    print(f"{'sequence':26s} {'frames':>6s} {'official fr/s':>13s} {'ours fr/s':>10s} {'ratio':>6s}")
    total = {"frames": 0, "official": 0.0, "ours": 0.0}
    for name, (gt, pred) in sequences.items():
        j_ref, f_ref = official_jf(gt, pred)
        j, f = jf_per_frame(gt, pred)
        if not (np.array_equal(j, j_ref) and np.array_equal(f, f_ref)):
            raise AssertionError(f"{name}: ours differs from the official path (J {abs(j - j_ref).max()}, "
                                 f"F {abs(f - f_ref).max()})")
        t_official = best_of(lambda g=gt, p=pred: official_jf(g, p), repeat)
        t_ours = best_of(lambda g=gt, p=pred: jf_per_frame(g, p), repeat)
        n = len(gt)
        total["frames"] += n
        total["official"] += t_official
        total["ours"] += t_ours
        print(f"{name:26s} {n:6d} {n / t_official:13.0f} {n / t_ours:10.0f} {t_official / t_ours:5.1f}x")
    n = total["frames"]
    print(f"{'all':26s} {n:6d} {n / total['official']:13.0f} {n / total['ours']:10.0f} "
          f"{total['official'] / total['ours']:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("DAVIS_SAMPLE", DEFAULT_ROOT)),
        help="DAVIS-layout root with Annotations/480p/{blackswan,car-shadow}",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timings are the best of this many runs")
    args = parser.parse_args()

    sequences = {}
    if (args.root / "Annotations/480p/blackswan").is_dir():
        sequences.update(sample_sequences(args.root))
    else:
        print(f"note: {args.root} has no DAVIS sample; timing synthetic sequences only")
    sequences.update(synthetic_sequences())
    print(f"tolerance at 480p: {math.ceil(0.008 * math.hypot(H, W))} px; per-frame J and F of both "
          "paths are checked to be identical before timing")

    default_torch, default_cv2 = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    run(sequences, args.repeat, "single-threaded")
    torch.set_num_threads(default_torch)
    cv2.setNumThreads(default_cv2)
    run(sequences, args.repeat, "default threads")


if __name__ == "__main__":
    main()
