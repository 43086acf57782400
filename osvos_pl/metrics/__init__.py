"""DAVIS J/F metrics, exact to the official evaluation and batched over frames.

Per frame: ``db_eval_iou`` (J), ``db_eval_boundary`` (F), ``seg2bmap``; per object:
``db_statistics`` (mean, recall, decay); per sequence: ``evaluate_sequence`` (or, single-object,
``evaluate_sequence_rows`` on frames packed as they are read); over objects:
``summarize``; in a LightningModule: ``DavisJF`` (torchmetrics, DDP-safe).

``DavisJF`` is imported on first use: it needs torch and torchmetrics (seconds to import), which
scoring PNG folders (``python -m osvos_pl.evaluate``) never touches.
"""

from osvos_pl.metrics.boundary import db_eval_boundary, seg2bmap
from osvos_pl.metrics.region import db_eval_iou
from osvos_pl.metrics.sequence import evaluate_sequence, evaluate_sequence_rows, jf_per_frame
from osvos_pl.metrics.statistics import db_statistics, decay_edges
from osvos_pl.metrics.summary import GLOBAL_KEYS, STAT_KEYS, global_row, object_row, summarize

__all__ = [
    "GLOBAL_KEYS",
    "STAT_KEYS",
    "DavisJF",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "decay_edges",
    "evaluate_sequence",
    "evaluate_sequence_rows",
    "global_row",
    "jf_per_frame",
    "object_row",
    "seg2bmap",
    "summarize",
]


def __getattr__(name: str):
    if name == "DavisJF":
        from osvos_pl.metrics.torchmetric import DavisJF

        return DavisJF
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
