"""Callbacks and plugins every training stage uses: NaN guard, side-loss schedule, atomic saves,
a checkpoint on SIGTERM."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from osvos_pl.errors import OSVOSError
from osvos_pl.utils.atomic import atomic_path


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
                "or less, TF#24 went to 1e-9), and check that masks are binary (0/255 or palette "
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


class SideLossSchedule(pl.Callback):
    """Sets ``pl_module.side_weight`` from the optimizer step (deep-supervision weight schedule).

    ``caffe``: the paper's three stages (weights 1 / 0.5 / 0 over 30% / 30% / 40% of training).
    ``linear``: the PyTorch port's decay from 1 to 0. ``none``: always 1.
    """

    def __init__(self, mode: str, total: int, fractions, weights):
        if mode not in ("caffe", "linear", "none"):
            raise ValueError(f"parent.side_schedule must be caffe, linear or none, got {mode!r}")
        self.mode, self.total = mode, max(1, int(total))
        self.bounds = [self.total * sum(fractions[: i + 1]) for i in range(len(fractions))]
        self.weights = list(weights)

    def weight_at(self, step: int) -> float:
        if self.mode == "none":
            return 1.0
        if self.mode == "linear":
            return max(0.0, 1.0 - step / self.total)
        for bound, w in zip(self.bounds, self.weights):
            if step < bound:
                return float(w)
        return float(self.weights[-1])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        pl_module.side_weight = self.weight_at(trainer.global_step)


def staged_lr_lambda(total: int, fractions, step_at: float, gamma: float):
    """LR factor per step: inside each stage, ×gamma after ``step_at`` of the stage ([CF] solver)."""
    starts = [total * sum(fractions[:i]) for i in range(len(fractions))]
    lengths = [total * f for f in fractions]

    def factor(step: int) -> float:
        for start, length in zip(reversed(starts), reversed(lengths)):
            if step >= start:
                return gamma if step - start >= step_at * length else 1.0
        return 1.0

    return factor


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints to a temporary file and renames it: no half-written ``.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
