"""Scoring one sequence: frame selection and object semantics of DAVIS 2016 vs 2017.

Scored frames are 1..N-2: the first frame's mask is the input of semi-supervised methods and
the last is left out by every official tool. DAVIS 2016: any non-zero pixel is the (single)
object, id 1. DAVIS 2017: objects are labels 1..K, K = the largest label of GT frame 0 other
than 255; void (255) counts as background; a prediction without some object scores 0 where
that object is present; a prediction label above K is an error (reference section 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from osvos_pl.metrics.bitplanes import pack_rows
from osvos_pl.metrics.boundary import BOUND_TH, boundary_counts, boundary_radius, f_from_counts
from osvos_pl.metrics.inputs import as_frames
from osvos_pl.metrics.region import iou_from_rows
from osvos_pl.utils.errors import DataError

VOID = 255


def jf_per_frame(gt, pred, bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """``(J, F)`` per frame of ``(H, W)``/``(T, H, W)`` masks, packing each mask only once."""
    gt, pred = as_frames(gt, pred)
    return jf_from_rows(pack_rows(gt), pack_rows(pred), gt.shape[1:], bound_th)


def jf_from_rows(
    g: np.ndarray, p: np.ndarray, size: tuple[int, int], bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """``(J, F)`` per frame of packed rows (``pack_rows``) of ``(T, H, W)`` masks; ``size = (H, W)``."""
    radius = boundary_radius(size, bound_th)
    n_gt, n_pred, matched_gt, matched_pred = boundary_counts(g, p, size[1], radius)
    return iou_from_rows(g, p), f_from_counts(n_pred, n_gt, matched_pred, matched_gt)


def _frame_name(frame_names: Sequence[str] | None, i: int) -> str:
    return frame_names[i] if frame_names is not None else f"frame {i}"


def _object_count(gt: np.ndarray, pred: np.ndarray, name: str, frame_names) -> int:
    """K from GT frame 0; checks that no scored prediction frame uses a label above K."""
    first = gt[0]
    k = int(first[first != VOID].max(initial=0))
    too_high = np.flatnonzero(pred[1:-1].reshape(len(pred) - 2, -1).max(axis=1) > k)
    if too_high.size:
        i = int(too_high[0]) + 1
        labels = [int(v) for v in np.unique(pred[i]) if v > k]
        raise DataError(
            f"sequence {name!r}, {_frame_name(frame_names, i)}: the prediction has label(s) "
            f"{labels} but GT frame 0 has objects 1..{k} — DAVIS 2017 predictions must use the "
            "first frame's object ids (a 0/255 binary mask reads as label 255: score it as "
            "single-object, without --multi-object)"
        )
    return k


def evaluate_sequence(
    gt: np.ndarray,
    pred: np.ndarray,
    multi_object: bool,
    *,
    name: str = "sequence",
    frame_names: Sequence[str] | None = None,
    bound_th: float = BOUND_TH,
) -> dict[int, dict[str, np.ndarray]]:
    """Per-object J and F over the scored frames: ``{object_id: {"J": (N-2,), "F": (N-2,)}}``.

    ``gt`` and ``pred`` are ``(N, H, W) uint8`` label maps of all N frames (frames 0 and N-1 of
    ``pred`` are not read). ``name`` and ``frame_names`` only make error messages precise.
    Single-object: one object, id 1. Multi-object: ids 1..K (none when frame 0 is empty).
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.ndim != 3 or gt.shape != pred.shape:
        raise DataError(
            f"sequence {name!r}: GT {gt.shape} and prediction {pred.shape} must both be "
            "(N, H, W) label maps of the same frames and size"
        )
    if not multi_object:
        g, p = pack_rows(gt != 0), pack_rows(pred != 0)
        return evaluate_sequence_rows(g, p, gt.shape[1:], name=name, bound_th=bound_th)
    _check_length(len(gt), name)
    scored_gt, scored_pred = gt[1:-1], pred[1:-1]
    objects = range(1, _object_count(gt, pred, name, frame_names) + 1)
    results = {}
    for k in objects:
        j, f = jf_per_frame(scored_gt == k, scored_pred == k, bound_th)
        results[k] = {"J": j, "F": f}
    return results


def evaluate_sequence_rows(
    gt_rows: np.ndarray,
    pred_rows: np.ndarray,
    size: tuple[int, int],
    *,
    name: str = "sequence",
    bound_th: float = BOUND_TH,
) -> dict[int, dict[str, np.ndarray]]:
    """Single-object ``evaluate_sequence`` of packed rows: ``{1: {"J": (N-2,), "F": (N-2,)}}``.

    ``gt_rows`` and ``pred_rows`` are ``pack_rows`` of all N ``(H, W)`` label maps (any non-zero
    label is the object; ``size = (H, W)``), e.g. packed one by one as frames are decoded, which
    keeps a sequence in an eighth of the memory and never builds the ``(N, H, W)`` stack.
    """
    _check_length(len(gt_rows), name)
    j, f = jf_from_rows(gt_rows[1:-1], pred_rows[1:-1], size, bound_th)
    return {1: {"J": j, "F": f}}


def _check_length(frames: int, name: str) -> None:
    if frames < 3:
        raise DataError(
            f"sequence {name!r} has {frames} annotated frame(s); the first and the last are "
            "not scored, so at least 3 are needed"
        )
