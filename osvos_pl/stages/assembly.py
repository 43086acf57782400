"""What every stage builds from the config before it runs: the data module, the engine, the
callbacks and progress bars, and the log lines that say where the data comes from.

Each stage's ``prepare`` (``stages/train.py``, ``stages/online.py``) reads its part of the
config through these and hands objects down; nothing below the stages sees a config.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from osvos_pl.stages.engine import Engine
from osvos_pl.tasks.progress import UpdateBar

log = logging.getLogger(__name__)


def build_engine(cfg: DictConfig, output_dir: Path) -> Engine:
    return Engine.create(instantiate(cfg.trainer, _partial_=True), cfg.trainer.accelerator,
                         cfg.trainer.precision, cfg.model.get("channels_last", False), output_dir)


def build_datamodule(cfg: DictConfig, weights_normalization: str = "imagenet"):
    """``data.normalization=auto`` follows the weights (or the checkpoint) actually loaded."""
    norm = cfg.data.normalization
    return instantiate(cfg.data, normalization=weights_normalization if norm == "auto" else norm)


def follow_weights(cfg: DictConfig, dm, weights_normalization: str) -> None:
    """Set the input normalisation of a data module built before its network (``auto`` only)."""
    if cfg.data.normalization == "auto":
        dm.normalization_name = weights_normalization


def instantiate_callbacks(cfg: DictConfig, logged: bool) -> list:
    """The ``callbacks.*`` objects; the LR monitor only where a logger can take its values."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    return [c for c in callbacks if logged or not isinstance(c, LearningRateMonitor)]


def progress_bars(cfg: DictConfig, what: str, leave: bool = True) -> list:
    """A bar of optimizer updates (``osvos_pl.tasks.progress.UpdateBar``) unless
    ``trainer.enable_progress_bar=false``."""
    return [UpdateBar(what, leave)] if cfg.trainer.get("enable_progress_bar", True) else []


def on_generated_data(cfg: DictConfig, dm, train: bool = False) -> bool:
    """Whether ``dm`` serves the generated stand-in data (``data.root=null`` with DAVIS), not real
    frames; ``train``: its training frames (``data.train_root`` may be real)."""
    root = cfg.data.get("train_root") if train else None
    return root is None and cfg.data.get("root") is None and hasattr(dm, "generated_spec")


def log_data(cfg: DictConfig, dm, what: str) -> None:
    """Where the data comes from: the generated default (and where it lives) or ``data.root``."""
    if cfg.data.get("root") is None and hasattr(dm, "generated_spec"):
        log.info("data: the generated default dataset (data.root=null), %s, at %s — "
                 "data.root=/path/to/DAVIS for real DAVIS", what, dm.data_root)
    else:
        log.info("data: %s, %s", dm.data_root, what)


def check_contour_maps(maps, dm, names: list[str]) -> None:
    """``ContourMaps.check`` of each sequence against its frames' names and size (from the
    first frame's header) in the video source ``dm``."""
    for name in names:
        maps.check(name, dm.frame_names(name), dm.frame_size(name))
