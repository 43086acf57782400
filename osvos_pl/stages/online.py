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
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from osvos_pl.data.io import read_image, read_mask, write_mask
from osvos_pl.data.masks import eval_labels, object_ids
from osvos_pl.errors import ConfigError
from osvos_pl.metrics import db_statistics, evaluate_sequence
from osvos_pl.records import global_from_sequences, read_record, write_record
from osvos_pl.stages.common import autocast_dtype, build_datamodule, inference_device
from osvos_pl.stages.finetune import finetune
from osvos_pl.stages.inference import predict_probabilities
from osvos_pl.tasks.network import load_checkpoint_weights
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


def segment_sequence(cfg, dm, name: str, parent, contour, output_dir: Path) -> dict:
    """Fine-tune (per object), predict, snap, write PNGs; return the sequence's record."""
    from osvos_pl.snapping import snap

    seq = dm.index.sequence(name)
    labels0 = read_mask(seq.mask(0))
    ids = object_ids(labels0, dm.year)
    multi = dm.index.multi_object
    device, dtype = inference_device(cfg), autocast_dtype(cfg)
    n, hw = len(seq), labels0.shape
    best = np.zeros((n, *hw), np.float16)   # highest object probability per pixel
    owner = np.zeros((n, *hw), np.uint8)    # which object has it
    timing = {"finetune_seconds": 0.0, "inference_seconds": 0.0, "snapping_seconds": 0.0}
    contour_probs = None
    if contour is not None:
        start = time.perf_counter()
        contour_probs = np.zeros((n, *hw), np.float16)
        for i, p in predict_probabilities(contour, dm.sequence_dataloader(name), device, dtype):
            contour_probs[i] = p
        timing["inference_seconds"] += time.perf_counter() - start
    for oid in ids:
        dataset = dm.first_frames(
            name, int(cfg.online.iterations) * int(cfg.online.accumulate),
            object_id=oid if multi else None, frame_ids=list(cfg.online.frame_ids), seed=cfg.seed,
        )
        net, ft = finetune(cfg, parent, dataset, dm.normalization_name, output_dir)
        timing["finetune_seconds"] += ft["finetune_seconds"]
        start = time.perf_counter()
        channels_last = bool(cfg.model.get("channels_last", False))
        for i, p in predict_probabilities(net, dm.sequence_dataloader(name), device, dtype,
                                          channels_last):
            if contour_probs is not None:
                t0 = time.perf_counter()
                p = snap(p, contour_probs[i].astype(np.float32), cfg.online.ucm_threshold,
                         cfg.online.snap_mask_threshold).astype(np.float32)
                timing["snapping_seconds"] += time.perf_counter() - t0
            better = p > best[i]
            best[i][better], owner[i][better] = p[better], oid
        timing["inference_seconds"] += time.perf_counter() - start
        del net
    pred = np.where(best > cfg.online.threshold, owner, 0).astype(np.uint8)
    for i, frame in enumerate(seq.frames):
        out = output_dir / "predictions" / name / f"{frame.stem}.png"
        write_mask(out, pred[i] if multi else pred[i] * 255, palette=multi)
    scored = [i for i, m in enumerate(seq.masks) if m is not None]
    gt = np.stack([eval_labels(read_mask(seq.masks[i]), dm.year) for i in scored])
    per_object = evaluate_sequence(gt, pred[scored], multi_object=multi)
    objects = {}
    for oid, jf in per_object.items():
        key = f"{name}_{oid}" if multi else name
        j_m, j_r, j_d = db_statistics(np.asarray(jf["J"]))
        f_m, f_r, f_d = db_statistics(np.asarray(jf["F"]))
        objects[key] = {
            "J-Mean": float(j_m), "J-Recall": float(j_r), "J-Decay": float(j_d),
            "F-Mean": float(f_m), "F-Recall": float(f_r), "F-Decay": float(f_d),
            "frames": len(jf["J"]),
        }
    timing["inference_ms_per_frame"] = 1000 * timing["inference_seconds"] / max(1, n * len(ids))
    timing["frames"] = n
    timing["objects"] = len(ids)
    return {"sequence": name, "objects": objects, "timing": timing, "overlay_frames":
            [0, n // 2, n - 1][: int(cfg.online.overlays)]}


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
    total_frames = sum(t["frames"] * t["objects"] for t in timing_rows.values()) or 1
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
                     "weights": cfg.model.weights, "scale": float(cfg.data.scale)},
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
