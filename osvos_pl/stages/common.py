"""Pieces every stage shares: the DataModule with the right normalisation, devices, trainers."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from osvos_pl.data.datamodule import DAVISDataModule
from osvos_pl.errors import ConfigError
from osvos_pl.tasks.callbacks import AtomicCheckpointIO
from osvos_pl.utils.hardware import fast_precision


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


def resolved_precision(cfg: DictConfig) -> str:
    """``trainer.precision``, with ``auto`` made concrete for the device the stage runs on.

    ``auto`` is the fast path's precision: ``bf16-mixed`` where bf16 is native (CUDA GPUs with
    bf16, CPUs with AVX512-BF16 or AMX), else ``32-true`` — emulated bf16 is several times
    slower than fp32 (``osvos_pl.utils.hardware``). Any other value is passed through.
    """
    precision = str(cfg.trainer.precision)
    if precision == "auto":
        return fast_precision(inference_device(cfg))
    return precision


def autocast_dtype(cfg: DictConfig) -> torch.dtype | None:
    """The autocast dtype ``trainer.precision`` asks for (None = fp32)."""
    precision = resolved_precision(cfg)
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


def make_trainer(cfg: DictConfig, output_dir: Path, **overrides):
    """A Lightning Trainer from ``trainer.*`` plus stage-specific arguments; atomic checkpoints.

    ``trainer.precision=auto`` is resolved here (``resolved_precision``)."""
    kwargs = dict(overrides)
    kwargs.setdefault("precision", resolved_precision(cfg))
    kwargs.setdefault("plugins", [AtomicCheckpointIO()])
    kwargs.setdefault("default_root_dir", str(output_dir))
    trainer = instantiate(cfg.trainer, **kwargs)
    refuse_relaunch_in_multirun(trainer)
    return trainer


def refuse_relaunch_in_multirun(trainer) -> None:
    """Refuse Lightning's subprocess DDP launcher inside a Hydra multirun.

    That launcher starts ranks 1..N-1 by re-running the command line, which in a multirun is the
    whole sweep (``-m ...``): each extra process would launch every job again. Processes that a
    cluster starts itself (SLURM tasks via submitit, torchrun) have no such launcher and pass.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if (not isinstance(launcher, _SubprocessScriptLauncher) or launcher.num_processes <= 1
            or launcher.cluster_environment.creates_processes_externally):
        return
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    raise ConfigError(
        f"DDP with trainer.devices={launcher.num_processes} inside a Hydra multirun (-m): "
        "Lightning's DDP launcher would re-run the whole sweep in each extra process. Run a "
        "multi-device job on its own (without -m), keep multirun jobs single-device "
        "(trainer.devices=1), or launch with hydra/launcher=slurm (submitit), where SLURM starts "
        "one task per GPU (see README, Clusters)"
    )


def instantiate_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg:
            loggers.append(instantiate(lg_cfg))
        elif lg_cfg is not None:
            raise ValueError(f"logger.{name} has no _target_")
    return loggers


def instantiate_callbacks(cfg: DictConfig, logged: bool) -> list:
    """The ``callbacks.*`` objects; the LR monitor only when the trainer has a logger (``logged``)
    to write to."""
    from pytorch_lightning.callbacks import LearningRateMonitor

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not logged:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def config_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
