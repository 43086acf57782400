"""A BSDS500-style contour dataset: images plus human boundary maps, for the contour branch.

Layout (either boundary source works)::

    <root>/images/<split>/<name>.jpg
    <root>/boundaries/<split>/<name>.png       # 0 / non-zero boundary map, or
    <root>/groundTruth/<split>/<name>.mat      # BSDS500 original: cell array of annotations

With several annotators (``.mat``) a pixel is a boundary if any annotator marked it. The paper
trained its contour branch on PASCAL-Context; convert it to this layout (images + boundary PNGs
from the context label maps' label changes) and pass ``contour.source=bsds contour.bsds_root=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from osvos_pl.data.io import read_image, read_mask
from osvos_pl.data.transforms import build_augmentation, resize_pair, scaled_size
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.normalization import Normalization


def _read_boundaries(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        return (read_mask(path) > 0).astype(np.uint8)
    from scipy.io import loadmat

    try:
        gt = loadmat(path)["groundTruth"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read BSDS ground truth {path}: {exc}") from exc
    maps = [np.asarray(gt[0, k]["Boundaries"][0, 0]) for k in range(gt.shape[1])]
    return (np.max(maps, axis=0) > 0).astype(np.uint8)


class BSDSContours(Dataset):
    """(image, boundary map) pairs of one split, resized by ``scale`` and augmented jointly."""

    def __init__(self, root: str | Path, split: str, normalization: Normalization,
                 scale: float = 1.0, augment: str = "paper"):
        self.root = Path(root).expanduser()
        image_dir = self.root / "images" / split
        if not image_dir.is_dir():
            raise DataError(f"BSDS-style root {self.root} has no images/{split}/ — see "
                            "osvos_pl/data/bsds.py for the expected layout (contour.bsds_root)")
        self.items = []
        for image in sorted(image_dir.glob("*.jpg")):
            png = self.root / "boundaries" / split / f"{image.stem}.png"
            mat = self.root / "groundTruth" / split / f"{image.stem}.mat"
            target = png if png.is_file() else mat if mat.is_file() else None
            if target is None:
                raise DataError(f"{image} has no boundary map ({png} or {mat})")
            self.items.append((image, target))
        if not self.items:
            raise DataError(f"no images in {image_dir}")
        self.norm, self.scale, self.augment_name = normalization, scale, augment
        self.augment = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        import torch

        image_path, target_path = self.items[k]
        image, target = read_image(image_path), _read_boundaries(target_path)
        if image.shape[:2] != target.shape:
            raise DataError(f"{target_path} is {target.shape[::-1]} but {image_path} is "
                            f"{image.shape[1::-1]} — boundary maps must have their image's size")
        image, target = resize_pair(image, target, scaled_size(image.shape[:2], self.scale))
        if self.augment is None and self.augment_name != "none":
            self.augment = build_augmentation(self.augment_name, self.norm.mean_rgb())
        if self.augment is not None:
            out = self.augment(image=image, mask=target)
            image, target = out["image"], out["mask"]
        return {"image": self.norm(image),
                "mask": torch.from_numpy(np.ascontiguousarray(target)).float().unsqueeze(0)}
