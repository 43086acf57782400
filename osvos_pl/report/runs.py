"""One run as the report sees it: its config, its record (if it finished) and what it measured.

The config is the resolved one the run recorded (``metrics.json`` → ``config``, also what W&B
holds), so no interpolation is followed here. The ablation variant is read from it, never from
folder or W&B names: a folder called ``osvos_full`` that ran with ``snapping=false`` is a -BS run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osvos_pl.utils.errors import OSVOSError

#: Ablation rows in table order. "OSVOS (contour maps)" snaps to precomputed maps
#: (``contour_maps=``) instead of the contour branch: a variant of the full method, compared
#: with it rather than merged into it.
METHODS = ("OSVOS", "OSVOS (contour maps)", "-BS", "-PN", "-OS")
"""Rows of the paper's ablation table, in its order: full method, then what each one removes."""

_OLDEST = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


class ReportError(OSVOSError, ValueError):
    """Nothing to report on, or runs that cannot be put in one table (what, where, how to fix)."""


def setting(config: Mapping, key: str) -> Any:
    """``config[a][b]`` for ``key="a.b"`` in a resolved config (None when absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def record_problem(record: Mapping | None) -> str | None:
    """Why a record cannot be counted, or None when it can."""
    if record is None:
        return "no metrics.json"
    if record.get("stage") == "contour":  # scored by boundary F (``contours``), not J/F
        return None if record.get("contours") else "no contour scores"
    if not record.get("global"):
        return "empty global"
    if record.get("stage") == "online" and not isinstance(record.get("config"), Mapping):
        return "no resolved config in metrics.json (written before osvos-pl recorded it): re-run"
    return None


@dataclass(frozen=True)
class Run:
    """``source``: the run folder, or ``wandb:<entity/project>/<id>``; ``problem``: why it is
    incomplete (None when its record can be counted)."""

    source: str
    config: Mapping
    record: Mapping | None
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None

    @property
    def stage(self) -> str | None:
        return setting(self.config, "stage") or (self.record or {}).get("stage")

    @property
    def iterations(self) -> int:
        value = setting(self.config, "online.iterations")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ReportError(f"{self.source}: online.iterations is {value!r}, not an integer") from None

    @property
    def snapping(self) -> bool:
        return bool(setting(self.config, "snapping"))

    @property
    def method(self) -> str | None:
        """The ablation row this run belongs to; None for runs other than the online stage."""
        if self.stage != "online":
            return None
        if self.iterations == 0:
            return "-OS"
        if not setting(self.config, "parent_ckpt"):
            return "-PN"
        if not self.snapping:
            return "-BS"
        return "OSVOS (contour maps)" if setting(self.config, "contour_maps") else "OSVOS"

    @property
    def finished(self) -> dt.datetime:
        """When the run finished (timezone-aware); the oldest possible time if unknown."""
        stamp = (self.record or {}).get("finished")
        try:
            when = dt.datetime.fromisoformat(stamp)
        except (TypeError, ValueError):
            return _OLDEST
        return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)

    @property
    def objects(self) -> frozenset[str]:
        """Scored objects (``<seq>`` or ``<seq>_<k>``): what several per-sequence jobs split."""
        return frozenset((self.record or {}).get("sequences", {}))
