"""Where runs come from: Hydra output folders on disk, or W&B runs of one project."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from osvos_pl.report.runs import ReportError, Run, record_problem
from osvos_pl.stages.records import read_record


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run folder (one holding ``.hydra/config.yaml``) under each path, sorted by path.

    Each path must hold at least one run: a typo must not shrink a table silently. ``predict``
    runs (their config has ``input``) are no evaluation and are skipped.
    """
    runs: dict[Path, Run] = {}
    for root in map(Path, paths):
        if not root.exists():
            raise ReportError(f"{root} does not exist; pass a Hydra run or multirun folder")
        found = [_read_run(cfg.parent.parent) for cfg in sorted(root.rglob(".hydra/config.yaml"))]
        found = [run for run in found if "input" not in run.config]
        if not found:
            raise ReportError(
                f"no runs under {root}: no folder there holds .hydra/config.yaml; pass a Hydra "
                "run or multirun folder (e.g. outputs/online/multiruns/<date>)"
            )
        runs.update((Path(run.source).resolve(), run) for run in found)
    return sorted(runs.values(), key=lambda run: run.source)


def _read_run(folder: Path) -> Run:
    """The record's resolved config; ``.hydra/config.yaml`` only names runs that left no record."""
    config_path = folder / ".hydra" / "config.yaml"
    try:
        saved = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        return Run(str(folder), {}, None, f"unreadable {config_path.name}: {exc}")
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return Run(str(folder), saved, None, record_problem(None))
    try:
        record = read_record(metrics)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Run(str(folder), saved, None, f"unreadable metrics.json: {exc}")
    config = record.get("config") if isinstance(record.get("config"), dict) else saved
    return Run(str(folder), config, record, record_problem(record))


def _wandb_api() -> Any:
    """The W&B public API (needs a reachable server); tests replace this factory with a fake."""
    import wandb

    return wandb.Api()


def wandb_runs(project: str, group: str | None = None) -> list[Run]:
    """The runs of ``entity/project`` (one group if given), each with its config and record.

    The record is the ``record`` key of the run's summary; a run that did not finish, or has no
    record there, is incomplete.
    """
    filters = {"group": group} if group else None
    runs = [_from_wandb(project, run) for run in _wandb_api().runs(project, filters=filters)]
    runs = [run for run in runs if "input" not in run.config]
    if not runs:
        where = f"W&B project {project}" + (f", group {group}" if group else "")
        raise ReportError(f"no runs in {where}; check --project ENTITY/PROJECT and --group")
    return sorted(runs, key=lambda run: run.source)


def _from_wandb(project: str, run: Any) -> Run:
    source = f"wandb:{project}/{run.id} ({run.name})"
    config = _plain(run.config)
    record = _plain(run.summary.get("record"))
    if run.state != "finished":
        return Run(source, config, record, f"W&B state {run.state}")
    if record is None:
        return Run(source, config, None, "no record in the W&B summary")
    return Run(source, config, record, record_problem(record))


def _plain(value: Any) -> Any:
    """W&B's summary and config objects as plain dicts and lists (its nested summary values are
    dict-like ``SummarySubDict`` objects, not Mappings)."""
    if isinstance(value, Mapping) or callable(getattr(value, "items", None)):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
