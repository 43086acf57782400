"""The one-shot method as one object: fine-tune a copy of the parent per object, segment a
stream of frames, snap to contours, merge objects (docs/method.md#one-shot-fine-tuning).

DAVIS 2017 and users' multi-object masks: one network per object, each pixel to the object
with the highest probability, background where no probability passes the threshold (the
authors' advice for several objects, docs/method.md#several-objects).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from osvos_pl.model.osvos import native_probabilities
from osvos_pl.model.param_groups import ParamGroups
from osvos_pl.snapping import MASK_THRESHOLD, MIN_SUPERPIXELS, UCM_THRESHOLD, snap_objects
from osvos_pl.tasks.segmentation import SegmentationTask

#: ``(sequence, frame indices, image batch, native (H, W))`` → a contour map per frame (or None)
ContourSource = Callable[[str, Sequence[int], torch.Tensor, tuple[int, int]], list]


class FineTuning:
    """How a copy of the parent learns one object from its annotated frame(s): the fused loss
    alone for ``iterations`` optimizer updates of ``accumulate`` samples each."""

    def __init__(
        self,
        iterations: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        param_groups: ParamGroups,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        accumulate: int = 1,
    ):
        self.iterations, self.accumulate = int(iterations), int(accumulate)
        self.optimizer, self.param_groups, self.loss = optimizer, param_groups, loss

    @property
    def samples(self) -> int:
        """Training samples one fine-tuning draws (the first-frame dataset's length)."""
        return self.iterations * self.accumulate


class OneShotSegmenter:
    """OSVOS on one sequence: ``finetune`` per object, then ``segment`` a frame stream.

    ``engine`` (``osvos_pl.engine.Engine``) supplies trainers, device, precision and memory
    format; ``contours`` (optional) gives each frame's contour map for boundary snapping.
    """

    def __init__(
        self,
        finetuning: FineTuning,
        threshold: float = 0.5,
        ucm_threshold: float = UCM_THRESHOLD,
        snap_mask_threshold: float = MASK_THRESHOLD,
        min_superpixels: int = MIN_SUPERPIXELS,
        *,
        parent: torch.nn.Module,
        engine,
        contours: ContourSource | None = None,
        callbacks: Sequence[pl.Callback] = (),
        progress: bool = True,
    ):
        self.finetuning, self.threshold = finetuning, float(threshold)
        self.ucm_threshold, self.snap_mask_threshold = float(ucm_threshold), float(snap_mask_threshold)
        self.min_superpixels = int(min_superpixels)
        self.parent, self.engine, self.contours = parent, engine, contours
        self.callbacks, self.progress = list(callbacks), progress

    @property
    def snapping(self) -> bool:
        return self.contours is not None

    def finetune(self, datasets: Mapping[int, Dataset]) -> tuple[dict[int, torch.nn.Module], float]:
        """One fine-tuned copy of the parent per object id; returns the nets and total seconds.

        ``iterations=0`` returns copies of the parent unchanged (the -OS ablation).
        """
        nets, seconds = {}, 0.0
        for oid, dataset in datasets.items():
            start = time.perf_counter()
            nets[oid] = self._finetune_one(dataset)
            seconds += time.perf_counter() - start if self.finetuning.iterations else 0.0
        return nets, seconds

    def _finetune_one(self, dataset: Dataset) -> torch.nn.Module:
        net = copy.deepcopy(self.parent)
        ft = self.finetuning
        if ft.iterations == 0:
            return net
        task = SegmentationTask(net, ft.optimizer, ft.param_groups, ft.loss,
                                normalization=getattr(net, "normalization", "imagenet"),
                                deep_supervision=False, log_images=0)
        trainer = self.engine.trainer(
            max_steps=ft.iterations, accumulate_grad_batches=ft.accumulate, logger=False,
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
            callbacks=list(self.callbacks), enable_progress_bar=self.progress, max_epochs=-1,
            devices=1, strategy="auto",
        )
        trainer.fit(task, train_dataloaders=DataLoader(dataset, batch_size=1, shuffle=False,
                                                       num_workers=0))
        return task.net

    def probabilities(self, net: torch.nn.Module, image: torch.Tensor,
                      native: tuple[int, int]) -> np.ndarray:
        """``(B, 3, h, w)`` → ``(B, H, W)`` float32 foreground probability at native size."""
        with self.engine.autocast():
            logits = net.forward_fused(image)
        return native_probabilities(logits, native).cpu().numpy()

    @torch.inference_mode()
    def segment(
        self, nets: Mapping[int, torch.nn.Module], batches: Iterable[dict], sequence: str = "",
    ) -> Iterator[tuple[dict, np.ndarray]]:
        """Yield ``(item, (H, W) uint8 labels)`` per frame in stream order.

        ``item`` holds the batch entries of that frame (``frame``, and ``raw`` when the loader
        provides it) and ``snapped``: None without contours, else ``"snapped"`` or why the frame
        was left as it is (``"no-map"``, or a skip of ``osvos_pl.snapping.snap_objects``).
        """
        ids = np.array(list(nets), np.uint8)
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        for net in nets.values():
            net.eval().to(self.engine.device, memory_format=layout)
        for batch in batches:
            image = batch["image"].to(self.engine.device, non_blocking=True)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
            native = tuple(int(v) for v in batch["native_hw"][0])
            probs = np.stack([self.probabilities(n, image, native) for n in nets.values()])
            snapped = [None] * probs.shape[1]
            if self.contours is not None:
                frames = [int(f) for f in batch["frame"]]
                for b, edges in enumerate(self.contours(sequence, frames, image, native)):
                    if edges is None:
                        snapped[b] = "no-map"
                        continue
                    probs[:, b], status = snap_objects(
                        probs[:, b], edges, self.ucm_threshold, self.snap_mask_threshold,
                        self.threshold, self.min_superpixels)
                    snapped[b] = status.value
            best, owner = probs.max(0), probs.argmax(0)
            labels = np.where(best > self.threshold, ids[owner], 0).astype(np.uint8)
            for b in range(labels.shape[0]):
                item = {k: (v[b] if isinstance(v, (torch.Tensor, list)) else v)
                        for k, v in batch.items() if k != "image"}
                item["snapped"] = snapped[b]
                yield item, labels[b]


class NetworkContours:
    """Contour maps from a contour-branch network (``+experiment=contour``), never fine-tuned."""

    def __init__(self, net: torch.nn.Module, segmenter_engine):
        self.net, self.engine = net, segmenter_engine
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        self.net.eval().to(self.engine.device, memory_format=layout)

    def __call__(self, sequence: str, frames: Sequence[int], image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray]:
        with self.engine.autocast():
            logits = self.net.forward_fused(image)
        return list(native_probabilities(logits, native).cpu().numpy())


class MapContours:
    """Precomputed contour maps on disk (``contour_maps=DIR``), e.g. another detector's output."""

    def __init__(self, maps, frame_names: Callable[[str], Sequence[str]]):
        self.maps, self.frame_names = maps, frame_names

    def __call__(self, sequence: str, frames: Sequence[int], image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray | None]:
        names = self.frame_names(sequence)
        return [self.maps.get(sequence, names[i]) for i in frames]
