"""The speed/quality figure of the fine-tuning sweep: scores against iterations and seconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from osvos_pl.report.runs import ReportError
from osvos_pl.utils.atomic import atomic_path

CURVES = (("J&F-Mean", "J&F"), ("J-Mean", "J mean"), ("F-Mean", "F mean"))


def plot_sweep(rows: Sequence[dict], path: str | Path) -> Path:
    """Write a PNG with two panels from :func:`~osvos_pl.report.tables.sweep_table` rows: scores
    (%) against ``online.iterations`` and against mean fine-tuning seconds per sequence (points in
    iteration order, J&F labelled with its iterations).

    Uses a bare :class:`Figure` (Agg when saved as PNG), so no pyplot state or display is needed.
    """
    if not rows:
        raise ReportError("--plot: no complete online runs to plot; pass the folders of a sweep "
                          "over online.iterations")
    fig = Figure(figsize=(10, 4), layout="constrained")
    by_iterations, by_seconds = fig.subplots(1, 2, sharey=True)
    for key, label in CURVES:
        points = [(row["iterations"], 100 * row[key]) for row in rows if row[key] is not None]
        by_iterations.plot(*zip(*points), marker="o", label=label)
        timed = [(row["finetune_seconds"], 100 * row[key], row["iterations"]) for row in rows
                 if row[key] is not None and row["finetune_seconds"] is not None]
        if timed:
            seconds, score, iterations = zip(*timed)
            by_seconds.plot(seconds, score, marker="o", label=label)
            if key == "J&F-Mean":
                for x, y, n in timed:
                    by_seconds.annotate(f"{n} it", (x, y), textcoords="offset points",
                                        xytext=(4, 4), fontsize=8)
    by_iterations.set(xlabel="fine-tuning iterations (online.iterations)", ylabel="score (%)",
                      title="quality vs iterations")
    by_seconds.set(xlabel="mean fine-tuning seconds per sequence", title="quality vs time")
    for axes in (by_iterations, by_seconds):
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)
