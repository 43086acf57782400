"""Input checks shared by the snapping functions: fail early, with the shape or value at fault."""

from __future__ import annotations

import numpy as np


def as_prob_map(name: str, x: np.ndarray) -> np.ndarray:
    """Return ``x`` as an ``(H, W) float64`` map after checking it is 2-D, finite and in [0, 1].

    The UCM threshold (0.29) and the mask threshold (122/255) are defined on probabilities, so a
    uint8 map in 0..255 or raw logits would silently give nonsense; they are rejected instead.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) map, got shape {x.shape}")
    if not (
        np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer) or x.dtype == bool
    ):
        raise ValueError(f"{name} must be a real-valued array, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; pass sigmoid probabilities, not raw logits")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "apply a sigmoid to logits, or divide 8-bit maps by 255"
        )
    return x


def check_same_shape(**arrays: np.ndarray) -> None:
    """Raise if the given ``(H, W)`` arrays differ in shape, naming each one and its shape."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; all maps must belong to the same frame")
