"""The mask on frame 0 as the page's editor holds it: painted RGBA layers, one brush colour per
object (the DAVIS palette), turned into object ids and back. The editor keeps only new strokes,
so the mask so far stays on the server and the strokes go on top of it."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from osvos_pl.data.io import davis_palette

PALETTE = np.array(davis_palette(), np.uint8).reshape(256, 3)
#: Opacity of the painted mask over the frame (the brush's and GrabCut's layer alike).
OPACITY = 0.6
#: The brush colour that paints background (object id 0).
NOT_AN_OBJECT = (255, 255, 255)


def colours(count: int) -> list[str]:
    """The brushes, ``#rrggbb``: objects 1..count in their DAVIS palette colours, then white,
    which paints "no object" (to take pixels away from a mask)."""
    return ["#" + "".join(f"{c:02x}" for c in PALETTE[k]) for k in range(1, count + 1)] + \
        ["#" + "".join(f"{c:02x}" for c in NOT_AN_OBJECT)]


def labels_from_layers(layers: Sequence[np.ndarray | None], size: tuple[int, int],
                       objects: int, base: np.ndarray | None = None) -> np.ndarray:
    """``(H, W) uint8`` object ids: ``base`` (the mask the editor was given, baked into its
    picture) with the user's strokes (its RGBA layers) on top. A painted pixel (alpha at least
    half the brush's) takes the object whose brush colour is nearest, white taking it away."""
    labels = np.zeros(size, np.uint8) if base is None else np.array(base, np.uint8)
    ref = np.array([NOT_AN_OBJECT, *PALETTE[1:objects + 1]], np.int32)
    for layer in layers:
        if layer is None:
            continue
        layer = np.asarray(layer)
        if layer.shape[:2] != size:
            layer = cv2.resize(layer, size[::-1], interpolation=cv2.INTER_NEAREST)
        if layer.ndim != 3 or layer.shape[2] < 4:
            continue
        painted = layer[..., 3] >= 255 * OPACITY / 2
        rgb = layer[painted][:, :3].astype(np.int32)
        labels[painted] = ((rgb[:, None] - ref[None]) ** 2).sum(-1).argmin(1)
    return labels


def layer_from_labels(labels: np.ndarray) -> np.ndarray:
    """``(H, W, 4) uint8`` RGBA: each object in its brush colour at the brush's opacity, as
    strokes would paint it (:func:`labels_from_layers` reads it back)."""
    layer = np.zeros((*labels.shape, 4), np.uint8)
    layer[..., :3] = PALETTE[labels]
    layer[..., 3] = np.where(labels > 0, round(255 * OPACITY), 0)
    return layer


def editor_value(image: np.ndarray, labels: np.ndarray) -> dict:
    """The editor's value for frame ``image`` showing the mask ``labels`` (tinted as strokes
    would tint it) and no strokes yet. The editor bakes a given layer into its picture and
    hands back only new strokes, so the mask itself stays on the server (``base`` of
    :func:`labels_from_layers`)."""
    layer = layer_from_labels(labels)
    alpha = layer[..., 3:] / 255.0
    shown = (image * (1 - alpha) + layer[..., :3] * alpha).round().astype(np.uint8)
    return {"background": shown, "layers": [], "composite": shown}


def describe_labels(labels: np.ndarray) -> str:
    """The line under the editor: each painted object's share of the frame."""
    ids = [int(k) for k in np.unique(labels) if k]
    if not ids:
        return "no object painted yet"
    total = labels.size
    return "; ".join(f"object {k}: {100 * (labels == k).sum() / total:.1f}% of the frame"
                     for k in ids)
