"""Reading and writing DAVIS frames and masks, with errors that name the file and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from osvos_pl.errors import DataError
from osvos_pl.utils.atomic import atomic_path


def davis_palette() -> list[int]:
    """The DAVIS 2017 colour palette (PASCAL VOC bit-interleaved colours), flat 768 ints."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an RGB frame as ``(H, W, 3) uint8``; a missing or corrupt file raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"frame not found: {path} — check data.root and that the sequence is complete")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot decode image {path}: {exc} — the file is corrupt or truncated; "
            "re-extract it from the dataset archive"
        ) from exc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read an annotation as ``(H, W) uint8`` labels.

    Palette ("P") PNGs give their indices (DAVIS 2017: 1..K objects, 255 void); grayscale PNGs
    give their grey values (DAVIS 2016: 0/255). Interpreting the labels is the caller's job.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path} — every frame used here needs an annotation")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L"):
                return np.asarray(im).astype(np.uint8, copy=False)
            if im.mode in ("1", "I", "I;16"):
                return (np.asarray(im) > 0).astype(np.uint8) * 255
            return np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot decode mask {path}: {exc} — the PNG is corrupt or truncated; re-extract it"
        ) from exc


def write_mask(path: str | os.PathLike, labels: np.ndarray, palette: bool) -> Path:
    """Write ``(H, W) uint8`` labels as a PNG atomically: indexed with the DAVIS palette, or grey."""
    im = Image.fromarray(np.ascontiguousarray(labels.astype(np.uint8)), mode="L")
    if palette:
        im = im.convert("P")
        im.putpalette(davis_palette())
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return Path(path)
