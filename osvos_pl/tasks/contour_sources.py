"""Where boundary snapping gets each frame's contour map: a contour-branch network
(``NetworkContours``) or maps on disk (``MapContours``); both are a ``ContourSource``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from osvos_pl.model.osvos import native_probabilities

#: ``(sequence, frame indices, image batch, native (H, W))`` → a contour map per frame (or None)
ContourSource = Callable[[str, Sequence[int], torch.Tensor, tuple[int, int]], list]


class NetworkContours:
    """Contour maps from a contour-branch network (``+experiment=contour``), never fine-tuned.

    ``frames`` (optional, ``(sequence, i) -> (3, h, w)`` normalised tensor) gives the branch its
    own input, e.g. at a larger scale than the segmentation's (``online.contour_scale``): the
    snapping follows the map's edges, and a map computed small and upsampled has blurred ones.
    Without it the branch sees the segmentation's input.
    """

    def __init__(self, net: torch.nn.Module, segmenter_engine,
                 frames: Callable[[str, int], torch.Tensor] | None = None):
        self.net, self.engine, self.frames = net, segmenter_engine, frames
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        self.net.eval().to(self.engine.device, memory_format=layout)

    def __call__(self, sequence: str, frames: Sequence[int], image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray]:
        if self.frames is not None:
            image = torch.stack([self.frames(sequence, i) for i in frames]).to(self.engine.device)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
        with self.engine.autocast():
            logits = self.net.forward_fused(image)
        return list(native_probabilities(logits, native).cpu().numpy())


class MapContours:
    """Precomputed contour maps on disk (``contour_maps=DIR``), e.g. another detector's output."""

    def __init__(self, maps, frame_names: Callable[[str], Sequence[str]]):
        self.maps, self.frame_names = maps, frame_names

    def __call__(self, sequence: str, frames: Sequence[int], image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray | None]:
        names = self.frame_names(sequence)
        return [self.maps.get(sequence, names[i]) for i in frames]
