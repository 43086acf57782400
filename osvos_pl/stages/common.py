"""Pieces every stage shares: the DataModule with the right normalisation, devices, trainers."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from osvos_pl.data.datamodule import DAVISDataModule
from osvos_pl.tasks.callbacks import AtomicCheckpointIO


def build_datamodule(cfg: DictConfig, weights_normalization: str) -> DAVISDataModule:
    """``data.normalization=auto`` follows the weights (or the checkpoint) actually loaded."""
    norm = cfg.data.normalization
    if norm == "auto":
        norm = weights_normalization
    return instantiate(cfg.data, normalization=norm)


def inference_device(cfg: DictConfig) -> torch.device:
    accel = str(cfg.trainer.accelerator)
    if accel in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_dtype(cfg: DictConfig) -> torch.dtype | None:
    """The autocast dtype ``trainer.precision`` asks for (None = fp32)."""
    precision = str(cfg.trainer.precision)
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


def make_trainer(cfg: DictConfig, output_dir: Path, **overrides):
    """A Lightning Trainer from ``trainer.*`` plus stage-specific arguments; atomic checkpoints."""
    kwargs = dict(overrides)
    kwargs.setdefault("plugins", [AtomicCheckpointIO()])
    kwargs.setdefault("default_root_dir", str(output_dir))
    return instantiate(cfg.trainer, **kwargs)


def instantiate_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg:
            loggers.append(instantiate(lg_cfg))
        elif lg_cfg is not None:
            raise ValueError(f"logger.{name} has no _target_")
    return loggers


def instantiate_callbacks(cfg: DictConfig) -> list:
    return [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]


def config_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
