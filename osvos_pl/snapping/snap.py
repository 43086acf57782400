"""Boundary snapping: give each superpixel the majority label of the thresholded mask.

Step 5 of OSVOS snapping (docs/method.md#boundary-snapping; the authors' ``snap.m``): the mask's
outline is replaced by superpixel boundaries, which follow the contour branch's edges.
"""

from __future__ import annotations

import enum
import math

import numpy as np

from osvos_pl.snapping.checks import as_prob_map, check_same_shape
from osvos_pl.snapping.ucm import UCM_THRESHOLD, superpixels

MASK_THRESHOLD = 122 / 255
"""The authors' binarisation of the foreground probability before the vote (``P > 122/255``)."""

MIN_SUPERPIXELS = 16
"""Frames whose contour map gives fewer superpixels than this are not snapped.

With a handful of superpixels each one covers a large part of the frame, and the vote turns an
object into all of a region or none of it. On real -BS masks of blackswan and car-shadow snapped
to the DAVIS sample's contour maps (superpixel counts varied through the UCM threshold), frames
with 1-4 superpixels lost up to 0.9 J, frames with 5-12 lost up to 0.14 J on some frames, and no
frame with 13 or more lost J. At the authors' UCM threshold real contour maps give 240-440
superpixels per 480p frame, so this guard only stops degenerate maps (an undertrained contour
branch gives 1-4 basins).
"""


class SnapStatus(str, enum.Enum):
    """What :func:`snap_objects` did with one frame."""

    SNAPPED = "snapped"
    NO_BOUNDARY = "skipped-no-boundary"
    """No contour survives the UCM threshold: one superpixel would make every object all or none."""
    TOO_FEW_SUPERPIXELS = "skipped-too-few-superpixels"
    """Fewer than ``min_superpixels`` regions: too coarse to follow an object's outline."""


def majority_vote(
    labels: np.ndarray, fg_prob: np.ndarray, mask_threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """Union of the superpixels in which most pixels of ``fg_prob > mask_threshold`` are set.

    Args:
        labels: ``(H, W)`` non-negative integer superpixel labels (e.g. from :func:`superpixels`).
        fg_prob: ``(H, W)`` foreground probability in [0, 1].
        mask_threshold: probability above which a pixel votes foreground.

    Returns:
        ``(H, W) bool`` mask. A hard vote: a superpixel is foreground only if strictly more than
        half of its pixels are, so a tie goes to background, as in ``snap.m``.

    Separate from :func:`snap` so that one set of superpixels can serve several objects' masks.
    """
    fg = as_prob_map("fg_prob", fg_prob) > _finite("mask_threshold", mask_threshold)
    labels = np.asarray(labels)
    check_same_shape(labels=labels, fg_prob=fg)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be non-negative integers, got dtype {labels.dtype}")
    flat = labels.ravel()
    size = np.bincount(flat)
    votes = np.bincount(flat, weights=fg.ravel(), minlength=size.size)
    return (2 * votes > size)[labels]


def snap(
    fg_prob: np.ndarray,
    contour_prob: np.ndarray,
    ucm_threshold: float = UCM_THRESHOLD,
    mask_threshold: float = MASK_THRESHOLD,
) -> np.ndarray:
    """Snap a foreground probability map to the contours of the same frame.

    Args:
        fg_prob: ``(H, W)`` foreground probability in [0, 1] (the fine-tuned branch's sigmoid).
        contour_prob: ``(H, W)`` contour probability in [0, 1] (the contour branch's sigmoid).
        ucm_threshold: UCM level that defines the superpixels (authors: 0.29).
        mask_threshold: binarisation of ``fg_prob`` before the vote (authors: 122/255).

    Returns:
        ``(H, W) bool`` mask: the union of superpixels whose majority is foreground.
    """
    check_same_shape(fg_prob=np.asarray(fg_prob), contour_prob=np.asarray(contour_prob))
    return majority_vote(superpixels(contour_prob, ucm_threshold), fg_prob, mask_threshold)


def snap_objects(
    probs: np.ndarray,
    edges: np.ndarray,
    ucm_threshold: float = UCM_THRESHOLD,
    mask_threshold: float = MASK_THRESHOLD,
    threshold: float = 0.5,
    min_superpixels: int = MIN_SUPERPIXELS,
) -> tuple[np.ndarray, SnapStatus]:
    """Snap every object's probability map of one frame to the superpixels of its contour map.

    Args:
        probs: ``(K, H, W)`` foreground probabilities in [0, 1], one map per object.
        edges: ``(H, W)`` contour probability in [0, 1] (contour branch, or a precomputed map).
        ucm_threshold: UCM level that defines the superpixels (authors: 0.29).
        mask_threshold: binarisation of each object's map before the vote (authors: 122/255).
        threshold: the caller's foreground threshold, used afterwards to merge the objects.
        min_superpixels: frames with fewer superpixels than this are left as they are.

    Returns:
        ``(probs, status)`` as :func:`snap_to_regions`, on the superpixels of ``edges``.

    One set of superpixels serves all objects, as they share the frame's contours.
    """
    probs = _object_maps(probs)
    check_same_shape(probs=probs[0], edges=np.asarray(edges))
    return snap_to_regions(probs, superpixels(edges, ucm_threshold), mask_threshold, threshold,
                           min_superpixels)


def snap_to_regions(
    probs: np.ndarray,
    regions: np.ndarray,
    mask_threshold: float = MASK_THRESHOLD,
    threshold: float = 0.5,
    min_superpixels: int = MIN_SUPERPIXELS,
) -> tuple[np.ndarray, SnapStatus]:
    """:func:`snap_objects` on superpixels already made (``superpixels``), so that one frame's
    superpixels can be voted on under several settings (``experiments/study_snapping.py``).

    Returns:
        ``(probs, status)``: new ``(K, H, W) float32`` probabilities and a :class:`SnapStatus`.
        Snapped, a pixel of a foreground superpixel gets ``max(p, threshold + 1e-6)`` and any
        other pixel ``min(p, threshold)``: each mask is the snapped one at ``threshold``, and the
        order of the objects' probabilities, which decides the merge, is kept. Skipped, the
        probabilities come back unchanged.
    """
    probs = _object_maps(probs)
    if isinstance(min_superpixels, bool) or not isinstance(min_superpixels, (int, np.integer)):
        raise ValueError(f"min_superpixels must be an integer, got {min_superpixels!r}")
    threshold = _finite("threshold", threshold)
    out = probs.astype(np.float32, copy=True)
    count = int(regions.max()) + 1
    if count == 1:
        return out, SnapStatus.NO_BOUNDARY
    if count < min_superpixels:
        return out, SnapStatus.TOO_FEW_SUPERPIXELS
    for k, prob in enumerate(out):
        keep = majority_vote(regions, prob, mask_threshold)
        out[k] = np.where(
            keep,
            np.maximum(prob, np.float32(threshold + 1e-6)),
            np.minimum(prob, np.float32(threshold)),
        )
    return out, SnapStatus.SNAPPED


def _object_maps(probs: np.ndarray) -> np.ndarray:
    """``probs`` as an array, or a ValueError unless it is ``(K, H, W)`` with K >= 1."""
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError(
            f"probs must be (K, H, W) object probabilities, K >= 1, got shape {probs.shape}"
        )
    return probs


def _finite(name: str, value: float) -> float:
    """``value`` as a float, or a ValueError naming the parameter if it is NaN or infinite."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
