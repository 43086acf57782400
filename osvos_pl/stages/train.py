"""Offline training of the OSVOS network: the parent (masks) and the contour branch (boundaries)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from osvos_pl.data.bsds import BSDSContours
from osvos_pl.data.workers import loader_options
from osvos_pl.model.checkpoint import export_weights
from osvos_pl.stages.assembly import (
    build_datamodule,
    build_engine,
    follow_weights,
    instantiate_callbacks,
    log_data,
    on_generated_data,
    progress_bars,
)
from osvos_pl.stages.contour_scores import evaluate_contours
from osvos_pl.stages.engine import Engine
from osvos_pl.stages.records import global_from_sequences
from osvos_pl.tasks.callbacks import CheckpointOnSigterm, TrainedOn
from osvos_pl.tasks.progress import UpdateEta
from osvos_pl.tasks.segmentation import SegmentationTask
from osvos_pl.utils.display import shown
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


def prepare_training(cfg: DictConfig, output_dir: Path) -> Callable[[list], dict]:
    """The parent or contour stage (``cfg.stage``) built and checked: the data first (a bad
    ``data.root`` fails before any download), then the network, the task and the plan
    (``<stage>.plan``); returns the job the runner starts once the loggers exist."""
    stage, settings = cfg.stage, cfg[cfg.stage]
    dm = build_datamodule(cfg)
    dm.check(dm.train_names(), require_masks="all", first_mask_nonempty=False, training=True)
    dm.check(dm.eval_names(), require_masks="all", first_mask_nonempty=False)
    if dm.target == "contour_maps":  # map sizes from the PNG headers, before any training
        dm.check_training_maps()
    log_data(cfg, dm, f"{len(dm.train_names())} training / {len(dm.eval_names())} validation "
                      "sequences")
    if dm.training_data():
        log.info("training data: %s", dm.training_data())
    net = instantiate(cfg.model)
    follow_weights(cfg, dm, net.normalization)
    task = instantiate(cfg.task, net=net, normalization=dm.normalization_name)
    plan: TrainingPlan = instantiate(settings.plan)
    loader = _bsds_loader(settings, dm) if stage == "contour" and settings.source == "bsds" \
        else None
    engine, resume = build_engine(cfg, output_dir), resume_path(cfg.ckpt_path, output_dir)
    log.info("weights: %s", getattr(net, "weights_source", "model.weights"))
    validations = plan.updates * plan.accumulate // max(1, plan.val_every)
    log.info("plan: %d updates (%s.updates) of %d frame(s) each (data.batch_size x %s.accumulate), "
             "validation every %d batches; %s, %s%s", plan.updates, stage,
             plan.accumulate * dm.batch_size, stage, plan.val_every, engine.device,
             engine.precision, f"; resuming from {shown(resume)}" if resume else "")
    eta = UpdateEta(plan.updates, stage, extra=f", plus {validations + 1} validation(s)"
                    if stage == "parent" else "")
    callbacks = [eta, *progress_bars(cfg, stage)]
    trained_on = {"data": "generated" if on_generated_data(cfg, dm, train=True) else "davis",
                  "root": str(dm.train_data_root), "sequences": dm.train_names(),
                  "scale": float(dm.training_scale), "updates": plan.updates,
                  "backbone": getattr(net, "weights_source", "model.weights"),
                  "random_backbone": bool(getattr(net, "random_backbone", False))}
    return lambda loggers: run_training(
        task, dm, engine, plan, output_dir, stage, loggers,
        [*callbacks, *instantiate_callbacks(cfg, logged=bool(loggers))], resume, loader,
        trained_on)


def _bsds_loader(settings: DictConfig, dm) -> DataLoader:
    """``contour.source=bsds``: a BSDS-style contour dataset instead of the DAVIS frames."""
    return DataLoader(BSDSContours(settings.bsds_root, settings.bsds_split, dm.normalization,
                                   dm.scale, dm.augment),
                      batch_size=dm.batch_size, shuffle=True, num_workers=dm.num_workers,
                      **loader_options(dm.num_workers))


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
    eval_names, contour = dm.eval_names(), stage == "contour"
    last = output_dir / "checkpoints" / "last.ckpt"  # what ckpt_path=auto resumes from
    trainer = engine.trainer(
        max_steps=plan.updates, accumulate_grad_batches=plan.accumulate,
        val_check_interval=min(plan.val_every, plan.updates * plan.accumulate),
        check_val_every_n_epoch=None, num_sanity_val_steps=0,
        limit_val_batches=0 if contour else None,
        callbacks=[*_checkpoints(plan, output_dir, contour), CheckpointOnSigterm(last),
                   TrainedOn(trained_on or {}), *(callbacks or [])],
        logger=list(loggers or []) or False,
    )
    start = time.perf_counter()
    fit_data = {"datamodule": dm} if train_loader is None else {"train_dataloaders": train_loader}
    trainer.fit(task, **fit_data, ckpt_path=resume_from)
    train_seconds = time.perf_counter() - start
    final = output_dir / f"{stage}.ckpt"  # weights only; last.ckpt is the resumable one
    if trainer.is_global_zero:
        export_weights(task.net, task.hparams, final, trained_on)
    start = time.perf_counter()
    sequences, extra = _judge(task, trainer, dm, engine, eval_names, contour)
    val_seconds, frames = time.perf_counter() - start, sum(map(len, map(dm.frame_names, eval_names)))
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
        "train_sequences": dm.train_names(),
        "eval_sequences": eval_names,
    }


def _checkpoints(plan: TrainingPlan, output_dir: Path, contour: bool) -> list[ModelCheckpoint]:
    """``last.ckpt`` every ``checkpoint_every`` updates, and ``best.ckpt`` where kept."""
    folder = output_dir / "checkpoints"
    last = ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0,
                           every_n_train_steps=plan.checkpoint_every)
    best = [ModelCheckpoint(dirpath=folder, filename="best", monitor="val_jf", mode="max",
                            save_top_k=1)] if plan.keep_best and not contour else []
    return [last, *best]


def _judge(task: SegmentationTask, trainer, dm, engine: Engine, eval_names: list[str],
           contour: bool) -> tuple[dict, dict]:
    """The trained network on the validation sequences: J/F per sequence (the parent), or
    boundary F against a Sobel baseline (the contour branch)."""
    if contour:
        return {}, {"contours": evaluate_contours(task.net, dm, eval_names, engine.device)}
    trainer.validate(task, datamodule=dm, verbose=False)
    result = task.last_validation or {}
    return {eval_names[int(k)]: row for k, row in result.get("objects", {}).items()}, {}
