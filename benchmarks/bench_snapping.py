"""Time boundary snapping on real 480x854 DAVIS frames: ``python benchmarks/bench_snapping.py``.

Needs the package importable (``pip install -e .``, as the README installs it).

Two contour maps bracket the real contour branch: the ground truth's outline (few, clean basins)
and the Sobel magnitude of the image (thousands of noisy basins, a pessimistic stand-in). The
time is split into ``superpixels`` (watershed + UCM + cut) and ``majority_vote``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from osvos_pl.data.io import read_image, read_mask
from osvos_pl.snapping import majority_vote, superpixels

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared/data/davis-sample"


def sobel_contour(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the grey image, scaled to max 1: ``(H, W) float64`` in [0, 1]."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255
    edges = np.hypot(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    return edges / max(edges.max(), 1e-12)


def oracle_contour(gt: np.ndarray) -> np.ndarray:
    """Ground-truth outline: 3x3 morphological gradient, Gaussian sigma 1, scaled to max 1."""
    band = cv2.morphologyEx(gt.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    contour = cv2.GaussianBlur(band.astype(np.float64), (0, 0), 1.0)
    return contour / max(contour.max(), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("DAVIS_SAMPLE", DEFAULT_ROOT)),
        help="DAVIS-layout root with JPEGImages/480p and Annotations/480p",
    )
    parser.add_argument("--frames", type=int, default=10, help="frames per sequence")
    args = parser.parse_args()

    sequences = sorted(p.name for p in (args.root / "JPEGImages/480p").iterdir() if p.is_dir())
    superpixels(np.zeros((480, 854)))  # build the cached pixel graph outside the timings
    print(
        f"{'contour map':12s} {'sequence':12s} {'frames':>6s} {'superpixels':>11s} "
        f"{'ucm ms':>8s} {'vote ms':>8s} {'total ms':>9s}"
    )
    for kind in ("oracle", "sobel"):
        for seq in sequences:
            names = sorted((args.root / "JPEGImages/480p" / seq).glob("*.jpg"))[: args.frames]
            ucm_ms, vote_ms, counts = [], [], []
            for name in names:
                gt = read_mask(args.root / "Annotations/480p" / seq / f"{name.stem}.png") > 127
                contour = (
                    oracle_contour(gt) if kind == "oracle" else sobel_contour(read_image(name))
                )
                fg_prob = cv2.erode(gt.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(float)
                t0 = time.perf_counter()
                labels = superpixels(contour)
                t1 = time.perf_counter()
                majority_vote(labels, fg_prob)
                t2 = time.perf_counter()
                ucm_ms.append(1e3 * (t1 - t0))
                vote_ms.append(1e3 * (t2 - t1))
                counts.append(int(labels.max()) + 1)
            ucm, vote = float(np.mean(ucm_ms)), float(np.mean(vote_ms))
            print(
                f"{kind:12s} {seq:12s} {len(names):6d} {np.mean(counts):11.0f} "
                f"{ucm:8.1f} {vote:8.1f} {ucm + vote:9.1f}"
            )


if __name__ == "__main__":
    main()
