"""The online stage: for each sequence, fine-tune on its annotation, segment every frame, score.

Per sequence it writes ``<predictions>/<seq>/NNNNN.png`` (0/255 for one object, DAVIS palette
ids for several), ``sequences/<seq>.json`` (per-object scores and timings), both atomically, and
a few overlays (prediction tinted, ground truth outlined) in ``overlays/<seq>/``;
a re-run into the same output dir skips sequences whose record exists (``resume``). The data
source is the DAVIS data module or a user's clip (``data=clip``, used by ``predict``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from tqdm.auto import tqdm

from osvos_pl.data.io import read_mask, write_mask
from osvos_pl.data.overlays import overlay, write_overlays
from osvos_pl.metrics import evaluate_sequence, object_row
from osvos_pl.stages.records import global_from_sequences, read_record, write_record
from osvos_pl.tasks.segmenter import OneShotSegmenter
from osvos_pl.utils.signals import stop_if_signalled

log = logging.getLogger(__name__)

FrameHook = Callable[[str, dict, np.ndarray], None]


def segment_sequence(segmenter: OneShotSegmenter, dm, name: str, output_dir: Path, seed: int,
                     predictions: str = "predictions", on_frame: FrameHook | None = None) -> dict:
    """Fine-tune (per object), predict, snap, write PNGs; return the sequence's record.

    Re-seeded per sequence, so a sequence scores the same alone (one job per sequence) as
    inside a run over many.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    ids, multi = dm.object_ids(name), dm.is_multi_object(name)
    ft = segmenter.finetuning
    datasets = {oid: dm.first_frames(name, ft.samples, object_id=oid if multi else None,
                                     seed=seed, augment=ft.augment, views=ft.views)
                for oid in ids}
    nets, finetune_seconds = segmenter.finetune(datasets, name)
    stems = dm.frame_names(name)
    start = time.perf_counter()
    pred, gt, unsnapped = {}, {}, Counter()
    foreground = {oid: ds.foreground for oid, ds in datasets.items()}
    for item, labels in segmenter.segment(nets, dm.sequence_dataloader(name), sequence=name,
                                          foreground=foreground):
        stop_if_signalled()  # a stop noted during the fine-tuning's last update
        i = int(item["frame"])
        if item["snapped"] not in (None, "snapped"):
            unsnapped[item["snapped"]] += 1
        write_mask(output_dir / predictions / name / f"{stems[i]}.png",
                   labels if multi else labels * 255, palette=multi)
        if on_frame is not None:
            on_frame(name, item, labels)
        truth = dm.ground_truth(name, i)
        if truth is not None:
            pred[i], gt[i] = labels, truth
    inference_seconds = time.perf_counter() - start
    n = len(stems)
    timing = {
        "finetune_seconds": finetune_seconds,
        "inference_seconds": inference_seconds,
        "inference_ms_per_frame": 1000 * inference_seconds / max(1, n),
        "frames": n,
        "objects": len(ids),
    }
    if segmenter.snapping:
        timing["unsnapped_frames"] = sum(unsnapped.values())
        timing["unsnapped_by_reason"] = dict(unsnapped)
        _warn_unsnapped(name, unsnapped, n, segmenter)
    objects = {}
    if gt:
        scored = sorted(gt)
        per_object = evaluate_sequence(np.stack([gt[i] for i in scored]),
                                       np.stack([pred[i] for i in scored]), multi_object=multi)
        objects = {f"{name}_{oid}" if multi else name: object_row(jf["J"], jf["F"])
                   for oid, jf in per_object.items()}
    return {"sequence": name, "objects": objects, "timing": timing}


_REASONS = {
    "skipped-no-boundary": "their contour map has no boundary above the UCM threshold ({ucm}) — "
                           "is the contour branch (contour_ckpt) trained enough?",
    "skipped-too-few-superpixels": "their contour map gives fewer than {min_sp} superpixels "
                                   "(online.min_superpixels)",
    "no-map": "they have no contour map",
}


def _warn_unsnapped(name: str, unsnapped: Counter, n: int, segmenter: OneShotSegmenter) -> None:
    for reason, count in sorted(unsnapped.items()):
        why = _REASONS.get(reason, reason).format(ucm=segmenter.ucm_threshold,
                                                  min_sp=segmenter.min_superpixels)
        log.warning("%s: %d of %d frames left unsnapped: %s", name, count, n, why)


def run_online(
    segmenter: OneShotSegmenter,
    dm,
    output_dir: Path,
    loggers: Sequence = (),
    *,
    seed: int,
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
        records[name] = segment_sequence(segmenter, dm, name, output_dir, seed, predictions,
                                         on_frame)
        write_overlays(dm, name, output_dir / predictions, output_dir / "overlays", overlays)
        write_record(path, records[name])  # last: a sequence with its record is complete
        for key, row in records[name]["objects"].items():
            log.info("%s: J-Mean %.4f, F-Mean %.4f", key, row["J-Mean"], row["F-Mean"])
    sequences = {k: v for r in records.values() for k, v in r["objects"].items()}
    _log_wandb(loggers, dm, records, output_dir / predictions, overlays)
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


def _log_wandb(loggers: Sequence, dm, records: dict, predictions: Path, overlays: int) -> None:
    """Per-sequence table (J, F, timings) and a few overlays per sequence (prediction tinted,
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
        stems = dm.frame_names(name)
        n = len(stems)
        for i in sorted({0, n // 2, n - 1})[:overlays]:
            pred = read_mask(predictions / name / f"{stems[i]}.png")
            images.append(wandb.Image(overlay(dm.frame_image(name, i), pred,
                                              truth=dm.ground_truth(name, i)),
                                      caption=f"{name} {stems[i]}"))
    wandb_logger.experiment.log({"online/sequences": table, "online/overlays": images})
