"""``python -m osvos_pl.report PATH...``: ablation, sweep and per-sequence tables from run records."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from osvos_pl.report.plot import plot_sweep
from osvos_pl.report.render import FORMATS, render
from osvos_pl.report.runs import ReportError, Run
from osvos_pl.report.sources import find_runs, wandb_runs
from osvos_pl.report.tables import (
    Table,
    ablation_table,
    choice_table,
    incomplete_table,
    sequence_table,
    sweep_table,
)
from osvos_pl.runner.exits import input_error
from osvos_pl.utils.atomic import atomic_path

TABLES = ("ablation", "sweep", "sequences", "choice", "all")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m osvos_pl.report",
        description="Tables (the paper's ablation, the fine-tuning sweep, per-sequence scores) "
                    "from osvos-pl run records. Variants are recognised from each run's config.",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="run or multirun folders, searched recursively (--source files)")
    parser.add_argument("--format", choices=FORMATS, default="md")
    parser.add_argument("--table", choices=TABLES, default="all",
                        help="which table (csv holds exactly one; default: all; choice: one "
                             "row per run with the settings the runs differ in)")
    parser.add_argument("--out", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also write the sweep figure (scores vs iterations and vs seconds)")
    parser.add_argument("--reference", action="append", default=[], metavar="LABEL=RECORD",
                        help="add a reference row (ablation and choice tables) from a record "
                             "that `python -m osvos_pl.evaluate --out` wrote, e.g. the authors' "
                             "published masks; repeatable")
    parser.add_argument("--source", choices=("files", "wandb"), default="files")
    parser.add_argument("--project", metavar="ENTITY/PROJECT", help="W&B project (--source wandb)")
    parser.add_argument("--group", help="only this W&B group (--source wandb)")
    return parser


def load_runs(args: argparse.Namespace) -> list[Run]:
    if args.source == "wandb":
        if not args.project:
            raise ReportError("--source wandb needs --project ENTITY/PROJECT")
        if args.paths:
            raise ReportError("PATHs are read with --source files; drop them or the --source wandb")
        return wandb_runs(args.project, args.group)
    if not args.paths:
        raise ReportError("give at least one PATH (a run or multirun folder), or --source wandb")
    return find_runs(args.paths)


def load_references(specs: Sequence[str]) -> dict[str, dict]:
    """``LABEL=PATH`` → ``{LABEL: record}`` of evaluation records (``evaluate --out``)."""
    references = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise ReportError(f"--reference {spec!r}: write it as LABEL=PATH (a record written "
                              "by `python -m osvos_pl.evaluate --out PATH`)")
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ReportError(f"--reference {label}: cannot read {path}: {exc}") from None
        if not isinstance(record, dict) or not record.get("global") or "sequences" not in record:
            raise ReportError(f"--reference {label}: {path} has no global and per-sequence "
                              "scores; write it with `python -m osvos_pl.evaluate --out`")
        references[label] = record
    return references


def build_tables(runs: list[Run], which: str,
                 references: dict[str, dict] | None = None) -> list[Table]:
    """The requested tables; "sequences" gives one table per complete run with scores;
    ``references`` add labelled rows to the ablation and choice tables."""
    tables = []
    if which in ("ablation", "all"):
        tables.append(ablation_table(runs, references))
    if which in ("sweep", "all"):
        tables.append(sweep_table(runs))
    if which == "choice":
        tables.append(choice_table(runs, references))
    if which in ("sequences", "all"):
        scored = [run for run in runs if run.complete and run.record.get("sequences")]
        if which == "sequences" and not scored:
            raise ReportError("no complete run with per-sequence scores among the runs found")
        tables += [sequence_table(run) for run in scored]
    return tables


def _document(runs: list[Run], args: argparse.Namespace) -> str:
    tables = build_tables(runs, args.table, load_references(args.reference))
    missing = incomplete_table(runs)
    if args.format == "csv":
        if len(tables) != 1:
            raise ReportError(f"--format csv holds one table but --table {args.table} gives "
                              f"{len(tables)}; choose --table ablation|sweep, or sequences with "
                              "one run folder")
        for note in [*tables[0].notes, *(f"incomplete: {r['run']}: {r['reason']}" for r in missing)]:
            print(f"note: {note}", file=sys.stderr)
        return render(tables[0], "csv")
    if missing:
        tables.append(missing)
    complete = sum(run.complete for run in runs)
    if args.format == "md":
        head = f"# OSVOS report\n\n{len(runs)} runs found, {complete} complete.\n"
    else:
        head = f"% OSVOS report: {len(runs)} runs found, {complete} complete\n"
    return "\n".join([head, *(render(table, args.format) for table in tables)])


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 on success, 2 for input errors (message on stderr, no traceback)."""
    args = _parser().parse_args(argv)
    try:
        runs = load_runs(args)
        document = _document(runs, args)
        if args.plot:
            plot_sweep(sweep_table(runs), args.plot)
    except ReportError as exc:
        return input_error(exc)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(document)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(document)
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
