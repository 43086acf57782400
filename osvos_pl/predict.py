"""``python -m osvos_pl.predict input=clip.mp4 mask=first.png [...]`` — segment your own video.

The online stage on a clip (``data=clip``: a video or frame folder plus annotated masks): one
model per object, masks in ``<output>/masks/<name>/NNNNN.png`` (DAVIS layout, so ``evaluate``
reads them), plus ``overlay.mp4``, ``contact_sheet.png``, the run's log and config, all in
``output=``. Without ``mask=``, ``box=`` and/or ``fg=`` / ``bg=`` points make the first mask
with GrabCut (``osvos_pl.tasks.first_mask``), written as ``<output>/first_mask.png``. Inputs are
checked before anything is made (``osvos_pl.runner.preflight``). :func:`segment_clip` is the whole
run below the command line; the browser demo (``osvos_pl.demo``) calls it too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from osvos_pl.runner.config import config_dir
from osvos_pl.runner.exits import exit_codes
from osvos_pl.runner.preflight import check_predict, predict_missing, preflight

log = logging.getLogger("osvos_pl.predict")

USAGE = ("python -m osvos_pl.predict input=VIDEO_OR_FRAME_FOLDER mask=FIRST_FRAME_MASK.png "
         "| box=x0,y0,x1,y1 [fg=[[x,y],...]] [bg=[[x,y],...]] "
         "[parent_ckpt=CKPT] [output=DIR] [key=value ...] (--help lists every key)")

#: The online stage's per-frame hook: ``(sequence, item, labels)``.
FrameHook = Callable[[str, dict, "object"], None]


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    from osvos_pl.runner.run import log_summary

    output = Path(cfg.output)
    with exit_codes(on_sigterm=lambda: interrupted_message(output)):
        record = segment_clip(cfg, output, instantiate(cfg.grabcut))
    log_summary(record, output)


def segment_clip(cfg: DictConfig, output: Path, grabcut=None,
                 on_frame: FrameHook | None = None) -> dict:
    """predict's run: the first mask (``mask=``, else GrabCut's from ``box=`` / ``fg=`` /
    ``bg=``), then the online stage on the clip (``osvos_pl.runner.run.run``) with its pictures
    (``overlay.mp4``, ``contact_sheet.png``); ``on_frame`` also sees every segmented frame.
    Returns the run record. Installs no signal handler, so it runs in any thread."""
    from osvos_pl.data.frames import FrameSource
    from osvos_pl.data.overlays import ClipPictures
    from osvos_pl.runner.run import run

    source = FrameSource(cfg.input)
    if cfg.mask is None:
        cfg.mask = str(write_first_mask(cfg, source.first(), output, grabcut))
    elif cfg.box is not None or cfg.fg or cfg.bg:
        log.info("mask=%s given: box/fg/bg ignored", cfg.mask)
    with ClipPictures(output, source.fps, source.count or 1, int(cfg.contact_sheet_frames),
                      bool(cfg.overlay_video)) as pictures:
        def hook(name: str, item: dict, labels) -> None:
            pictures(name, item, labels)
            if on_frame is not None:
                on_frame(name, item, labels)
        return run(cfg, output, summary=False, predictions="masks", on_frame=hook)


def write_first_mask(cfg: DictConfig, image, output: Path, grabcut) -> Path:
    """GrabCut's mask of frame ``image`` from ``cfg.box`` / ``fg`` / ``bg`` as
    ``<output>/first_mask.png`` (0/255), with a line saying how it looks."""
    from osvos_pl.data.io import write_mask
    from osvos_pl.tasks.first_mask import GrabCut, parse_box, parse_points
    from osvos_pl.tasks.mask_report import describe_mask

    size = image.shape[:2]
    box = None if cfg.box is None else parse_box(cfg.box, size)
    fg, bg = parse_points(cfg.fg, "fg", size), parse_points(cfg.bg, "bg", size)
    grabcut = grabcut or GrabCut()
    prior = box_prior(cfg, image, grabcut, box) if box is not None else None
    mask = grabcut(image, box, fg, bg, prior=prior)
    path = write_mask(output / "first_mask.png", mask.astype("uint8") * 255, palette=False)
    used = grabcut.sees_object(prior, box)
    if box is not None and grabcut.needs_prior and cfg.parent_ckpt and not used:
        log.info("the parent sees no object in the box (its mask would fill less than %.0f%% of "
                 "it, grabcut.min_box_share; for box-tuned, or less than %.0f%% of its convex "
                 "hull, grabcut.min_solidity): GrabCut from the box alone",
                 100 * grabcut.min_box_share, 100 * grabcut.min_solidity)
    log.info("first mask by %s (box=%s, %d fg / %d bg points) -> %s: %s",
             METHOD_WORDS[grabcut.method if used else "grabcut"],
             ",".join(map(str, box)) if box else "none", len(fg), len(bg), path,
             describe_mask(mask, box, prior if used else None, grabcut.threshold))
    return path


#: ``grabcut.method`` in the run log.
METHOD_WORDS = {"grabcut": "GrabCut from the box",
                "parent": "the parent's object probability inside the box",
                "parent+grabcut": "GrabCut started from the parent's labels inside the box",
                "box-tuned": "the parent fine-tuned on the frame with the box as its label"}


def box_prior(cfg: DictConfig, image, grabcut, box=None):
    """The parent's ``(H, W)`` object probability on frame ``image`` where ``grabcut.method``
    reads it (``GrabCut.prior``: for ``box-tuned`` fine-tuned on ``box``), else None; without a parent
    (``parent_ckpt=null``) GrabCut works from the box alone, and says so."""
    from hydra.utils import instantiate

    from osvos_pl.model.checkpoint import load_checkpoint
    from osvos_pl.utils.normalization import get_normalization

    if not grabcut.needs_prior:
        return None
    if not cfg.parent_ckpt:
        log.info("grabcut.method=%s reads the parent's probabilities, and parent_ckpt=null: "
                 "GrabCut from the box alone", grabcut.method)
        return None
    net = instantiate(cfg.model, weights=None)
    loaded = load_checkpoint(net, cfg.parent_ckpt, cache_dir=cfg.paths.cache_dir)
    return grabcut.prior(net, get_normalization(loaded.normalization or net.normalization), image,
                         box)


def interrupted_message(output: Path) -> str:
    return (f"interrupted by SIGTERM; every mask in {output / 'masks'} is complete, but the clip "
            f"is not finished. Run the same command again (output={output}) to fine-tune and "
            "segment it again")


def box_as_list(args: Sequence[str]) -> list[str]:
    """``box=x0,y0,x1,y1`` → ``box=[x0,y0,x1,y1]``: Hydra reads a bare comma list as a sweep."""
    return [f"box=[{a[4:]}]" if re.fullmatch(r"box=[^\[\]'\"]*,[^\[\]'\"]*", a) else a
            for a in args]


if __name__ == "__main__":
    sys.argv[1:] = box_as_list(sys.argv[1:])
    preflight("predict", USAGE, check_predict, required=predict_missing)
    main()
