"""Mask semantics (DAVIS 2016 binary vs 2017 multi-object) and up-front sequence validation."""

from __future__ import annotations

import numpy as np

from osvos_pl.data.davis import VOID, VideoSequence
from osvos_pl.data.io import image_size, read_image, read_mask
from osvos_pl.utils.errors import DataError


def object_ids(first_mask: np.ndarray, year: int) -> list[int]:
    """Objects to segment, from the first-frame annotation: [1] for 2016, ids 1..K for 2017."""
    if year == 2016:
        return [1] if first_mask.any() else []
    ids = np.unique(first_mask)
    return [int(i) for i in ids if i not in (0, VOID)]


def binary_target(labels: np.ndarray, year: int, object_id: int | None = None) -> np.ndarray:
    """``(H, W) uint8`` 0/1 target: any object (None) or one object id; 2017 void is background."""
    if year == 2016:
        return (labels > 0).astype(np.uint8)
    if object_id is None:
        return ((labels > 0) & (labels != VOID)).astype(np.uint8)
    return (labels == object_id).astype(np.uint8)


def eval_labels(labels: np.ndarray, year: int) -> np.ndarray:
    """Labels as scored: 2016 any non-zero → 1; 2017 void (255) → background."""
    if year == 2016:
        return (labels > 0).astype(np.uint8)
    out = labels.copy()
    out[out == VOID] = 0
    return out


def validate_sequence(
    seq: VideoSequence,
    year: int,
    require_masks: str = "all",
    decode: bool = True,
    first_mask_nonempty: bool = False,
    first_mask: np.ndarray | None = None,
) -> tuple[int, int]:
    """Check a sequence before any training; return its native ``(H, W)``.

    ``require_masks``: "all" (parent/contour training, evaluation) or "first" (online: frame 0's
    mask is required; later masks, where present, are checked too, because they are scored).
    ``decode=True`` decodes every file, which catches corrupt or truncated images.
    Checks: frame sizes agree, masks match their frame's size, 2016 masks are 0/255,
    2017 masks use no ids beyond frame 0's objects, the first mask is non-empty if asked.
    ``first_mask``: frame 0's mask already decoded by the caller (not read again).
    """
    hw = image_size(seq.frames[0])
    wanted = _masks_to_check(seq, require_masks)
    _check_frame_sizes(seq, hw, decode)
    first_ids: list[int] | None = None
    for i in wanted:
        path = seq.mask(i)
        if i == 0 and first_mask is not None:
            labels = first_mask
        else:
            labels = read_mask(path) if decode or i == 0 else None
        _check_mask_size(path, labels, seq.frames[i], hw)
        if labels is None:
            continue
        if year == 2016:
            _check_binary(path, labels)
        if i == 0:
            first_ids = _first_objects(path, labels, year, first_mask_nonempty)
        elif year == 2017 and first_ids is not None:
            _check_known_objects(path, labels, first_ids, seq.mask(0).name)
    return hw


def _masks_to_check(seq: VideoSequence, require_masks: str) -> list[int]:
    """Frame indices whose masks are checked: every frame, or frame 0 and those that have one."""
    if require_masks == "first":
        return [0] + [i for i in range(1, len(seq)) if seq.masks[i] is not None]
    if require_masks == "all":
        return list(range(len(seq)))
    raise ValueError(f"require_masks must be 'all' or 'first', got {require_masks!r}")


def _check_frame_sizes(seq: VideoSequence, hw: tuple[int, int], decode: bool) -> None:
    """Every frame has frame 0's size ``hw``; ``decode`` reads each one whole, not its header."""
    for frame in seq.frames:
        fhw = read_image(frame).shape[:2] if decode else image_size(frame)
        if fhw != hw:
            raise DataError(
                f"sequence {seq.name!r}: frame {frame} is {fhw[1]}x{fhw[0]} but frame "
                f"{seq.frames[0].name} is {hw[1]}x{hw[0]} — all frames of a sequence must have "
                "one size; resize them consistently"
            )


def _check_mask_size(path, labels: np.ndarray | None, frame, hw: tuple[int, int]) -> None:
    """The mask has its frame's size (from ``labels`` if decoded, else the file header)."""
    mhw = labels.shape[:2] if labels is not None else image_size(path)
    if mhw != hw:
        raise DataError(
            f"mask {path} is {mhw[1]}x{mhw[0]} but its frame {frame} is "
            f"{hw[1]}x{hw[0]} — masks must have their frame's size"
        )


def _check_binary(path, labels: np.ndarray) -> None:
    """A DAVIS 2016 mask holds only 0 and 255."""
    bad = np.setdiff1d(np.unique(labels), [0, 255])
    if bad.size:
        raise DataError(
            f"mask {path} has values {bad[:8].tolist()} besides 0/255 — DAVIS 2016 masks "
            "are binary: binarise them (e.g. >127 → 255), or set data.year=2017 if these "
            "are palette object ids"
        )


def _first_objects(path, labels: np.ndarray, year: int, nonempty: bool) -> list[int]:
    """Frame 0's object ids; with ``nonempty``, an empty first mask is an error (nothing to learn)."""
    ids = object_ids(labels, year)
    if nonempty and not ids:
        raise DataError(
            f"first-frame mask {path} is empty — one-shot fine-tuning needs the object "
            "annotated in frame 0; draw it, or start the sequence at a frame where it is "
            "visible"
        )
    return ids


def _check_known_objects(path, labels: np.ndarray, first_ids: list[int], first_name: str) -> None:
    """A DAVIS 2017 mask uses only frame 0's object ids (besides background and void)."""
    extra = [int(v) for v in np.unique(labels) if v not in (0, VOID) and v not in first_ids]
    if extra:
        raise DataError(
            f"mask {path} has object ids {extra} that frame 0 "
            f"({first_name}) does not have (objects {first_ids}) — DAVIS 2017 "
            "semi-supervised evaluation takes its objects from the first frame: annotate "
            "them in frame 0's mask, or set these ids to 0 (background) in this one"
        )
