"""Segmenting frames with a (fine-tuned) network: batched, at native resolution, streamed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader


@torch.inference_mode()
def predict_probabilities(
    net: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame index, (H, W) float32 foreground probability at native size)`` in order.

    Frames are batched by the loader; logits are upsampled to each frame's native size before
    the sigmoid, so predictions are written and scored at the annotation's size whatever
    ``data.scale`` was.
    """
    net.eval().to(device)
    for batch in loader:
        image = batch["image"].to(device, non_blocking=True)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(device.type, dtype=dtype) if dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = net.forward_fused(image)
        native = tuple(int(v) for v in batch["native_hw"][0])
        prob = torch.sigmoid(F.interpolate(logits.float(), size=native, mode="bilinear"))
        for frame, p in zip(batch["frame"].tolist(), prob[:, 0].cpu().numpy()):
            yield int(frame), p
