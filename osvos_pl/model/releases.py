"""The weights files the OSVOS authors publish, and a checked local copy of each.

Two files published with the authors' PyTorch port (kmaninis/OSVOS-PyTorch, README.md and
``models/download_parent_model.sh`` / ``models/download_vgg_weights.sh``); their layouts and
how they become this network's state dicts are in ``osvos_pl.model.convert``:

- ``osvos-pytorch``: ``pth_parent_model.zip`` → ``parent_epoch-239.pth``, the parent network.
- ``caffe-vgg``: ``vgg_mat.zip`` → ``vgg_caffe.mat``, the Caffe ImageNet VGG16 the paper
  starts from.

The authors publish no checksums. A download is cached under ``<cache_dir>/weights/``
(``cache_dir`` is ``paths.cache_dir``, handed down by the caller), its SHA-256 recorded beside
it and checked on every later load; the content is checked by structure (zip CRCs, every key
and shape) before anything is converted.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

from osvos_pl.utils.errors import ConfigError, DataError, OSVOSError
from osvos_pl.utils.fetch import fetch, sha256_of

log = logging.getLogger(__name__)


class WeightsUnavailableError(OSVOSError):
    """Weights could not be downloaded (no network, server error)."""


@dataclass(frozen=True)
class Release:
    """A weights file the authors publish: where it is, what it is called, how to pass it."""

    name: str  # the value that selects it (parent_ckpt=... / model.weights=...)
    url: str
    archive: str  # the zip's file name
    member: str  # the file inside the zip
    setting: str  # the config key that takes it, for messages
    sha256: str | None = None  # the authors publish none


_DOWNLOADS = "https://data.vision.ee.ethz.ch/kmaninis/share/OSVOS/Downloads/models"
PARENT = Release("osvos-pytorch", f"{_DOWNLOADS}/pth_parent_model.zip", "pth_parent_model.zip",
                 "parent_epoch-239.pth", "parent_ckpt")
CAFFE_VGG = Release("caffe-vgg", f"{_DOWNLOADS}/vgg_mat.zip", "vgg_mat.zip", "vgg_caffe.mat",
                    "model.weights")


def fetch_parent(cache_dir: str | Path) -> Path:
    """The authors' parent archive, downloaded once into ``<cache_dir>/weights/`` (checked
    against the SHA-256 recorded then); a WeightsUnavailableError offline. predict's preflight
    calls it so that a failed download leaves no output folder behind."""
    return locate(PARENT, PARENT.name, cache_dir)


def locate(release: Release, source: str | Path, cache_dir: str | Path | None) -> Path:
    """A local file for ``source``: the path given, or the cached (or just downloaded) release.

    ``cache_dir`` is ``paths.cache_dir``; ``None`` means there is no cache, so only a path
    works and the release's name is refused with what to pass.
    """
    if str(source) != release.name:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"{release.setting}: file not found: {path}. Pass "
                              f"{release.setting}={release.name} (download) or the path to "
                              f"{release.archive} or {release.member}.")
        return path
    if cache_dir is None:
        raise ConfigError(f"{release.setting}={release.name} is downloaded into "
                          "<paths.cache_dir>/weights, but no cache directory was handed to the "
                          "loader (cache_dir=None): pass cache_dir=cfg.paths.cache_dir, or "
                          f"{release.setting}=/path/to/{release.archive}.")
    folder = Path(cache_dir).expanduser() / "weights"
    archive, member = folder / release.archive, folder / release.member
    if not archive.is_file() and member.is_file():  # unpacked by hand, as their scripts do
        return member
    if archive.is_file():
        _verify_recorded(archive, release)
        return archive
    _download(release, archive)
    return archive


def _download(release: Release, archive: Path) -> None:
    """Download ``release`` to ``archive`` and record its SHA-256 beside it (or check the
    published one, setting a mismatch aside as ``*.corrupt``)."""
    folder = archive.parent
    folder.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (55 MB, once) from %s into %s", release.archive, release.url, folder)
    try:
        fetch(release.url, archive)
    except (DataError, OSError) as exc:  # refused, unreachable, HTTP error, cut off midway
        reason = exc.__cause__ or exc
        raise WeightsUnavailableError(
            f"could not download {release.url} ({reason}): no network? Download it by hand and "
            f"put {release.archive} (or the {release.member} inside it) in {folder}, or pass "
            f"its path as {release.setting}=/path/to/{release.archive}."
        ) from exc
    digest = sha256_of(archive)
    if release.sha256 and digest != release.sha256:
        bad = archive.with_name(archive.name + ".corrupt")
        archive.replace(bad)
        raise ConfigError(f"{release.url} downloaded with sha256 {digest}, expected "
                          f"{release.sha256}; moved it to {bad}. Run again to download it again.")
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")


def _verify_recorded(archive: Path, release: Release) -> None:
    """The cached archive still has the SHA-256 recorded (or published) for it."""
    record = archive.with_name(archive.name + ".sha256")
    expected = release.sha256 or (record.read_text().split()[0] if record.is_file() else None)
    if expected is None:  # placed by hand: record it now, its structure is checked on load
        record.write_text(f"{sha256_of(archive)}  {archive.name}\n")
        return
    digest = sha256_of(archive)
    if digest != expected:
        raise ConfigError(f"{archive} has sha256 {digest}, but {expected} was recorded when it "
                          f"was downloaded: the file changed or is damaged. Delete it (and "
                          f"{record.name}) to download it again.")


def zip_member(archive: Path, name: str, suffix: str) -> io.BytesIO:
    """The bytes of ``name`` (or the only ``*suffix`` file) in ``archive``; CRC-checked."""
    try:
        with zipfile.ZipFile(archive) as zf:
            files = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
            chosen = [n for n in files if Path(n).name == name]
            chosen = chosen or [n for n in files if n.lower().endswith(suffix)]
            if len(chosen) != 1:
                raise ConfigError(f"{archive} holds {files[:5]}, not one {name} (or one "
                                  f"{suffix} file); is it the right archive?")
            return io.BytesIO(zf.read(chosen[0]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise ConfigError(f"{archive} is not a readable zip ({exc}): damaged or incomplete. "
                          "Delete it to download it again.") from exc
