"""Precomputed contour maps in DAVIS layout, read as contour probabilities for snapping.

Any contour detector's output can stand in for the contour branch: ``ROOT/<seq>/NNNNN.png``,
one grayscale PNG per frame, named like the frame (e.g. the EOR-VOS maps shipped in the DAVIS
sample's ``Contours/480p``). 8-bit maps are read as ``value / 255``, 16-bit maps as
``value / 65535``. A frame may lack its map (EOR-VOS never wrote the last frame's): ``get``
then returns None and the caller leaves that frame unsnapped. A folder without any map for a
sequence, or a map whose size is not the frame's, is an error that ``check`` raises before any
fine-tuning starts, so that a long run does not fail or silently skip snapping halfway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from osvos_pl.utils.errors import DataError

_SCALE = {"L": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0}
"""Full scale of each grayscale PNG mode PIL may give: 8-bit ``L``, 16-bit ``I;16*`` (or ``I``)."""


class ContourMaps:
    """The contour maps under ``root``: ``root/<sequence>/<frame_stem>.png``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(
                f"contour maps folder not found: {self.root} — point contour_maps at a folder "
                "holding <sequence>/00000.png maps (DAVIS layout), e.g. DAVIS/Contours/480p"
            )

    def path(self, sequence_name: str, frame_stem: str) -> Path:
        """Where the map of one frame is expected (it may not exist)."""
        return self.root / sequence_name / f"{frame_stem}.png"

    def check(
        self, sequence_name: str, frame_stems: Iterable[str], native_hw: tuple[int, int]
    ) -> list[str]:
        """Check a sequence's maps before any work starts; return the stems that have no map.

        Args:
            sequence_name: the sequence folder under ``root``.
            frame_stems: the frames that will be segmented (``"00000"``, ...).
            native_hw: ``(H, W)`` of the sequence's frames; every map must have this size.

        Raises DataError when no frame of the sequence has a map (a wrong folder or a missing
        sequence, which would silently turn snapping off) or when a map's size differs from
        the frame's or it is not a grayscale PNG (reads only the PNG headers). Missing maps of single frames are returned,
        not raised: those frames stay unsnapped.
        """
        stems = list(frame_stems)
        present = [s for s in stems if self.path(sequence_name, s).is_file()]
        if stems and not present:
            raise DataError(
                f"no contour maps for sequence {sequence_name!r} in {self.root / sequence_name} "
                f"(expected e.g. {self.path(sequence_name, stems[0]).name}) — compute maps for "
                "this sequence, fix contour_maps, or leave the sequence out"
            )
        height, width = native_hw
        for stem in present:
            path = self.path(sequence_name, stem)
            with _open(path, decode=False) as im:
                _full_scale(path, im)
                if (im.height, im.width) != (height, width):
                    raise DataError(
                        f"contour map {path} is {im.width}x{im.height} but the frames of "
                        f"{sequence_name!r} are {width}x{height} — write the maps at the frames' "
                        "native resolution (e.g. 480p maps for 480p frames)"
                    )
        have = set(present)
        return [s for s in stems if s not in have]

    def get(self, sequence_name: str, frame_stem: str) -> np.ndarray | None:
        """``(H, W) float32`` contour probability in [0, 1], or None where the frame has no map."""
        path = self.path(sequence_name, frame_stem)
        if not path.is_file():
            return None
        with _open(path) as im:
            scale = _full_scale(path, im)
            values = np.asarray(im)
        if values.min() < 0 or values.max() > scale:
            raise DataError(
                f"contour map {path} has values outside 0..{scale:.0f}; "
                "save it as an 8- or 16-bit grayscale PNG"
            )
        return (values.astype(np.float64) / scale).astype(np.float32)


def _open(path: Path, decode: bool = True) -> Image.Image:
    """Open a PNG (``decode=False``: read its header only), or raise DataError naming the file."""
    try:
        im = Image.open(path)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read contour map {path}: {exc} — is it a PNG?") from exc
    try:
        if decode:
            im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        im.close()
        raise DataError(
            f"cannot decode contour map {path}: {exc} — the PNG is corrupt or truncated; "
            "write it again"
        ) from exc
    return im


def _full_scale(path: Path, im: Image.Image) -> float:
    """The value of a certain contour in this PNG's mode, or DataError for a non-grayscale map."""
    scale = _SCALE.get(im.mode)
    if scale is None:
        raise DataError(
            f"contour map {path} is a {im.mode!r} PNG — save contour maps as 8- or 16-bit "
            "grayscale PNGs (0 = no contour, 255 or 65535 = certain contour)"
        )
    return scale
