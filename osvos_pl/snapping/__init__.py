"""OSVOS boundary snapping: contour map -> watershed -> UCM superpixels -> majority vote."""

from osvos_pl.snapping.snap import MASK_THRESHOLD, majority_vote, snap
from osvos_pl.snapping.ucm import UCM_THRESHOLD, superpixels

__all__ = ["MASK_THRESHOLD", "UCM_THRESHOLD", "majority_vote", "snap", "superpixels"]
