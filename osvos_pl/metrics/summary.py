"""Aggregating per-object J/F vectors into the official per-sequence rows and global row.

The official recipe (reference/davis_metrics.md section 5): M, R and D per object over that
object's scored frames; each global number is the plain mean over all objects of all sequences
(a sequence with 3 objects weighs 3×); J&F-Mean = (J-Mean + F-Mean) / 2. All values are plain
Python floats, so results go straight into JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from osvos_pl.metrics.statistics import db_statistics

STAT_KEYS = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
GLOBAL_KEYS = ("J&F-Mean", *STAT_KEYS)


def object_row(j, f) -> dict[str, float | int]:
    """One object's row: M/R/D of its ``(L,)`` J and F vectors, and ``frames`` = L."""
    j, f = np.asarray(j, dtype=np.float64), np.asarray(f, dtype=np.float64)
    if j.shape != f.shape:
        raise ValueError(f"J {j.shape} and F {f.shape} must hold one value per scored frame each")
    row: dict[str, float | int] = dict(zip(STAT_KEYS[:3], db_statistics(j)))
    row.update(zip(STAT_KEYS[3:], db_statistics(f)))
    row["frames"] = int(j.size)
    return row


def global_row(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The global row: each statistic averaged over objects; NaN everywhere if there are none."""
    rows = list(rows)
    if not rows:
        return dict.fromkeys(GLOBAL_KEYS, float("nan"))
    means = {k: float(np.mean([float(r[k]) for r in rows])) for k in STAT_KEYS}
    return {"J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2, **means}


def summarize(per_object: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """``{"global": {...}, "sequences": {name: row}}`` from ``{name: {"J": (L,), "F": (L,)}}``.

    Names are ``"<seq>"`` for single-object and ``"<seq>_<k>"`` for multi-object sequences
    (the official per-sequence CSV's rows); their order is kept.
    """
    if not per_object:
        raise ValueError("summarize() got no objects — evaluate at least one sequence first")
    sequences = {name: object_row(jf["J"], jf["F"]) for name, jf in per_object.items()}
    return {"global": global_row(sequences.values()), "sequences": sequences}
