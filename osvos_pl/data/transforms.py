"""Joint image/mask augmentation (albumentations), resizing by ``data.scale``, normalisation.

Two augmentation sets, chosen by ``data.augment``:
- ``paper``: the Caffe/TF set — scales {0.5, 0.8, 1.0} × horizontal flip (6 versions), resized
  to a smaller canvas, never cropped or padded.
- ``pytorch``: the PyTorch port — flip, rotation ±30°, zoom 0.75–1.25 about the centre on the
  same canvas, borders filled with the mean colour.
- ``strong``: ``pytorch`` plus photometric changes (brightness/contrast, hue/saturation, blur)
  and a wider zoom (0.6–1.4), for a parent trained on few sequences: it must not learn their
  colours.
- ``shift``: ``strong`` plus translation by up to a quarter of each side: one-shot views of an
  object that moves across the frame (``online.augment``).
- ``zoom`` (one-shot only, ``online.augment``): ``shift`` after a zoom of up to
  ``ZOOM_MAX`` into a window on the object (:func:`object_zoom`): views of the annotated object
  as it looks when it comes closer.
- ``none``: no augmentation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from osvos_pl.utils.errors import ConfigError  # noqa: E402

PAPER_SCALES = (0.5, 0.8, 1.0)
ZOOM_MAX = 2.5


def scaled_size(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """Native ``(H, W)`` times ``data.scale``, at least 16 px a side."""
    if not 0 < scale <= 4:
        raise ConfigError(f"data.scale must be in (0, 4], got {scale}")
    return max(16, int(round(hw[0] * scale))), max(16, int(round(hw[1] * scale)))


def resize_pair(
    image: np.ndarray, mask: np.ndarray | None, hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize an image (area/bicubic) and its mask (nearest) to ``(H, W)``."""
    if image.shape[:2] == hw:
        return image, mask
    shrink = hw[0] < image.shape[0]
    image = cv2.resize(image, hw[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if mask is not None:
        mask = cv2.resize(mask, hw[::-1], interpolation=cv2.INTER_NEAREST)
    return image, mask


def paper_versions(image: np.ndarray, mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The paper's 6 fixed versions of one frame: scales {0.5, 0.8, 1} × {as is, flipped}."""
    out = []
    for s in PAPER_SCALES:
        hw = (max(16, round(image.shape[0] * s)), max(16, round(image.shape[1] * s)))
        img, msk = resize_pair(image, mask, hw)
        out.append((img, msk))
        out.append((np.ascontiguousarray(img[:, ::-1]), np.ascontiguousarray(msk[:, ::-1])))
    return out


@dataclass(frozen=True)
class Photometric:
    """Colour and blur changes (``strong``, ``shift``): a network must not learn its training
    sequences' colours. Limits as albumentations takes them: contrast ``alpha = 1 + U(±c)``,
    brightness ``beta = U(±b) x 255``; hue ``U(±hue)`` in OpenCV's 0-180 units, saturation
    ``U(±sat)`` on 0-255 (grey pixels stay grey); a Gaussian blur of ``blur_sizes`` taps (3, 4 or
    5 drawn, 4 made 5) and sigma ``U(blur_sigma)``."""

    brightness: float = 0.25
    contrast: float = 0.25
    brightness_p: float = 0.8
    hue: float = 15.0
    saturation: float = 30.0
    hsv_p: float = 0.8
    blur_sizes: tuple[int, int] = (3, 5)
    blur_sigma: tuple[float, float] = (0.5, 3.0)
    blur_p: float = 0.2


@dataclass(frozen=True)
class WarpSpec:
    """The random augmentations (``pytorch``, ``strong``, ``shift``) as numbers: a flip with
    probability ``flip_p``, then rotation ``U(±rotate)`` degrees, zoom ``U(zoom)`` drawn for x and
    y apart (albumentations' ``Affine``, ``keep_ratio=False``) and translation by ``U(±shift)`` of
    each side, about the centre on the same canvas; then ``photometric`` (None: none). One table
    for both implementations: albumentations in workers (:func:`build_augmentation`) and
    batches on the training device (:mod:`osvos_pl.data.batch_augment`)."""

    zoom: tuple[float, float]
    rotate: float = 30.0
    shift: float = 0.0
    flip_p: float = 0.5
    photometric: Photometric | None = None


WARPS = {
    "pytorch": WarpSpec(zoom=(0.75, 1.25)),
    "strong": WarpSpec(zoom=(0.6, 1.4), photometric=Photometric()),
    "shift": WarpSpec(zoom=(0.6, 1.4), shift=0.25, photometric=Photometric()),
}
WARPS["zoom"] = WARPS["shift"]  # zoom: object_zoom first (FirstFrames)


def _flip_and_warp(spec: WarpSpec, fill_rgb: tuple[int, int, int]) -> list:
    """The PyTorch port's geometry: a flip, then rotation and a zoom (and a shift) about the
    centre on the same canvas (bicubic image, nearest mask, borders filled with ``fill_rgb`` and
    0)."""
    moved = {"translate_percent": (-spec.shift, spec.shift)} if spec.shift else {}
    return [
        A.HorizontalFlip(p=spec.flip_p),
        A.Affine(
            rotate=(-spec.rotate, spec.rotate), scale=spec.zoom, interpolation=cv2.INTER_CUBIC,
            mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT,
            fill=fill_rgb, fill_mask=0, p=1.0, **moved,
        ),
    ]


def object_zoom(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                zoom_max: float = ZOOM_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Zoom by a random factor in [1, ``zoom_max``] into a window centred on a random point of
    the object's bounding box (kept inside the frame), resized back to the frame's size
    (bicubic image, nearest mask). A frame without object is returned as it is."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return image, mask
    h, w = mask.shape[:2]
    zoom = rng.uniform(1.0, zoom_max)
    ch, cw = max(1, round(h / zoom)), max(1, round(w / zoom))
    cy, cx = rng.uniform(ys.min(), ys.max() + 1), rng.uniform(xs.min(), xs.max() + 1)
    y0 = int(np.clip(round(cy - ch / 2), 0, h - ch))
    x0 = int(np.clip(round(cx - cw / 2), 0, w - cw))
    window = (slice(y0, y0 + ch), slice(x0, x0 + cw))
    return (cv2.resize(image[window], (w, h), interpolation=cv2.INTER_CUBIC),
            cv2.resize(mask[window], (w, h), interpolation=cv2.INTER_NEAREST))


def _photometric(spec: Photometric) -> list:
    return [
        A.RandomBrightnessContrast(brightness_limit=spec.brightness, contrast_limit=spec.contrast,
                                   p=spec.brightness_p),
        A.HueSaturationValue(hue_shift_limit=spec.hue, sat_shift_limit=spec.saturation,
                             val_shift_limit=0, p=spec.hsv_p),
        A.GaussianBlur(blur_limit=spec.blur_sizes, sigma_limit=spec.blur_sigma, p=spec.blur_p),
    ]


def build_augmentation(name: str, fill_rgb: tuple[int, int, int] = (0, 0, 0)) -> A.Compose | None:
    """The albumentations pipeline for ``data.augment`` (applied jointly to image and mask)."""
    if name == "none":
        return None
    if name == "paper":
        scale_choices = [
            A.RandomScale(
                scale_limit=(s - 1.0, s - 1.0), interpolation=cv2.INTER_CUBIC,
                mask_interpolation=cv2.INTER_NEAREST, p=1.0,
            )
            for s in PAPER_SCALES
        ]
        return A.Compose([A.HorizontalFlip(p=0.5), A.OneOf(scale_choices, p=1.0)])
    if name in WARPS:
        spec = WARPS[name]
        photometric = _photometric(spec.photometric) if spec.photometric else []
        return A.Compose([*_flip_and_warp(spec, fill_rgb), *photometric])
    raise ConfigError(f"data.augment={name!r} is unknown; choose paper, pytorch, strong, shift, "
                      "zoom (one-shot) or none")


def mask_boundary(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """``(H, W) uint8`` 0/1 boundary map of a binary mask (contour-branch target)."""
    m = (mask > 0).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    edge = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, kernel)
    if width > 1:
        edge = cv2.dilate(edge, np.ones((width, width), np.uint8))
    return (edge > 0).astype(np.uint8)
