"""A user's clip as a data source: a video file or a frame folder, plus annotated masks.

``ClipDataModule`` answers what the online stage asks of the DAVIS data module (sequence
names, objects, first-frame datasets, a frame stream), so that ``predict`` is the online stage
on another data source (``data=clip``). A clip has no ground truth beyond the masks it is
given, so nothing is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import DataLoader

from osvos_pl.data.datasets import FirstFrames
from osvos_pl.data.frames import FrameSource, StreamedFrames
from osvos_pl.data.io import read_mask
from osvos_pl.data.transforms import resize_pair, scaled_size
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.normalization import Normalization, get_normalization


def load_mask(path: str | Path, size: tuple[int, int], resize: bool) -> np.ndarray:
    """A user's mask as ``(H, W) uint8`` object ids (0/255 binary → 1), checked against the frames."""
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


def parse_annotations(mask: str, masks: Sequence[str] = ()) -> list[tuple[int, str]]:
    """``mask`` (frame 0) plus ``"INDEX:PATH"`` strings → ``[(index, path), ...]``."""
    out = [(0, str(mask))]
    for spec in masks:
        index, sep, path = str(spec).partition(":")
        if not sep or not index.strip().isdigit():
            raise DataError(f"masks entry {spec!r} is not INDEX:PATH (e.g. \"40:frame40.png\")")
        out.append((int(index), path))
    return out


class ClipDataModule:
    """One clip (``input``: video or frame folder) and its annotated frame(s).

    ``conf/data/clip.yaml`` extends ``davis.yaml`` so that every ``data.*`` override works for
    both; the DAVIS-only keys (root, splits, year, ...) arrive in ``_davis_keys`` and are unused.
    """

    def __init__(
        self,
        input: str,
        mask: str,
        masks: Sequence[str] = (),
        resize_mask: bool = False,
        scale: float = 1.0,
        eval_batch_size: int = 4,
        augment: str = "paper",
        normalization: str = "imagenet",
        name: str | None = None,
        **_davis_keys,
    ):
        self.input, self.scale, self.augment = input, float(scale), augment
        self.annotations = parse_annotations(mask, masks)
        self.resize_mask, self.eval_batch_size = bool(resize_mask), int(eval_batch_size)
        self.normalization_name = normalization
        self.name = name or Path(str(input)).expanduser().stem or "clip"

    @cached_property
    def source(self) -> FrameSource:
        return FrameSource(self.input)

    @cached_property
    def labels(self) -> dict[int, np.ndarray]:
        return {i: load_mask(p, self.source.size, self.resize_mask) for i, p in self.annotations}

    @cached_property
    def annotated_images(self) -> dict[int, np.ndarray]:
        """The annotated frames, decoded once for every object's fine-tuning."""
        return {i: self.source.frame(i) if i else self.source.first() for i in self.labels}

    @property
    def normalization(self) -> Normalization:
        return get_normalization(self.normalization_name)

    @property
    def data_root(self) -> Path:
        return self.source.path

    def eval_names(self) -> list[str]:
        return [self.name]

    def check(self, names: Sequence[str], **_) -> None:
        """Frames readable and of one size, masks readable, non-empty and of the frames' size
        (decoding the annotations checks all of it)."""
        self.object_ids(self.name)

    def object_ids(self, name: str) -> list[int]:
        return sorted({int(v) for m in self.labels.values() for v in np.unique(m) if v != 0})

    def is_multi_object(self, name: str) -> bool:
        return len(self.object_ids(name)) > 1

    def first_frames(self, name: str, length: int, object_id: int | None = None,
                     seed: int = 0, augment: str | None = None, views: int = 0) -> FirstFrames:
        frames = self.annotated_images
        oid = 1 if object_id is None else object_id
        pairs = [resize_pair(frames[i], (m == oid).astype(np.uint8), scaled_size(m.shape, self.scale))
                 for i, m in self.labels.items()]
        return FirstFrames(pairs, self.normalization, length, augment or self.augment, seed, views)

    def sequence_dataloader(self, name: str) -> DataLoader:
        return DataLoader(StreamedFrames(self.source, self.normalization, self.scale),
                          batch_size=self.eval_batch_size)

    def frame_names(self, name: str) -> list[str]:
        count = self.source.count or sum(1 for _ in self.source)
        return [self.source.name(i) for i in range(count)]

    def frame_size(self, name: str) -> tuple[int, int]:
        return self.source.size
