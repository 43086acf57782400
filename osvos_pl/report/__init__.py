"""Results tables from run records (``metrics.json`` in Hydra output folders, or W&B runs).

``python -m osvos_pl.report PATH... [--format md|csv|latex] [--table ablation|sweep|sequences|all]
[--out FILE] [--plot FILE.png] [--source files|wandb --project ENTITY/PROJECT --group G]``
"""

from osvos_pl.report.cli import main
from osvos_pl.report.plot import plot_sweep
from osvos_pl.report.render import render
from osvos_pl.report.runs import METHODS, ReportError, Run
from osvos_pl.report.sources import find_runs, wandb_runs
from osvos_pl.report.tables import (
    Table,
    ablation_table,
    incomplete_table,
    sequence_table,
    sweep_table,
)

__all__ = [
    "METHODS", "ReportError", "Run", "Table", "ablation_table", "find_runs", "incomplete_table",
    "main", "plot_sweep", "render", "sequence_table", "sweep_table", "wandb_runs",
]
