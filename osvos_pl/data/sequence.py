"""One sequence's frames in order, as the online stage and validation stream them.

Each frame is decoded once: a worker decodes it and hands on everything the stage needs from
it (the network's input, the frame itself for overlays and the contour branch, the annotation
as scored); frames already decoded for fine-tuning (the annotated ones) are handed in instead
of being read again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from osvos_pl.data.davis import DAVISIndex, VideoSequence
from osvos_pl.data.io import read_image, read_mask
from osvos_pl.data.masks import eval_labels
from osvos_pl.data.transforms import resize_pair, scaled_size
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.normalization import Normalization

#: frame index → its decoded ``(image, labels)``: frames read before the stream (annotations)
Decoded = Mapping[int, tuple[np.ndarray, np.ndarray]]


def check_pair(image_hw: tuple, labels: np.ndarray, seq: VideoSequence, i: int) -> None:
    """A mask of its frame's size, or a ``DataError`` naming both files."""
    if tuple(image_hw[:2]) != labels.shape[:2]:
        raise DataError(
            f"mask {seq.masks[i]} is {labels.shape[1]}x{labels.shape[0]} but frame "
            f"{seq.frames[i]} is {image_hw[1]}x{image_hw[0]} — masks must have their "
            "frame's size"
        )


def read_annotated(seq: VideoSequence, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i`` and its annotation, decoded and checked against each other."""
    image, labels = read_image(seq.frames[i]), read_mask(seq.mask(i))
    check_pair(image.shape, labels, seq, i)
    return image, labels


class SequenceFrames(Dataset):
    """Every frame of one sequence in order, resized by ``scale``, with its index and count.

    ``labels=True``: each item also carries the annotation at native size as scored
    (``(H, W) uint8``; 2016 → 0/1, 2017 → ids with void as 0; zeros where a frame has none) and
    ``has_label``. ``raw=True``: the decoded frame itself, ``(H, W, 3) uint8`` (overlays, the
    contour branch at its own scale). ``decoded``: frames already read, not read again.
    """

    def __init__(
        self, index: DAVISIndex, sequence: str, normalization: Normalization, scale: float = 1.0,
        labels: bool = False, seq_id: int = 0, raw: bool = False, decoded: Decoded | None = None,
    ):
        self.seq = index.sequence(sequence)
        self.year, self.norm, self.scale = index.year, normalization, scale
        self.labels, self.seq_id, self.raw = labels, seq_id, raw
        self.decoded = dict(decoded or {})

    def __len__(self) -> int:
        return len(self.seq)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        if i in self.decoded:
            return self.decoded[i]
        image = read_image(self.seq.frames[i])
        if not self.labels or self.seq.masks[i] is None:
            return image, None
        labels = read_mask(self.seq.mask(i))
        check_pair(image.shape, labels, self.seq, i)
        return image, labels

    def __getitem__(self, i: int) -> dict:
        image, labels = self._read(i)
        native = image.shape[:2]
        item = {
            "image": self.norm(resize_pair(image, None, scaled_size(native, self.scale))[0]),
            "frame": i,
            "num_frames": len(self.seq),
            "seq_id": self.seq_id,
            "native_hw": torch.tensor(native),
        }
        if self.raw:
            item["raw"] = torch.from_numpy(np.array(image))  # a writable copy
        if self.labels:
            has = labels is not None
            labels = labels if has else np.zeros(native, np.uint8)
            item["labels"] = torch.from_numpy(eval_labels(labels, self.year))
            item["has_label"] = has
        return item
