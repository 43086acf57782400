"""Building the OSVOS network from ``model.*``: backbone weights, init, memory format."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.model.releases import WeightsUnavailableError
from osvos_pl.model.weights import IMAGENET_URL, load_backbone
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)

CHANNELS_LAST_MODES = (False, True, "inference")


def build_network(
    weights: str | None = "imagenet",
    offline_fallback: str = "random",
    upsample: str = "caffe",
    init: str = "caffe",
    channels_last: bool | str = False,
    cache_dir: str | Path | None = None,
) -> OSVOSNet:
    """An OSVOSNet with its backbone weights; ``net.normalization`` names the input they expect.

    ``cache_dir`` (``paths.cache_dir``) is where ``weights=caffe-vgg`` is downloaded; None
    refuses that download (every other ``weights`` value ignores it).

    ``channels_last``: ``True`` stores the network NHWC (training and inference); ``False`` and
    ``"inference"`` keep it NCHW here — with ``"inference"`` only the inference pass goes NHWC
    (the one-shot segmenter), which is where NHWC pays on a CPU without native bf16 (its NHWC
    backward convolutions are slower than NCHW ones).
    """
    nhwc = channels_last_mode(channels_last) is True
    net = OSVOSNet(upsample=upsample, init=init)
    try:
        net.normalization = load_backbone(net, weights, cache_dir)
        net.weights_source = describe_weights(weights)
        net.random_backbone = weights is None  # recorded in checkpoints (``trained_on``)
    except WeightsUnavailableError as exc:
        if offline_fallback != "random":
            raise
        _warn_random_backbone(str(weights), exc)
        net.normalization = "imagenet"
        net.weights_source = f"a RANDOM VGG16 backbone (model.weights={weights} unavailable offline)"
        net.random_backbone = True
    if nhwc:
        net = net.to(memory_format=torch.channels_last)
    return net


def describe_weights(weights: str | None) -> str:
    """Where a network built with ``model.weights=weights`` got its backbone, for the run log."""
    if weights is None:
        return "a RANDOM VGG16 backbone (model.weights=null)"
    if str(weights) == "imagenet":
        return "ImageNet VGG16 (torchvision, via torch.hub)"
    if str(weights) == "caffe-vgg":
        return "the authors' Caffe VGG16 (caffe-vgg)"
    return f"VGG16 weights from {weights}"


_warned_random: set[str] = set()


def _warn_random_backbone(weights: str, exc: Exception) -> None:
    """Say once per process, plainly, what a random backbone means and how to avoid it."""
    if weights in _warned_random:
        return
    _warned_random.add(weights)
    if weights == "imagenet":
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name
        how = (f"download {IMAGENET_URL} (528 MB) where there is network and pass "
               f"model.weights=/path/to/{cached.name}, or put it at {cached}, where "
               "model.weights=imagenet finds it")
    else:
        how = str(exc)
    log.warning(
        "%s weights could not be downloaded, so training starts from a RANDOM backbone. That is "
        "enough for the generated quick-start data (the parent reaches val J ~0.7 there), not "
        "for real video: expect J/F far below the paper's. To use them: %s. "
        "(model.offline_fallback=error makes this an error.)",
        "ImageNet VGG16" if weights == "imagenet" else weights, how)


def channels_last_mode(value: bool | str | None) -> bool | str:
    """``model.channels_last`` as ``False``, ``True`` or ``"inference"`` (strings accepted)."""
    if isinstance(value, str):
        low = value.strip().lower()
        value = {"true": True, "false": False, "none": False, "null": False}.get(low, low)
    if not isinstance(value, str):
        value = bool(value)
    if value not in CHANNELS_LAST_MODES:
        raise ConfigError(
            f"model.channels_last={value!r} is unknown; choose false (NCHW), true (NHWC for "
            "training and inference) or inference (NHWC for inference only)"
        )
    return value
