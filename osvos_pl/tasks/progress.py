"""What a run says while it runs: the plan at the start, an ETA from measured updates, and a
progress bar that counts the updates the plan names."""

from __future__ import annotations

import logging
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm

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

    The first ``skip`` updates (start-up: workers, allocator, caches) are not timed; the next
    ``measure`` are (a short window over-estimated runs several fold). Shared by several trainers (the online stage fine-tunes
    one per object), it counts updates across them, so ``total`` is the run's total.
    """

    def __init__(self, total: int, what: str, skip: int = 3, measure: int = 10, extra: str = ""):
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


class UpdateBar(ProgressBar):
    """One bar of optimizer updates, ``what: 37/300 updates [00:41<04:52, loss=0.18]``, in place of
    Lightning's, which counts the batches of an "epoch" (a notion the plan does not use).

    The time left is the run's average rate so far (tqdm ``smoothing=0``), validations included,
    so it stays honest when they pause training. A validation gets a bar of its own that
    vanishes when done. Several trainers (one fine-tuning per object) may share one instance.
    """

    def __init__(self, what: str, leave: bool = True):
        super().__init__()
        self.what, self.leave, self.enabled = what, leave, True
        self._train: tqdm | None = None
        self._val: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def _bar(self, desc: str, total, unit: str, leave: bool, initial: int = 0) -> tqdm:
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave,
                    dynamic_ncols=True, smoothing=0, disable=not self.enabled)

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self._train = self._bar(self.what, trainer.max_steps, "update", self.leave,
                                trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._train is None or trainer.global_step == self._train.n:
            return  # accumulating: no update yet
        self._train.update(trainer.global_step - self._train.n)
        metrics = self.get_metrics(trainer, pl_module)
        shown = {k: metrics[k] for k in ("loss", "val_jf") if k in metrics}
        if shown:
            self._train.set_postfix(shown, refresh=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self._train is not None:
            self._train.close()
            self._train = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._val = self._bar("validating", self.total_val_batches, "batch", False)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        if self._val is not None:
            self._val.update(1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self._val is not None:
            self._val.close()
            self._val = None
        if self._train is not None and not trainer.sanity_checking:
            # the validation just done, not the one before it: the run's last validation comes
            # after its last update, and the bar would end on an older score
            metrics = self.get_metrics(trainer, pl_module)
            shown = {k: metrics[k] for k in ("loss", "val_jf") if k in metrics}
            if shown:
                self._train.set_postfix(shown, refresh=True)
