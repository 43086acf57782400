"""Augmentation of a whole batch on the training device (``data.augment_on=device``).

With ``augment_on=workers`` (the default) each loader worker warps and recolours one frame at
a time with albumentations. On a GPU that leaves the workers as the bottleneck. Here the work
is split in two:

- **in the worker**, :func:`sample_params` draws one sample's parameters (cheap numbers, seeded
  by the draw as before, so a resumed run draws the same ones) from the same distributions as
  the albumentations pipeline (:data:`osvos_pl.data.transforms.WARPS`);
- **on the device**, :class:`BatchAugment` applies them to the collated ``uint8`` batch: one
  ``affine_grid`` / ``grid_sample`` for flip + rotation + zoom + shift (bicubic image, nearest
  mask, borders the mean colour and 0 as albumentations fills them), brightness/contrast,
  hue/saturation and a Gaussian blur as batched tensor operations, then the input normalisation.

Differences from the albumentations path, by design: the arithmetic is float (no rounding to
uint8 between steps), and the flip is folded into the warp's matrix (one resampling).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from osvos_pl.data.transforms import WARPS, Photometric, WarpSpec
from osvos_pl.utils.errors import ConfigError
from osvos_pl.utils.normalization import Normalization

IDENTITY_BLUR = np.array([0, 0, 1, 0, 0], np.float32)  # 5 taps: a 3-tap kernel padded by zeros


def device_spec(name: str) -> WarpSpec | None:
    """The warp of ``data.augment=name`` for the device path (None: ``none``); ``paper`` changes
    the frame's size per draw and stays in the workers."""
    if name == "none":
        return None
    if name not in WARPS or name == "zoom":
        raise ConfigError(
            f"data.augment_on=device runs {', '.join(k for k in WARPS if k != 'zoom')} or none, "
            f"not data.augment={name!r} (paper scales each frame to another size: keep "
            "data.augment_on=workers for it)")
    return WARPS[name]


def affine_matrix(hw: tuple[int, int], flip: bool, angle: float,
                  zoom: tuple[float, float], shift_px: tuple[int, int]) -> np.ndarray:
    """``(3, 3)`` forward pixel matrix (source pixel -> output pixel, pixel centres at integers):
    the flip, then albumentations' ``Affine`` about the centre ``(W/2 - 0.5, H/2 - 0.5)``:
    ``shift @ translate @ rotate @ scale @ unshift``."""
    h, w = hw
    cx, cy = w / 2 - 0.5, h / 2 - 0.5
    a = np.deg2rad(angle % 360)
    flip_m = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]) if flip else np.eye(3)
    unshift = np.array([[1.0, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    scale = np.diag([zoom[0], zoom[1], 1.0])
    rotate = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])
    shift = np.array([[1.0, 0, cx + shift_px[0]], [0, 1, cy + shift_px[1]], [0, 0, 1]])
    return shift @ rotate @ scale @ unshift @ flip_m


def _colour_params(spec: Photometric | None,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``[alpha, beta (0-255), hue (OpenCV units), saturation (0-255)]`` and a 5-tap blur kernel;
    the identity where a change is not drawn (each with its probability, as albumentations)."""
    colour, blur = np.array([1.0, 0.0, 0.0, 0.0], np.float32), IDENTITY_BLUR
    if spec is None:
        return colour, blur
    if rng.random() < spec.brightness_p:
        colour[0] = 1.0 + rng.uniform(-spec.contrast, spec.contrast)
        colour[1] = rng.uniform(-spec.brightness, spec.brightness) * 255.0
    if rng.random() < spec.hsv_p:
        colour[2] = rng.uniform(-spec.hue, spec.hue)
        colour[3] = rng.uniform(-spec.saturation, spec.saturation)
    if rng.random() < spec.blur_p:
        sigma = rng.uniform(*spec.blur_sigma)
        size = int(rng.integers(spec.blur_sizes[0], spec.blur_sizes[1] + 1)) | 1  # 4 -> 5
        x = np.arange(size) - size // 2
        taps = np.exp(-0.5 * (x / sigma) ** 2)
        blur = np.zeros(5, np.float32)
        blur[(5 - size) // 2:(5 + size) // 2] = taps / taps.sum()
    return colour, blur


def sample_params(spec: WarpSpec, hw: tuple[int, int], rng: np.random.Generator) -> dict:
    """One draw's parameters as tensors that collate into a batch: ``warp`` ``(3, 3)`` forward
    pixel matrix, ``colour`` ``(4,)``, ``blur`` ``(5,)`` (see :func:`affine_matrix`)."""
    h, w = hw
    flip = bool(rng.random() < spec.flip_p)
    angle = rng.uniform(-spec.rotate, spec.rotate)
    zoom = (rng.uniform(*spec.zoom), rng.uniform(*spec.zoom))
    shift = (0, 0)
    if spec.shift:  # whole pixels, truncated, as albumentations' translate_percent
        shift = (int(rng.uniform(-spec.shift, spec.shift) * w),
                 int(rng.uniform(-spec.shift, spec.shift) * h))
    colour, blur = _colour_params(spec.photometric, rng)
    return {"warp": torch.from_numpy(affine_matrix(hw, flip, angle, zoom, shift)).float(),
            "colour": torch.from_numpy(colour), "blur": torch.from_numpy(blur)}


def _pixel_to_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """``(3, 3)`` pixel -> ``grid_sample`` coordinates (``align_corners=False``)."""
    return torch.tensor([[2.0 / w, 0, 1.0 / w - 1], [0, 2.0 / h, 1.0 / h - 1], [0, 0, 1]],
                        dtype=torch.float64, device=like.device)


def warp(image: torch.Tensor, target: torch.Tensor, matrix: torch.Tensor,
         fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 3, H, W)`` float 0-255 image (bicubic, borders ``fill``) and ``(B, 1, H, W)`` target
    (nearest, borders 0) resampled by ``(B, 3, 3)`` forward pixel matrices."""
    b, _, h, w = image.shape
    to_grid = _pixel_to_grid(h, w, image)
    theta = to_grid @ torch.linalg.inv(matrix.to(torch.float64)) @ torch.linalg.inv(to_grid)
    grid = F.affine_grid(theta[:, :2].float(), [b, 1, h, w], align_corners=False)
    fill = fill.view(1, 3, 1, 1)
    image = F.grid_sample(image - fill, grid, mode="bicubic", padding_mode="zeros",
                          align_corners=False) + fill
    target = F.grid_sample(target, grid, mode="nearest", padding_mode="zeros",
                           align_corners=False)
    return image.clamp_(0, 255), target


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3, H, W)`` RGB in [0, 1] -> hue in [0, 1) turns, saturation, value (colorsys)."""
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    delta = v - x.min(1).values
    s = torch.where(v > 0, delta / v.clamp_min(1e-12), torch.zeros_like(v))
    d = delta.clamp_min(1e-12)
    h = torch.where(v == r, (g - b) / d, torch.where(v == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6) % 1.0, torch.zeros_like(h))
    return h, s, v


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    channels = []
    for n in (5, 3, 1):
        k = (n + h * 6) % 6
        channels.append(v - v * s * torch.minimum(k, 4 - k).clamp(0, 1))
    return torch.stack(channels, 1)


def recolour(image: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Brightness/contrast (``x * alpha + beta``), then hue (OpenCV units: 2 degrees each) and
    saturation (0-255; grey pixels stay grey) shifts, per sample; ``(B, 3, H, W)`` 0-255."""
    alpha, beta, hue, sat = (c.view(-1, 1, 1) for c in colour.T)
    image = (image * alpha.unsqueeze(1) + beta.unsqueeze(1)).clamp_(0, 255)
    h, s, v = _rgb_to_hsv(image / 255.0)
    h = (h + hue / 180.0) % 1.0
    s = torch.where(s > 0, (s + sat / 255.0).clamp(0, 1), s)
    return _hsv_to_rgb(h, s, v) * 255.0


def blur(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable blur with a ``(B, 5)`` kernel per sample (reflect-101 borders, as OpenCV)."""
    b, c, h, w = image.shape
    k = kernels.to(image.dtype).repeat_interleave(c, 0)  # (B*C, 5)
    x = F.pad(image.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(b * c, 1, 1, 5), groups=b * c)
    x = F.conv2d(x, k.view(b * c, 1, 5, 1), groups=b * c)
    return x.view(b, c, h, w)


class BatchAugment:
    """Applies a collated batch's sampled parameters on its device and normalises it.

    In: ``pixels`` ``(B, H, W, 3) uint8`` RGB, ``target`` ``(B, 1, H, W)`` (0/1 uint8, or float
    contour maps), and the :func:`sample_params` keys when ``spec`` is not None. Out: ``image``
    ``(B, 3, H, W)`` float32 normalised, ``mask`` ``(B, 1, H, W)`` float32 (the object, or its boundary when ``contour``).
    """

    def __init__(self, spec: WarpSpec | None, normalization: Normalization,
                 contour: bool = False):
        self.spec, self.norm, self.contour = spec, normalization, contour

    def __call__(self, batch: dict) -> dict:
        image = batch["pixels"].permute(0, 3, 1, 2).float()
        target = batch["target"].float()
        if self.spec is not None:
            fill = torch.tensor(self.norm.mean_rgb(), dtype=image.dtype, device=image.device)
            image, target = warp(image, target, batch["warp"], fill)
            if self.spec.photometric is not None:
                # every sample through the blur (the identity kernel where none was drawn): a
                # test for "any drawn" would wait for the device
                image = blur(recolour(image, batch["colour"]), batch["blur"]).clamp_(0, 255)
        if self.contour:
            target = boundary(target)
        return {"image": self._normalise(image), "mask": target}

    def _normalise(self, image: torch.Tensor) -> torch.Tensor:
        if self.norm.bgr:
            image = image.flip(1)
        mean = torch.tensor(self.norm.mean, dtype=image.dtype, device=image.device)
        std = torch.tensor(self.norm.std, dtype=image.dtype, device=image.device)
        return (image - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def boundary(mask: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` 0/1 boundary of binary masks: the 3x3 morphological gradient, as
    :func:`osvos_pl.data.transforms.mask_boundary` computes it per frame."""
    m = (mask > 0).float()
    dilated = F.max_pool2d(m, 3, 1, 1)
    eroded = -F.max_pool2d(-m, 3, 1, 1)
    return (dilated - eroded > 0).float()

