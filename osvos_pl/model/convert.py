"""The OSVOS authors' released weights, downloaded once, checked and converted on load.

Two files published with the authors' PyTorch port (kmaninis/OSVOS-PyTorch, README.md and
``models/download_parent_model.sh`` / ``models/download_vgg_weights.sh``), both for Caffe
input (BGR, 0–255, minus the mean: the ``"caffe"`` normalisation preset):

- ``osvos-pytorch``: ``pth_parent_model.zip`` → ``parent_epoch-239.pth``, the parent network,
  ``torch.save(net.state_dict())`` of their ``OSVOS`` module (``networks/vgg_osvos.py``):
  ``stages.{0..4}`` (VGG16 conv1_1 … conv5_3 as five ``Sequential``s, a ceil-mode max-pool
  first in stages 1–4), ``side_prep.{0..3}`` (3x3 → 16), ``score_dsn.{0..3}`` (1x1 16 → 1),
  ``upscale.{0..3}`` / ``upscale_.{0..3}`` (fixed bilinear ``ConvTranspose2d``, 16 → 16 and
  1 → 1, kernel 2s, stride s = 2, 4, 8, 16) and ``fuse`` (1x1 64 → 1). Their upsampled maps
  are centre-cropped: this network reproduces their outputs with ``model.upsample=center``.
  Checkpoints saved by their ``train_online.py`` have the same layout and convert the same way.
- ``caffe-vgg``: ``vgg_mat.zip`` → ``vgg_caffe.mat``, the Caffe ImageNet VGG16 the paper
  starts from, as their ``OSVOS(pretrained=2)`` reads it: MATLAB cell arrays ``weights``
  (1 x 13, conv1_1 … conv5_3, each in matcaffe's ``(W, H, C_in, C_out)`` order: reversing all
  axes gives PyTorch's ``(C_out, C_in, H, W)``) and ``biases`` (1 x 13, each ``(C_out, 1)``).

The authors publish no checksums. A download is cached under ``<cache_dir>/weights/``, its
SHA-256 recorded beside it and checked on every later load; the content is checked by
structure (zip CRCs, every key and shape, the fixed upsampling kernels) before anything is
converted.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from osvos_pl.model.osvos import PREP_CHANNELS, STRIDES, OSVOSNet, bilinear_kernel
from osvos_pl.model.vgg import CONV_INDEX
from osvos_pl.utils.errors import ConfigError, DataError, OSVOSError
from osvos_pl.utils.fetch import fetch, sha256_of

log = logging.getLogger(__name__)

#: The input both files expect (``osvos_pl.utils.normalization`` preset).
NORMALIZATION = "caffe"
#: The upsampling the authors' parent was trained with (``model.upsample``).
PARENT_UPSAMPLE = "center"
#: Same default as ``conf/paths/default.yaml`` (``paths.cache_dir``).
DEFAULT_CACHE_DIR = "~/.cache/osvos_pl"


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

#: The authors' five stages (``lay_list`` in networks/vgg_osvos.py); "M" is a max-pool.
_AUTHORS_STAGES: tuple[tuple[int | str, ...], ...] = (
    (64, 64), ("M", 128, 128), ("M", 256, 256, 256), ("M", 512, 512, 512), ("M", 512, 512, 512),
)


def default_cache_dir() -> Path:
    """``$OSVOS_CACHE`` or ``~/.cache/osvos_pl``, as ``paths.cache_dir`` resolves it."""
    return Path(os.environ.get("OSVOS_CACHE", DEFAULT_CACHE_DIR)).expanduser()


# --- the authors' layouts -------------------------------------------------------------------

def _authors_trunk() -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """``(their 'stages.i.j', our 'features.N', weight shape)`` per VGG conv, in order."""
    ours = sorted(CONV_INDEX.values())
    convs, in_ch = [], 3
    for i, stage in enumerate(_AUTHORS_STAGES):
        j = 0
        for item in stage:
            if item == "M":
                j += 1
                continue
            out_ch = int(item)
            convs.append((f"stages.{i}.{j}", f"features.{ours[len(convs)]}", (out_ch, in_ch, 3, 3)))
            in_ch, j = out_ch, j + 2  # conv, ReLU
    return convs


def parent_layout() -> dict[str, tuple[str | None, tuple[int, ...]]]:
    """Every key of the authors' parent state dict → ``(our OSVOSNet key, shape)``.

    Our key is ``None`` for the fixed bilinear upsampling kernels, which this network computes
    instead of storing (they are checked, then dropped).
    """
    layout: dict[str, tuple[str | None, tuple[int, ...]]] = {}
    for theirs, ours, shape in _authors_trunk():
        layout[f"{theirs}.weight"] = (f"trunk.{ours}.weight", shape)
        layout[f"{theirs}.bias"] = (f"trunk.{ours}.bias", shape[:1])
    side_channels = [int(stage[-1]) for stage in _AUTHORS_STAGES[1:]]
    for k, (channels, stride) in enumerate(zip(side_channels, STRIDES)):
        layout[f"side_prep.{k}.weight"] = (f"prep.{k}.weight", (PREP_CHANNELS, channels, 3, 3))
        layout[f"side_prep.{k}.bias"] = (f"prep.{k}.bias", (PREP_CHANNELS,))
        layout[f"score_dsn.{k}.weight"] = (f"score_dsn.{k}.weight", (1, PREP_CHANNELS, 1, 1))
        layout[f"score_dsn.{k}.bias"] = (f"score_dsn.{k}.bias", (1,))
        kernel = (2 * stride, 2 * stride)
        layout[f"upscale.{k}.weight"] = (None, (PREP_CHANNELS, PREP_CHANNELS, *kernel))
        layout[f"upscale_.{k}.weight"] = (None, (1, 1, *kernel))
    layout["fuse.weight"] = ("fuse.weight", (1, PREP_CHANNELS * len(STRIDES), 1, 1))
    layout["fuse.bias"] = ("fuse.bias", (1,))
    return layout


_PARENT_FORMAT = (
    "the state dict of the authors' OSVOS module (kmaninis/OSVOS-PyTorch networks/vgg_osvos.py: "
    "keys stages.0.0.weight … fuse.bias), as in parent_epoch-239.pth from pth_parent_model.zip"
)
_VGG_FORMAT = (
    "the authors' Caffe VGG16 vgg_caffe.mat (from vgg_mat.zip): MATLAB cells 'weights' "
    "(1 x 13, conv1_1 … conv5_3, each W x H x C_in x C_out) and 'biases' (1 x 13, each C_out x 1)"
)


# --- conversion -----------------------------------------------------------------------------

def convert_parent_state(state: Any, origin: str) -> dict[str, torch.Tensor]:
    """The authors' parent state dict → an ``OSVOSNet`` state dict (load with ``strict=True``).

    Every key and shape is checked, and so are the upsampling kernels: this network's are fixed
    bilinear, so a file whose kernels differ cannot be converted exactly and is refused.
    """
    if not isinstance(state, Mapping):
        raise ConfigError(f"{origin} holds a {type(state).__name__}, not a state dict; expected "
                          f"{_PARENT_FORMAT}")
    layout = parent_layout()
    missing = [key for key in layout if key not in state]
    unexpected = [key for key in state if key not in layout]
    if unexpected:
        mine = any(str(k).startswith(("trunk.", "net.", "state_dict")) for k in state)
        hint = (" It looks like an osvos-pl checkpoint: pass it as parent_ckpt=PATH without "
                "conversion." if mine else "")
        raise ConfigError(f"{origin}: unexpected key {unexpected[0]!r} ({len(unexpected)} in "
                          f"all); expected {_PARENT_FORMAT}.{hint}")
    if missing:
        raise ConfigError(f"{origin} lacks {missing[0]!r} ({len(missing)} keys missing); expected "
                          f"{_PARENT_FORMAT}. Download pth_parent_model.zip again ({PARENT.url}).")
    converted = {}
    for key, (ours, shape) in layout.items():
        value = _checked_tensor(state[key], key, shape, origin, _PARENT_FORMAT)
        if ours is None:
            _check_bilinear(value, key, origin)
        else:
            converted[ours] = value
    return converted


def _checked_tensor(value: Any, key: str, shape: tuple[int, ...], origin: str,
                    expected: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        got = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        raise ConfigError(f"{origin}: {key} is {got}, not a float tensor; expected {expected}")
    if tuple(value.shape) != shape:
        raise ConfigError(f"{origin}: {key} has shape {tuple(value.shape)}, expected {shape}; "
                          f"expected {expected}")
    return value.detach().to(torch.float32).contiguous().clone()


def _check_bilinear(weight: torch.Tensor, key: str, origin: str) -> None:
    """Their ``interp_surgery`` kernel: bilinear on the channel diagonal, zero elsewhere."""
    channels, size = weight.shape[0], weight.shape[-1]
    expected = torch.eye(channels)[:, :, None, None] * bilinear_kernel(size)
    deviation = (weight - expected).abs().max().item()
    if deviation > 1e-5:
        raise ConfigError(
            f"{origin}: {key} is not the fixed bilinear upsampling kernel (max deviation "
            f"{deviation:.3g}). This network's upsampling is fixed (the authors never train it), "
            "so the file cannot be converted exactly; is it the released parent?"
        )


def convert_caffe_vgg(mat: Any, origin: str) -> dict[str, torch.Tensor]:
    """The authors' ``vgg_caffe.mat`` (as read by ``scipy.io.loadmat``) → ``VGG16Trunk`` keys.

    Keys ``features.N.weight`` / ``features.N.bias`` of ``net.trunk``. Like their loader, each
    weight's axes are reversed (matcaffe ``(W, H, C_in, C_out)`` → ``(C_out, C_in, H, W)``),
    each bias is the first column, and entries after the 13th (if any) are ignored.
    """
    if not isinstance(mat, Mapping) or "weights" not in mat or "biases" not in mat:
        got = sorted(k for k in mat if not k.startswith("__")) if isinstance(mat, Mapping) else mat
        raise ConfigError(f"{origin} has no 'weights' and 'biases' cells (it holds {got}); "
                          f"expected {_VGG_FORMAT}")
    weights, biases = (_cells(mat[name], name, origin) for name in ("weights", "biases"))
    trunk = _authors_trunk()
    if min(len(weights), len(biases)) < len(trunk):
        raise ConfigError(f"{origin} holds {len(weights)} weights and {len(biases)} biases, "
                          f"expected {len(trunk)} of each (conv1_1 … conv5_3); expected "
                          f"{_VGG_FORMAT}")
    names = list(CONV_INDEX)
    converted = {}
    for i, (_, ours, shape) in enumerate(trunk):
        where = f"weights{{{i + 1}}} ({names[i]})"
        weight = _as_tensor(weights[i], where, origin)
        weight = weight.permute(*reversed(range(weight.ndim)))
        converted[f"{ours}.weight"] = _checked_tensor(weight, where, shape, origin, _VGG_FORMAT)
        where = f"biases{{{i + 1}}} ({names[i]})"
        bias = _as_tensor(biases[i], where, origin)
        if bias.ndim != 2 or bias.shape[1] != 1:
            raise ConfigError(f"{origin}: {where} has shape {tuple(bias.shape)}, expected "
                              f"({shape[0]}, 1); expected {_VGG_FORMAT}")
        converted[f"{ours}.bias"] = _checked_tensor(bias[:, 0], where, shape[:1], origin,
                                                    _VGG_FORMAT)
    return converted


def _cells(value: Any, name: str, origin: str) -> list[Any]:
    if not isinstance(value, np.ndarray) or value.dtype != object:
        raise ConfigError(f"{origin}: {name!r} is not a MATLAB cell array; expected {_VGG_FORMAT}")
    return list(value.reshape(-1))


def _as_tensor(value: Any, where: str, origin: str) -> torch.Tensor:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise ConfigError(f"{origin}: {where} is {got}, not a float array; expected {_VGG_FORMAT}")
    return torch.from_numpy(np.ascontiguousarray(value))


# --- finding, downloading and reading the files ---------------------------------------------

def resolve_parent(source: str | Path = PARENT.name,
                   cache_dir: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The authors' parent as an ``OSVOSNet`` state dict, and the normalisation preset it needs.

    ``source``: ``"osvos-pytorch"`` (downloaded once into ``<cache_dir>/weights/``), or a path
    to ``pth_parent_model.zip`` or to a ``.pth`` in their layout (``parent_epoch-239.pth``, or a
    model fine-tuned by their ``train_online.py``). Build the network with ``upsample="center"``
    to reproduce their outputs.
    """
    path = _locate(PARENT, source, cache_dir)
    if path.suffix.lower() == ".zip":
        data, origin = _zip_member(path, PARENT.member, ".pth"), f"{path} ({PARENT.member})"
    else:
        data, origin = path, str(path)
    return convert_parent_state(_torch_load(data, origin), origin), NORMALIZATION


def fetch_parent(cache_dir: str | Path | None = None) -> Path:
    """The authors' parent archive, downloaded once into ``<cache_dir>/weights/`` (checked
    against the SHA-256 recorded then); a WeightsUnavailableError offline. predict's preflight
    calls it so that a failed download leaves no output folder behind."""
    return _locate(PARENT, PARENT.name, cache_dir)


def resolve_backbone(source: str | Path = CAFFE_VGG.name,
                     cache_dir: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The authors' Caffe VGG16 as a ``net.trunk`` state dict, and the normalisation it needs.

    ``source``: ``"caffe-vgg"`` (downloaded once into ``<cache_dir>/weights/``), or a path to
    ``vgg_mat.zip`` or ``vgg_caffe.mat``.
    """
    import scipy.io  # only this loader needs scipy (a dependency of scikit-image too)

    path = _locate(CAFFE_VGG, source, cache_dir)
    if path.suffix.lower() == ".zip":
        data, origin = _zip_member(path, CAFFE_VGG.member, ".mat"), f"{path} ({CAFFE_VGG.member})"
    else:
        data, origin = path, str(path)
    try:
        mat = scipy.io.loadmat(data)
    except (ValueError, OSError, NotImplementedError) as exc:  # v7.3 (HDF5) files: NotImplemented
        raise ConfigError(f"cannot read {origin} as a MATLAB file ({exc}); expected "
                          f"{_VGG_FORMAT}") from exc
    return convert_caffe_vgg(mat, origin), NORMALIZATION


def load_parent(net: OSVOSNet, source: str | Path = PARENT.name,
                cache_dir: str | Path | None = None) -> str:
    """Convert the authors' parent into ``net`` (strictly); return its normalisation preset."""
    state, normalization = resolve_parent(source, cache_dir)
    net.load_state_dict(state, strict=True)
    modes = {up.mode for up in net.upsample}
    if modes != {PARENT_UPSAMPLE}:
        log.warning(
            "the authors' parent was trained with centre-cropped upsampling; with "
            "model.upsample=%s its upsampled maps shift by a few pixels. Set "
            "model.upsample=center to reproduce its outputs exactly.", ",".join(sorted(modes)),
        )
    return normalization


def is_authors_parent(source: str | Path | None) -> bool:
    """Whether ``parent_ckpt`` names the authors' parent: ``"osvos-pytorch"``, a ``.zip``, or a
    ``.pth``/``.pt`` file in their layout (read once to look at its keys)."""
    if source is None:
        return False
    if str(source) == PARENT.name:
        return True
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return True
    if suffix not in (".pth", ".pt") or not path.is_file():
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — unreadable here: the regular loader will say why
        return False
    return isinstance(state, Mapping) and "stages.0.0.weight" in state and "fuse.weight" in state


def is_caffe_vgg(source: str | Path | None) -> bool:
    """Whether ``model.weights`` names the authors' Caffe VGG: ``"caffe-vgg"``, a .mat or .zip."""
    if source is None:
        return False
    return str(source) == CAFFE_VGG.name or Path(source).suffix.lower() in (".mat", ".zip")


def _locate(release: Release, source: str | Path, cache_dir: str | Path | None) -> Path:
    """A local file for ``source``: the path given, or the cached (or just downloaded) release."""
    if str(source) != release.name:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"{release.setting}: file not found: {path}. Pass "
                              f"{release.setting}={release.name} (download) or the path to "
                              f"{release.archive} or {release.member}.")
        return path
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / "weights"
    archive, member = folder / release.archive, folder / release.member
    if not archive.is_file() and member.is_file():  # unpacked by hand, as their scripts do
        return member
    if archive.is_file():
        _verify_recorded(archive, release)
        return archive
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
    return archive


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


def _zip_member(archive: Path, name: str, suffix: str) -> io.BytesIO:
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


def _torch_load(data: Path | io.BytesIO, origin: str) -> Any:
    try:
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unpickling failure means an unreadable file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read {origin} with torch.load(weights_only=True) ({reason}); "
                          f"expected {_PARENT_FORMAT}") from exc
