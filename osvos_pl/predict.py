"""``python -m osvos_pl.predict input=clip.mp4 mask=first.png [...]`` — segment your own video.

Reads a video or a frame folder and the first frame's mask (binary, or palette ids for several
objects; optional extra annotated frames), fine-tunes one model per object, and writes
``<output>/masks/NNNNN.png`` (DAVIS layout), ``<output>/overlay.mp4`` and
``<output>/contact_sheet.png``. Frames are streamed, never all held in memory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from osvos_pl.config import config_dir
from osvos_pl.errors import DataError, OSVOSError

log = logging.getLogger("osvos_pl.predict")


def load_mask(path: str | Path, size: tuple[int, int], resize: bool) -> np.ndarray:
    """A user's mask as ``(H, W) uint8`` object ids (0/255 binary → 1), checked against the frames."""
    from osvos_pl.data.io import read_mask

    labels = read_mask(path)
    if labels.shape != size:
        if not resize:
            raise DataError(
                f"mask {path} is {labels.shape[1]}x{labels.shape[0]} but the frames are "
                f"{size[1]}x{size[0]} — draw the mask on a frame of the video, or pass "
                "resize_mask=true to resize it (nearest neighbour)"
            )
        labels = cv2.resize(labels, size[::-1], interpolation=cv2.INTER_NEAREST)
    ids = [int(v) for v in np.unique(labels) if v != 0]
    if not ids:
        raise DataError(f"mask {path} is empty — annotate the object(s) to segment (non-zero pixels)")
    if ids == [255] or len(ids) == 1:
        labels = (labels > 0).astype(np.uint8)
    return labels


def contact_sheet(panels: list[np.ndarray], columns: int = 3) -> np.ndarray:
    """Overlays tiled into one image (rows of ``columns``), each scaled to 320 px wide."""
    w = 320
    tiles = [cv2.resize(p, (w, int(p.shape[0] * w / p.shape[1]))) for p in panels]
    h = max(t.shape[0] for t in tiles)
    rows = []
    for r in range(0, len(tiles), columns):
        row = tiles[r:r + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.concatenate([np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in row], 1))
    return np.concatenate(rows, 0)


def predict(cfg: DictConfig, output: Path) -> dict:
    from torch.utils.data import DataLoader

    from osvos_pl.data.datasets import FirstFrames
    from osvos_pl.data.frames import FrameSource, StreamedFrames
    from osvos_pl.data.io import write_mask
    from osvos_pl.data.transforms import resize_pair, scaled_size
    from osvos_pl.normalization import get_normalization
    from osvos_pl.stages.inference import segment_stream
    from osvos_pl.stages.online import (
        finetune_objects,
        inference_settings,
        load_contour,
        load_parent,
    )
    from osvos_pl.tasks.overlay import overlay
    from osvos_pl.utils.atomic import atomic_path

    source = FrameSource(cfg.input)
    annotated = [(0, cfg.mask)] + [(int(s.split(":", 1)[0]), s.split(":", 1)[1]) for s in cfg.masks]
    labels = {i: load_mask(p, source.size, cfg.resize_mask) for i, p in annotated}
    ids = sorted({int(v) for m in labels.values() for v in np.unique(m) if v != 0})
    if not cfg.parent_ckpt:
        print("note: no parent_ckpt — fine-tuning from the ImageNet backbone only; quality is "
              "lower than with a parent network (train one with +experiment=parent)")
    parent, norm_name = load_parent(cfg)
    if cfg.data.normalization != "auto":
        norm_name = cfg.data.normalization
    norm = get_normalization(norm_name)
    contour = load_contour(cfg)
    scale = float(cfg.data.scale)
    frames = {i: source.frame(i) if i else source.first() for i in labels}
    length = int(cfg.online.iterations) * int(cfg.online.accumulate)
    datasets = {}
    for oid in ids:
        pairs = [resize_pair(frames[i], (m == oid).astype(np.uint8), scaled_size(m.shape, scale))
                 for i, m in labels.items()]
        datasets[oid] = FirstFrames(pairs, norm, length, cfg.data.augment, int(cfg.seed))
    nets, seconds = finetune_objects(cfg, parent, datasets, norm_name, output)
    loader = DataLoader(StreamedFrames(source, norm, scale), batch_size=int(cfg.data.eval_batch_size))
    multi = len(ids) > 1
    n = source.count
    sheet_at = set(np.linspace(0, (n or 1) - 1, int(cfg.contact_sheet_frames)).round().astype(int))
    panels, writer, written = [], None, 0
    with atomic_path(output / "overlay.mp4") as video_tmp:
        for item, pred in tqdm(segment_stream(nets, loader, inference_settings(cfg), contour),
                               total=n, desc="segmenting", unit="frame"):
            i = int(item["frame"])
            write_mask(output / "masks" / f"{source.name(i)}.png", pred if multi else pred * 255,
                       palette=multi)
            shown = overlay(item["raw"].numpy(), pred)
            if cfg.overlay_video:
                if writer is None:
                    writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                             source.fps, shown.shape[1::-1])
                writer.write(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
            if i in sheet_at:
                panels.append(shown)
            written += 1
        if writer is not None:
            writer.release()
    if not cfg.overlay_video:
        (output / "overlay.mp4").unlink(missing_ok=True)
    if written == 0:
        raise DataError(f"no frames could be read from {cfg.input}")
    with atomic_path(output / "contact_sheet.png") as tmp:  # tmp keeps the .png suffix
        cv2.imwrite(str(tmp), cv2.cvtColor(contact_sheet(panels), cv2.COLOR_RGB2BGR))
    return {"frames": written, "objects": ids, "finetune_seconds": seconds,
            "masks": str(output / "masks"), "overlay": str(output / "overlay.mp4"),
            "contact_sheet": str(output / "contact_sheet.png")}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    from osvos_pl.validation import validate_config

    output = Path(cfg.output)
    try:
        validate_config(cfg)
        result = predict(cfg, output)
    except OSVOSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {result['frames']} masks to {result['masks']}, {result['overlay']}, "
          f"{result['contact_sheet']}")


if __name__ == "__main__":
    main()
