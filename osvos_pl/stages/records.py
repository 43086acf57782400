"""Run records (``metrics.json``): building, writing atomically, reading and merging them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from osvos_pl.metrics.summary import GLOBAL_KEYS, STAT_KEYS, global_row
from osvos_pl.utils.atomic import atomic_write_json

__all__ = ["GLOBAL_KEYS", "STAT_KEYS", "global_from_sequences", "merge_records", "read_record",
           "write_record"]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def global_from_sequences(sequences: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The official global row: plain mean over objects of each statistic; J&F = (J + F) / 2."""
    return global_row(sequences.values()) if sequences else {}


def write_record(path: str | Path, record: Mapping) -> Path:
    return atomic_write_json(path, dict(record))


def read_record(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def merge_records(records: Iterable[Mapping]) -> dict:
    """Combine per-sequence job records (e.g. one sequence per joblib/SLURM job) into one.

    The global row is recomputed from the union of per-object rows, which equals what one job
    over all the sequences reports. Duplicate sequences (re-runs) must agree, else it is an error.
    """
    sequences: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    for rec in records:
        for name, row in rec.get("sequences", {}).items():
            if name in sequences and sequences[name] != row:
                raise ValueError(f"sequence {name!r} appears in several records with different scores")
            sequences[name] = dict(row)
        for name, row in (rec.get("timing", {}).get("sequences") or {}).items():
            timing[name] = row
    sequences = dict(sorted(sequences.items()))
    return {
        "experiment": "merged",
        "global": global_from_sequences(sequences),
        "sequences": sequences,
        "timing": {"sequences": timing},
    }
