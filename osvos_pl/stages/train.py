"""Offline training of the OSVOS network: the parent (masks) and the contour branch (boundaries)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from osvos_pl.data.bsds import BSDSContours
from osvos_pl.records import global_from_sequences
from osvos_pl.stages.common import (
    build_datamodule,
    inference_device,
    instantiate_callbacks,
    make_trainer,
)
from osvos_pl.stages.contour import evaluate_contours
from osvos_pl.tasks.callbacks import CheckpointOnSigterm, SideLossSchedule, staged_lr_lambda
from osvos_pl.tasks.segmentation import SegmentationTask

log = logging.getLogger(__name__)


def resume_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path=auto`` resumes from the newest of ``<output_dir>/checkpoints/last.ckpt`` and
    the ``hpc_ckpt_<n>.ckpt`` Lightning writes on SLURM's requeue signal (SIGUSR1), if any."""
    if cfg.ckpt_path in (None, "none"):
        return None
    if cfg.ckpt_path == "auto":
        found = [p for p in (output_dir / "checkpoints" / "last.ckpt",
                             *output_dir.glob("hpc_ckpt_*.ckpt")) if p.is_file()]
        return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None
    return str(cfg.ckpt_path)


def run_training(cfg: DictConfig, output_dir: Path, loggers: list, stage: str) -> dict:
    """Train with deep supervision; return the run record's global/sequences/timing/artifacts."""
    scfg = cfg[stage]
    net = instantiate(cfg.model)
    dm = build_datamodule(cfg, net.normalization)
    train_names, eval_names = dm.train_names(), dm.eval_names()
    dm.check(train_names, require_masks="all", first_mask_nonempty=False)
    dm.check(eval_names, require_masks="all", first_mask_nonempty=False)
    updates = int(scfg.updates)
    side_mode = scfg.get("side_schedule", "caffe")
    fractions = scfg.get("stage_fractions", [1.0])
    schedule = SideLossSchedule(side_mode, updates, fractions, scfg.get("side_weights", [1.0]))
    lr_lambda = None
    if side_mode == "caffe":
        lr_lambda = staged_lr_lambda(updates, fractions, scfg.lr_step_at, scfg.lr_gamma)
    task = SegmentationTask(
        net, instantiate(cfg.optim.optimizer), cfg.optim.lr_mult, cfg.optim.weight_decay,
        cfg.optim.loss_reduction, lr_lambda, dm.normalization_name,
        threshold=cfg.online.threshold, log_images=int(scfg.get("log_images", 2)),
    )
    checkpoints = ModelCheckpoint(
        dirpath=output_dir / "checkpoints", save_last=True, save_top_k=0,
        every_n_train_steps=int(scfg.checkpoint_every),
    )
    last = output_dir / "checkpoints" / "last.ckpt"  # what ckpt_path=auto resumes from
    val_every = min(int(scfg.val_every), updates * int(scfg.accumulate))
    contour = stage == "contour"  # J/F of masks means nothing for contours: judged after training
    trainer = make_trainer(
        cfg, output_dir, max_steps=updates, accumulate_grad_batches=int(scfg.accumulate),
        val_check_interval=val_every, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        limit_val_batches=0 if contour else None,
        callbacks=[schedule, checkpoints, CheckpointOnSigterm(last), *instantiate_callbacks(cfg, logged=bool(loggers))],
        logger=loggers or False,
    )
    start = time.perf_counter()
    fit_data = {"datamodule": dm}
    if contour and scfg.source == "bsds":
        fit_data = {"train_dataloaders": DataLoader(
            BSDSContours(scfg.bsds_root, scfg.get("bsds_split", "train"), dm.normalization,
                         dm.scale, dm.augment),
            batch_size=dm.batch_size, shuffle=True, num_workers=dm.num_workers)}
    trainer.fit(task, **fit_data, ckpt_path=resume_path(cfg, output_dir))
    train_seconds = time.perf_counter() - start
    final = output_dir / f"{stage}.ckpt"
    trainer.save_checkpoint(final)
    start = time.perf_counter()
    extra = {}
    if contour:
        extra["contours"] = evaluate_contours(task.net, dm, eval_names, inference_device(cfg))
        log.info("contour branch on held-back frames: %s", extra["contours"])
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
        },
        "train_sequences": train_names,
        "eval_sequences": eval_names,
    }
