"""Input normalisation presets: what each kind of VGG16 weights expects its input to look like.

Shared by the data pipeline (which applies it) and the weight loader (which names the preset its
weights need), so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from osvos_pl.utils.errors import ConfigError


@dataclass(frozen=True)
class Normalization:
    """Input normalisation the backbone weights expect: ``(x[channels] - mean) / std`` on 0–255."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3) uint8 RGB`` → ``(3, H, W) float32`` normalised."""
        x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
        if self.bgr:
            x = x.flip(0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (x - mean) / std

    def mean_rgb(self) -> tuple[int, int, int]:
        """The mean colour in RGB 0–255, used to fill borders (it normalises to zero)."""
        m = tuple(int(round(v)) for v in self.mean)
        return m[::-1] if self.bgr else m


PRESETS = {
    # torchvision ImageNet weights: RGB/255, mean/std (expressed on the 0–255 scale here)
    "imagenet": Normalization(
        mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
        bgr=False,
    ),
    # Caffe VGG (the paper): BGR 0–255 minus the per-channel mean, no std
    "caffe": Normalization(mean=(104.00699, 116.66877, 122.67892), std=(1.0, 1.0, 1.0), bgr=True),
}


def get_normalization(name: str) -> Normalization:
    if name not in PRESETS:
        raise ConfigError(
            f"data.normalization={name!r} is unknown; choose one of {sorted(PRESETS)} "
            "(or 'auto' to follow model.weights)"
        )
    return PRESETS[name]
