"""The three frame samplers OSVOS needs, each a torch Dataset that decodes from disk on demand.

- ``TrainFrames``: every annotated frame of the training sequences (parent / contour training;
  with contour maps, every frame that has a map), drawn in the order ``TrainingDraws`` gives.
- ``FirstFrames``: the annotated frame(s) of one test sequence, augmented, repeated for as many
  samples as fine-tuning takes (online). The few frames are decoded once, and with the paper's
  fixed augmentation set all 6 versions are precomputed once per sequence.
- ``SequenceFrames``: every frame of one sequence in order (evaluation / prediction).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from osvos_pl.data.batch_augment import device_spec, sample_params
from osvos_pl.data.cache import DecodedFrames, cache_key
from osvos_pl.data.contours import ContourMaps
from osvos_pl.data.davis import DAVISIndex, VideoSequence
from osvos_pl.data.io import read_image, read_mask
from osvos_pl.data.masks import binary_target
from osvos_pl.data.sequence import check_pair
from osvos_pl.data.transforms import (
    build_augmentation,
    mask_boundary,
    object_zoom,
    paper_versions,
    resize_pair,
    scaled_size,
)
from osvos_pl.utils.errors import ConfigError, DataError
from osvos_pl.utils.normalization import Normalization


def _sample(image: np.ndarray, target: np.ndarray, norm: Normalization, contour: bool) -> dict:
    if contour:
        target = mask_boundary(target)
    return {
        "image": norm(image),
        "mask": torch.from_numpy(np.require(target, requirements=["C", "W"])).float().unsqueeze(0),
    }


def draw_seed(seed: int, draw: int) -> int:
    """The augmentation seed of draw number ``draw`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])


class TrainFrames(Dataset):
    """All annotated frames of ``sequences`` as (image, binary target) pairs, augmented.

    ``target``: ``mask`` (the object), ``contour`` (its boundary) or ``contour_maps``: the
    ``contour_maps`` as soft targets, on every frame that has one (the contour branch
    distilling a detector, ``contour.source=maps``; resized by area, so thin contours survive
    a downscale as lower values rather than vanishing).

    Indexed by ``(item, draw)`` (``TrainingDraws``), the augmentation is seeded by the run's
    ``seed`` and the draw's number: a sample is the same whichever worker makes it, in an
    uninterrupted run and in a resumed one. A plain item index draws unseeded.

    ``augment_on="device"`` leaves the augmentation to the training device: an item is then the
    decoded ``pixels`` ``(H, W, 3) uint8``, the ``target`` ``(1, H, W)`` and the draw's sampled
    parameters (``osvos_pl.data.batch_augment``). :meth:`keep_decoded` decodes every item once
    (``data.decode_cache``); draws are the same bytes either way.
    """

    def __init__(
        self,
        index: DAVISIndex,
        sequences: Sequence[str],
        normalization: Normalization,
        scale: float = 1.0,
        augment: str = "paper",
        target: str = "mask",
        seed: int = 0,
        contour_maps: ContourMaps | None = None,
        augment_on: str = "workers",
    ):
        self.index, self.norm, self.scale, self.seed = index, normalization, scale, int(seed)
        if target == "contour_maps" and contour_maps is None:
            raise DataError("target=contour_maps needs the contour maps (contour.maps_root=DIR)")
        self.contour = target == "contour"
        self.maps = contour_maps if target == "contour_maps" else None
        self.augment_name = augment
        self.augment = None
        if augment_on not in ("workers", "device"):
            raise ConfigError(f"data.augment_on={augment_on!r} is unknown; choose workers or device")
        self.on_device = augment_on == "device"
        self.device_spec = device_spec(augment) if self.on_device else None
        self.decoded: DecodedFrames | None = None
        self.items: list[tuple[VideoSequence, int]] = []
        for name in sequences:
            seq = index.sequence(name)
            if self.maps is not None:
                self.items += [(seq, i) for i, f in enumerate(seq.frames)
                               if self.maps.path(name, Path(f).stem).is_file()]
            else:
                self.items += [(seq, i) for i, m in enumerate(seq.masks) if m is not None]
        if not self.items:
            what = f"contour maps (in {self.maps.root})" if self.maps else "annotated frames"
            raise DataError(f"no {what} for sequences {list(sequences)} under {index.root}")

    def __len__(self) -> int:
        return len(self.items)

    def decode(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``k`` decoded and resized to the training scale: ``(H, W, 3) uint8`` image and
        ``(H, W)`` target (0/1 uint8 mask, or float32 contour map), before any augmentation."""
        seq, i = self.items[k]
        image = read_image(seq.frames[i])
        hw = scaled_size(image.shape[:2], self.scale)
        if self.maps is not None:
            target = self.maps.get(seq.name, Path(seq.frames[i]).stem)  # size: ContourMaps.check
            if hw != target.shape:
                target = cv2.resize(target, hw[::-1], interpolation=cv2.INTER_AREA)
            image, _ = resize_pair(image, None, hw)
        else:
            labels = read_mask(seq.mask(i))
            check_pair(image.shape, labels, seq, i)
            image, target = resize_pair(image, binary_target(labels, self.index.year), hw)
        return image, target

    def keep_decoded(self, mode: str, cache_dir: str, threads: int = 1) -> None:
        """Decode every item once (``mode``: ``none``, ``memory`` or ``mmap`` under
        ``cache_dir``; ``osvos_pl.data.cache``), keyed by the data, the items and the scale."""
        if mode == "none":  # the default: not even a look at the files
            return
        fields = {"root": str(self.index.root.resolve()), "resolution": self.index.resolution,
                  "year": self.index.year, "scale": self.scale,
                  "maps": str(self.maps.root) if self.maps is not None else None,
                  "items": [f"{seq.name}/{i}" for seq, i in self.items]}
        files = [p for seq, i in self.items for p in (
            seq.frames[i],
            self.maps.path(seq.name, Path(seq.frames[i]).stem) if self.maps else seq.masks[i])]
        self.decoded = DecodedFrames.build(self.decode, len(self), mode, cache_key(fields, files),
                                           cache_dir, threads)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        k, draw = key if isinstance(key, tuple) else (key, None)
        image, target = self.decoded[k] if self.decoded is not None else self.decode(k)
        seed = None if draw is None else draw_seed(self.seed, draw)
        if self.on_device:
            return self._raw(image, target, seed)
        if self.augment is None and self.augment_name != "none":  # built lazily, per worker
            self.augment = build_augmentation(self.augment_name, self.norm.mean_rgb())
        if self.augment is not None:
            if seed is not None:
                self.augment.set_random_seed(seed)
            out = self.augment(image=image, mask=target)
            image, target = out["image"], out["mask"]
        return _sample(image, target, self.norm, self.contour)

    def _raw(self, image: np.ndarray, target: np.ndarray, seed: int | None) -> dict:
        """The device path's item: decoded pixels, the target and the draw's parameters."""
        item = {"pixels": torch.from_numpy(np.array(image, np.uint8)),
                "target": torch.from_numpy(np.array(target)).unsqueeze(0)}
        if self.device_spec is not None:
            item |= sample_params(self.device_spec, image.shape[:2], np.random.default_rng(seed))
        return item


class TrainingDraws(DistributedSampler):
    """The order of ``TrainFrames``: ``(item, draw)`` keys, from any batch of the run on.

    Epoch ``e`` visits the ``n`` items in a permutation seeded by ``seed + e``; draws are
    numbered through the run (``e`` times the padded epoch length plus the position; the number
    seeds the augmentation).
    ``start_batch`` (the batches a resumed run has already trained on) picks up the stream where
    the interrupted run left it: Lightning resumes mid-epoch counting that epoch's batches, but
    a plain shuffled loader would start the epoch over in a new order and with new random draws.
    Replica ``rank`` of ``num_replicas`` (DDP) takes every ``num_replicas``-th item of the
    permutation, padded to a multiple of ``num_replicas`` as ``DistributedSampler`` pads; being
    one, Lightning leaves it in place under DDP. Each ``iter()`` is the next epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, start_batch: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.batch_size, self.next_batch = int(batch_size), int(start_batch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n, replicas = len(self.dataset), self.num_replicas
        epoch, first = divmod(self.next_batch, math.ceil(self.num_samples / self.batch_size))
        self.next_batch = (epoch + 1) * math.ceil(self.num_samples / self.batch_size)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch))
        order = order.repeat(math.ceil(self.total_size / n))[: self.total_size].tolist()
        for position in range(self.rank + first * self.batch_size * replicas, self.total_size,
                              replicas):
            yield order[position], epoch * self.total_size + position


@dataclass(frozen=True)
class Views:
    """The views of an annotated frame that one-shot fine-tuning learns from: ``augment`` (None:
    the data module's ``data.augment``) in ``count`` fixed warps (0: a new warp per sample)."""

    augment: str | None = None
    count: int = 0

    def of(self, source, name: str, samples: int, object_id: int | None = None,
           seed: int = 0) -> FirstFrames:
        """``samples`` views of sequence ``name``'s annotated frame(s) in the video source
        ``source`` (for one object; None: all of them)."""
        return source.first_frames(name, samples, object_id=object_id, seed=seed,
                                   augment=self.augment, views=self.count)


class FirstFrames(Dataset):
    """Annotated frame(s) of one sequence, augmented, repeated ``length`` times (online).

    The frames are decoded once (``annotated_pairs``); with the paper's fixed augmentation set
    all 6 versions per frame are computed and normalised once per sequence, so an iteration
    costs an index lookup rather than a decode and a resize. ``views=N`` does the same for a
    random augmentation (``pytorch``, ``strong``, ``shift``): N warps per frame, drawn once from
    ``seed``, then fixed; ``views=0`` draws a new warp for every sample.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        normalization: Normalization,
        length: int,
        augment: str = "paper",
        seed: int = 0,
        views: int = 0,
    ):
        self.norm, self.length, self.seed = normalization, int(length), seed
        self.pairs = list(pairs)
        #: the object's share of the annotated frame(s): the class balance fine-tuning learns
        self.foreground = float(np.mean([(m > 0).mean() for _, m in self.pairs]))
        self.augment = None
        if augment == "paper":
            self.pairs = [v for img, msk in self.pairs for v in paper_versions(img, msk)]
        elif augment != "none":
            self.augment = build_augmentation(augment, self.norm.mean_rgb())
        self.zoom = augment == "zoom"
        if self.augment is not None and views > 0:
            self.pairs = [self._warp(img, msk, draw_seed(seed, k * int(views) + v))
                          for k, (img, msk) in enumerate(self.pairs) for v in range(int(views))]
            self.augment = None
        # ``view`` names a fixed version, so that fine-tuning can cache what a frozen trunk
        # prefix computes from it (osvos_pl.tasks.finetuning.FineTuning.frozen_stages)
        self.normalised = [_sample(img, msk, self.norm, False) | {"view": j}
                           for j, (img, msk) in enumerate(self.pairs)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng((self.seed, k))
        j = int(rng.integers(len(self.pairs)))
        if self.augment is None:
            return self.normalised[j]
        image, target = self._warp(*self.pairs[j], int(rng.integers(2**32)))
        return _sample(image, target, self.norm, False)

    def _warp(self, image: np.ndarray, target: np.ndarray,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One draw of the augmentation, seeded (``zoom``: an object zoom first)."""
        if self.zoom:
            image, target = object_zoom(image, target, np.random.default_rng(seed))
        self.augment.set_random_seed(seed)
        out = self.augment(image=image, mask=target)
        return out["image"], out["mask"]
