"""Reading and writing DAVIS frames and masks, with errors that name the file and the fix."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from osvos_pl.utils.atomic import atomic_path
from osvos_pl.utils.errors import DataError


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


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image from its header, without decoding it."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, SyntaxError) as exc:
        raise DataError(f"cannot read {path}: {exc} — the file is corrupt; re-extract it") from exc


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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _grey8_stream(data: bytes) -> bytes | None:
    """An 8-bit grey or palette PNG cut down to IHDR (now 8-bit grey), IDAT and IEND; else None.

    Why: OpenCV decodes DAVIS masks about 1.4x faster than Pillow, but expands palettes to colour.
    Declared grey, with every other chunk dropped, the same pixel data decodes to the raw samples
    (grey values, or palette indices) and nothing else can touch them (no tRNS, gAMA, sBIT).
    Anything else — other bit depths or colour types, a bad CRC, a chunk cut short, no IEND —
    gives None, and the caller reads the file with Pillow as before.
    """
    if data[:16] != PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR" or data[24:26] not in (b"\x08\x00", b"\x08\x03"):
        return None
    parts, pos = [PNG_SIGNATURE], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        kind = data[pos + 4 : pos + 8]
        if end > len(data) or zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return None
        if kind == b"IHDR":
            header = b"IHDR" + data[pos + 8 : pos + 16] + b"\x08\x00" + data[pos + 18 : pos + 21]
            parts.append(data[pos : pos + 4] + header + zlib.crc32(header).to_bytes(4, "big"))
        elif kind in (b"IDAT", b"IEND"):
            parts.append(data[pos:end])
            if kind == b"IEND":
                return b"".join(parts)
        pos = end
    return None


def _decode_grey8(data: bytes) -> np.ndarray | None:
    """``(H, W) uint8`` samples of an 8-bit grey/palette PNG through OpenCV; None if not one."""
    stream = _grey8_stream(data)
    if stream is None:
        return None
    labels = cv2.imdecode(np.frombuffer(stream, np.uint8), cv2.IMREAD_UNCHANGED)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if labels is None or labels.dtype != np.uint8 or labels.shape != (height, width):
        return None
    return labels


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read an annotation as ``(H, W) uint8`` labels.

    Palette ("P") PNGs give their indices (DAVIS 2017: 1..K objects, 255 void); grayscale PNGs
    give their grey values (DAVIS 2016: 0/255). Interpreting the labels is the caller's job.
    8-bit grey and palette PNGs (every DAVIS mask) are decoded by OpenCV (``_decode_grey8``),
    everything else by Pillow; both give the same labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path} — every frame used here needs an annotation")
    try:
        labels = _decode_grey8(path.read_bytes())
    except OSError:
        labels = None
    if labels is not None:
        return labels
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
