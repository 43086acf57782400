"""Callbacks every training stage uses: a NaN guard, a checkpoint on SIGTERM (or SIGINT), and
what the network is trained on, written into every checkpoint."""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from osvos_pl.utils.errors import OSVOSError


class TrainedOn(pl.Callback):
    """Writes ``trained_on`` (data, sequences, scale, backbone) into every Lightning checkpoint,
    so that ``parent_ckpt=checkpoints/best.ckpt`` says what it learnt from, as ``parent.ckpt``
    does (``osvos_pl.model.checkpoint.export_weights``)."""

    def __init__(self, trained_on: dict):
        self.trained_on = dict(trained_on)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["trained_on"] = self.trained_on


class NonFiniteLossError(OSVOSError, RuntimeError):
    """Training produced a NaN/inf loss."""


class FiniteLossGuard(pl.Callback):
    """Stop at the first NaN/inf loss, naming the step and the usual fixes, instead of training on."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss is {value} at optimizer step {trainer.global_step} (batch {batch_idx}) — "
                "lower the learning rate (optim.optimizer.lr; the paper's summed loss needs ~1e-8 "
                "or less; the authors advise 1e-9 for their summed loss), and check that masks are binary (0/255 or palette "
                "ids) and images decode correctly. Re-run into a new output dir (or with "
                "ckpt_path=none): checkpoints/last.ckpt may already hold the diverged weights"
            )


class CheckpointOnSigterm(Checkpoint):
    """On SIGTERM, stop training at the end of the optimizer step in progress and write ``path``
    (the run's ``last.ckpt``), so that a re-run (``ckpt_path=auto``) continues exactly there.

    Schedulers send SIGTERM before they kill (SLURM preemption and ``scancel``, Kubernetes,
    ``timeout``). Lightning alone would stop after the current batch — in the middle of an
    accumulation window, whose gradients no checkpoint holds, or of a validation — and save
    nothing. While fitting, this callback puts a handler over Lightning's that only notes the
    signal. At the end of the next batch that steps the optimizer it raises Lightning's
    ``SIGTERMException`` and saves; when a validation is due after that step, it does so at the
    end of the validation instead (a run resumed before it would skip it). Both are states
    Lightning's own checkpoints are taken in and resumes from. Under DDP the ranks agree at
    every step, so one rank's signal stops them all at the same step. A ``Checkpoint``: Lightning
    runs it after the other callbacks (the NaN guard sees the batch first) and after the
    periodic ``ModelCheckpoint``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.requested = self._stop_after_validation = False
        self._step_at_batch_start = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.requested = self._stop_after_validation = False
        connector = trainer._signal_connector
        if connector.received_sigterm:  # arrived before training started
            connector.received_sigterm, self.requested = False, True
        if threading.current_thread() is not threading.main_thread():
            return
        lightning = signal.getsignal(signal.SIGTERM)  # restored by Lightning's teardown

        def note(signum, frame) -> None:
            if callable(lightning):
                lightning(signum, frame)
            connector.received_sigterm = False  # Lightning would stop after this very batch
            self.requested = True

        signal.signal(signal.SIGTERM, note)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step_at_batch_start = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step_at_batch_start:
            return  # mid-window: the gradients accumulated so far would be lost
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        if _validation_due(trainer):  # a resumed run would skip it: stop once it is done
            self._stop_after_validation = True
            return
        raise SIGTERMException

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._stop_after_validation and trainer.state.fn == TrainerFn.FITTING:
            raise SIGTERMException

    def on_fit_end(self, trainer, pl_module) -> None:
        # arrived after the last step, up to the teardown that gives the handlers back: stop
        # before the run goes on (final checkpoint, validation)
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            raise SIGTERMException

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path, weights_only=False)


def _validation_due(trainer: pl.Trainer) -> bool:
    """Whether Lightning validates after the training batch that just ended (its own test;
    False if a Lightning version lacks it)."""
    loop = trainer.fit_loop
    check = getattr(loop.epoch_loop, "_should_check_val_fx", None)
    fetcher = getattr(loop, "_data_fetcher", None)
    return bool(check and fetcher is not None and check(fetcher))
