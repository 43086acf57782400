"""J, the DAVIS region similarity (Jaccard index / IoU), exact to the official evaluation.

J = |P ∩ G| / |P ∪ G| per frame on boolean masks; two empty masks give J = 1
(reference/davis_metrics.md section 2). Pixels are counted on packed rows (8 pixels a byte).
"""

from __future__ import annotations

import numpy as np

from osvos_pl.metrics.bitplanes import count_bits, pack_rows
from osvos_pl.metrics.inputs import as_frames


def iou_from_rows(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """J per frame of packed rows (``pack_rows``) of GT ``g`` and prediction ``p``, ``(T,) float64``."""
    frames = g.shape[0]
    inter, union = count_bits(g & p, frames), count_bits(g | p, frames)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def db_eval_iou(gt, pred) -> np.ndarray:
    """J per frame of ``(H, W)`` or ``(T, H, W)`` masks (non-zero = object), ``(T,) float64``.

    A single ``(H, W)`` frame gives a length-1 array. Accepts numpy arrays or torch tensors.
    """
    gt, pred = as_frames(gt, pred)
    return iou_from_rows(pack_rows(gt), pack_rows(pred))
