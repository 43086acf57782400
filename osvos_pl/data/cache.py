"""Decode once: the training frames kept decoded (``data.decode_cache``), in memory or on disk.

Parent training draws a few thousand frames over and over; decoding each JPEG (and resizing it
to the training scale) at every draw is most of a loader worker's time at 240p. A
:class:`DecodedFrames` holds every item's ``(image, target)`` pair exactly as the dataset would
decode it — ``(H, W, 3) uint8`` image, ``(H, W)`` target (uint8 0/1 masks, float32 contour maps) —
so a cached draw gives the very bytes an uncached one gives.

- ``memory``: decoded at set-up in the main process; forked loader workers share the pages.
- ``mmap``: written once to ``<cache_dir>/decoded/<key>/`` (two flat files and an index) and
  memory-mapped by every process that reads it (workers, DDP ranks, later runs); the page cache
  holds one copy. The key hashes the data (root, resolution, year, target), the items (sequence,
  frame and annotation files with their sizes and modification times) and the training scale:
  any change to the frames or the settings makes a new folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from osvos_pl.utils.errors import ConfigError

MODES = ("none", "memory", "mmap")
FORMAT = 1  # bump when the files' layout changes

Pair = tuple[np.ndarray, np.ndarray]


def cache_key(fields: dict, files: Sequence[Path | None]) -> str:
    """A hex digest of ``fields`` (JSON-able settings) and each file's path, size and mtime."""
    digest = hashlib.sha256(json.dumps({"format": FORMAT, **fields}, sort_keys=True).encode())
    for path in files:
        if path is None:
            digest.update(b"-")
            continue
        stat = os.stat(path)
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _decode_all(decode: Callable[[int], Pair], n: int, threads: int):
    """``decode(k)`` for k in 0..n-1 in order, on ``threads`` threads (JPEG decoding and OpenCV's
    resize release the GIL)."""
    if threads <= 1:
        yield from (decode(k) for k in range(n))
        return
    with ThreadPoolExecutor(threads) as pool:
        yield from pool.map(decode, range(n), chunksize=8)


class DecodedFrames:
    """Items ``0..n-1`` of a dataset as decoded ``(image, target)`` pairs (see the module doc).

    Build with :meth:`build`. In ``mmap`` mode only the folder travels when the object is pickled
    (a spawned worker maps the files itself rather than receiving a copy of them).
    """

    def __init__(self, pairs: list[Pair] | None = None, folder: Path | None = None):
        self._pairs, self.folder = pairs, folder
        self._mapped: tuple | None = None

    @classmethod
    def build(cls, decode: Callable[[int], Pair], n: int, mode: str, key: str,
              cache_dir: str | os.PathLike, threads: int = 1) -> DecodedFrames | None:
        """Every pair decoded once (``mode``: ``none`` gives None, ``memory``, or ``mmap`` under
        ``cache_dir/decoded/<key>``, reused when it is already there)."""
        if mode not in MODES:
            raise ConfigError(f"data.decode_cache={mode!r} is unknown; choose {', '.join(MODES)}")
        if mode == "none":
            return None
        if mode == "memory":
            pairs = list(_decode_all(decode, n, threads))
            for array in (a for pair in pairs for a in pair):
                array.flags.writeable = False  # shared by every draw: nothing may change it
            return cls(pairs=pairs)
        folder = Path(cache_dir).expanduser() / "decoded" / key
        if not (folder / "index.json").is_file():
            _write(folder, _decode_all(decode, n, threads))
        return cls(folder=folder)

    def __len__(self) -> int:
        return len(self._pairs) if self._pairs is not None else len(self._files()[2])

    def __getitem__(self, k: int) -> Pair:
        """Item ``k``'s ``(image, target)``; read-only views in ``mmap`` mode."""
        if self._pairs is not None:
            return self._pairs[k]
        images, targets, index = self._files()
        (i0, ishape), (t0, tshape) = index[k]
        image = images[i0:i0 + int(np.prod(ishape))].reshape(ishape)
        return image, targets[t0:t0 + int(np.prod(tshape))].reshape(tshape)

    def _files(self) -> tuple[np.ndarray, np.ndarray, list]:
        if self._mapped is None:
            meta = json.loads((self.folder / "index.json").read_text())
            images = np.memmap(self.folder / "images.bin", np.uint8, mode="r")
            targets = np.memmap(self.folder / "targets.bin", np.dtype(meta["target_dtype"]),
                                mode="r")
            self._mapped = (images, targets, meta["items"])
        return self._mapped

    def __getstate__(self) -> dict:
        return {"_pairs": self._pairs, "folder": self.folder, "_mapped": None}


def _write(folder: Path, pairs) -> None:
    """Write the pairs as ``images.bin`` + ``targets.bin`` + ``index.json`` (offsets and shapes)
    into a temporary folder renamed into place: an interrupted build leaves no half cache, and
    of two processes building at once the first to finish wins."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        items, at, target_dtype = [], [0, 0], None
        with open(tmp / "images.bin", "wb") as fi, open(tmp / "targets.bin", "wb") as ft:
            for image, target in pairs:
                image, target = np.ascontiguousarray(image, np.uint8), np.ascontiguousarray(target)
                target_dtype = target_dtype or target.dtype.str
                if target.dtype.str != target_dtype:
                    raise ValueError(f"targets of mixed dtypes ({target_dtype}, {target.dtype.str})")
                items.append(((at[0], image.shape), (at[1], target.shape)))
                fi.write(image.tobytes())
                ft.write(target.tobytes())
                at = [at[0] + image.size, at[1] + target.size]
        (tmp / "index.json").write_text(json.dumps(
            {"format": FORMAT, "target_dtype": target_dtype or "|u1", "items": items}))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first: keep its cache
            if not (folder / "index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
