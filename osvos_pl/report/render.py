"""Tables as text: GitHub markdown, CSV (raw values, for scripts) or a booktabs LaTeX tabular.

Markdown and LaTeX show scores ×100 with one decimal, as the paper does, and differences signed
(``+1.2``); CSV keeps the stored floats and the record's key names as its one header row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from osvos_pl.report.runs import ReportError
from osvos_pl.stages.records import GLOBAL_KEYS

FORMATS = ("md", "csv", "latex")

FRACTION_KEYS = frozenset(GLOBAL_KEYS) | {f"Δ{key}" for key in GLOBAL_KEYS}
"""Columns stored as fractions in [0, 1] and shown as percentages."""

LABELS = {
    "J-Mean": "J M", "J-Recall": "J R", "J-Decay": "J D",
    "F-Mean": "F M", "F-Recall": "F R", "F-Decay": "F D",
    "J&F-Mean": "J&F", "ΔJ-Mean": "ΔJ M", "ΔF-Mean": "ΔF M", "ΔJ&F-Mean": "ΔJ&F",
    "finetune_seconds": "fine-tune s/seq",
    "inference_seconds": "inference s/seq",
}

_LATEX_ESCAPES = {
    "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
    "Δ": r"$\Delta$",
}


def render(rows: Sequence[dict], fmt: str) -> str:
    """``rows`` as one table; a :class:`~osvos_pl.report.tables.Table`'s title and notes are
    included in md (heading, bullets) and latex (comments), never in csv."""
    if fmt == "csv":
        return _csv(rows)
    if fmt == "md":
        return _markdown(rows)
    if fmt == "latex":
        return _latex(rows)
    raise ReportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _columns(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _shown(key: str, value: object, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, float):
        if key.startswith("Δ"):
            return f"{100 * value:+.1f}"
        if key.startswith("J "):  # one object's J (choice table)
            return f"{value:.3f}"
        return f"{100 * value:.1f}" if key in FRACTION_KEYS else f"{value:.2f}"
    return str(value)


def _numeric(rows: Sequence[dict], key: str) -> bool:
    values = [row.get(key) for row in rows if row.get(key) is not None]
    return bool(values) and all(isinstance(v, (int, float)) for v in values)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _csv(rows: Sequence[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _markdown_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_one_line(c).replace("|", r"\|") for c in cells) + " |"


def _markdown(rows: Sequence[dict]) -> str:
    lines = [f"## {rows.title}", ""] if getattr(rows, "title", None) else []
    columns = _columns(rows)
    if not rows:
        lines.append("_no complete runs for this table_")
    else:
        lines.append(_markdown_line(LABELS.get(c, c) for c in columns))
        lines.append("|" + "|".join("---:" if _numeric(rows, c) else ":---" for c in columns) + "|")
        lines += [_markdown_line(_shown(c, row.get(c), "–") for c in columns) for row in rows]
    notes = getattr(rows, "notes", [])
    if notes:
        lines += [""] + [f"- {_one_line(note)}" for note in notes]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex_line(cells: Iterable[str]) -> str:
    return " & ".join(_latex_escape(_one_line(c)) for c in cells) + r" \\"


def _latex(rows: Sequence[dict]) -> str:
    lines = [f"% {_one_line(rows.title)}"] if getattr(rows, "title", None) else []
    lines += [f"% note: {_one_line(note)}" for note in getattr(rows, "notes", [])]
    columns = _columns(rows)
    if not rows:
        return "\n".join([*lines, "% no complete runs for this table"]) + "\n"
    spec = "".join("r" if _numeric(rows, c) else "l" for c in columns)
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              _latex_line(LABELS.get(c, c) for c in columns), r"\midrule"]
    lines += [_latex_line(_shown(c, row.get(c), "--") for c in columns) for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
