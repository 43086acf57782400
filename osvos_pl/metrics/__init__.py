"""DAVIS J/F metrics, exact to the official evaluation and batched over frames.

Per frame: ``db_eval_iou`` (J), ``db_eval_boundary`` (F), ``seg2bmap``; per object:
``db_statistics`` (mean, recall, decay); per sequence: ``evaluate_sequence``; over objects:
``summarize``; in a LightningModule: ``DavisJF`` (torchmetrics, DDP-safe).
"""

from osvos_pl.metrics.boundary import db_eval_boundary, seg2bmap
from osvos_pl.metrics.region import db_eval_iou
from osvos_pl.metrics.sequence import evaluate_sequence, jf_per_frame
from osvos_pl.metrics.statistics import db_statistics, decay_edges
from osvos_pl.metrics.summary import GLOBAL_KEYS, STAT_KEYS, global_row, object_row, summarize
from osvos_pl.metrics.torchmetric import DavisJF

__all__ = [
    "GLOBAL_KEYS",
    "STAT_KEYS",
    "DavisJF",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "decay_edges",
    "evaluate_sequence",
    "global_row",
    "jf_per_frame",
    "object_row",
    "seg2bmap",
    "summarize",
]
