"""What a run says while it runs: the plan at the start, and an ETA from measured updates."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger("osvos_pl")


def duration(seconds: float) -> str:
    """``75.2`` → ``"1 min 15 s"``; ``3700`` → ``"1 h 2 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class UpdateEta(pl.Callback):
    """Logs, once, the measured time per optimizer update and the time left for ``total``.

    The first ``skip`` updates (start-up: workers, allocator, first validation) are not
    timed; the next ``measure`` are. Shared by several trainers (the online stage fine-tunes
    one per object), it counts updates across them, so ``total`` is the run's total.
    """

    def __init__(self, total: int, what: str, skip: int = 1, measure: int = 5, extra: str = ""):
        self.total, self.what, self.skip, self.measure = int(total), what, skip, measure
        self.extra = extra
        self.done, self.started, self.reported = 0, None, False
        self._last_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        if self._last_step is None:  # the run's first trainer: a resumed run has fewer to go
            self.total -= trainer.global_step
        self._last_step = trainer.global_step  # each new fine-tuning starts again at 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self._last_step is None or step == self._last_step:  # accumulating, not an update
            return
        self.done += step - self._last_step
        self._last_step = step
        if self.reported or self.done < self.skip:
            return
        if self.started is None:
            self.started = (time.perf_counter(), self.done)
            return
        t0, n0 = self.started
        if self.done - n0 >= self.measure:
            per_update = (time.perf_counter() - t0) / (self.done - n0)
            left = max(0, self.total - self.done)
            log.info("%s: %.2f s per update (measured over %d) -> about %s for the %d updates "
                     "left%s", self.what, per_update, self.done - n0,
                     duration(per_update * left), left, self.extra)
            self.reported = True
