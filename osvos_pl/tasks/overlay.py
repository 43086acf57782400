"""Mask overlays (tint + outline) for W&B panels, overlay videos and contact sheets."""

from __future__ import annotations

import cv2
import numpy as np

from osvos_pl.data.io import davis_palette

_PALETTE = np.array(davis_palette(), np.uint8).reshape(256, 3)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Tint each object of ``labels`` (bool or ids) in its DAVIS colour and outline it.

    ``image`` is ``(H, W, 3) uint8`` RGB; ``labels`` is ``(h, w)`` and resized (nearest) to it.
    """
    labels = np.asarray(labels).astype(np.uint8)
    if labels.shape != image.shape[:2]:
        labels = cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    out = image.astype(np.float32).copy()
    for k in np.unique(labels):
        if k == 0:
            continue
        m = labels == k
        colour = _PALETTE[k if k < 255 else 1].astype(np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * colour
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 2)
    return np.clip(out, 0, 255).astype(np.uint8)
