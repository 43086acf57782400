"""Where boundary snapping gets each frame's contour map: a contour-branch network
(``NetworkContours``) or maps on disk (``MapContours``); both are a ``ContourSource``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from osvos_pl.data.transforms import resize_pair, scaled_size
from osvos_pl.model.osvos import native_probabilities
from osvos_pl.utils.normalization import Normalization

#: ``(sequence, batch, image batch, native (H, W))`` → a contour map per frame of the batch (or
#: None); ``batch`` is the frame loader's: ``frame`` indices and the decoded frames (``raw``)
ContourSource = Callable[[str, dict, torch.Tensor, tuple[int, int]], list]


def frames_at_scale(raw: torch.Tensor, scale: float,
                    normalization: Normalization) -> torch.Tensor:
    """Decoded ``(B, H, W, 3)`` frames resized by ``scale`` and normalised, ``(B, 3, h, w)``:
    the contour branch's own input, made as the segmentation's input is made."""
    frames = []
    for frame in raw.numpy():
        image, _ = resize_pair(frame, None, scaled_size(frame.shape[:2], scale))
        frames.append(normalization(image))
    return torch.stack(frames)


class NetworkContours:
    """Contour maps from a contour-branch network (``+experiment=contour``), never fine-tuned.

    ``scale`` (``online.contour_scale``; None: the segmentation's input) gives the branch its own
    input, the batch's decoded frames resized by ``scale`` and normalised by ``normalization``:
    the snapping follows the map's edges, and a map computed small and upsampled has blurred
    ones. The frames come with the batch; none is read again.
    """

    def __init__(self, net: torch.nn.Module, segmenter_engine, scale: float | None = None,
                 normalization: Normalization | None = None):
        if scale is not None and normalization is None:
            raise ValueError("NetworkContours at its own scale needs the input normalization")
        self.net, self.engine = net, segmenter_engine
        self.scale, self.normalization = scale, normalization
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        self.net.eval().to(self.engine.device, memory_format=layout)

    def __call__(self, sequence: str, batch: dict, image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray]:
        if self.scale is not None:
            image = frames_at_scale(batch["raw"], self.scale, self.normalization)
            image = image.to(self.engine.device)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
        with self.engine.autocast():
            logits = self.net.forward_fused(image)
        return list(native_probabilities(logits, native).cpu().numpy())


class MapContours:
    """Precomputed contour maps on disk (``contour_maps=DIR``), e.g. another detector's output."""

    def __init__(self, maps, frame_names: Callable[[str], Sequence[str]]):
        self.maps, self.frame_names = maps, frame_names

    def __call__(self, sequence: str, batch: dict, image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray | None]:
        names = self.frame_names(sequence)
        return [self.maps.get(sequence, names[int(i)]) for i in batch["frame"]]
