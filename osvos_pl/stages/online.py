"""The online stage: for each sequence, fine-tune on frame 0, segment every frame, score J/F.

Per sequence it writes ``predictions/<seq>/NNNNN.png`` (0/255 for one object, DAVIS palette ids
for several) and ``sequences/<seq>.json`` (per-object scores and timings), both atomically; a
re-run with the same output dir skips sequences whose record exists (``online.resume``).
DAVIS 2017: one model per object, fine-tuned on that object's mask, merged per pixel by the
highest probability (the authors' advice, PT#31); a pixel is background where no object's
probability passes ``online.threshold``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from osvos_pl.data.io import read_image, read_mask, write_mask
from osvos_pl.data.masks import eval_labels, object_ids
from osvos_pl.errors import ConfigError
from osvos_pl.metrics import evaluate_sequence, object_row
from osvos_pl.records import global_from_sequences, read_record, write_record
from osvos_pl.stages.common import (
    autocast_dtype,
    build_datamodule,
    inference_device,
    resolved_precision,
)
from osvos_pl.stages.finetune import finetune
from osvos_pl.stages.inference import InferenceSettings, segment_stream
from osvos_pl.tasks.network import channels_last_mode, load_checkpoint_weights
from osvos_pl.tasks.overlay import overlay

log = logging.getLogger(__name__)


def load_parent(cfg: DictConfig) -> tuple[torch.nn.Module, str]:
    """The network to fine-tune: the parent checkpoint, or the ImageNet backbone (-PN)."""
    net = instantiate(cfg.model)
    normalization = net.normalization
    if cfg.parent_ckpt:
        normalization = load_checkpoint_weights(net, cfg.parent_ckpt) or normalization
    else:
        log.warning("no parent_ckpt: fine-tuning from the ImageNet backbone (-PN); quality is lower")
    return net, normalization


def load_contour(cfg: DictConfig) -> torch.nn.Module | None:
    if not cfg.snapping:
        return None
    if not cfg.contour_ckpt:
        raise ConfigError("snapping=true needs contour_ckpt=PATH (a +experiment=contour checkpoint)")
    net = instantiate(cfg.model, weights=None, offline_fallback="random")
    load_checkpoint_weights(net, cfg.contour_ckpt)
    return net.eval()


def inference_settings(cfg: DictConfig) -> InferenceSettings:
    return InferenceSettings(
        device=inference_device(cfg), dtype=autocast_dtype(cfg),
        channels_last=channels_last_mode(cfg.model.get("channels_last", False)) is not False,
        threshold=float(cfg.online.threshold), ucm_threshold=float(cfg.online.ucm_threshold),
        snap_mask_threshold=float(cfg.online.snap_mask_threshold),
    )


def finetune_objects(cfg, parent, datasets: dict, normalization: str, output_dir: Path):
    """One fine-tuned copy of the parent per object; returns the nets and total seconds."""
    nets, seconds = {}, 0.0
    for oid, dataset in datasets.items():
        nets[oid], ft = finetune(cfg, parent, dataset, normalization, output_dir)
        seconds += ft["finetune_seconds"]
    return nets, seconds


def segment_sequence(cfg, dm, name: str, parent, contour, output_dir: Path) -> dict:
    """Fine-tune (per object), predict, snap, write PNGs; return the sequence's record.

    Re-seeded per sequence, so a sequence scores the same alone (one job per sequence) as
    inside a run over many.
    """
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    seq = dm.index.sequence(name)
    multi = dm.index.multi_object
    ids = object_ids(read_mask(seq.mask(0)), dm.year)
    length = int(cfg.online.iterations) * int(cfg.online.accumulate)
    datasets = {
        oid: dm.first_frames(name, length, object_id=oid if multi else None,
                             frame_ids=list(cfg.online.frame_ids), seed=int(cfg.seed))
        for oid in ids
    }
    nets, finetune_seconds = finetune_objects(cfg, parent, datasets, dm.normalization_name,
                                              output_dir)
    start = time.perf_counter()
    pred, unsnapped = {}, 0
    for item, labels in segment_stream(nets, dm.sequence_dataloader(name),
                                       inference_settings(cfg), contour):
        i = int(item["frame"])
        unsnapped += item["snapped"] is False
        write_mask(output_dir / "predictions" / name / f"{seq.frames[i].stem}.png",
                   labels if multi else labels * 255, palette=multi)
        if seq.masks[i] is not None:
            pred[i] = labels
    inference_seconds = time.perf_counter() - start
    if unsnapped:
        log.warning("%s: %d of %d frames left unsnapped: their contour map has no boundary above "
                    "online.ucm_threshold=%s — is the contour branch (contour_ckpt) trained enough?",
                    name, unsnapped, len(seq), cfg.online.ucm_threshold)
    scored = sorted(pred)
    gt = np.stack([eval_labels(read_mask(seq.masks[i]), dm.year) for i in scored])
    per_object = evaluate_sequence(gt, np.stack([pred[i] for i in scored]), multi_object=multi)
    objects = {f"{name}_{oid}" if multi else name: object_row(jf["J"], jf["F"])
               for oid, jf in per_object.items()}
    n = len(seq)
    timing = {
        "finetune_seconds": finetune_seconds,
        "inference_seconds": inference_seconds,
        "inference_ms_per_frame": 1000 * inference_seconds / max(1, n),
        "frames": n,
        "objects": len(ids),
    }
    if contour is not None:
        timing["unsnapped_frames"] = unsnapped
    overlays = [0, n // 2, n - 1][: int(cfg.online.overlays)]
    return {"sequence": name, "objects": objects, "timing": timing, "overlay_frames": overlays}


def run_online(cfg: DictConfig, output_dir: Path, loggers: list) -> dict:
    if int(cfg.online.iterations) < 0:
        raise ConfigError(f"online.iterations must be >= 0, got {cfg.online.iterations}")
    parent, normalization = load_parent(cfg)
    contour = load_contour(cfg)
    dm = build_datamodule(cfg, normalization)
    names = dm.eval_names()
    for name in names:  # every sequence is checked before the first fine-tuning starts
        dm.check([name], require_masks="first", first_mask_nonempty=True)
    records = {}
    for name in tqdm(names, desc="sequences", unit="seq"):
        path = output_dir / "sequences" / f"{name}.json"
        if cfg.online.resume and path.is_file():
            log.info("%s: already done (%s), skipping", name, path)
            records[name] = read_record(path)
            continue
        records[name] = segment_sequence(cfg, dm, name, parent, contour, output_dir)
        write_record(path, records[name])
        log.info("%s: %s", name, {k: round(v["J-Mean"], 4) for k, v in records[name]["objects"].items()})
    sequences = {k: v for r in records.values() for k, v in r["objects"].items()}
    _log_wandb(loggers, dm, records, output_dir)
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
        },
        "artifacts": {"predictions": str(output_dir / "predictions"),
                      "data_root": str(dm.data_root)},
        "settings": {"iterations": int(cfg.online.iterations), "snapping": bool(cfg.snapping),
                     "parent_ckpt": cfg.parent_ckpt, "contour_ckpt": cfg.contour_ckpt,
                     "weights": cfg.model.weights, "scale": float(cfg.data.scale),
                     "precision": resolved_precision(cfg),
                     "channels_last": channels_last_mode(cfg.model.get("channels_last", False))},
    }


def _log_wandb(loggers: list, dm, records: dict, output_dir: Path) -> None:
    """Per-sequence table (J, F, timings) and a few overlays per sequence to W&B."""
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
        seq = dm.index.sequence(name)
        for i in rec.get("overlay_frames", []):
            pred = read_mask(output_dir / "predictions" / name / f"{seq.frames[i].stem}.png")
            images.append(wandb.Image(overlay(read_image(seq.frames[i]), pred),
                                      caption=f"{name} {seq.frames[i].stem}"))
    wandb_logger.experiment.log({"online/sequences": table, "online/overlays": images})
