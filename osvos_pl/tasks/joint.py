"""Several objects that compete (``online.objects=joint``, docs/method.md#several-objects): one
fine-tuning per sequence of a network whose fused head scores background and each of the K
objects, learnt with the class-balanced softmax cross-entropy from the annotated frame's object
ids as class indices; one forward pass per frame for all objects, merged by the argmax over the
K + 1 classes. ``per-object`` (the paper's: K binary networks, highest probability) stays the
reference; ``auto`` (the default) keeps the paper's binary network for a single object. How each
scores and costs: benchmarks/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from osvos_pl.data.datasets import FirstFrames, Views
from osvos_pl.utils.errors import DataError

#: ``online.objects``: one binary network per object (the paper's), one K+1-class network, or
#: ``auto``: the paper's binary network for one object, the joint network for several
OBJECT_MODES = ("auto", "per-object", "joint")


def joint_for(mode: str, objects: int) -> bool:
    """Whether a sequence of ``objects`` objects gets one joint network under ``online.objects``
    ``mode`` (``joint``; ``auto`` with several objects) rather than one binary network each."""
    return mode == "joint" or (mode == "auto" and objects > 1)


@dataclass
class JointNetwork:
    """A fine-tuned network with a K+1-class head (background first) and the object ids its
    classes 1..K stand for."""

    net: torch.nn.Module
    ids: list[int]


def joint_views(views: Views, source, name: str, samples: int, ids: Sequence[int],
                multi: bool = True, seed: int = 0) -> FirstFrames:
    """``samples`` views (``views``: which warps, how many) of ``name``'s annotated frame(s)
    whose target holds class indices: 0 background, k for object ``ids[k - 1]`` (``multi``: the
    source's masks are object ids, else one object). The same warps as the per-object views
    (from ``seed``); the labels are warped nearest-neighbour, so they stay class indices. An
    object absent from the first annotated frame is refused, naming the files."""
    ids = list(ids)
    frames = [source.first_frames(name, 1, object_id=oid if multi else None, seed=seed,
                                  augment="none").pairs for oid in ids]
    _check_first_frame(source, name, ids, frames)
    pairs = []
    for k, (image, _) in enumerate(frames[0]):
        classes = np.zeros(image.shape[:2], np.uint8)
        for c, object_frames in enumerate(frames, start=1):
            classes[object_frames[k][1] > 0] = c
        pairs.append((image, classes))
    augment = views.augment or getattr(source, "augment", "paper")
    return FirstFrames(pairs, source.normalization, samples, augment, seed, views.count)


def _check_first_frame(source, name: str, ids: list[int],
                       frames: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]]) -> None:
    """Every object of ``ids`` is in the first annotated frame (``frames[k][0]``: object k's)."""
    missing = [oid for oid, pairs in zip(ids, frames) if not pairs[0][1].any()]
    if not missing:
        return
    files = _annotation_files(source, name, len(frames[0]))
    later = [files[j] for j in range(1, len(frames[0]))
             if any(frames[ids.index(oid)][j][1].any() for oid in missing)] or [files[0]]
    present = [oid for oid in ids if oid not in missing]
    raise DataError(
        f"mask {later[0]} has object ids {missing} that frame 0 ({files[0]}) does not have "
        f"(objects {present}) — one fine-tuning for all objects (online.objects=joint) learns "
        "every object from frame 0's annotation: annotate them in frame 0's mask, or set these "
        "ids to 0 (background) in this one")


def _annotation_files(source, name: str, count: int) -> list[str]:
    """The annotated frames' mask files in order, where the source tells them (a clip's
    ``annotations``, a DAVIS root's ``index`` and ``annotated_frames``), else descriptions."""
    annotations = getattr(source, "annotations", None)
    if annotations is not None:
        return [str(path) for _, path in annotations]
    index, frames = getattr(source, "index", None), getattr(source, "annotated_frames", None)
    if index is not None and frames is not None:
        seq = index.sequence(name)
        return [str(seq.mask(i)) for i in frames]
    return [f"annotated frame {k} of {name}" for k in range(count)]


def blend_parent(objects: np.ndarray, parent: np.ndarray, weight: float) -> np.ndarray:
    """``(K, B, H, W)`` joint object probabilities with the binary parent's ``(B, H, W)`` say
    (``online.parent_weight`` w): the parent blends into how likely a pixel is *some* object,
    ``(1 - w) Σ p_k + w p_parent``, shared among the objects as the joint network shares it.
    For one object this is the per-object blend ``(1 - w) p + w p_parent``."""
    total = objects.sum(0, keepdims=True)
    share = np.divide(objects, total, out=np.full_like(objects, 1 / len(objects)),
                      where=total > 0)
    return (1 - weight) * objects + weight * parent[None] * share
