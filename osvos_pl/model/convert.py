"""The authors' state dicts in this network's keys: every key and shape checked, then renamed.

Both files (``osvos_pl.model.releases``) are for Caffe input (BGR, 0–255, minus the mean):

- the parent, ``parent_epoch-239.pth``: ``torch.save(net.state_dict())`` of their ``OSVOS``
  module (``networks/vgg_osvos.py``): ``stages.{0..4}`` (VGG16 conv1_1 … conv5_3 as five
  ``Sequential``s, a ceil-mode max-pool first in stages 1–4), ``side_prep.{0..3}`` (3x3 → 16),
  ``score_dsn.{0..3}`` (1x1 16 → 1), ``upscale.{0..3}`` / ``upscale_.{0..3}`` (fixed bilinear
  ``ConvTranspose2d``, 16 → 16 and 1 → 1, kernel 2s, stride s = 2, 4, 8, 16) and ``fuse``
  (1x1 64 → 1). Their upsampled maps are centre-cropped: this network reproduces their outputs
  with ``model.upsample=center``. Checkpoints saved by their ``train_online.py`` have the same
  layout and convert the same way.
- the Caffe VGG16, ``vgg_caffe.mat``, as their ``OSVOS(pretrained=2)`` reads it: MATLAB cell
  arrays ``weights`` (1 x 13, conv1_1 … conv5_3, each in matcaffe's ``(W, H, C_in, C_out)``
  order: reversing all axes gives PyTorch's ``(C_out, C_in, H, W)``) and ``biases`` (1 x 13,
  each ``(C_out, 1)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from osvos_pl.model.osvos import PREP_CHANNELS, STRIDES, bilinear_kernel
from osvos_pl.model.releases import PARENT
from osvos_pl.model.vgg import CONV_INDEX
from osvos_pl.utils.errors import ConfigError

#: The authors' five stages (``lay_list`` in networks/vgg_osvos.py); "M" is a max-pool.
_AUTHORS_STAGES: tuple[tuple[int | str, ...], ...] = (
    (64, 64), ("M", 128, 128), ("M", 256, 256, 256), ("M", 512, 512, 512), ("M", 512, 512, 512),
)


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


PARENT_FORMAT = (
    "the state dict of the authors' OSVOS module (kmaninis/OSVOS-PyTorch networks/vgg_osvos.py: "
    "keys stages.0.0.weight … fuse.bias), as in parent_epoch-239.pth from pth_parent_model.zip"
)
VGG_FORMAT = (
    "the authors' Caffe VGG16 vgg_caffe.mat (from vgg_mat.zip): MATLAB cells 'weights' "
    "(1 x 13, conv1_1 … conv5_3, each W x H x C_in x C_out) and 'biases' (1 x 13, each C_out x 1)"
)


def convert_parent_state(state: Any, origin: str) -> dict[str, torch.Tensor]:
    """The authors' parent state dict → an ``OSVOSNet`` state dict (load with ``strict=True``).

    Every key and shape is checked, and so are the upsampling kernels: this network's are fixed
    bilinear, so a file whose kernels differ cannot be converted exactly and is refused.
    """
    if not isinstance(state, Mapping):
        raise ConfigError(f"{origin} holds a {type(state).__name__}, not a state dict; expected "
                          f"{PARENT_FORMAT}")
    layout = parent_layout()
    missing = [key for key in layout if key not in state]
    unexpected = [key for key in state if key not in layout]
    if unexpected:
        mine = any(str(k).startswith(("trunk.", "net.", "state_dict")) for k in state)
        hint = (" It looks like an osvos-pl checkpoint: pass it as parent_ckpt=PATH without "
                "conversion." if mine else "")
        raise ConfigError(f"{origin}: unexpected key {unexpected[0]!r} ({len(unexpected)} in "
                          f"all); expected {PARENT_FORMAT}.{hint}")
    if missing:
        raise ConfigError(f"{origin} lacks {missing[0]!r} ({len(missing)} keys missing); expected "
                          f"{PARENT_FORMAT}. Download pth_parent_model.zip again ({PARENT.url}).")
    converted = {}
    for key, (ours, shape) in layout.items():
        value = _checked_tensor(state[key], key, shape, origin, PARENT_FORMAT)
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
                          f"expected {VGG_FORMAT}")
    weights, biases = (_cells(mat[name], name, origin) for name in ("weights", "biases"))
    trunk = _authors_trunk()
    if min(len(weights), len(biases)) < len(trunk):
        raise ConfigError(f"{origin} holds {len(weights)} weights and {len(biases)} biases, "
                          f"expected {len(trunk)} of each (conv1_1 … conv5_3); expected "
                          f"{VGG_FORMAT}")
    names = list(CONV_INDEX)
    converted = {}
    for i, (_, ours, shape) in enumerate(trunk):
        where = f"weights{{{i + 1}}} ({names[i]})"
        weight = _as_tensor(weights[i], where, origin)
        weight = weight.permute(*reversed(range(weight.ndim)))
        converted[f"{ours}.weight"] = _checked_tensor(weight, where, shape, origin, VGG_FORMAT)
        where = f"biases{{{i + 1}}} ({names[i]})"
        bias = _as_tensor(biases[i], where, origin)
        if bias.ndim != 2 or bias.shape[1] != 1:
            raise ConfigError(f"{origin}: {where} has shape {tuple(bias.shape)}, expected "
                              f"({shape[0]}, 1); expected {VGG_FORMAT}")
        converted[f"{ours}.bias"] = _checked_tensor(bias[:, 0], where, shape[:1], origin,
                                                    VGG_FORMAT)
    return converted


def _cells(value: Any, name: str, origin: str) -> list[Any]:
    if not isinstance(value, np.ndarray) or value.dtype != object:
        raise ConfigError(f"{origin}: {name!r} is not a MATLAB cell array; expected {VGG_FORMAT}")
    return list(value.reshape(-1))


def _as_tensor(value: Any, where: str, origin: str) -> torch.Tensor:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise ConfigError(f"{origin}: {where} is {got}, not a float array; expected {VGG_FORMAT}")
    return torch.from_numpy(np.ascontiguousarray(value))
