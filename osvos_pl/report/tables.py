"""The report's tables, as lists of row dicts (one key per column; scores as stored, fractions).

Rows are built from complete runs only. When several runs fall on one row, the rules are:
runs with other settings than the newest run's are left out; a run whose objects newer runs
already score is left out (a re-run replaces the old one); the rest are per-sequence jobs
(joblib/SLURM, one ``data.sequences`` each) and are merged with :func:`records.merge_records`,
which gives the numbers one job over all their sequences would report. Each such choice is
written in the table's notes, so nothing is dropped or averaged silently.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from osvos_pl.report.runs import METHODS, ReportError, Run, setting
from osvos_pl.stages.records import STAT_KEYS, merge_records

COMPARED_KEYS = (
    "stage", "online.iterations", "parent_ckpt", "contour_ckpt", "data.root", "data.year",
    "data.resolution", "data.scale", "online.threshold", "online.accumulate", "model.weights",
    "seed",
)
"""Settings that change the scores: runs on one row must agree on them (and on snapping)."""

SCORE_KEYS = (*STAT_KEYS, "J&F-Mean")
"""Score columns in the paper's order: J mean/recall/decay, F mean/recall/decay, J&F."""

DELTA_KEYS = ("J-Mean", "F-Mean", "J&F-Mean")
"""Scores whose difference to the full method the ablation table shows (as ``Δ<key>``)."""


class Table(list):
    """Rows (dicts) with a title and notes on which runs the rows come from."""

    def __init__(self, title: str, rows: Iterable[dict] = (), notes: Iterable[str] = ()):
        super().__init__(rows)
        self.title = title
        self.notes = list(notes)


def ablation_table(runs: Iterable[Run], references: Mapping[str, Mapping] | None = None) -> Table:
    """The paper's ablation: one row per method found (OSVOS, -BS, -PN, -OS), then one per
    reference record (e.g. the authors' published masks, ``evaluate --out``), with differences
    to the OSVOS row (``ΔJ-Mean``, ``ΔF-Mean``, ``ΔJ&F-Mean``; None without an OSVOS row)."""
    by_method: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.complete and run.method:
            by_method[run.method].append(run)
    table = Table("Ablation: full OSVOS; -BS no boundary snapping, -PN no parent network, "
                  "-OS no one-shot fine-tuning")
    for method in (m for m in METHODS if m in by_method):
        record = _combine(method, by_method[method], table.notes)
        table.append({"method": method, **_scores(record), "objects": len(record["sequences"])})
    for label, record in (references or {}).items():
        table.append({"method": label, **_scores(record), "objects": len(record["sequences"])})
        table.notes.append(f"{label}: a reference record, not a run of this report")
    full = next((row for row in table if row["method"] == "OSVOS"), None)
    for row in table:
        for key in DELTA_KEYS:
            known = full is not None and row[key] is not None and full[key] is not None
            row[f"Δ{key}"] = row[key] - full[key] if known else None
    return table


def sweep_table(runs: Iterable[Run]) -> Table:
    """Scores against ``online.iterations`` and mean fine-tuning seconds per sequence, one row
    per iteration count (ascending)."""
    by_iterations: dict[int, list[Run]] = defaultdict(list)
    for run in runs:
        if run.complete and run.stage == "online":
            by_iterations[run.iterations].append(run)
    table = Table("Fine-tuning sweep: scores against online.iterations and fine-tuning time")
    for iterations in sorted(by_iterations):
        record = _combine(f"{iterations} iterations", by_iterations[iterations], table.notes)
        scores = _scores(record)
        table.append({
            "iterations": iterations,
            "finetune_seconds": _finetune_seconds(record),
            **{key: scores[key] for key in ("J&F-Mean", "J-Mean", "F-Mean")},
            "objects": len(record["sequences"]),
        })
    return table


def sequence_table(run: Run) -> Table:
    """One run's scores per object (``<seq>`` or ``<seq>_<k>``), with its frames and the wall
    times of its sequence: fine-tuning and inference seconds, all of the sequence's objects
    together (a DAVIS 2017 sequence's objects share one inference pass)."""
    if not run.complete:
        raise ReportError(f"{run.source}: {run.problem}; it has no per-sequence scores to show")
    record = run.record
    timing = (record.get("timing") or {}).get("sequences") or {}
    jf = record["global"].get("J&F-Mean")
    title = f"Per object: {run.source}" + (f" (J&F {100 * jf:.1f})" if jf is not None else "")
    table = Table(title)
    for name, row in record.get("sequences", {}).items():
        seconds = timing.get(_sequence_of(name, timing), {})
        table.append({"object": name, **{key: row.get(key) for key in STAT_KEYS},
                      "frames": row.get("frames"),
                      "finetune_seconds": seconds.get("finetune_seconds"),
                      "inference_seconds": seconds.get("inference_seconds")})
    return table


CHOICE_PREFIXES = ("online.", "optim.", "data.scale", "data.augment", "parent_ckpt",
                   "contour_ckpt", "contour_maps", "snapping", "model.")
"""Settings a choice table shows where its runs differ (the knobs a dev protocol chooses)."""


def choice_table(runs: Iterable[Run], references: Mapping[str, Mapping] | None = None) -> Table:
    """One row per complete online run: the settings in which the runs differ, the scores, the
    worst object's J and the fine-tuning seconds per sequence, then J per object; then one row
    per reference record. Rows are in the order given (sort the paths): what a dev protocol
    chooses a setting from, or a per-sequence comparison of methods."""
    runs = [run for run in runs if run.complete and run.stage == "online"]
    flat = [_flatten(run.config) for run in runs]
    keys = sorted({k for f in flat for k in f if k.startswith(CHOICE_PREFIXES)})
    varying = [k for k in keys if len({json.dumps(f.get(k), default=str) for f in flat}) > 1]
    table = Table("Choice: scores of each run, and the settings in which the runs differ")
    rows = [(Path(run.source).name, values, run.record) for run, values in zip(runs, flat)]
    rows += [(label, {}, record) for label, record in (references or {}).items()]
    for name, values, record in rows:
        scores = _scores(record)
        per_object = {obj: row.get("J-Mean") for obj, row in record.get("sequences", {}).items()}
        worst = min(per_object, key=lambda n: per_object[n]) if per_object else None
        table.append({
            "run": name, **{k: str(values[k]) if k in values else None for k in varying},
            **{key: scores[key] for key in ("J&F-Mean", "J-Mean", "F-Mean")},
            "worst": f"{worst} {per_object[worst]:.3f}" if worst else None,
            "finetune_seconds": _finetune_seconds(record),
            **{f"J {obj}": j for obj, j in per_object.items()},
        })
    return table


def _flatten(config: Mapping, prefix: str = "") -> dict:
    """``{"a.b": value}`` for every leaf of a nested config."""
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def incomplete_table(runs: Iterable[Run]) -> Table:
    """Runs that were found but not counted, with the reason (no metrics.json, empty global...)."""
    table = Table("Incomplete runs (not counted)")
    for run in runs:
        if not run.complete:
            table.append({"run": run.source, "method": _method_or_stage(run), "reason": run.problem})
    return table


def _combine(label: str, runs: list[Run], notes: list[str]) -> Mapping:
    """One record for one table row from its complete runs (rules in the module docstring)."""
    by_settings: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_settings[_settings_key(run)].append(run)
    chosen = max(by_settings.values(), key=lambda group: max(run.finished for run in group))
    others = [run for group in by_settings.values() if group is not chosen for run in group]
    if others:
        notes.append(f"{label}: left out {len(others)} run(s) with other settings "
                     f"({_differences(chosen[0], others[0])}): "
                     + ", ".join(run.source for run in others))
    kept: list[Run] = []
    covered: set[str] = set()
    for run in sorted(chosen, key=lambda run: run.finished, reverse=True):
        if run.objects <= covered:
            newer = ", ".join(k.source for k in kept if k.objects & run.objects)
            notes.append(f"{label}: several runs score the same sequences; used the newest "
                         f"({newer}), left out {run.source} (finished {run.record.get('finished')})")
            continue
        kept.append(run)
        covered |= run.objects
    if len(kept) == 1:
        return kept[0].record
    try:
        merged = merge_records(run.record for run in kept)
    except ValueError as exc:
        raise ReportError(f"{label}: cannot merge {', '.join(run.source for run in kept)}: {exc}; "
                          "remove the outdated run or pass only the paths of one attempt") from None
    notes.append(f"{label}: merged {len(kept)} per-sequence runs ({len(covered)} objects): "
                 + ", ".join(run.source for run in kept))
    return merged


def _settings_key(run: Run) -> str:
    values = {key: setting(run.config, key) for key in COMPARED_KEYS}
    return json.dumps({**values, "snapping": run.snapping}, sort_keys=True, default=str)


def _differences(a: Run, b: Run) -> str:
    pairs = [(key, setting(a.config, key), setting(b.config, key)) for key in COMPARED_KEYS]
    pairs.append(("snapping", a.snapping, b.snapping))
    return ", ".join(f"{key} {x!r} vs {y!r}" for key, x, y in pairs if x != y)


def _scores(record: Mapping) -> dict:
    return {key: record["global"].get(key) for key in SCORE_KEYS}


def _finetune_seconds(record: Mapping) -> float | None:
    """Mean fine-tuning seconds per sequence, from the per-sequence timings (merged records keep
    only those), else the record's own mean."""
    timing = record.get("timing") or {}
    seconds = [row["finetune_seconds"] for row in (timing.get("sequences") or {}).values()
               if "finetune_seconds" in row]
    return statistics.fmean(seconds) if seconds else timing.get("finetune_seconds_per_sequence")


def _sequence_of(name: str, timing: Mapping) -> str:
    """``<seq>_<k>`` (object k of a DAVIS 2017 sequence) → ``<seq>``, as timings are per sequence."""
    base, _, suffix = name.rpartition("_")
    return base if name not in timing and suffix.isdigit() and base in timing else name


def _method_or_stage(run: Run) -> str | None:
    try:
        return run.method or run.stage
    except ReportError:
        return run.stage
