"""The authors' weights by name or path: located, read and converted in one call.

``parent_ckpt=osvos-pytorch`` and ``model.weights=caffe-vgg`` name the releases
(``osvos_pl.model.releases``, downloaded once into ``<paths.cache_dir>/weights/``); a path to
an archive or the file inside it is read as it is. Either way the content is converted by
``osvos_pl.model.convert`` and needs Caffe input.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import osvos_pl.model.releases as releases
from osvos_pl.model.convert import (
    PARENT_FORMAT,
    VGG_FORMAT,
    convert_caffe_vgg,
    convert_parent_state,
)
from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: The input both files expect (``osvos_pl.utils.normalization`` preset).
NORMALIZATION = "caffe"
#: The upsampling the authors' parent was trained with (``model.upsample``).
PARENT_UPSAMPLE = "center"


def resolve_parent(source: str | Path = releases.PARENT.name,
                   cache_dir: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The authors' parent as an ``OSVOSNet`` state dict, and the normalisation preset it needs.

    ``source``: ``"osvos-pytorch"`` (downloaded once into ``<cache_dir>/weights/``; refused
    when ``cache_dir`` is None), or a path to ``pth_parent_model.zip`` or to a ``.pth`` in their
    layout (``parent_epoch-239.pth``, or a model fine-tuned by their ``train_online.py``). Build
    the network with ``upsample="center"`` to reproduce their outputs.
    """
    release = releases.PARENT
    path = releases.locate(release, source, cache_dir)
    if path.suffix.lower() == ".zip":
        origin = f"{path} ({release.member})"
        data = releases.zip_member(path, release.member, ".pth")
    else:
        data, origin = path, str(path)
    return convert_parent_state(_torch_load(data, origin), origin), NORMALIZATION


def resolve_backbone(source: str | Path = releases.CAFFE_VGG.name,
                     cache_dir: str | Path | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The authors' Caffe VGG16 as a ``net.trunk`` state dict, and the normalisation it needs.

    ``source``: ``"caffe-vgg"`` (downloaded once into ``<cache_dir>/weights/``; refused when
    ``cache_dir`` is None), or a path to ``vgg_mat.zip`` or ``vgg_caffe.mat``.
    """
    import scipy.io  # only this loader needs scipy (a dependency of scikit-image too)

    release = releases.CAFFE_VGG
    path = releases.locate(release, source, cache_dir)
    if path.suffix.lower() == ".zip":
        origin = f"{path} ({release.member})"
        data = releases.zip_member(path, release.member, ".mat")
    else:
        data, origin = path, str(path)
    try:
        mat = scipy.io.loadmat(data)
    except (ValueError, OSError, NotImplementedError) as exc:  # v7.3 (HDF5) files: NotImplemented
        raise ConfigError(f"cannot read {origin} as a MATLAB file ({exc}); expected "
                          f"{VGG_FORMAT}") from exc
    return convert_caffe_vgg(mat, origin), NORMALIZATION


def load_authors_parent(net: OSVOSNet, source: str | Path = releases.PARENT.name,
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
    if str(source) == releases.PARENT.name:
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
    return str(source) == releases.CAFFE_VGG.name or Path(source).suffix.lower() in (".mat", ".zip")


def _torch_load(data: Path | io.BytesIO, origin: str) -> Any:
    try:
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unpickling failure means an unreadable file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read {origin} with torch.load(weights_only=True) ({reason}); "
                          f"expected {PARENT_FORMAT}") from exc
