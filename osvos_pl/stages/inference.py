"""Segmenting frames with fine-tuned networks: batched, at native resolution, streamed.

One network per object (DAVIS 2017 / several objects in a user's mask): each pixel goes to the
object with the highest probability, and to the background where no probability passes the
threshold (the authors' advice, PT#31). With a contour network, each object's probability map
is first snapped to superpixels of the contour map (the paper's boundary snapping).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


@dataclass(frozen=True)
class InferenceSettings:
    device: torch.device
    dtype: torch.dtype | None = None      # autocast dtype (None = fp32)
    channels_last: bool = False           # NHWC nets and inputs (model.channels_last true/inference)
    threshold: float = 0.5
    ucm_threshold: float = 0.29
    snap_mask_threshold: float = 122 / 255


def _probabilities(net: torch.nn.Module, image: torch.Tensor, native: tuple[int, int],
                   settings: InferenceSettings) -> np.ndarray:
    """``(B, 3, h, w)`` → ``(B, H, W)`` float32 foreground probability at native size."""
    autocast = (torch.autocast(settings.device.type, dtype=settings.dtype)
                if settings.dtype is not None else contextlib.nullcontext())
    with autocast:
        logits = net.forward_fused(image)
    return torch.sigmoid(F.interpolate(logits.float(), size=native, mode="bilinear"))[:, 0].cpu().numpy()


@torch.inference_mode()
def segment_stream(
    nets: Mapping[int, torch.nn.Module],
    loader: DataLoader,
    settings: InferenceSettings,
    contour: torch.nn.Module | None = None,
) -> Iterator[tuple[dict, np.ndarray]]:
    """Yield ``(item, (H, W) uint8 labels)`` per frame in loader order; ``item`` holds the
    batch entries of that frame (``frame``, and ``raw`` when the loader provides it) and
    ``snapped``: whether snapping changed it (None without a contour network; False where the
    contour map had no boundary above ``ucm_threshold``, e.g. from an undertrained branch)."""
    from osvos_pl.snapping import majority_vote, superpixels

    ids = np.array(list(nets), np.uint8)
    layout = torch.channels_last if settings.channels_last else torch.preserve_format
    for net in (*nets.values(), *([contour] if contour is not None else [])):
        net.eval().to(settings.device, memory_format=layout)
    for batch in loader:
        image = batch["image"].to(settings.device, non_blocking=True)
        if settings.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        native = tuple(int(v) for v in batch["native_hw"][0])
        probs = np.stack([_probabilities(n, image, native, settings) for n in nets.values()])
        snapped = [None] * probs.shape[1]  # per frame: True / False (skipped) / None (no contour)
        if contour is not None:
            edges = _probabilities(contour, image, native, settings)
            for b in range(probs.shape[1]):
                regions = superpixels(edges[b], settings.ucm_threshold)  # shared by all objects
                snapped[b] = bool(regions.max() > 0)
                if not snapped[b]:
                    # no contour above the UCM threshold: a single superpixel would make every
                    # object all or nothing, so this frame keeps its unsnapped masks
                    continue
                for k in range(probs.shape[0]):
                    keep = majority_vote(regions, probs[k, b], settings.snap_mask_threshold)
                    # snapped pixels pass the threshold, others do not; the order of
                    # probabilities is kept for the merge between objects
                    probs[k, b] = np.where(keep, np.maximum(probs[k, b], settings.threshold + 1e-6),
                                           np.minimum(probs[k, b], settings.threshold))
        best, owner = probs.max(0), probs.argmax(0)
        labels = np.where(best > settings.threshold, ids[owner], 0).astype(np.uint8)
        for b in range(labels.shape[0]):
            item = {k: (v[b] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()
                    if k != "image"}
            item["snapped"] = snapped[b]
            yield item, labels[b]
