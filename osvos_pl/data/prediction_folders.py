"""A folder of ``<seq>/NNNNN.png`` predictions and its GT, read and checked for scoring.

GT is a DAVIS root (``Annotations/<resolution>/<seq>/``) or a folder of ``<seq>/`` mask
folders; a prediction is looked up by its GT frame's name. Reading PNGs is most of an
evaluation, so ``read_sequences`` decodes the next sequences in a thread pool while the caller
scores the current one.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from osvos_pl.data.io import read_mask
from osvos_pl.utils.errors import DataError

READ_THREADS = min(8, os.cpu_count() or 1)  # PNG decoding releases the GIL

Encode = Callable[[np.ndarray], np.ndarray]
"""What a decoding thread makes of an ``(H, W) uint8`` label map (e.g. packs it to bits)."""


def gt_folder(gt: str | os.PathLike, resolution: str = "480p") -> Path:
    """The folder holding ``<seq>/`` mask folders: ``gt/Annotations/<resolution>`` or ``gt``."""
    gt = Path(gt)
    if not gt.is_dir():
        raise DataError(f"--gt {gt} is not a folder — pass a DAVIS root or a folder of <seq>/ mask folders")
    annotations = gt / "Annotations"
    if annotations.is_dir():
        folder = annotations / resolution
        if not folder.is_dir():
            found = sorted(p.name for p in annotations.iterdir() if p.is_dir())
            raise DataError(f"{folder} does not exist (found resolutions {found}) — pick one with --resolution")
        return folder
    return gt


def is_davis2017_root(gt: str | os.PathLike) -> bool:
    """Whether ``gt`` is a DAVIS 2017 root: its palette annotations come with ``ImageSets/2017``
    (a DAVIS 2016 root has ``ImageSets/480p``), so its masks hold object ids, not one object."""
    return (Path(gt) / "ImageSets" / "2017").is_dir()


def _mask_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.png")))


def select_sequences(gt_dir: Path, pred_dir: Path, sequences: Sequence[str] | None) -> list[str]:
    """Sequences to score: the ones asked for (each must exist on both sides), else every GT
    sequence that has a prediction folder (a note on stderr lists GT sequences left out)."""
    if not pred_dir.is_dir():
        raise DataError(f"--pred {pred_dir} is not a folder of <seq>/NNNNN.png predictions")
    available = _mask_folders(gt_dir)
    if sequences:
        for name in sequences:
            if name not in available:
                raise DataError(f"sequence {name!r}: no GT masks in {gt_dir / name} — check the name and --gt")
            if not (pred_dir / name).is_dir():
                raise DataError(f"sequence {name!r}: no prediction folder {pred_dir / name}")
        return list(sequences)
    chosen = [name for name in available if (pred_dir / name).is_dir()]
    if not chosen:
        raise DataError(
            f"none of the {len(available)} GT sequences in {gt_dir} has a prediction folder in "
            f"{pred_dir} — predictions must be <pred>/<seq>/NNNNN.png"
        )
    skipped = [name for name in available if name not in chosen]
    if skipped:
        shown = ", ".join(skipped[:10]) + (", ..." if len(skipped) > 10 else "")
        print(
            f"note: {len(skipped)} GT sequence(s) have no prediction folder and are not scored: "
            f"{shown} (name them with --sequences to require them)",
            file=sys.stderr,
        )
    return chosen


def _labels(mask: np.ndarray) -> np.ndarray:
    return mask


def _decode(path: Path, encode: Encode, optional: bool = False) -> tuple[tuple[int, int], np.ndarray] | None:
    """``(size, encode(labels))`` of one mask PNG; None if ``optional`` and there is no such file.

    Encoding here, in the decoding thread, lets a sequence be held in the form its scoring
    needs (e.g. packed bits, an eighth of the memory) without a second pass.
    """
    if optional and not path.is_file():
        return None
    labels = read_mask(path)
    return labels.shape, encode(labels)


class PendingSequence:
    """One sequence's GT and prediction frames, submitted to a thread pool in frame order."""

    def __init__(self, gt_dir: Path, pred_dir: Path, name: str, pool: ThreadPoolExecutor, encode: Encode):
        self.name = name
        self.encode = encode
        self.gt_paths = sorted((gt_dir / name).glob("*.png"))
        self.pred_paths = [pred_dir / name / p.name for p in self.gt_paths]
        self.gt = [pool.submit(_decode, p, encode) for p in self.gt_paths]
        self.pred = [pool.submit(_decode, p, encode, True) for p in self.pred_paths]

    def result(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``(gt, pred, (H, W))``: all N frames stacked (as encoded), checked in order.

        A missing unscored prediction (frame 0 or N-1) reads as empty; a missing scored one, or
        any frame whose size differs from GT frame 0, is a DataError naming the files.
        """
        gt_frames = [future.result() for future in self.gt]
        size = gt_frames[0][0]
        for path, (shape, _) in zip(self.gt_paths, gt_frames):
            if shape != size:
                raise DataError(
                    f"GT {path} is {shape[1]}x{shape[0]} but {self.gt_paths[0]} is "
                    f"{size[1]}x{size[0]} — all masks of a sequence must have one size"
                )
        empty = np.zeros(size, np.uint8)
        last = len(self.gt_paths) - 1
        pred_frames = []
        for i, (path, gt_path, future) in enumerate(zip(self.pred_paths, self.gt_paths, self.pred)):
            decoded = future.result()
            if decoded is None:
                if 0 < i < last:
                    raise DataError(
                        f"prediction missing: {path} (GT frame {gt_path}) — every annotated frame "
                        "but the first and the last needs a prediction PNG with the GT frame's name"
                    )
                decoded = size, self.encode(empty)
            shape, frame = decoded
            if shape != size:
                raise DataError(
                    f"prediction {path} is {shape[1]}x{shape[0]} but its GT {gt_path} is "
                    f"{size[1]}x{size[0]} — predictions must have the annotation's size (no "
                    "resizing is done)"
                )
            pred_frames.append(frame)
        return np.stack([frame for _, frame in gt_frames]), np.stack(pred_frames), size


def read_sequences(
    gt_dir: Path, pred_dir: Path, names: Sequence[str], ahead: int, encode: Encode = _labels
) -> Iterator[PendingSequence]:
    """The named sequences in order, each submitted for decoding ``ahead`` sequences early.

    The caller's ``result()`` waits for a sequence's frames while the pool decodes the next
    ones (both release the GIL), so every core stays busy. Leaving the loop cancels the rest.
    """
    pool = ThreadPoolExecutor(READ_THREADS)
    pending: deque[PendingSequence] = deque()
    try:
        for i in range(len(names)):
            while len(pending) <= ahead and i + len(pending) < len(names):
                pending.append(PendingSequence(gt_dir, pred_dir, names[i + len(pending)], pool, encode))
            yield pending.popleft()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
