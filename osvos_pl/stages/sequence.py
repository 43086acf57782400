"""One sequence of the online stage: fine-tune on its annotation, segment every frame, write
the masks and a few overlays, score; the sequence's record (``stages/online.py`` runs them all).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from osvos_pl.data.datasets import Views
from osvos_pl.data.io import write_mask
from osvos_pl.data.overlays import overlay, overlay_frames, write_image
from osvos_pl.data.source import VideoSource
from osvos_pl.metrics import evaluate_sequence, object_row
from osvos_pl.tasks.joint import joint_for, joint_views
from osvos_pl.tasks.segmenter import OneShotSegmenter
from osvos_pl.utils.signals import stop_if_signalled

log = logging.getLogger(__name__)

#: ``(sequence, item, labels)`` for every segmented frame (``predict``'s video and sheet)
FrameHook = Callable[[str, dict, np.ndarray], None]


def segment_sequence(segmenter: OneShotSegmenter, dm: VideoSource, name: str, output_dir: Path,
                     seed: int, views: Views, predictions: str = "predictions",
                     overlays: int = 3, on_frame: FrameHook | None = None) -> dict:
    """Fine-tune (per object, or once for all objects: ``online.objects``), predict, snap,
    write PNGs and a few overlays (``overlays/``: the prediction tinted, the ground truth
    outlined); return the sequence's record.

    Re-seeded per sequence, so a sequence scores the same alone (one job per sequence) as
    inside a run over many. Every frame comes once from the stream, with its annotation.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    ids, multi = dm.object_ids(name), dm.is_multi_object(name)
    nets, finetune_seconds, foreground = _finetune(segmenter, dm, name, views, seed)
    stems = dm.frame_names(name)
    shown_at = set(overlay_frames(len(stems), overlays))
    start = time.perf_counter()
    pred, gt, unsnapped = {}, {}, Counter()
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
        truth = item["labels"].numpy() if bool(item.get("has_label", False)) else None
        if i in shown_at:
            write_image(output_dir / "overlays" / name / f"{stems[i]}.png",
                        overlay(item["raw"].numpy(), labels, truth=truth))
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
        "object_mode": "joint" if joint_for(segmenter.objects, len(ids)) else "per-object",
    }
    if segmenter.contours is not None:
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


def _finetune(segmenter: OneShotSegmenter, dm: VideoSource, name: str, views: Views,
              seed: int) -> tuple[object, float, dict | None]:
    """The sequence's network(s), their fine-tuning seconds and each object's share of the
    annotated frame (per object; None for the joint network, ``osvos_pl.tasks.joint``)."""
    ids, multi = dm.object_ids(name), dm.is_multi_object(name)
    samples = segmenter.finetuning.samples
    if joint_for(segmenter.objects, len(ids)):
        dataset = joint_views(views, dm, name, samples, ids, multi, seed)
        return (*segmenter.finetune_joint(dataset, ids, name), None)
    datasets = {oid: views.of(dm, name, samples, oid if multi else None, seed) for oid in ids}
    nets, seconds = segmenter.finetune(datasets, name)
    return nets, seconds, {oid: ds.foreground for oid, ds in datasets.items()}


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
