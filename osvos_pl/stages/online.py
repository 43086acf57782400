"""The online stage: for each sequence, fine-tune on its annotation, segment every frame, score.

Per sequence it writes ``<predictions>/<seq>/NNNNN.png`` (0/255 for one object, DAVIS palette
ids for several), ``sequences/<seq>.json`` (per-object scores and timings), both atomically, and
a few overlays (prediction tinted, ground truth outlined) in ``overlays/<seq>/``
(``stages/sequence.py``); a re-run into the same output dir skips sequences whose record exists
(``resume``). The data source is any ``VideoSource``: DAVIS, or a user's clip (``data=clip``,
used by ``predict``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from osvos_pl.data.contours import ContourMaps
from osvos_pl.data.datasets import Views
from osvos_pl.data.source import VideoSource
from osvos_pl.model.checkpoint import load_checkpoint_weights
from osvos_pl.stages.assembly import (
    build_datamodule,
    build_engine,
    check_contour_maps,
    follow_weights,
    instantiate_callbacks,
    log_data,
    on_generated_data,
    progress_bars,
)
from osvos_pl.stages.engine import Engine
from osvos_pl.stages.parent_network import parent_network
from osvos_pl.stages.records import global_from_sequences, read_record, write_record
from osvos_pl.stages.sequence import FrameHook, segment_sequence
from osvos_pl.tasks.contour_sources import ContourSource, MapContours, NetworkContours
from osvos_pl.tasks.progress import UpdateEta
from osvos_pl.tasks.segmenter import OneShotSegmenter
from osvos_pl.utils.errors import ConfigError, OSVOSError
from osvos_pl.utils.signals import stop_if_signalled

log = logging.getLogger(__name__)


def prepare_online(cfg: DictConfig, output_dir: Path, predictions: str = "predictions",
                   on_frame: FrameHook | None = None) -> Callable[[list], dict]:
    """The online stage built and checked: the data and its first annotations (before any
    weights load or logger starts), the parent, the engine, the contour source and the
    segmenter; returns the job the runner starts once the loggers exist."""
    dm = build_datamodule(cfg)
    names = dm.eval_names()  # a bad data.root fails before any weights load
    dm.check(names, require_masks="first", first_mask_nonempty=True)  # before loggers, downloads
    objects = count_objects(dm, names)
    log_data(cfg, dm, f"{len(names)} sequence(s), {objects} object(s)")
    parent, normalization = parent_network(cfg, real_frames=not on_generated_data(cfg, dm))
    follow_weights(cfg, dm, normalization)
    engine = build_engine(cfg, output_dir)
    contours = contour_source(cfg, engine, dm)
    iterations = int(cfg.online.iterations)
    log.info("weights: %s", parent.weights_source)
    steps = ["averaged with the mirrored frame (online.test_flip)"] if cfg.online.test_flip else []
    steps += [f"blended with the parent (online.parent_weight={cfg.online.parent_weight})"
              ] if iterations and cfg.online.parent_weight else []
    steps += [f"each object kept near its previous mask (online.near_previous="
              f"{cfg.online.near_previous})"] if cfg.online.near_previous is not None else []
    held = (f" held near the parent (online.l2sp={cfg.online.l2sp})"
            if iterations and cfg.online.l2sp else "")
    log.info("plan: per object %d fine-tuning updates (online.iterations)%s, then every frame "
             "segmented%s%s; %s, %s", iterations, held, "".join(f", {s}" for s in steps),
             " and snapped to contours" if contours else
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

    views = instantiate(cfg.online.first_frames)

    def job(loggers: list) -> dict:
        segmenter.loggers = loggers  # each fine-tuning's loss, per sequence
        return run_online(segmenter, dm, output_dir, loggers, seed=int(cfg.seed), views=views,
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
    total = 0
    for name in names:
        try:
            total += len(dm.object_ids(name))
        except (OSVOSError, OSError):
            total += 1
    return total


def contour_source(cfg: DictConfig, engine: Engine, dm: VideoSource) -> ContourSource | None:
    """Where snapping gets each frame's contour map: precomputed maps, the contour branch, or
    nowhere (None: no snapping)."""
    if not cfg.snapping:
        return None
    if cfg.get("contour_maps"):
        maps = ContourMaps(cfg.contour_maps)
        check_contour_maps(maps, dm, dm.eval_names())
        return MapContours(maps, dm.frame_names)
    if not cfg.contour_ckpt:
        raise ConfigError("snapping=true needs contour_ckpt=PATH (a +experiment=contour "
                          "checkpoint) or contour_maps=DIR (precomputed contour maps)")
    net = instantiate(cfg.model, weights=None, offline_fallback="random")
    load_checkpoint_weights(net, cfg.contour_ckpt, cache_dir=cfg.paths.cache_dir)
    scale = cfg.online.get("contour_scale")
    return NetworkContours(net, engine, None if scale is None else float(scale), dm.normalization)


def run_online(
    segmenter: OneShotSegmenter,
    dm: VideoSource,
    output_dir: Path,
    loggers: Sequence = (),
    *,
    seed: int,
    views: Views,
    resume: bool = True,
    overlays: int = 3,
    predictions: str = "predictions",
    on_frame: FrameHook | None = None,
) -> dict:
    """Every sequence of ``dm.eval_names()`` (checked by the runner before loggers start);
    returns the run record's body."""
    names = dm.eval_names()
    records = {}
    for name in (bar := tqdm(names, desc="sequences", unit="seq")):
        bar.set_postfix_str(name)
        stop_if_signalled()
        path = output_dir / "sequences" / f"{name}.json"
        if resume and path.is_file():
            log.info("%s: already done (%s), skipping", name, path)
            records[name] = read_record(path)
            continue
        records[name] = segment_sequence(segmenter, dm, name, output_dir, seed, views,
                                         predictions, overlays, on_frame)
        write_record(path, records[name])  # last: a sequence with its record is complete
        for key, row in records[name]["objects"].items():
            log.info("%s: J-Mean %.4f, F-Mean %.4f", key, row["J-Mean"], row["F-Mean"])
    sequences = {k: v for r in records.values() for k, v in r["objects"].items()}
    _log_wandb(loggers, records, output_dir / "overlays")
    timing_rows = {n: r["timing"] for n, r in records.items()}
    total_frames = sum(t["frames"] for t in timing_rows.values()) or 1
    return {
        "global": global_from_sequences(sequences),
        "sequences": sequences,
        "timing": {
            "finetune_seconds_per_sequence": float(np.mean(
                [t["finetune_seconds"] for t in timing_rows.values()])) if timing_rows else 0.0,
            "inference_ms_per_frame": 1000 * sum(
                t["inference_seconds"] for t in timing_rows.values()) / total_frames,
            "sequences": timing_rows,
            "prefix": segmenter.prefix_timing,
        },
        "artifacts": {"predictions": str(output_dir / predictions),
                      "data_root": str(dm.data_root)},
    }


def _log_wandb(loggers: Sequence, records: dict, overlays: Path) -> None:
    """Per-sequence table (J, F, timings) and the overlays the run wrote (prediction tinted,
    ground truth outlined in white) to W&B."""
    from pytorch_lightning.loggers import WandbLogger

    wandb_logger = next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)
    if wandb_logger is None:
        return
    import wandb

    columns = ["object", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay",
               "finetune_s", "inference_ms_per_frame"]
    table = wandb.Table(columns=columns)
    images = []
    for name, rec in records.items():
        for key, row in rec["objects"].items():
            table.add_data(key, *[row[c] for c in columns[1:7]], rec["timing"]["finetune_seconds"],
                           rec["timing"]["inference_ms_per_frame"])
        images += [wandb.Image(str(path), caption=f"{name} {path.stem}")
                   for path in sorted((overlays / name).glob("*.png"))]
    wandb_logger.experiment.log({"online/sequences": table, "online/overlays": images})
