"""Deep-supervision and learning-rate schedules of offline training (parent, contour branch).

``caffe`` is the paper's solver (docs/method.md#side-loss-schedule): training is cut into stages
(30% / 30% / 40%) with side-loss weights 1 / 0.5 / 0, and inside each stage the lr drops by
``lr_gamma`` after ``lr_step_at`` of it. ``linear`` is the PyTorch port's side weight decaying
from 1 to 0 at a constant lr; ``none`` keeps the side losses at weight 1 and the lr constant.
"""

from __future__ import annotations

from collections.abc import Sequence

from osvos_pl.utils.errors import ConfigError

SIDE_SCHEDULES = ("caffe", "linear", "none")


class StagedSchedule:
    """Side-loss weight and lr factor as functions of the optimizer step."""

    def __init__(
        self,
        mode: str = "caffe",
        total: int = 1,
        fractions: Sequence[float] = (1.0,),
        side_weights: Sequence[float] = (1.0,),
        lr_step_at: float = 1.0,
        lr_gamma: float = 1.0,
    ):
        if mode not in SIDE_SCHEDULES:
            raise ConfigError(f"side_schedule={mode!r} is unknown; choose one of {SIDE_SCHEDULES}")
        self.mode, self.total = mode, max(1, int(total))
        self.fractions = [float(f) for f in fractions]
        self.side_weights = [float(w) for w in side_weights]
        self.lr_step_at, self.lr_gamma = float(lr_step_at), float(lr_gamma)
        self.bounds = [self.total * sum(self.fractions[: i + 1]) for i in range(len(self.fractions))]

    def side_weight(self, step: int) -> float:
        if self.mode == "none":
            return 1.0
        if self.mode == "linear":
            return max(0.0, 1.0 - step / self.total)
        for bound, w in zip(self.bounds, self.side_weights):
            if step < bound:
                return w
        return self.side_weights[-1]

    @property
    def steps_lr(self) -> bool:
        """Whether the lr changes at all (only the ``caffe`` solver steps it)."""
        return self.mode == "caffe"

    def lr_factor(self, step: int) -> float:
        """Inside each stage, ×``lr_gamma`` after ``lr_step_at`` of the stage (the authors' Caffe solver)."""
        if not self.steps_lr:
            return 1.0
        starts = [self.total * sum(self.fractions[:i]) for i in range(len(self.fractions))]
        lengths = [self.total * f for f in self.fractions]
        for start, length in zip(reversed(starts), reversed(lengths)):
            if step >= start:
                return self.lr_gamma if step - start >= self.lr_step_at * length else 1.0
        return 1.0
