"""Frames of a user's clip: a video file (OpenCV) or a folder of images in natural sort order.

Frames are streamed, never held all at once, so long videos fit in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import IterableDataset

from osvos_pl.data.io import read_image
from osvos_pl.data.transforms import resize_pair, scaled_size
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.normalization import Normalization

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(path: Path) -> list:
    """``frame2.png`` before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class FrameSource:
    """A clip's frames by index, from a video or a folder; checks they exist and share one size."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"input not found: {self.path} — pass input=<video file or frame folder>")
        if self.path.is_dir():
            self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTS),
                                key=natural_key)
            if not self.files:
                raise DataError(f"no frames in {self.path}: expected images ({', '.join(IMAGE_EXTS)})")
            self.count = len(self.files)
            self.fps = 24.0
        else:
            self.files = None
            cap = cv2.VideoCapture(str(self.path))
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                cap.release()
                raise DataError(
                    f"cannot read video {self.path}: OpenCV could not decode a frame — is it a "
                    "video file? Convert it (e.g. ffmpeg -i in.mov out.mp4) or pass a frame folder"
                )
            self.fps = cap.get(cv2.CAP_PROP_FPS) or 24.0
            self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            cap.release()
        self.size = self.first().shape[:2]
        if self.files is not None:
            self._check_sizes()

    def _check_sizes(self) -> None:
        """Header-only size check of every frame, so a mixed-size folder fails before fine-tuning."""
        from PIL import Image

        for f in self.files:
            try:
                with Image.open(f) as im:
                    hw = (im.size[1], im.size[0])
            except OSError as exc:
                raise DataError(f"cannot read frame {f}: {exc} — the file is corrupt") from exc
            if hw != self.size:
                raise DataError(
                    f"frame {f} is {hw[1]}x{hw[0]} but {self.files[0].name} is "
                    f"{self.size[1]}x{self.size[0]} — all frames must have one size; resize them"
                )

    def first(self) -> np.ndarray:
        return next(iter(self))

    def __iter__(self) -> Iterator[np.ndarray]:
        """``(H, W, 3) uint8`` RGB frames in order."""
        if self.files is not None:
            for f in self.files:
                yield read_image(f)
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    def frame(self, index: int) -> np.ndarray:
        """One frame by index (for annotated frames other than the first)."""
        for i, image in enumerate(self):
            if i == index:
                return image
        raise DataError(f"{self.path} has no frame {index} (it has {i + 1} frames)")

    def name(self, index: int) -> str:
        return self.files[index].stem if self.files is not None else f"{index:05d}"


class StreamedFrames(IterableDataset):
    """Normalised frames of a FrameSource for the segmenter, plus the raw frame for overlays."""

    def __init__(self, source: FrameSource, normalization: Normalization, scale: float = 1.0):
        self.source, self.norm, self.scale = source, normalization, scale

    def __iter__(self):
        for i, raw in enumerate(self.source):
            if raw.shape[:2] != self.source.size:
                where = self.source.files[i] if self.source.files else f"frame {i} of {self.source.path}"
                raise DataError(
                    f"{where} is {raw.shape[1]}x{raw.shape[0]} but the first frame is "
                    f"{self.source.size[1]}x{self.source.size[0]} — all frames must have one size"
                )
            image, _ = resize_pair(raw, None, scaled_size(raw.shape[:2], self.scale))
            yield {"image": self.norm(image), "frame": i, "native_hw": torch.tensor(raw.shape[:2]),
                   "raw": torch.from_numpy(np.array(raw))}  # a writable copy (PIL arrays are read-only)
