"""The clip a page segments: an upload (a video, or a zip of frames) or a generated sequence,
opened as predict opens its ``input=``, so a clip the page takes is one predict takes."""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from osvos_pl.data.frames import IMAGE_EXTS, FrameSource
from osvos_pl.utils.errors import DataError

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv")


@dataclass(frozen=True)
class Clip:
    """A clip as predict takes it (``input``: a video file or a frame folder) and its frame 0."""

    input: Path
    name: str
    first: np.ndarray  # (H, W, 3) uint8 RGB
    frames: int
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        return self.first.shape[:2]


def open_clip(path: str | Path, name: str | None = None) -> Clip:
    """A video file or frame folder, checked as predict checks its ``input=``."""
    source = FrameSource(path)
    count = source.count or sum(1 for _ in source)
    return Clip(source.path, name or source.path.stem, source.first(), count, source.fps)


def open_upload(path: str | Path, session_dir: Path) -> Clip:
    """An uploaded video, or a zip of frames (unpacked flat into ``session_dir``), as a Clip;
    anything else is a DataError naming what is accepted."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTS:
        return open_clip(path)
    if suffix != ".zip":
        raise DataError(f"{path.name} is not a video ({', '.join(VIDEO_EXTS)}) or a .zip of "
                        f"frames ({', '.join(IMAGE_EXTS)})")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and Path(m.filename).suffix.lower() in IMAGE_EXTS
                       and not Path(m.filename).name.startswith(".")]
            if not members:
                raise DataError(f"{path.name} holds no frames ({', '.join(IMAGE_EXTS)})")
            frames = session_dir / "frames" / path.stem
            shutil.rmtree(frames, ignore_errors=True)
            frames.mkdir(parents=True)
            for m in members:  # flat, by base name: nothing lands outside the folder
                (frames / Path(m.filename).name).write_bytes(archive.read(m))
    except zipfile.BadZipFile:
        raise DataError(f"{path.name} is not a readable zip file") from None
    return open_clip(frames, path.stem)


def generated_sequences(root: Path) -> list[str]:
    """The bundled generated sequences (``osvos_pl.data.generated``) under its root."""
    return sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir())
