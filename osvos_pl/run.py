"""The runner: seed, build loggers, run one stage, write ``metrics.json``, always close W&B."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from osvos_pl.records import now_iso, write_record
from osvos_pl.stages.common import config_dict, instantiate_loggers
from osvos_pl.utils.atomic import remove_stale_temporaries
from osvos_pl.validation import validate_config

log = logging.getLogger(__name__)


def _stage(name: str):
    if name in ("parent", "contour"):
        from osvos_pl.stages.train import run_training

        return lambda cfg, out, loggers: run_training(cfg, out, loggers, name)
    if name == "online":
        from osvos_pl.stages.online import run_online

        return run_online
    raise ValueError(f"unknown stage {name!r}")


def run(cfg: DictConfig, output_dir: Path | None = None) -> dict:
    """Run ``cfg.stage`` and return its run record (also written to ``<output_dir>/metrics.json``)."""
    validate_config(cfg)
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
    loggers = instantiate_loggers(cfg)
    try:
        for lg in loggers:
            lg.log_hyperparams(config_dict(cfg))
        result = _stage(cfg.stage)(cfg, output_dir, loggers)
        record = {
            "experiment": cfg.experiment,
            "stage": cfg.stage,
            "overrides": overrides,
            "started": started,
            "finished": now_iso(),
            **result,
        }
        record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - t0
        if rank_zero_only.rank == 0:
            write_record(output_dir / "metrics.json", record)
            _summarise_to_loggers(loggers, record)
            log.info("run record: %s", output_dir / "metrics.json")
            if record.get("global"):
                log.info("global: %s", {k: round(v, 4) for k, v in record["global"].items()})
        return record
    finally:
        _close_loggers(loggers)


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
