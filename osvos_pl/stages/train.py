"""Offline training of the OSVOS network: the parent (masks) and the contour branch (boundaries)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from osvos_pl.model.checkpoint import export_weights
from osvos_pl.stages.contour import evaluate_contours
from osvos_pl.stages.engine import Engine
from osvos_pl.stages.records import global_from_sequences
from osvos_pl.tasks.callbacks import CheckpointOnSigterm, TrainedOn
from osvos_pl.tasks.segmentation import SegmentationTask
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """How long and how often: ``updates`` optimizer steps of ``accumulate`` batches each,
    validation every ``val_every`` batches, a resumable checkpoint every ``checkpoint_every``
    steps."""

    updates: int
    accumulate: int = 1
    val_every: int = 200
    checkpoint_every: int = 100
    keep_best: bool = False


def resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """``ckpt_path=auto`` resumes from the newest of ``<output_dir>/checkpoints/last.ckpt`` and
    the ``hpc_ckpt_<n>.ckpt`` Lightning writes on SLURM's requeue signal (SIGUSR1), if any."""
    if ckpt_path in (None, "none"):
        return None
    if ckpt_path == "auto":
        found = [p for p in (output_dir / "checkpoints" / "last.ckpt",
                             *output_dir.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
        return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file (ckpt_path=auto resumes "
                          "from the output dir's checkpoints/last.ckpt if there is one)")
    return str(ckpt_path)


def run_training(
    task: SegmentationTask,
    dm,
    engine: Engine,
    plan: TrainingPlan,
    output_dir: Path,
    stage: str = "parent",
    loggers: list | None = None,
    callbacks: list | None = None,
    resume_from: str | None = None,
    train_loader: DataLoader | None = None,
    trained_on: dict | None = None,
) -> dict:
    """Train with deep supervision; return the run record's global/sequences/timing/artifacts.

    ``stage="contour"`` trains the contour branch: J/F of masks means nothing for contours, so
    it is judged after training by boundary F against a Sobel baseline. ``train_loader``
    replaces the data module's training loader (a BSDS-style contour dataset); ``trained_on``
    (data, sequences, scale, backbone) goes into every checkpoint written.
    """
    loggers = list(loggers or [])
    train_names, eval_names = dm.train_names(), dm.eval_names()
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints", save_last=True, save_top_k=0,
        every_n_train_steps=plan.checkpoint_every,
    )
    last = output_dir / "checkpoints" / "last.ckpt"  # what ckpt_path=auto resumes from
    contour = stage == "contour"
    best = [ModelCheckpoint(dirpath=output_dir / "checkpoints", filename="best", monitor="val_jf",
                            mode="max", save_top_k=1)] if plan.keep_best and not contour else []
    trainer = engine.trainer(
        max_steps=plan.updates, accumulate_grad_batches=plan.accumulate,
        val_check_interval=min(plan.val_every, plan.updates * plan.accumulate),
        check_val_every_n_epoch=None, num_sanity_val_steps=0,
        limit_val_batches=0 if contour else None,
        callbacks=[checkpoints, *best, CheckpointOnSigterm(last), TrainedOn(trained_on or {}),
                   *(callbacks or [])],
        logger=loggers or False,
    )
    start = time.perf_counter()
    fit_data = {"datamodule": dm} if train_loader is None else {"train_dataloaders": train_loader}
    trainer.fit(task, **fit_data, ckpt_path=resume_from)
    train_seconds = time.perf_counter() - start
    final = output_dir / f"{stage}.ckpt"  # weights only; last.ckpt is the resumable one
    if trainer.is_global_zero:
        export_weights(task.net, task.hparams, final, trained_on)
    start = time.perf_counter()
    extra = {}
    if contour:
        extra["contours"] = evaluate_contours(task.net, dm, eval_names, engine.device)
        sequences = {}
    else:
        trainer.validate(task, datamodule=dm, verbose=False)
        result = task.last_validation or {}
        sequences = {eval_names[int(k)]: row for k, row in result.get("objects", {}).items()}
    val_seconds = time.perf_counter() - start
    frames = sum(len(dm.index.sequence(n)) for n in eval_names)
    return {
        "global": global_from_sequences(sequences),
        "sequences": sequences,
        **extra,
        "timing": {
            "train_seconds": train_seconds,
            "optimizer_steps": trainer.global_step,
            "seconds_per_step": train_seconds / max(1, trainer.global_step),
            "validation_ms_per_frame": 1000 * val_seconds / max(1, frames),
        },
        "artifacts": {
            "checkpoint": str(final),
            "last_checkpoint": str(last),
            "data_root": str(dm.data_root),
            "train_root": str(dm.train_data_root),
        },
        "train_sequences": train_names,
        "eval_sequences": eval_names,
    }
