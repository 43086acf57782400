"""The shape of a video source: what the online stage asks of the data it segments.

Two implementations: ``DAVISDataModule`` (a DAVIS root, or the generated default) and
``ClipDataModule`` (a user's video or frame folder, for ``predict``). The stage sees only this.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from torch.utils.data import DataLoader, Dataset

from osvos_pl.utils.normalization import Normalization


@runtime_checkable
class VideoSource(Protocol):
    """Sequences with annotated first frames, streamed frame by frame.

    ``sequence_dataloader`` yields batches of ``image`` (the network's input), ``frame``,
    ``native_hw`` and ``raw`` (the decoded frame), plus ``labels`` and ``has_label`` where the
    source has annotations to score against. Each frame and annotation is decoded once per run.
    """

    normalization_name: str

    @property
    def data_root(self) -> Path: ...

    @property
    def normalization(self) -> Normalization: ...

    def eval_names(self) -> list[str]: ...

    def check(self, names: Sequence[str], require_masks: str,
              first_mask_nonempty: bool) -> None: ...

    def object_ids(self, name: str) -> list[int]: ...

    def is_multi_object(self, name: str) -> bool: ...

    def first_frames(self, name: str, length: int, object_id: int | None = None, seed: int = 0,
                     augment: str | None = None, views: int = 0) -> Dataset: ...

    def sequence_dataloader(self, name: str) -> DataLoader: ...

    def frame_names(self, name: str) -> list[str]: ...

    def frame_size(self, name: str) -> tuple[int, int]: ...
