"""What the previous frame says about the next: each object's mask kept near where it was.

OSVOS segments every frame on its own, so a fine-tuned network that takes another object of the
same look for its own (graffiti figures beside a BMX rider, a fountain's statues behind a
dancer) marks it wherever it appears. An object moves a bounded distance between two frames:
the parts of its mask that are far from its mask in the previous frame are those look-alikes.
:func:`keep_near` drops them, whole connected parts at a time, so a part that moved or grew is
kept as long as it touches the neighbourhood (docs/method.md#keeping-each-object-near-where-it-was).
"""

from __future__ import annotations

import cv2
import numpy as np

from osvos_pl.utils.errors import ConfigError


def keep_near(labels: np.ndarray, previous: np.ndarray | None, grow: float) -> np.ndarray:
    """``labels`` (``(H, W)`` object ids, 0 background) without each object's connected parts
    (8-connected) that do not reach within ``grow * sqrt(area)`` px of that object's mask in
    ``previous`` (the same frame size; ``area`` its pixel count there). An object absent from
    ``previous`` (or ``previous`` None: the first frame) is left as it is: it may enter
    anywhere. Dropped pixels become background."""
    if previous is None:
        return labels
    out = labels.copy()
    for oid in np.unique(labels):
        before = previous == oid
        if oid == 0 or not before.any():
            continue
        reach = max(1.0, grow * float(np.sqrt(before.sum())))
        distance = cv2.distanceTransform((~before).astype(np.uint8), cv2.DIST_L2, 5)
        count, parts = cv2.connectedComponents((labels == oid).astype(np.uint8), connectivity=8)
        near = np.bincount(parts.ravel(), weights=(distance <= reach).ravel(), minlength=count) > 0
        near[0] = True  # the pixels outside this object's mask stay what they are
        out[~near[parts]] = 0
    return out


def checked_reach(grow: float | None) -> float | None:
    """``online.near_previous`` as a float, None (off) as it is; a value that is not > 0 is
    refused, naming the key."""
    if grow is None:
        return None
    if not float(grow) > 0:
        raise ConfigError(f"online.near_previous={grow} must be > 0 (a multiple of the object's "
                          "size: how far from its previous mask a part may be), or null (off)")
    return float(grow)


def follower(grow: float | None):
    """A filter for one stream of frames in order (``online.near_previous``): each frame's
    labels through :func:`keep_near` of the previous frame's result; None: off."""
    grow = checked_reach(grow)
    if grow is None:
        return lambda labels: labels
    previous = None

    def follow(labels: np.ndarray) -> np.ndarray:
        nonlocal previous
        previous = keep_near(labels, previous, grow)
        return previous

    return follow
