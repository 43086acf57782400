"""OSVOS boundary snapping: contour map -> watershed -> UCM superpixels -> majority vote."""

from osvos_pl.snapping.snap import (
    MASK_THRESHOLD,
    MIN_SUPERPIXELS,
    SnapStatus,
    majority_vote,
    snap,
    snap_objects,
    snap_to_regions,
)
from osvos_pl.snapping.ucm import UCM_THRESHOLD, superpixels

__all__ = [
    "MASK_THRESHOLD",
    "MIN_SUPERPIXELS",
    "UCM_THRESHOLD",
    "SnapStatus",
    "majority_vote",
    "snap",
    "snap_objects",
    "snap_to_regions",
    "superpixels",
]
