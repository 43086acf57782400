"""The VGG16 convolutional trunk (conv1_1 … conv5_3) that OSVOS builds on.

Defined here rather than taken from torchvision (whose wheel does not load on this
machine), with torchvision's layer indices inside ``features`` so that its state-dict keys
(``features.0.weight`` … ``features.28.bias``) load unchanged. OSVOS drops pool5 and the
fully connected layers, and its pools round up (``ceil_mode=True``, as Caffe does) so that a
stage-k feature map has exactly ``ceil(H / 2**(k-1))`` rows for any input height.
"""

from __future__ import annotations

import torch
from torch import nn

#: Output channels of the 13 convolutions; "M" marks a 2x2 stride-2 max-pool.
_LAYOUT: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)

#: Caffe layer name of each convolution → its index in ``features`` (torchvision's numbering).
CONV_INDEX: dict[str, int] = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}

#: Index in ``features`` of the ReLU after conv2_2, conv3_3, conv4_3, conv5_3: the four
#: side-output taps, at strides 2, 4, 8, 16.
SIDE_TAPS: tuple[int, ...] = (8, 15, 22, 29)

#: Channels of the four side-output taps.
SIDE_CHANNELS: tuple[int, ...] = (128, 256, 512, 512)


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = int(item)
    return nn.Sequential(*layers)


class VGG16Trunk(nn.Module):
    """VGG16 conv1_1–conv5_3 without pool5; returns the four side-output activations.

    Initialisation before any weights are loaded is He-normal (fan-out, ReLU gain) with zero
    biases, as torchvision initialises VGG: it keeps activations at a usable scale through 13
    layers, so a randomly initialised backbone (offline fallback) still trains.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _build_features()
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` normalised image → conv2_2, conv3_3, conv4_3, conv5_3 after ReLU.

        Shapes ``(B, C_k, ceil(H/s), ceil(W/s))`` with ``C_k`` = 128, 256, 512, 512 and stride
        ``s`` = 2, 4, 8, 16.
        """
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in SIDE_TAPS:
                taps.append(x)
        return taps
