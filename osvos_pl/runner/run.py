"""The runner: the only code that reads the config below the entry points.

It validates the config once, seeds, instantiates the data module, task, engine (trainer
factory), loggers and callbacks, runs one stage with those objects, and writes the run record
(``metrics.json``, with the resolved config in it); it always closes W&B. Everything that can
refuse a run (config values, data, checkpoints) is checked before a logger starts.
"""

from __future__ import annotations

import functools
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
from osvos_pl.runner.summary import shown, summary_lines
from osvos_pl.runner.validation import validate_config
from osvos_pl.stages.engine import Engine
from osvos_pl.stages.records import now_iso, write_record
from osvos_pl.tasks.progress import UpdateBar, UpdateEta
from osvos_pl.utils.atomic import remove_stale_temporaries
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: A prepared stage: everything built and checked, waiting for its loggers.
Job = Callable[[list], dict]


def config_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (what W&B and ``metrics.json`` record)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)


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


def instantiate_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if isinstance(lg_cfg, DictConfig) and "_target_" in lg_cfg:
            loggers.append(instantiate(lg_cfg))
        elif lg_cfg is not None:
            raise ConfigError(f"logger.{name} has no _target_; see conf/logger/*.yaml")
    return loggers


def prepare_training(cfg: DictConfig, output_dir: Path) -> Job:
    from torch.utils.data import DataLoader

    from osvos_pl.data.bsds import BSDSContours
    from osvos_pl.data.workers import loader_options
    from osvos_pl.stages.train import TrainingPlan, resume_path, run_training

    stage, settings = cfg.stage, cfg[cfg.stage]
    dm = build_datamodule(cfg)  # the data first: a bad data.root fails before any download
    dm.check(dm.train_names(), require_masks="all", first_mask_nonempty=False,
             index=dm.train_index)
    dm.check(dm.eval_names(), require_masks="all", first_mask_nonempty=False)
    if dm.target == "contour_maps":  # map sizes from the PNG headers, before any training
        _check_maps(dm.contour_map_reader, dm, dm.train_names(), dm.train_index)
    log_data(cfg, dm, f"{len(dm.train_names())} training / {len(dm.eval_names())} validation "
                      "sequences")
    if dm.train_index is not dm.index:
        log.info("training data: %s at %s, scale %.3g (validation: %s at %s, scale %.3g)",
                 dm.train_data_root, dm.train_index.resolution, dm.training_scale,
                 dm.data_root, dm.resolution, dm.scale)
    net = instantiate(cfg.model)
    follow_weights(cfg, dm, net.normalization)
    task = instantiate(cfg.task, net=net, normalization=dm.normalization_name)
    plan = TrainingPlan(int(settings.updates), int(settings.accumulate), int(settings.val_every),
                        int(settings.checkpoint_every), bool(settings.get("keep_best", False)))
    loader = None
    if stage == "contour" and settings.source == "bsds":
        loader = DataLoader(BSDSContours(settings.bsds_root, settings.bsds_split, dm.normalization,
                                         dm.scale, dm.augment),
                            batch_size=dm.batch_size, shuffle=True, num_workers=dm.num_workers,
                            **loader_options(dm.num_workers))
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


#: What to do instead of fine-tuning a parent that cannot segment real frames.
REAL_PARENT_HINT = (
    "Instead: use the parent shipped with osvos-pl (parent_ckpt=davis2016, trained on DAVIS 2016 "
    "train; no download), train a parent on DAVIS (experiments/ablation.sh DAVIS_ROOT cpu, or "
    "python -m osvos_pl +experiment=parent data.root=DAVIS_ROOT with ImageNet weights), use the "
    "authors' parent (parent_ckpt=osvos-pytorch, downloaded), or parent_ckpt=null to fine-tune "
    "from the ImageNet backbone (model.weights=imagenet, or "
    "model.weights=/path/to/vgg16-397923af.pth offline)")


def load_parent(cfg: DictConfig, real_frames: bool = True) -> tuple[torch.nn.Module, str]:
    """The network to fine-tune: the parent checkpoint, or the ImageNet backbone (-PN).

    On ``real_frames``, a parent that records training on the generated data or from a random
    backbone is warned about once, with what to use instead: its masks there are near chance.
    """
    from osvos_pl.model.checkpoint import (
        describe_training,
        load_checkpoint,
        unsuited_for_real_frames,
    )

    if not cfg.parent_ckpt:
        net = instantiate(cfg.model)
        log.warning("no parent_ckpt: fine-tuning from %s, without a parent network (-PN); "
                    "quality is lower", getattr(net, "weights_source", "model.weights"))
        return net, net.normalization
    net = instantiate(cfg.model, weights=None)  # the checkpoint supplies every weight
    loaded = load_checkpoint(net, cfg.parent_ckpt)
    net.weights_source = (f"parent checkpoint {describe_parent(cfg.parent_ckpt)} (every weight; "
                          f"{describe_training(loaded.trained_on)})")
    why = unsuited_for_real_frames(loaded.trained_on)
    if why and real_frames:
        log.warning("parent_ckpt=%s was trained %s: on real frames its masks fall far short "
                    "(a 12-frame DAVIS car-shadow clip: J 0.49, against 0.91 from the ImageNet "
                    "weights without a parent). %s", cfg.parent_ckpt, why, REAL_PARENT_HINT)
    return net, loaded.normalization or net.normalization


def describe_parent(parent_ckpt: str) -> str:
    """``parent_ckpt`` for the run log: a shipped parent by name, what it is and where its
    checked file lies; any other value as given."""
    from osvos_pl.model.shipped import SHIPPED, is_shipped

    if not is_shipped(parent_ckpt):
        return str(parent_ckpt)
    shipped = SHIPPED[str(parent_ckpt)]
    return f"{shipped.name}: {shipped.about} ({shipped.path}, SHA-256 checked)"


def contour_source(cfg: DictConfig, engine: Engine, dm):
    """Where snapping gets each frame's contour map: precomputed maps, the contour branch, or
    nowhere (None: no snapping)."""
    from osvos_pl.model.checkpoint import load_checkpoint_weights
    from osvos_pl.tasks.contour_sources import MapContours, NetworkContours

    if not cfg.snapping:
        return None
    if cfg.get("contour_maps"):
        from osvos_pl.data.contours import ContourMaps

        maps = ContourMaps(cfg.contour_maps)
        _check_maps(maps, dm, dm.eval_names())
        return MapContours(maps, dm.frame_names)
    if not cfg.contour_ckpt:
        raise ConfigError("snapping=true needs contour_ckpt=PATH (a +experiment=contour "
                          "checkpoint) or contour_maps=DIR (precomputed contour maps)")
    net = instantiate(cfg.model, weights=None, offline_fallback="random")
    load_checkpoint_weights(net, cfg.contour_ckpt)
    scale = cfg.online.get("contour_scale")
    frames = None if scale is None else functools.partial(_frame_at, dm, float(scale))
    return NetworkContours(net, engine, frames)


def _check_maps(maps, dm, names, index=None) -> None:
    """``ContourMaps.check`` of each sequence in ``names`` against its frames' size: frames of
    the data module ``dm`` (DAVIS or a clip), or of the ``DAVISIndex`` ``index`` where given
    (the training frames)."""
    from osvos_pl.data.io import read_image

    for name in names:
        if index is None:
            stems, shape = dm.frame_names(name), dm.frame_image(name, 0).shape[:2]
        else:
            frames = index.sequence(name).frames
            stems, shape = [f.stem for f in frames], read_image(frames[0]).shape[:2]
        maps.check(name, stems, shape)


def _frame_at(dm, scale: float, sequence: str, i: int) -> torch.Tensor:
    """Frame ``i`` of ``sequence`` resized by ``scale`` and normalised, ``(3, h, w)``: the
    contour branch's own input (``online.contour_scale``). Any data module with
    ``frame_image`` and ``normalization`` (DAVIS, a user's clip)."""
    from osvos_pl.data.transforms import resize_pair, scaled_size

    image = dm.frame_image(sequence, i)
    image, _ = resize_pair(image, None, scaled_size(image.shape[:2], scale))
    return dm.normalization(image)


def prepare_online(cfg: DictConfig, output_dir: Path, predictions: str = "predictions",
                   on_frame=None) -> Job:
    from osvos_pl.stages.online import run_online

    dm = build_datamodule(cfg)
    names = dm.eval_names()  # a bad data.root fails before any weights load
    dm.check(names, require_masks="first", first_mask_nonempty=True)  # before loggers, downloads
    objects = count_objects(dm, names)
    log_data(cfg, dm, f"{len(names)} sequence(s), {objects} object(s)")
    parent, normalization = load_parent(cfg, real_frames=not on_generated_data(cfg, dm))
    follow_weights(cfg, dm, normalization)
    engine = build_engine(cfg, output_dir)
    contours = contour_source(cfg, engine, dm)
    iterations = int(cfg.online.iterations)
    log.info("weights: %s", parent.weights_source)
    log.info("plan: per object %d fine-tuning updates (online.iterations), then every frame "
             "segmented%s; %s, %s", iterations, " and snapped to contours" if contours else
             " (no contour_ckpt / contour_maps: no boundary snapping, the report's -BS row)",
             engine.device, engine.precision)
    eta = UpdateEta(iterations * objects, "fine-tuning", extra=", plus segmenting every frame")
    bars = progress_bars(cfg, "fine-tuning", leave=False)
    segmenter = instantiate(cfg.task, parent=parent, engine=engine, contours=contours,
                            progress=bool(bars),
                            callbacks=[eta, *bars, *instantiate_callbacks(cfg, logged=False)],
                            prefix_images=functools.partial(
                                annotated_frames, dm, names[: int(cfg.online.prefix_calibration)]))
    if segmenter.prefix_mode != "eager":
        log.info("frozen VGG stages 1-%d: one %s copy for every network (online.prefix=%s), "
                 "built at the first fine-tuning", segmenter.finetuning.frozen_stages,
                 segmenter.prefix_mode, cfg.online.prefix)

    def job(loggers: list) -> dict:
        segmenter.loggers = loggers  # each fine-tuning's loss, per sequence
        return run_online(segmenter, dm, output_dir, loggers, seed=int(cfg.seed),
                          resume=bool(cfg.online.resume), overlays=int(cfg.online.overlays),
                          predictions=predictions, on_frame=on_frame)
    return job


def annotated_frames(dm, names: list[str]) -> list[torch.Tensor]:
    """The annotated frame of each of ``names`` as the network sees it, ``(1, 3, h, w)``: what an
    int8 prefix is calibrated on (``online.prefix_calibration``), frames the method is given
    (decoded alone, without a frame loader and its workers)."""
    return [dm.first_frames(name, 1, augment="none")[0]["image"][None] for name in names]


def count_objects(dm, names: list[str]) -> int:
    """Objects to fine-tune for (one per sequence where a first mask cannot be read yet: the
    online stage's own check reports that, naming the file)."""
    from osvos_pl.utils.errors import OSVOSError

    total = 0
    for name in names:
        try:
            total += len(dm.object_ids(name))
        except (OSVOSError, OSError):
            total += 1
    return total


#: What each ``stage`` (set by ``+experiment=...``) prepares.
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
