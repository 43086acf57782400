"""Loading ImageNet VGG16 weights into the OSVOS trunk, and the input each set expects.

Two families of VGG16 weights exist and they expect different input (docs/method.md#backbone-weights,
#input-normalisation and #learning-rate-and-input-scale): torchvision's (RGB / 255, ImageNet mean and std) and the
paper's Caffe VGG (BGR, 0–255, mean-subtracted, no std). ``load_backbone`` tells the caller
which input the loaded weights need, by the name of a preset in ``osvos_pl.utils.normalization``.
The authors' own Caffe VGG file (``caffe-vgg``, a MATLAB ``.mat``) is converted by
``osvos_pl.model.authors`` (read) and ``osvos_pl.model.convert`` (converted).
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from osvos_pl.model.authors import is_caffe_vgg, resolve_backbone
from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.model.releases import WeightsUnavailableError
from osvos_pl.model.vgg import CONV_INDEX
from osvos_pl.utils.errors import ConfigError

IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

ACCEPTED_FORMATS = (
    "a state dict of the 13 VGG16 convolutions with torchvision keys 'features.0.weight' … "
    "'features.28.bias' (a full torchvision vgg16 checkpoint is fine: 'classifier.*' is "
    "ignored), the same keys without the 'features.' prefix ('0.weight' … '28.bias'), or "
    "Caffe layer names 'conv1_1.weight' … 'conv5_3.bias' ('fc6'–'fc8' ignored)"
)

_TORCHVISION_KEY = re.compile(r"(?:features\.)?(\d+)\.(weight|bias)")
_CAFFE_KEY = re.compile(r"(conv\d_\d)\.(weight|bias)")
_IGNORED_KEY = re.compile(r"(classifier|fc[678])\..*")


def load_backbone(
    net: OSVOSNet, source: str | Path | None, cache_dir: str | Path | None = None
) -> str:
    """Load VGG16 weights into ``net.trunk``; return the ``osvos_pl.utils.normalization`` preset they need.

    ``source``: ``"imagenet"`` downloads torchvision's VGG16 through ``torch.hub`` (cached
    under ``$TORCH_HOME``); ``"caffe-vgg"`` downloads the authors' Caffe VGG16 (``vgg_mat.zip``,
    cached under ``<cache_dir>/weights``, ``cache_dir`` being ``paths.cache_dir``; None refuses
    the download) and a path to it (``vgg_mat.zip`` or ``vgg_caffe.mat``) converts that file —
    both need ``"caffe"`` input; any other path loads a state dict from disk (formats:
    ``ACCEPTED_FORMATS``; Caffe-named keys mean Caffe weights, hence ``"caffe"`` input, any
    other format ``"imagenet"``); ``None`` keeps the random initialisation (and returns
    ``"imagenet"``).
    Every key and shape is checked before anything is copied.
    """
    if source is None:
        return "imagenet"
    if str(source) == "imagenet":
        return _load_state(net, _download_imagenet(), IMAGENET_URL)
    if is_caffe_vgg(source):
        state, normalization = resolve_backbone(source, cache_dir)
        net.trunk.load_state_dict(state, strict=True)
        return normalization
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"VGG16 weights file not found: {path}. Pass model.weights=imagenet (download), "
            "model.weights=caffe-vgg (the authors' Caffe VGG16, download), "
            "model.weights=/path/to/vgg16.pth, or model.weights=null (random backbone)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unpickling failure means an unreadable file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"cannot read VGG16 weights {path} with torch.load(weights_only=True) ({reason}). "
            f"Expected {ACCEPTED_FORMATS}."
        ) from exc
    return _load_state(net, state, str(path))


def _download_imagenet() -> Mapping[str, torch.Tensor]:
    """torchvision's VGG16 through ``torch.hub`` (its cache, else a download).

    ``torch.hub`` prints ``Downloading: "https://…"`` before it knows whether the download can
    work, so an offline run showed a download starting just before the message that it failed:
    where the file is not cached, the server is asked first (:func:`_reachable`).
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name
    try:
        if not cached.is_file():
            _reachable(IMAGENET_URL)
        return torch.hub.load_state_dict_from_url(IMAGENET_URL, progress=True, map_location="cpu")
    except (OSError, RuntimeError) as exc:  # URLError/HTTPError are OSErrors; hash mismatch
        raise WeightsUnavailableError(
            f"could not download the ImageNet VGG16 weights from {IMAGENET_URL} ({exc}): no "
            "network? Pass model.weights=/path/to/vgg16.pth (a torchvision-format state dict, "
            "e.g. ../shared/weights/vgg16_imagenet_features_torchvision.pth)."
        ) from exc


def _reachable(url: str, timeout: float = 20.0) -> None:
    """An OSError unless the server of ``url`` answers a HEAD request."""
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
        pass


def _load_state(net: OSVOSNet, state: Any, origin: str) -> str:
    """Check ``state`` against the trunk, copy it in, and return its normalisation preset."""
    if not isinstance(state, Mapping):
        raise ConfigError(
            f"{origin} holds a {type(state).__name__}, not a state dict. "
            f"Expected {ACCEPTED_FORMATS}."
        )
    features, names, normalization = _to_feature_keys(state, origin)
    target = net.trunk.features.state_dict()
    missing = [key for key in target if key not in features]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"{origin} lacks the VGG16 parameter features.{missing[0]}{more}. "
            f"Expected {ACCEPTED_FORMATS}."
        )
    for key, value in features.items():
        if not isinstance(value, torch.Tensor) or value.shape != target[key].shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ConfigError(
                f"{origin}: {names[key]!r} has shape {got}, expected "
                f"{tuple(target[key].shape)} — is this VGG16? Expected {ACCEPTED_FORMATS}."
            )
    net.trunk.features.load_state_dict(features, strict=True)
    return normalization


def _to_feature_keys(
    state: Mapping[str, Any], origin: str
) -> tuple[dict[str, Any], dict[str, str], str]:
    """Rename keys to ``features``-relative ``"N.weight"``; detect Caffe naming.

    Returns the renamed dict, each new key's original name (for messages), and the
    normalisation preset the naming implies.
    """
    features: dict[str, Any] = {}
    names: dict[str, str] = {}
    valid = {f"{i}.{p}" for i in CONV_INDEX.values() for p in ("weight", "bias")}
    formats = set()
    for key, value in state.items():
        if _IGNORED_KEY.fullmatch(key):
            continue
        if tv := _TORCHVISION_KEY.fullmatch(key):
            new, fmt = f"{tv[1]}.{tv[2]}", "imagenet"
        elif (cf := _CAFFE_KEY.fullmatch(key)) and cf[1] in CONV_INDEX:
            new, fmt = f"{CONV_INDEX[cf[1]]}.{cf[2]}", "caffe"
        else:
            new, fmt = None, None
        if new not in valid:
            raise ConfigError(
                f"{origin}: unrecognised key {key!r}. Expected {ACCEPTED_FORMATS}."
            )
        features[new], names[new] = value, key
        formats.add(fmt)
    if len(formats) > 1:
        raise ConfigError(
            f"{origin} mixes Caffe ('conv1_1.weight') and torchvision ('features.0.weight') "
            f"key names; use one. Expected {ACCEPTED_FORMATS}."
        )
    return features, names, "caffe" if "caffe" in formats else "imagenet"
