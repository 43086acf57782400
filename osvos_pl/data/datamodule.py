"""DAVISDataModule: one object that turns ``data.*`` config into the loaders every stage uses."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader

from osvos_pl.data.contours import ContourMaps
from osvos_pl.data.datasets import (
    FirstFrames,
    SequenceFrames,
    TrainFrames,
    TrainingDraws,
    annotated_pairs,
)
from osvos_pl.data.davis import DAVISIndex
from osvos_pl.data.generated import GeneratedSpec, ensure_generated
from osvos_pl.data.io import read_image, read_mask
from osvos_pl.data.masks import eval_labels, object_ids, validate_sequence
from osvos_pl.data.workers import loader_options
from osvos_pl.normalization import Normalization, get_normalization


class DAVISDataModule(pl.LightningDataModule):
    """Streams DAVIS frames from disk through worker processes; never loads the dataset.

    ``root=None`` uses the generated default dataset (written once under ``cache_dir``).
    ``sequences`` (explicit names) overrides ``eval_split`` for the evaluated/online sequences;
    ``train_sequences`` overrides ``train_split``.
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

    @property
    def data_root(self) -> Path:
        return self.index.root

    @property
    def normalization(self) -> Normalization:
        return get_normalization(self.normalization_name)

    def train_names(self) -> list[str]:
        return self.index.resolve(self.train_sequences, self.train_split)

    def eval_names(self) -> list[str]:
        return self.index.resolve(self.sequences, self.eval_split)

    def check(self, names: Sequence[str], require_masks: str, first_mask_nonempty: bool) -> None:
        """Validate sequences before any training (see ``validate_sequence``)."""
        if self.validate == "none":
            return
        for name in names:
            validate_sequence(
                self.index.sequence(name), self.year, require_masks=require_masks,
                decode=self.validate == "full", first_mask_nonempty=first_mask_nonempty,
            )

    def _loader(self, dataset, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0 and sampler is not None, pin_memory=False,
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
            self.index, self.train_names(), self.normalization, self.scale, self.augment,
            self.target, seed=seed,
            contour_maps=self.contour_map_reader,
        )
        trainer = self.trainer
        if trainer is None:
            return self._loader(ds, self.batch_size, TrainingDraws(ds, self.batch_size, seed))
        start = trainer.global_step * trainer.accumulate_grad_batches  # checkpoints are taken there
        # Lightning warns that a plain loader cannot resume mid-epoch; this one can
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended "
                                "before the epoch ended")
        return self._loader(ds, self.batch_size, TrainingDraws(
            ds, self.batch_size, seed, start, trainer.world_size, trainer.global_rank))

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
        frame_ids: Sequence[int] | None = None, augment: str | None = None,
    ) -> FirstFrames:
        """The annotated frames (``annotated_frames`` unless ``frame_ids``) of ``name`` as a
        fine-tuning dataset of ``length`` samples, for one object (None: all of them)."""
        frame_ids = self.annotated_frames if frame_ids is None else frame_ids
        pairs = annotated_pairs(self.index, name, object_id, frame_ids, self.scale)
        return FirstFrames(pairs, self.normalization, length, augment or self.augment, seed)

    # What the online stage asks of any frame source (this one, and the clip data module).
    def object_ids(self, name: str) -> list[int]:
        """Objects of the first annotation: [1] for DAVIS 2016, ids 1..K for 2017."""
        return object_ids(read_mask(self.index.sequence(name).mask(0)), self.year)

    def is_multi_object(self, name: str) -> bool:
        """Whether predictions are palette ids (2017) rather than one 0/255 object."""
        return self.index.multi_object

    def frame_names(self, name: str) -> list[str]:
        return [f.stem for f in self.index.sequence(name).frames]

    def frame_image(self, name: str, i: int) -> np.ndarray:
        return read_image(self.index.sequence(name).frames[i])

    def ground_truth(self, name: str, i: int) -> np.ndarray | None:
        """Frame ``i``'s annotation as scored (``eval_labels``), None where it has none."""
        path = self.index.sequence(name).masks[i]
        return None if path is None else eval_labels(read_mask(path), self.year)

    def sequence_dataset(self, name: str) -> SequenceFrames:
        return SequenceFrames(self.index, name, self.normalization, self.scale)

    def sequence_dataloader(self, name: str) -> DataLoader:
        return self._loader(self.sequence_dataset(name), self.eval_batch_size)
