"""The DAVIS index: which sequences, frames and annotations exist under a DAVIS root.

Understands DAVIS 2016 (single object, grey masks 0/255, splits in
``ImageSets/<res>/<split>.txt`` as frame/annotation path pairs) and DAVIS 2017 (palette PNGs with
object ids 1..K and 255 = void, splits in ``ImageSets/2017/<split>.txt`` as sequence names).
Reading only lists files; decoding happens in the datasets.
"""

from __future__ import annotations

import os
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path

from osvos_pl.utils.errors import DataError

FRAME_EXTS = (".jpg", ".jpeg", ".png")
VOID = 255


@dataclass(frozen=True)
class VideoSequence:
    """One sequence: its frames in order and the annotation of each (None where absent)."""

    name: str
    frames: tuple[Path, ...]
    masks: tuple[Path | None, ...]

    def __len__(self) -> int:
        return len(self.frames)

    def mask(self, i: int) -> Path:
        """The annotation of frame ``i``; a DataError if it has none."""
        path = self.masks[i]
        if path is None:
            raise DataError(
                f"sequence {self.name!r}: frame {self.frames[i].name} has no annotation "
                f"(expected {self.frames[i].with_suffix('.png').name} in the Annotations folder) "
                "— this stage needs a mask for every frame it uses"
            )
        return path


class DAVISIndex:
    """Lists a DAVIS root. ``year`` picks the mask semantics: 2016 binary, 2017 multi-object."""

    def __init__(self, root: str | os.PathLike, resolution: str = "480p", year: int = 2016):
        self.root = Path(root).expanduser()
        self.resolution = str(resolution)
        if int(year) not in (2016, 2017):
            raise DataError(f"data.year must be 2016 or 2017, got {year!r}")
        self.year = int(year)
        if not self.root.is_dir():
            raise DataError(
                f"DAVIS root not found: {self.root} — set data.root to a folder holding "
                "JPEGImages/ and Annotations/ (or download one with "
                "`python -m osvos_pl.download davis2016 --root DIR`), "
                "or leave data.root=null to use the generated default dataset"
            )
        self.image_dir = self.root / "JPEGImages" / self.resolution
        self.mask_dir = self.root / "Annotations" / self.resolution
        if not self.image_dir.is_dir():
            raise DataError(
                f"{self.image_dir} does not exist — a DAVIS root holds JPEGImages/{self.resolution}/"
                f"<sequence>/00000.jpg; check data.root and data.resolution"
            )

    @property
    def multi_object(self) -> bool:
        return self.year == 2017

    def sequence_names(self) -> list[str]:
        """Every sequence folder under JPEGImages/<res>, sorted."""
        return sorted(p.name for p in self.image_dir.iterdir() if p.is_dir())

    def split(self, split: str) -> list[str]:
        """Sequence names of a split, read from the ImageSets file of this layout."""
        return _parse_imageset(self.split_file(split))

    def split_file(self, split: str) -> Path:
        """The ImageSets file that defines ``split``."""
        candidates = [
            self.root / "ImageSets" / self.resolution / f"{split}.txt",
            self.root / "ImageSets" / "2017" / f"{split}.txt",
            self.root / "ImageSets" / f"{split}.txt",
        ]
        for path in candidates:
            if path.is_file():
                return path
        raise DataError(
            f"no split file for split {split!r} under {self.root / 'ImageSets'} "
            f"(looked for {', '.join(str(c.relative_to(self.root)) for c in candidates)}) — "
            "add one, or list sequences explicitly with data.sequences=[name,...]"
        )

    def resolve(self, sequences: Seq[str] | None, split: str | None) -> list[str]:
        """Explicit ``sequences`` win over ``split``; with neither, every sequence on disk."""
        if sequences:
            names = [str(s) for s in sequences]
        elif split:
            names = self.split(split)
        else:
            names = self.sequence_names()
        on_disk = set(self.sequence_names())
        missing = [n for n in names if n not in on_disk]
        if missing:
            if sequences:
                source, fix = "data.sequences", "fix data.sequences"
            else:
                source = f"split {split!r}, listed in {self.split_file(split)}"
                fix = ("download the missing sequences, or remove them from the split file, or "
                       "pick sequences with data.sequences=[name,...]")
            raise DataError(
                f"unknown sequence(s) {missing} ({source}): no folder {self.image_dir}/<name> — "
                f"{fix}; available: {sorted(on_disk)[:20]}{' …' if len(on_disk) > 20 else ''}"
            )
        return names

    def sequence(self, name: str) -> VideoSequence:
        """Frames and annotations of one sequence (annotations matched by file stem)."""
        folder = self.image_dir / name
        if not folder.is_dir():
            raise DataError(f"sequence {name!r} not found: {folder} does not exist")
        frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTS)
        if not frames:
            raise DataError(f"sequence {name!r} has no frames in {folder}")
        ann_folder = self.mask_dir / name
        anns = {p.stem: p for p in ann_folder.glob("*.png")} if ann_folder.is_dir() else {}
        if not anns:
            raise DataError(
                f"sequence {name!r} has no annotations: {ann_folder} is missing or empty — "
                "every sequence needs at least its first-frame mask"
            )
        masks = tuple(anns.get(f.stem) for f in frames)
        return VideoSequence(name=name, frames=tuple(frames), masks=masks)


def _parse_imageset(path: Path) -> list[str]:
    """Sequence names from a DAVIS 2016 pair list or a 2017 name list, in first-seen order."""
    names: dict[str, None] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        first = line.split()[0]
        if "/" in first:  # "/JPEGImages/480p/<seq>/<n>.jpg /Annotations/..."
            parts = [p for p in first.split("/") if p]
            if len(parts) < 2:
                raise DataError(f"{path}: cannot parse line {line!r}")
            names[parts[-2]] = None
        else:
            names[first] = None
    return list(names)
