"""Small builders for test inputs: a DAVIS-layout copy of some real sample frames, configs."""

from __future__ import annotations

import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from osvos_pl.runner.config import config_dir


def copy_sample(src: Path, dst: Path, sequences=("car-shadow",), frames: int | None = None) -> Path:
    """Copy (the first ``frames`` frames of) real sample sequences into a new DAVIS root."""
    for seq in sequences:
        for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
            out = dst / kind / "480p" / seq
            out.mkdir(parents=True, exist_ok=True)
            files = sorted((src / kind / "480p" / seq).glob(f"*.{ext}"))
            for f in files[:frames]:
                shutil.copy(f, out / f.name)
    return dst


def compose_cfg(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose the app's config as the CLI would, with ``paths.output_dir`` pinned to a tmp dir."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def run_cli(args: list[str], cwd: Path, module: str = "osvos_pl", check: bool = True,
            env: dict | None = None):
    """Run ``python -m <module> args`` as a user would; return the CompletedProcess."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, "HYDRA_FULL_ERROR": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\n"
                             f"STDERR:\n{proc.stderr[-6000:]}")
    return proc


def cpu_engine(tmp_path: Path, precision: str = "32-true", channels_last=False):
    """An Engine on the CPU, as the runner would build it from ``trainer=cpu``."""
    import pytorch_lightning as pl

    from osvos_pl.stages.engine import Engine

    return Engine.create(pl.Trainer, "cpu", precision, channels_last, tmp_path)


def segmenter(nets_engine, contours=None, threshold: float = 0.5):
    """A OneShotSegmenter that only segments (no fine-tuning) with ``nets_engine``."""
    from osvos_pl.model.param_groups import ParamGroups
    from osvos_pl.tasks.finetuning import FineTuning
    from osvos_pl.tasks.segmenter import OneShotSegmenter

    finetuning = FineTuning(0, None, ParamGroups({}), None)
    return OneShotSegmenter(finetuning, threshold, parent=None, engine=nets_engine,
                            contours=contours)
