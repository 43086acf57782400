"""What the networks of one sequence's objects share (``shared_stages``) and what they give
(``object_maps``, ``object_probabilities``): the online segmenter's inference
(``osvos_pl.tasks.segmenter``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from osvos_pl.model.osvos import STAGE_ENDS, native_class_probabilities, native_probabilities
from osvos_pl.model.prefix import FrozenPrefix


def object_maps(logits: torch.Tensor, native: tuple[int, int]) -> np.ndarray:
    """``(B, C, h, w)`` fused logits → ``(K, B, H, W)`` float32 object probabilities at ``native``
    size: the sigmoid of a binary head (K = 1), classes 1..K of a joint head's softmax."""
    if logits.shape[1] == 1:
        return native_probabilities(logits, native).cpu().numpy()[None]
    return native_class_probabilities(logits, native)[:, 1:].transpose(0, 1).cpu().numpy()


def shared_stages(nets: Sequence[torch.nn.Module]) -> int:
    """How many leading VGG stages (0-5) all ``nets`` have with equal weights: the stages
    fine-tuning kept frozen (``online.frozen_stages``), all five for copies of the parent (-OS).
    Compared by value, so a stage is shared only where sharing cannot change a mask; on the first
    network's device (the parent may stay on the CPU while its copies run on a GPU)."""
    first = [dict(layer.named_parameters()) for layer in nets[0].trunk.features]
    others = [list(net.trunk.features) for net in nets[1:]]
    for stage, end in enumerate(STAGE_ENDS):
        begin = STAGE_ENDS[stage - 1] if stage else 0
        for i in range(begin, end):
            for layers in others:
                params = dict(layers[i].named_parameters())
                if any(not torch.equal(w, params[n].to(w.device)) for n, w in first[i].items()):
                    return stage
    return len(STAGE_ENDS)


def object_probabilities(nets: Sequence[torch.nn.Module], image: torch.Tensor,
                         native: tuple[int, int], autocast: Callable,
                         shared: int = 0, prefix: FrozenPrefix | None = None) -> np.ndarray:
    """``(B, 3, h, w)`` → ``(K, B, H, W)`` float32 probabilities at ``native`` size of networks
    whose first ``shared`` VGG stages are the same (``shared_stages``): those stages run once,
    in ``prefix`` as far as it goes (a frozen prefix of the nets' common stages), the rest on the
    first network, all under ``autocast()``. A binary network gives one object, a joint one its K
    (``object_maps``)."""
    with autocast():
        if not shared and prefix is None:
            logits = [net.forward_fused(image) for net in nets]
        else:
            if prefix is None:
                start, (taps, x) = shared, nets[0].trunk_prefix(image, shared)
            else:
                start, (taps, x) = prefix.stages, prefix(image)
                if shared > start:
                    start, (taps, x) = shared, nets[0].trunk_stages(taps, x, start, shared)
            size = (image.shape[-2], image.shape[-1])
            logits = [net.forward_fused_from(taps, x, start, size) for net in nets]
    return np.concatenate([object_maps(lg, native) for lg in logits])
