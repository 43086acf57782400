"""How work runs: Lightning trainers, device, precision, memory format, launcher guards.

The runner builds one :class:`Engine` from ``trainer.*`` and ``model.channels_last`` and hands
it down; training stages and the one-shot segmenter ask it for trainers, autocast and layout
instead of reading the config.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from osvos_pl.model.checkpoint import safe_load
from osvos_pl.model.factory import channels_last_mode
from osvos_pl.utils.atomic import atomic_path
from osvos_pl.utils.errors import ConfigError
from osvos_pl.utils.hardware import fast_precision


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed (no half-written ``.ckpt``), and read
    back with ``weights_only=True`` (a resumed checkpoint cannot run code)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return safe_load(path)


def device_for(accelerator: str) -> torch.device:
    """The device a single-process stage (fine-tuning, inference) runs on."""
    if str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``trainer.precision`` made concrete: ``auto`` is ``bf16-mixed`` where bf16 is native on
    ``device`` (CUDA with bf16, CPUs with AVX512-BF16 or AMX), else ``32-true`` — emulated bf16
    is several times slower than fp32 (``osvos_pl.utils.hardware``)."""
    precision = str(precision)
    return fast_precision(device) if precision == "auto" else precision


class Engine:
    """Trainer factory plus the device, precision and memory format every stage shares.

    A plain class, not a dataclass: Hydra's ``instantiate`` would turn a dataclass argument
    into a config node.
    """

    def __init__(self, trainer_factory: Callable[..., pl.Trainer], device: torch.device,
                 precision: str, channels_last: bool | str = False, output_dir: Path = Path(".")):
        self.trainer_factory, self.device, self.precision = trainer_factory, device, precision
        self.channels_last, self.output_dir = channels_last, Path(output_dir)

    @classmethod
    def create(cls, trainer_factory: Callable[..., pl.Trainer], accelerator: str, precision: str,
               channels_last: bool | str, output_dir: Path) -> Engine:
        device = device_for(accelerator)
        return cls(trainer_factory, device, resolve_precision(precision, device),
                   channels_last_mode(channels_last), Path(output_dir))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype the precision asks for (None = fp32)."""
        if self.precision.startswith("bf16"):
            return torch.bfloat16
        if self.precision.startswith("16"):
            return torch.float16
        return None

    def autocast(self):
        """Autocast context for inference at the engine's precision (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def nhwc_inference(self) -> bool:
        return self.channels_last is not False

    def trainer(self, **overrides) -> pl.Trainer:
        """A Lightning Trainer from ``trainer.*`` plus stage-specific arguments, with atomic,
        safely loaded checkpoints; refused where it would relaunch a Hydra multirun."""
        kwargs = dict(overrides)
        kwargs.setdefault("precision", self.precision)
        kwargs.setdefault("plugins", [AtomicCheckpointIO()])
        kwargs.setdefault("default_root_dir", str(self.output_dir))
        trainer = self.trainer_factory(**kwargs)
        refuse_relaunch_in_multirun(trainer)
        return trainer


def refuse_relaunch_in_multirun(trainer: pl.Trainer) -> None:
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
