"""Boundary F of a contour *probability* map against ground-truth boundaries.

Used to judge the contour branch (and a Sobel baseline) on held-back frames: threshold the map,
then match edge pixels to the GT boundary (``seg2bmap`` of the mask) within the DAVIS tolerance
(disk of radius ceil(0.008 × diagonal)), as F does for masks. The threshold is chosen once for
the whole set (ODS, "optimal dataset scale", the usual contour benchmark protocol).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from osvos_pl.metrics.boundary import BOUND_TH, boundary_radius, disk, f_from_counts, seg2bmap

THRESHOLDS = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))


def boundary_counts_from_maps(pred_edges: np.ndarray, gt_edges: np.ndarray,
                              bound_th: float = BOUND_TH) -> np.ndarray:
    """``(4,)`` counts (n_pred, n_gt, matched_pred, matched_gt) for one ``(H, W)`` frame."""
    footprint = disk(boundary_radius(gt_edges.shape, bound_th)).astype(np.uint8)
    pred_edges, gt_edges = pred_edges.astype(np.uint8), gt_edges.astype(np.uint8)
    gt_dil = cv2.dilate(gt_edges, footprint)
    pred_dil = cv2.dilate(pred_edges, footprint)
    return np.array([pred_edges.sum(), gt_edges.sum(), (pred_edges & gt_dil).sum(),
                     (gt_edges & pred_dil).sum()], np.float64)


def contour_f(probabilities: Sequence[np.ndarray], masks: Sequence[np.ndarray],
              thresholds: Sequence[float] = THRESHOLDS, bound_th: float = BOUND_TH) -> dict:
    """ODS boundary F of ``(H, W)`` probability maps against the boundaries of ``masks``.

    Returns ``{"F": best mean per-frame F, "threshold": its threshold, "per_threshold": {...}}``.
    """
    if len(probabilities) != len(masks) or not masks:
        raise ValueError(f"need one probability map per mask, got {len(probabilities)} and {len(masks)}")
    return edges_f(probabilities, [seg2bmap(m > 0) for m in masks], thresholds, bound_th)


def edges_f(probabilities: Sequence[np.ndarray], gts: Sequence[np.ndarray],
            thresholds: Sequence[float] = THRESHOLDS, bound_th: float = BOUND_TH) -> dict:
    """ODS boundary F of ``(H, W)`` probability maps against boolean ground-truth edge maps
    (e.g. another detector's contour map above 0.5); returns what ``contour_f`` returns."""
    if len(probabilities) != len(gts) or not gts:
        raise ValueError(f"need one probability map per edge map, got {len(probabilities)} and "
                         f"{len(gts)}")
    per_threshold = {}
    for t in thresholds:
        counts = np.stack([boundary_counts_from_maps(p > t, g, bound_th)
                           for p, g in zip(probabilities, gts)])
        per_threshold[float(t)] = float(np.mean(f_from_counts(*counts.T)))
    best = max(per_threshold, key=per_threshold.get)
    return {"F": per_threshold[best], "threshold": best, "per_threshold": per_threshold}


def sobel_edges(image: np.ndarray) -> np.ndarray:
    """The baseline contour map: Sobel gradient magnitude of the grey image, scaled to [0, 1]."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    return mag / max(float(mag.max()), 1e-6)
