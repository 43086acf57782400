"""Building the OSVOS network from ``model.*``: backbone weights, init, memory format."""

from __future__ import annotations

import logging

import torch

from osvos_pl.errors import ConfigError
from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.model.weights import WeightsUnavailableError, load_backbone

log = logging.getLogger(__name__)

CHANNELS_LAST_MODES = (False, True, "inference")


def build_network(
    weights: str | None = "imagenet",
    offline_fallback: str = "random",
    upsample: str = "caffe",
    init: str = "caffe",
    channels_last: bool | str = False,
) -> OSVOSNet:
    """An OSVOSNet with its backbone weights; ``net.normalization`` names the input they expect.

    ``channels_last``: ``True`` stores the network NHWC (training and inference); ``False`` and
    ``"inference"`` keep it NCHW here — with ``"inference"`` only the inference pass goes NHWC
    (the one-shot segmenter), which is where NHWC pays on a CPU without native bf16 (its NHWC
    backward convolutions are slower than NCHW ones).
    """
    nhwc = channels_last_mode(channels_last) is True
    net = OSVOSNet(upsample=upsample, init=init)
    try:
        net.normalization = load_backbone(net, weights)
    except WeightsUnavailableError:
        if offline_fallback != "random":
            raise
        log.warning(
            "ImageNet VGG16 weights could not be downloaded (no network?): the backbone is "
            "RANDOMLY initialised and quality will be poor. Pass model.weights=/path/to/vgg16.pth "
            "(torchvision format) or set model.offline_fallback=error to make this an error."
        )
        net.normalization = "imagenet"
    if nhwc:
        net = net.to(memory_format=torch.channels_last)
    return net


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
