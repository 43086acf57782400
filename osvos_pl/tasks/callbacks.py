"""Callbacks and plugins every training stage uses: NaN guard, side-loss schedule, atomic saves."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

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
                "ids) and images decode correctly"
            )


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
