"""One-shot fine-tuning of a copy of the parent on a sequence's annotated frame(s)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from osvos_pl.stages.common import instantiate_callbacks, make_trainer
from osvos_pl.tasks.segmentation import SegmentationTask


def finetune(
    cfg: DictConfig,
    parent: torch.nn.Module,
    dataset,
    normalization: str,
    output_dir: Path,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """Fine-tune a deep copy of ``parent`` for ``online.iterations`` updates (fused loss only).

    Returns the fine-tuned network and timing (``finetune_seconds``, ``iterations_per_s``).
    ``online.iterations=0`` returns the parent unchanged (the -OS ablation).
    """
    iterations = int(cfg.online.iterations)
    net = copy.deepcopy(parent)
    if iterations == 0:
        return net, {"finetune_seconds": 0.0, "iterations": 0}
    task = SegmentationTask(
        net, instantiate(cfg.optim.optimizer), cfg.optim.lr_mult, cfg.optim.weight_decay,
        cfg.optim.loss_reduction, None, normalization, deep_supervision=False, log_images=0,
    )
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
    trainer = make_trainer(
        cfg, output_dir, max_steps=iterations, accumulate_grad_batches=int(cfg.online.accumulate),
        logger=False, enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=instantiate_callbacks(cfg, logged=False),
        enable_progress_bar=progress, max_epochs=-1, devices=1, strategy="auto",
    )
    start = time.perf_counter()
    trainer.fit(task, train_dataloaders=loader)
    seconds = time.perf_counter() - start
    return task.net, {
        "finetune_seconds": seconds,
        "iterations": trainer.global_step,
        "iterations_per_s": trainer.global_step / max(seconds, 1e-9),
    }

