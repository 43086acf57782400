"""Per-object sequence statistics of a per-frame measure: mean M, recall R (O) and decay D.

Definitions (reference/davis_metrics.md section 4): over the L scored frames, M is the mean,
R the fraction of frames above 0.5 (strictly), D the mean of the first minus the mean of the
last of 4 bins whose edges are ``round(linspace(1, L, 5) + 1e-10) - 1``, bins inclusive at both
ends (neighbouring bins share their edge frame). Positive D = quality drops over time.
"""

from __future__ import annotations

import numpy as np

DECAY_BINS = 4
RECALL_THRESHOLD = 0.5


def decay_edges(length: int) -> np.ndarray:
    """0-based bin edges over ``length`` scored frames (38 → [0, 9, 19, 28, 37]).

    The ``+1e-10`` turns numpy's round-half-to-even into MATLAB's round-half-up. (The official
    code casts the edges to uint8, which would wrap past 256 frames; DAVIS never gets there.)
    """
    return np.round(np.linspace(1, length, DECAY_BINS + 1) + 1e-10).astype(np.int64) - 1


def db_statistics(per_frame) -> tuple[float, float, float]:
    """``(mean, recall, decay)`` of a ``(L,)`` per-frame J or F vector, as Python floats."""
    x = np.asarray(per_frame, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"db_statistics needs a non-empty (L,) vector of per-frame values, got shape {x.shape}"
            " — a sequence needs at least 3 annotated frames (the first and last are not scored)"
        )
    edges = decay_edges(x.size)
    first, last = x[edges[0] : edges[1] + 1], x[edges[-2] : edges[-1] + 1]
    return float(np.mean(x)), float(np.mean(x > RECALL_THRESHOLD)), float(np.mean(first) - np.mean(last))
