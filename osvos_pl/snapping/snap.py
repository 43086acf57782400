"""Boundary snapping: give each superpixel the majority label of the thresholded mask.

Step 5 of OSVOS snapping (reference/osvos.md section 5, the authors' ``snap.m``): the mask's
outline is replaced by superpixel boundaries, which follow the contour branch's edges.
"""

from __future__ import annotations

import math

import numpy as np

from osvos_pl.snapping.checks import as_prob_map, check_same_shape
from osvos_pl.snapping.ucm import UCM_THRESHOLD, superpixels

MASK_THRESHOLD = 122 / 255
"""The authors' binarisation of the foreground probability before the vote (``P > 122/255``)."""


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


def _finite(name: str, value: float) -> float:
    """``value`` as a float, or a ValueError naming the parameter if it is NaN or infinite."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
