"""Bringing metric inputs to one form: ``(T, H, W)`` bool numpy arrays of equal shape."""

from __future__ import annotations

import sys

import numpy as np


def as_bool_frames(masks, what: str) -> np.ndarray:
    """``(H, W)`` or ``(T, H, W)`` numpy array / torch tensor → ``(T, H, W)`` bool (non-zero = True).

    torch is not imported here (it takes seconds): a tensor can only exist once torch is loaded.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"{what} must be (H, W) or (T, H, W) masks, got shape {masks.shape}")
    return masks if masks.dtype == bool else masks != 0


def as_frames(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as ``(T, H, W)`` bool; their shapes must agree (the official code never resizes)."""
    gt, pred = as_bool_frames(gt, "gt"), as_bool_frames(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(
            f"gt {gt.shape} and pred {pred.shape} differ in shape — predictions must have the "
            "annotation's size and frame count; resize them to the annotation first"
        )
    return gt, pred
