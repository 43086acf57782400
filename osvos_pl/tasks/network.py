"""Building the OSVOS network from ``model.*`` config and loading OSVOS checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from osvos_pl.errors import ConfigError
from osvos_pl.model import OSVOSNet, WeightsUnavailableError, load_backbone

log = logging.getLogger(__name__)


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
    (``segment_stream``), which is where NHWC pays on a CPU without native bf16 (its NHWC
    backward convolutions are slower than NCHW ones).
    """
    channels_last = channels_last_mode(channels_last) is True
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
    net.weights_source = weights if isinstance(weights, str) else None
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


CHANNELS_LAST_MODES = (False, True, "inference")


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


def load_checkpoint_weights(net: torch.nn.Module, path: str | Path) -> str | None:
    """Load an OSVOS checkpoint (Lightning ``.ckpt`` or a plain state dict) into ``net``.

    Returns the input normalisation recorded in the checkpoint (None if it has none), which must
    win over ``data.normalization=auto``: the network was trained on that input.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path} — check parent_ckpt / contour_ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 — any unpickling failure means a bad file
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict — is it an osvos-pl checkpoint?")
    state = {k.removeprefix("net."): v for k, v in state.items() if not k.startswith("metric")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if "upsample" not in k and "kernel" not in k]
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not match the OSVOS network: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]} — was it trained with a different model config?"
        )
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    return hparams.get("normalization")
