"""DAVISDataModule: one object that turns ``data.*`` config into the loaders every stage uses."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader

from osvos_pl.data.batch_augment import BatchAugment
from osvos_pl.data.contours import ContourMaps
from osvos_pl.data.datasets import FirstFrames, TrainFrames, TrainingDraws
from osvos_pl.data.davis import DAVISIndex
from osvos_pl.data.generated import GeneratedSpec, ensure_generated
from osvos_pl.data.io import image_size
from osvos_pl.data.masks import binary_target, object_ids, validate_sequence
from osvos_pl.data.sequence import SequenceFrames, read_annotated
from osvos_pl.data.transforms import resize_pair, scaled_size
from osvos_pl.data.workers import loader_options
from osvos_pl.utils.normalization import Normalization, get_normalization


class DAVISDataModule(pl.LightningDataModule):
    """Streams DAVIS frames from disk through worker processes; never loads the dataset.

    ``root=None`` uses the generated default dataset (written once under ``cache_dir``).
    ``sequences`` (explicit names) overrides ``eval_split`` for the evaluated/online sequences;
    ``train_sequences`` overrides ``train_split``. The parent and the contour branch may learn
    from another dataset than the one evaluated: ``train_root`` at ``train_resolution`` (e.g.
    DAVIS 2016 train at 240p beside a 480p val root), at ``train_scale`` (None: the scale at
    which a training frame has the evaluated frames' input size).

    Parent / contour training speed (``benchmarks/bench_data.py``): ``decode_cache`` keeps the
    training frames decoded (``none``, ``memory``, ``mmap`` under ``cache_dir``;
    ``osvos_pl.data.cache``); ``augment_on=device`` has the workers only decode and draw
    parameters, and warps and recolours each batch on the training device after transfer
    (``osvos_pl.data.batch_augment``; Lightning calls :meth:`on_after_batch_transfer`);
    ``pin_memory`` pins batches for asynchronous copies to a GPU.
    """

    def __init__(
        self,
        root: str | None = None,
        year: int = 2016,
        resolution: str = "480p",
        train_split: str | None = "train",
        eval_split: str | None = "val",
        sequences: Sequence[str] | None = None,
        train_sequences: Sequence[str] | None = None,
        scale: float = 1.0,
        batch_size: int = 1,
        eval_batch_size: int = 4,
        num_workers: int = 2,
        augment: str = "paper",
        normalization: str = "imagenet",
        validate: str = "full",
        target: str = "mask",
        cache_dir: str = "~/.cache/osvos_pl",
        generated: dict | None = None,
        annotated_frames: Sequence[int] = (0,),
        contour_maps: str | None = None,
        train_root: str | None = None,
        train_resolution: str | None = None,
        train_scale: float | None = None,
        decode_cache: str = "none",
        augment_on: str = "workers",
        pin_memory: bool = False,
    ):
        super().__init__()
        self.root, self.year, self.resolution = root, int(year), resolution
        self.train_split, self.eval_split = train_split, eval_split
        self.sequences = list(sequences) if sequences else None
        self.train_sequences = list(train_sequences) if train_sequences else None
        self.scale, self.batch_size, self.eval_batch_size = float(scale), batch_size, eval_batch_size
        self.num_workers, self.augment, self.target = num_workers, augment, target
        self.normalization_name, self.validate = normalization, validate
        self.cache_dir, self.generated_spec = cache_dir, dict(generated or {})
        self.annotated_frames = [int(i) for i in annotated_frames]
        self.contour_maps = contour_maps
        self.train_root, self.train_resolution = train_root, train_resolution
        self.train_scale = None if train_scale is None else float(train_scale)
        self.decode_cache, self.augment_on = decode_cache, augment_on
        self.pin_memory = bool(pin_memory)
        self.device_augment: BatchAugment | None = None
        self._annotated: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    @cached_property
    def contour_map_reader(self) -> ContourMaps | None:
        """The contour maps of ``contour_maps``: training targets where ``target=contour_maps``,
        and what the contour branch is also scored against."""
        return ContourMaps(self.contour_maps) if self.contour_maps else None

    @cached_property
    def index(self) -> DAVISIndex:
        root = self.root
        if root is None:
            spec = GeneratedSpec(year=self.year, **self.generated_spec)
            root = ensure_generated(self.cache_dir, spec)
        return DAVISIndex(root, self.resolution, self.year)

    @cached_property
    def train_index(self) -> DAVISIndex:
        """The frames the parent / contour branch learn from (``index`` unless ``train_root``
        or ``train_resolution`` names another)."""
        resolution = self.train_resolution or self.resolution
        if self.train_root is None and resolution == self.resolution:
            return self.index
        root = self.index.root if self.train_root is None else self.train_root
        return DAVISIndex(root, resolution, self.year)

    @property
    def training_scale(self) -> float:
        """``train_scale``, else ``scale`` times the ratio of the two resolutions' heights, so
        that training and evaluated frames reach the network at one size (``scale=0.3`` of 480p
        trains at 0.6 of 240p). Resolutions not named ``<H>p`` keep ``scale``."""
        if self.train_scale is not None:
            return self.train_scale
        eval_h, train_h = _height(self.resolution), _height(self.train_index.resolution)
        return self.scale * eval_h / train_h if eval_h and train_h else self.scale

    def training_data(self) -> str | None:
        """Where the training frames come from, where that is not the evaluated data (None)."""
        if self.train_index is self.index:
            return None
        return (f"{self.train_data_root} at {self.train_index.resolution}, scale "
                f"{self.training_scale:.3g} (validation: {self.data_root} at {self.resolution}, "
                f"scale {self.scale:.3g})")

    @property
    def data_root(self) -> Path:
        return self.index.root

    @property
    def train_data_root(self) -> Path:
        return self.train_index.root

    @property
    def normalization(self) -> Normalization:
        return get_normalization(self.normalization_name)

    def train_names(self) -> list[str]:
        return self.train_index.resolve(self.train_sequences, self.train_split)

    def eval_names(self) -> list[str]:
        return self.index.resolve(self.sequences, self.eval_split)

    def check(self, names: Sequence[str], require_masks: str, first_mask_nonempty: bool,
              training: bool = False) -> None:
        """Validate sequences of the evaluated data (``training``: of the training data) before
        any training (see ``validate_sequence``). The online check (``require_masks="first"``)
        decodes each first annotation once, here, for the whole run (``annotated``)."""
        if self.validate == "none":
            return
        index = self.train_index if training else self.index
        for name in names:
            first = self.annotated(name, 0)[1] if require_masks == "first" and not training \
                else None
            validate_sequence(
                index.sequence(name), self.year, require_masks=require_masks,
                decode=self.validate == "full", first_mask_nonempty=first_mask_nonempty,
                first_mask=first,
            )

    def check_training_maps(self) -> None:
        """The training contour maps (``target=contour_maps``) against the training frames'
        names and size (from headers), before any training."""
        for name in self.train_names():
            frames = self.train_index.sequence(name).frames
            self.contour_map_reader.check(name, [f.stem for f in frames], image_size(frames[0]))

    def annotated(self, name: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Annotated frame ``i`` of ``name`` and its labels, decoded once per run and handed on:
        to the check, the object ids, the fine-tuning views and the frame stream."""
        if (name, i) not in self._annotated:
            self._annotated[name, i] = read_annotated(self.index.sequence(name), i)
        return self._annotated[name, i]

    def _loader(self, dataset, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0 and sampler is not None,
            pin_memory=self.pin_memory,
            drop_last=False, **loader_options(self.num_workers, self._rank()),
        )

    def _rank(self) -> int | None:
        """The global rank Lightning seeds this module's workers with (None: no trainer)."""
        return self.trainer.global_rank if self.trainer is not None else None

    # Sampler 1: every annotated frame of the training sequences (parent / contour), shuffled.
    def train_dataloader(self) -> DataLoader:
        """Seeded by the run's seed (``seed_everything``); in a resumed run it continues from the
        batch the checkpoint was taken at, so the run trains on the very samples an uninterrupted
        one would (``TrainingDraws``)."""
        seed = torch.initial_seed()
        ds = TrainFrames(
            self.train_index, self.train_names(), self.normalization, self.training_scale,
            self.augment,
            self.target, seed=seed,
            contour_maps=self.contour_map_reader, augment_on=self.augment_on,
        )
        ds.keep_decoded(self.decode_cache, self.cache_dir, threads=max(1, self.num_workers))
        self.device_augment = (BatchAugment(ds.device_spec, self.normalization, ds.contour)
                               if ds.on_device else None)
        trainer = self.trainer
        if trainer is None:
            return self._loader(ds, self.batch_size, TrainingDraws(ds, self.batch_size, seed))
        start = trainer.global_step * trainer.accumulate_grad_batches  # checkpoints are taken there
        # Lightning warns that a plain loader cannot resume mid-epoch; this one can
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended "
                                "before the epoch ended")
        return self._loader(ds, self.batch_size, TrainingDraws(
            ds, self.batch_size, seed, start, trainer.world_size, trainer.global_rank))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """A training batch of the device path (``augment_on=device``: it carries ``pixels``)
        augmented and normalised where it now is; every other batch as it came."""
        if self.device_augment is not None and isinstance(batch, dict) and "pixels" in batch:
            return self.device_augment(batch)
        return batch

    # Sampler 3, over the held-out sequences: every frame in order (evaluation in the loop).
    def val_dataloader(self) -> DataLoader:
        names = self.eval_names()
        ds = ConcatDataset([
            SequenceFrames(self.index, n, self.normalization, self.scale, labels=True, seq_id=k)
            for k, n in enumerate(names)
        ])
        return self._loader(ds, 1)

    # Sampler 2: frame 0 (and any extra annotated frames) of one sequence, repeated (online).
    def first_frames(
        self, name: str, length: int, object_id: int | None = None, seed: int = 0,
        frame_ids: Sequence[int] | None = None, augment: str | None = None, views: int = 0,
    ) -> FirstFrames:
        """The annotated frames (``annotated_frames`` unless ``frame_ids``) of ``name`` as a
        fine-tuning dataset of ``length`` samples, for one object (None: all of them), augmented
        by ``augment`` (None: ``self.augment``) in ``views`` fixed warps (``FirstFrames``)."""
        frame_ids = self.annotated_frames if frame_ids is None else frame_ids
        pairs = []
        for i in frame_ids:
            image, labels = self.annotated(name, i)
            target = binary_target(labels, self.year, object_id)
            pairs.append(resize_pair(image, target, scaled_size(image.shape[:2], self.scale)))
        return FirstFrames(pairs, self.normalization, length, augment or self.augment, seed, views)

    # What the online stage asks of any video source (``osvos_pl.data.source.VideoSource``).
    def object_ids(self, name: str) -> list[int]:
        """Objects of the first annotation: [1] for DAVIS 2016, ids 1..K for 2017."""
        return object_ids(self.annotated(name, 0)[1], self.year)

    def is_multi_object(self, name: str) -> bool:
        """Whether predictions are palette ids (2017) rather than one 0/255 object."""
        return self.index.multi_object

    def frame_names(self, name: str) -> list[str]:
        return [f.stem for f in self.index.sequence(name).frames]

    def frame_size(self, name: str) -> tuple[int, int]:
        """Native ``(H, W)`` of the sequence's frames (from the first frame's header)."""
        return image_size(self.index.sequence(name).frames[0])

    def sequence_dataset(self, name: str) -> SequenceFrames:
        """Every frame in order, each decoded once with what the online stage needs of it: the
        network's input, the frame (``raw``) and its annotation as scored (``labels``,
        ``has_label``); annotated frames already decoded (``annotated``) are not read again."""
        decoded = {i: self._annotated[name, i] for i in self.annotated_frames
                   if (name, i) in self._annotated}
        return SequenceFrames(self.index, name, self.normalization, self.scale, labels=True,
                              raw=True, decoded=decoded)

    def sequence_dataloader(self, name: str) -> DataLoader:
        return self._loader(self.sequence_dataset(name), self.eval_batch_size)


def _height(resolution: str) -> int | None:
    """480 for ``"480p"``; None for names that give no height (``Full-Resolution``)."""
    match = re.fullmatch(r"(\d+)p", str(resolution))
    return int(match.group(1)) if match else None
