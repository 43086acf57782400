"""Write-then-rename helpers: an interrupted run never leaves a half-written file under its final name.

A temporary gets the permissions ``open()`` would give the final file (``0666`` less the umask,
so ``0644`` under umask 022): ``mkstemp`` makes it ``0600``, which would leave checkpoints,
records and masks unreadable to colleagues on a shared machine.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from osvos_pl.utils.errors import OSVOSError, OutputError

# ``atomic_path`` temporaries: ".<final name>.<8 random chars>.tmp[<final suffix>]" (mkstemp)
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
#: Below this much free space a failed write is put down to a full disk (torch.save then fails
#: with a RuntimeError such as "unexpected pos 576 vs 534", not with ENOSPC).
_NEARLY_FULL = 1 << 20
#: When this process started writing (this module is imported before any ``atomic_path``): a
#: temporary modified since belongs to a live writer, not to an interrupted run.
_STARTED = time.time()


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the only portable way before 3.14)
    os.umask(mask)
    return mask


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def output_error(path: Path, exc: BaseException) -> OutputError | None:
    """Our error for a failed write of ``path`` (naming it and what to do), or None when the
    failure is not the disk's or the folder's."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code not in _FULL + _READ_ONLY:
        free = _free_bytes(path.parent) if isinstance(exc, Exception) else None
        if free is None or free >= _NEARLY_FULL:
            return None
        code = errno.ENOSPC
    elsewhere = ("or send the outputs elsewhere (hydra.run.dir=DIR for a run, hydra.sweep.dir=DIR "
                 "for a sweep, output=DIR for predict)")
    if code in _FULL:
        why = f"the disk is full ({os.strerror(code)}) — free space on it, "
    else:
        why = f"{path.parent} is not writable ({os.strerror(code)}) — make it writable, "
    error = OutputError(f"cannot write {path}: {why}{elsewhere}; nothing was left half-written")
    error.errno = code
    return error


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    If the write fails, the temporary is removed; a full disk or an unwritable folder raises
    :class:`~osvos_pl.utils.errors.OutputError` (naming ``path`` and what to do), not the writer's error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=".tmp" + path.suffix)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
    except OSError as exc:
        raise (output_error(path, exc) or exc) from exc
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        ours = None if isinstance(exc, OSVOSError) else output_error(path, exc)
        Path(tmp).unlink(missing_ok=True)
        if ours is None:
            raise
        raise ours from exc


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Dump ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False)))


def remove_stale_temporaries(folder: str | os.PathLike, before: float | None = None) -> list[Path]:
    """Delete the ``atomic_path`` temporaries a killed run (SIGKILL, OOM killer, power loss) left
    under ``folder``; return what was removed.

    Only temporaries last modified before ``before`` (default: when this process started) count:
    a newer one belongs to a live writer (this run's overlay video, a DDP rank's checkpoint).
    For the start of a run (rank 0 under DDP). Final names are never touched.
    """
    folder, before = Path(folder), _STARTED if before is None else before
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(".*.tmp*")
             if p.is_file() and _TEMPORARY.match(p.name) and p.stat().st_mtime < before]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
