"""The page's run: predict's own (:func:`osvos_pl.predict.segment_clip` on a config composed
from ``conf/predict.yaml`` and checked by predict's preflight), so the page and the command line
segment a clip the same way; only the pictures for the page (a WebM a browser plays, one overlay
per frame for the slider) and its progress bar are added, through the online stage's hooks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
from PIL import Image

from osvos_pl.data.frames import natural_key
from osvos_pl.data.io import write_mask
from osvos_pl.data.overlays import overlay
from osvos_pl.demo.session.clips import Clip
from osvos_pl.demo.session.config import predict_config
from osvos_pl.tasks.first_mask import GrabCut
from osvos_pl.utils.errors import DataError

#: ``(fraction done, what is happening)`` for the page's progress bar.
Progress = Callable[[float, str], None]
#: The progress bar of the run in this thread (set by :func:`run_clip`).
PAGE_PROGRESS: ContextVar[Progress | None] = ContextVar("page_progress", default=None)


class PageProgress(pl.Callback):
    """Fine-tuning updates, to the page's progress bar (``PAGE_PROGRESS``).

    The runner builds the segmenter's callbacks from the config, so :func:`run_clip` adds this
    one as ``callbacks.page_progress``; it finds the bar of the run in its own thread, where
    Lightning trains. One fine-tuning per object (``fine-tuning object 2: 17/50 updates``) or
    one for all of them when the head scores several classes (``online.objects=joint``:
    ``fine-tuning all 3 objects together: 17/50 updates``).
    """

    def __init__(self):
        self.fits = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self.fits += 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        report = PAGE_PROGRESS.get()
        if report is not None and trainer.max_steps > 0:
            classes = pl_module.net.fuse.out_channels
            what = f"all {classes - 1} objects together" if classes > 1 else f"object {self.fits}"
            report(trainer.global_step / trainer.max_steps,
                   f"fine-tuning {what}: {trainer.global_step}/{trainer.max_steps} updates")


@dataclass(frozen=True)
class Result:
    video: Path        # overlay.webm (the browser plays VP8 WebM; predict's overlay.mp4 too)
    frames: list[Path]  # one overlay JPEG per frame, for the slider
    masks_zip: Path    # masks/<name>/NNNNN.png, DAVIS layout
    record: dict
    warning: str | None = None  # why the masks look wrong (result_warning), or None


def result_warning(first: np.ndarray, masks: Sequence[np.ndarray]) -> str | None:
    """Why a run's masks look wrong, or None: nearly every mask empty, or covering most of the
    frame, when the first mask (``first``: object ids) is neither — what a network without
    object features (a random backbone, a parent of generated stripes) gives on real video."""
    if not masks:
        return None
    given = float((first > 0).mean())
    later = [float((m > 0).mean()) for m in masks[1:]] or [float((masks[0] > 0).mean())]
    empty = sum(a < 0.1 * given for a in later) / len(later)
    full = sum(a > max(0.8, 3 * given) for a in later) / len(later)
    if empty > 0.5:
        return (f"{round(100 * empty)}% of the frames have (nearly) empty masks: this result "
                "cannot be trusted")
    if full > 0.5 and given < 0.5:
        return (f"the masks cover most of the frame on {round(100 * full)}% of the frames: this "
                "result cannot be trusted")
    return None


def run_clip(clip: Clip, labels: np.ndarray, updates: int, parent_ckpt: str | None,
             overrides: Sequence[str], output: Path, grabcut: GrabCut,
             progress: Progress) -> Result:
    """Segment ``clip`` from the first-frame ``labels`` with predict's run, into ``output``."""
    from osvos_pl.predict import segment_clip
    from osvos_pl.runner.preflight import check_predict
    from osvos_pl.tasks.joint import joint_for

    ids = [int(k) for k in np.unique(labels) if k]
    if not ids:
        raise DataError("the mask is empty: paint the object on frame 0 (or draw a box and "
                        "press GrabCut) first")
    output.mkdir(parents=True, exist_ok=True)
    mask = write_mask(output / "first_mask.png", labels if len(ids) > 1 else labels * 255,
                      palette=len(ids) > 1)
    args = [*overrides, f"input={clip.input}", f"mask={mask}", f"data.name={clip.name}",
            "+callbacks.page_progress._target_=osvos_pl.demo.session.run.PageProgress",
            f"online.iterations={int(updates)}",
            f"parent_ckpt={parent_ckpt}" if parent_ckpt else "parent_ckpt=null"]
    cfg = predict_config(args, output)
    check_predict(cfg)
    frames_dir = output / "overlay_frames"
    frames_dir.mkdir(exist_ok=True)
    video = output / "overlay.webm"
    writer: list[cv2.VideoWriter] = []
    together = len(ids) > 1 and joint_for(cfg.online.objects, len(ids))
    progress(0.0, f"fine-tuning {len(ids)} object(s), {updates} updates "
                  + ("for all together" if together else "each"))

    def on_frame(name: str, item: dict, frame_labels: np.ndarray) -> None:
        i = int(item["frame"])
        shown = overlay(item["raw"].numpy(), frame_labels)
        if not writer:
            writer.append(cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"),
                                          clip.fps, shown.shape[1::-1]))
        bgr = cv2.cvtColor(shown, cv2.COLOR_RGB2BGR)
        writer[0].write(bgr)
        cv2.imwrite(str(frames_dir / f"{i:05d}.jpg"), bgr)
        progress((i + 1) / clip.frames, f"segmenting frame {i + 1}/{clip.frames}")

    token = PAGE_PROGRESS.set(progress)
    try:
        record = segment_clip(cfg, output, grabcut, on_frame=on_frame)
    finally:
        PAGE_PROGRESS.reset(token)
        for w in writer:
            w.release()
    masks = output / "masks"
    masks_zip = Path(shutil.make_archive(str(output / f"{clip.name}-masks"), "zip", masks))
    frames = sorted(frames_dir.glob("*.jpg"), key=natural_key)
    pngs = sorted((masks / clip.name).glob("*.png"), key=natural_key)
    sampled = pngs[:: max(1, len(pngs) // 50)]  # enough to judge, cheap on a long clip
    warning = result_warning(labels, [np.asarray(Image.open(p)) for p in sampled])
    return Result(video, frames, masks_zip, record, warning)
