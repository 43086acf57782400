"""The runner: one run of one stage, from a composed config to its record.

It validates the config once, seeds, has the stage build and check everything it needs (the
stage's ``prepare``: ``STAGES``), starts the loggers, runs the stage's job and writes the run
record (``metrics.json``, with the resolved config in it); it always closes W&B. Everything
that can refuse a run (config values, data, checkpoints) is checked before a logger starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from osvos_pl.runner.noise import quiet_libraries
from osvos_pl.runner.summary import summary_lines
from osvos_pl.runner.validation import validate_config
from osvos_pl.stages.online import prepare_online
from osvos_pl.stages.records import now_iso, write_record
from osvos_pl.stages.train import prepare_training
from osvos_pl.utils.atomic import remove_stale_temporaries
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: A prepared stage: everything built and checked, waiting for its loggers.
Job = Callable[[list], dict]


def config_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (what W&B and ``metrics.json`` record)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


def instantiate_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg:
            loggers.append(instantiate(lg_cfg))
        elif lg_cfg is not None:
            raise ConfigError(f"logger.{name} has no _target_; see conf/logger/*.yaml")
    return loggers


#: What each ``stage`` (set by ``+experiment=...``) prepares: everything built and checked,
#: returning the job to start once the loggers exist.
STAGES: dict[str, Callable[..., Job]] = {
    "parent": prepare_training,
    "contour": prepare_training,
    "online": prepare_online,
}


def run(cfg: DictConfig, output_dir: Path | None = None, summary: bool = True,
        **stage_options) -> dict:
    """Run ``cfg.stage`` and return its run record (also written to ``<output_dir>/metrics.json``).

    ``summary``: end with a few lines saying where the outputs are, the score and the next
    command (``log_summary``); a caller that writes more outputs afterwards says it itself.
    """
    quiet_libraries()
    validate_config(cfg, STAGES)
    if output_dir is None:
        output_dir = Path(HydraConfig.get().runtime.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # before any writer starts; other DDP ranks write nothing here
        for path in remove_stale_temporaries(output_dir):
            log.info("removed %s, left by an interrupted run", path)
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed outside a Hydra app (tests, notebooks)
        overrides = []
    started, t0 = now_iso(), time.perf_counter()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    config = config_dict(cfg)
    job = STAGES[cfg.stage](cfg, output_dir, **stage_options)
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            lg.log_hyperparams(config)
        record = {"experiment": cfg.experiment, "stage": cfg.stage, "overrides": overrides,
                  "started": started, "finished": None, **job(loggers), "config": config}
        record["finished"] = now_iso()
        record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - t0
        if rank_zero_only.rank == 0:
            record.setdefault("artifacts", {}).update(_wandb_artifacts(loggers))
            write_record(output_dir / "metrics.json", record)
            _summarise_to_loggers(loggers, record)
            if summary:
                log_summary(record, output_dir)
        return record
    finally:
        _close_loggers(loggers)


def log_summary(record: dict, output_dir: Path) -> None:
    """The end of a run, in a few lines (``osvos_pl.runner.summary``)."""
    for line in summary_lines(record, output_dir):
        log.info("%s", line)


def _wandb_artifacts(loggers: list) -> dict:
    """Where the W&B run lives, and whether it still needs ``wandb sync``."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            run = lg.experiment
            if getattr(run, "disabled", False) or not getattr(run, "dir", None):
                return {}
            return {"wandb_run": str(Path(run.dir).parent),
                    "wandb_mode": "offline" if run.offline else "online"}
    return {}


def _summarise_to_loggers(loggers: list, record: dict) -> None:
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        if isinstance(lg, WandbLogger):
            summary = {f"global/{k}": v for k, v in record.get("global", {}).items()}
            summary["record"] = record  # what `osvos_pl.report --source wandb` reads back
            lg.experiment.summary.update(summary)


def _close_loggers(loggers: list) -> None:
    """Close the W&B run even on failure, so the next multirun job starts its own run."""
    from pytorch_lightning.loggers import WandbLogger

    for lg in loggers:
        try:
            lg.finalize("success")
        except Exception:  # noqa: BLE001 — closing must not mask the real error
            pass
        if isinstance(lg, WandbLogger):
            import wandb

            wandb.finish()
