"""Pictures of results: mask overlays (tint + outline), contact sheets, overlay videos, and which
few frames of a sequence the online stage draws beside its predictions."""

from __future__ import annotations

import contextlib
from pathlib import Path

import cv2
import numpy as np

from osvos_pl.data.io import davis_palette
from osvos_pl.utils.atomic import atomic_path
from osvos_pl.utils.errors import DataError

_PALETTE = np.array(davis_palette(), np.uint8).reshape(256, 3)
TRUTH_COLOUR = (255, 255, 255)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45,
            truth: np.ndarray | None = None) -> np.ndarray:
    """Tint each object of ``labels`` (bool or ids) in its DAVIS colour and outline it.

    ``image`` is ``(H, W, 3) uint8`` RGB; ``labels`` is ``(h, w)`` and resized (nearest) to it.
    ``truth`` (the ground truth, same conventions) is drawn as a thin white outline on top, so
    a reader sees where prediction and annotation disagree.
    """
    out = image.astype(np.float32).copy()
    labels = _fit(labels, image.shape[:2])
    for k in np.unique(labels):
        if k == 0:
            continue
        m = labels == k
        colour = _PALETTE[k if k < 255 else 1].astype(np.float32)
        out[m] = (1 - alpha) * out[m] + alpha * colour
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), 2)
    if truth is not None:
        fg = (_fit(truth, image.shape[:2]) > 0).astype(np.uint8)
        contours, _ = cv2.findContours(fg, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, TRUTH_COLOUR, 1)
    return np.clip(out, 0, 255).astype(np.uint8)


def _fit(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    labels = np.asarray(labels).astype(np.uint8)
    if labels.shape != tuple(hw):
        labels = cv2.resize(labels, hw[::-1], interpolation=cv2.INTER_NEAREST)
    return labels


def contact_sheet(panels: list[np.ndarray], columns: int = 3, width: int = 320) -> np.ndarray:
    """Overlays tiled into one image (rows of ``columns``), each scaled to ``width`` px wide."""
    tiles = [cv2.resize(p, (width, int(p.shape[0] * width / p.shape[1]))) for p in panels]
    h = max(t.shape[0] for t in tiles)
    rows = []
    for r in range(0, len(tiles), columns):
        row = tiles[r:r + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.concatenate([np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in row], 1))
    return np.concatenate(rows, 0)


def write_image(path: Path, rgb: np.ndarray) -> None:
    """An RGB image written atomically (the format follows the suffix)."""
    with atomic_path(path) as tmp:  # tmp keeps the suffix, so OpenCV picks the format
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {path}")


class OverlayVideo:
    """An ``.mp4`` of overlays, written to a temporary name (from the first frame on) and renamed
    on ``close()``."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = Path(path), fps
        self._context = self._tmp = self._writer = None

    def add(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self._context = atomic_path(self.path)
            self._tmp = self._context.__enter__()
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                           self.fps, rgb.shape[1::-1])
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, keep: bool = True) -> None:
        if self._writer is None:
            return
        self._writer.release()
        if keep:
            self._context.__exit__(None, None, None)
        else:
            self._context.__exit__(RuntimeError, RuntimeError("discarded"), None)
        self._writer = None


class ClipPictures:
    """predict's pictures of a clip, fed frame by frame (the online stage's ``on_frame`` hook):
    every overlay into ``overlay.mp4`` (if ``video``) and ``sheet_frames`` frames spread over the
    clip into ``contact_sheet.png``. As a context, it writes them when the block succeeds and
    leaves no half-written video when it fails."""

    def __init__(self, output: Path, fps: float, frames: int, sheet_frames: int, video: bool):
        self.output, self.panels = Path(output), []
        self.sheet_at = set(np.linspace(0, max(1, frames) - 1, sheet_frames).round().astype(int))
        self.video = OverlayVideo(self.output / "overlay.mp4", fps) if video else None

    def __call__(self, name: str, item: dict, labels: np.ndarray) -> None:
        shown = overlay(item["raw"].numpy(), labels)
        if self.video is not None:
            self.video.add(shown)
        if int(item["frame"]) in self.sheet_at:
            self.panels.append(shown)

    def __enter__(self) -> ClipPictures:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is not None:
            with contextlib.suppress(Exception):  # closing must not mask the real error
                if self.video is not None:
                    self.video.close(keep=False)
            return
        if self.video is not None:
            self.video.close()
        if not self.panels:
            raise DataError(f"no frames could be read for {self.output / 'contact_sheet.png'}")
        write_image(self.output / "contact_sheet.png", contact_sheet(self.panels))


def overlay_frames(n: int, count: int) -> list[int]:
    """Up to ``count`` of ``n`` frames worth a look: the first, the middle, the last."""
    return sorted({0, n // 2, n - 1})[:count] if n else []
