"""Callbacks every training stage uses: a NaN guard and a checkpoint on SIGTERM."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from osvos_pl.errors import OSVOSError


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


class CheckpointOnSigterm(pl.Callback):
    """Write ``path`` (the run's ``last.ckpt``) when training stops on SIGTERM.

    On SIGTERM Lightning finishes the current batch, then raises ``SIGTERMException`` (on every
    rank under DDP) — and saves nothing. Schedulers send SIGTERM before they kill (SLURM
    preemption and ``scancel``, Kubernetes, ``timeout``), so without this the updates since the
    last periodic checkpoint would be lost; with it a re-run (``ckpt_path=auto``) resumes exactly
    where the run stopped. The state is consistent: the exception is raised between batches.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path)
