"""The one-shot method on a sequence: fine-tune a copy of the parent per object, segment a
stream of frames, snap to contours, merge objects (docs/method.md#one-shot-fine-tuning).

DAVIS 2017 and users' multi-object masks: one network per object, each pixel to the object
with the highest probability, background where no probability passes the threshold (the
authors' advice for several objects, docs/method.md#several-objects).
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import Logger
from torch.utils.data import DataLoader, Dataset

from osvos_pl.model.loss import CALIBRATIONS, balanced_to_posterior
from osvos_pl.model.osvos import STAGE_ENDS, freeze_stages, native_probabilities
from osvos_pl.model.prefix import FrozenPrefix, resolve_prefix_mode
from osvos_pl.snapping import MASK_THRESHOLD, MIN_SUPERPIXELS, UCM_THRESHOLD, snap_objects
from osvos_pl.tasks.contour_sources import ContourSource
from osvos_pl.tasks.finetuning import FineTuning, FineTuningTask, TrunkPrefixes
from osvos_pl.tasks.loggers import PrefixedLogger
from osvos_pl.utils.errors import ConfigError


class OneShotSegmenter:
    """OSVOS on one sequence: ``finetune`` per object, then ``segment`` a frame stream.

    ``engine`` (``osvos_pl.stages.engine.Engine``) supplies trainers, device, precision and memory
    format; ``contours`` (optional) gives each frame's contour map for boundary snapping.
    ``loggers`` (the run's, set by the runner once they exist) get each fine-tuning's loss
    under ``finetune/<sequence>/`` (``finetune/<sequence>_<object>/`` for several objects).

    ``share_trunk`` (``online.share_trunk``): the K objects of a sequence share what their
    networks have in common (docs/method.md#several-objects): the frozen stages' output on the
    views is computed once for all fine-tunings, and at inference the trunk stages that every
    network still has as the parent's run once per frame, only the rest once per object. The
    masks are the same as with ``share_trunk=False`` (each network alone), bit for bit in fp32.

    ``parent_weight`` (``online.parent_weight``, w): each frame's probability is
    ``(1 - w) p_finetuned + w p_parent``; the parent, which has learnt what objects look like,
    keeps a say where the copy that learnt frame 0 has forgotten it (an object that grows,
    turns or changes colour; docs/method.md#one-shot-that-does-not-forget). 0: the paper's.

    ``prefix`` (``online.prefix``): how the frozen stages run, the same for every copy of the
    parent (``osvos_pl.model.prefix``): ``eager`` (each network's own layers), ``compiled``,
    ``int8``, or ``auto``. A compiled or int8 prefix is built once, at its first use, from the
    parent, and serves the fine-tuning views and every frame; ``prefix_images`` (a callable
    returning normalised image batches, e.g. the run's annotated frames) calibrates int8.
    """

    def __init__(
        self,
        finetuning: FineTuning,
        threshold: float = 0.5,
        ucm_threshold: float = UCM_THRESHOLD,
        snap_mask_threshold: float = MASK_THRESHOLD,
        min_superpixels: int = MIN_SUPERPIXELS,
        calibration: str = "none",
        parent_weight: float = 0.0,
        *,
        parent: torch.nn.Module,
        engine,
        contours: ContourSource | None = None,
        callbacks: Sequence[pl.Callback] = (),
        progress: bool = True,
        share_trunk: bool = True,
        prefix: str = "eager",
        prefix_images: Callable[[], list[torch.Tensor]] | None = None,
    ):
        self.finetuning, self.threshold = finetuning, float(threshold)
        self.ucm_threshold, self.snap_mask_threshold = float(ucm_threshold), float(snap_mask_threshold)
        self.min_superpixels = int(min_superpixels)
        if calibration not in CALIBRATIONS:
            raise ConfigError(f"online.calibration={calibration!r}; choose one of {CALIBRATIONS}")
        self.calibration = calibration
        if not 0.0 <= float(parent_weight) <= 1.0:
            raise ConfigError(f"online.parent_weight={parent_weight} must be in [0, 1] (the "
                              "parent's share of each frame's foreground probability)")
        self.parent_weight = float(parent_weight)
        self.parent, self.engine, self.contours = parent, engine, contours
        self.callbacks, self.progress = list(callbacks), progress
        self.share_trunk = bool(share_trunk)
        self.prefix_mode = (resolve_prefix_mode(prefix, engine.device)
                            if finetuning.frozen_stages else "eager")
        self.prefix_images = prefix_images
        self.loggers: Sequence[Logger] = ()
        self._finetunings = 0

    @functools.cached_property
    def frozen_prefix(self) -> FrozenPrefix | None:
        """The frozen stages compiled or quantised once (``prefix``); None for ``eager``."""
        if self.prefix_mode == "eager":
            return None
        prefix = FrozenPrefix(self.parent, self.finetuning.frozen_stages, self.prefix_mode,
                              self.engine.device, self.engine.autocast, self.engine.nhwc_inference)
        if self.prefix_images is not None:
            prefix.calibrate(self.prefix_images())
        return prefix

    @property
    def prefix_timing(self) -> dict:
        """The frozen prefix's mode and its set-up seconds so far (export, calibration and
        compilation: once per process and input shape), for the run record."""
        built = self.__dict__.get("frozen_prefix")
        return {"mode": self.prefix_mode, "stages": self.finetuning.frozen_stages,
                "setup_seconds": built.setup_seconds if built is not None else 0.0}

    @property
    def snapping(self) -> bool:
        return self.contours is not None

    def finetune(self, datasets: Mapping[int, Dataset], name: str = "",
                 ) -> tuple[dict[int, torch.nn.Module], float]:
        """One fine-tuned copy of the parent per object id; returns the nets and total seconds.

        ``name`` (the sequence) names the loss curves in the loggers. ``iterations=0`` returns
        copies of the parent unchanged (the -OS ablation).
        """
        nets, seconds = {}, 0.0
        self._finetunings += 1
        name = name or f"sequence{self._finetunings}"
        prefixes = TrunkPrefixes() if self.share_trunk and len(datasets) > 1 else None
        for oid, dataset in datasets.items():
            start = time.perf_counter()
            key = name if len(datasets) == 1 else f"{name}_{oid}"
            nets[oid] = self.finetune_object(dataset, key, prefixes)
            seconds += time.perf_counter() - start if self.finetuning.iterations else 0.0
        return nets, seconds

    def finetune_object(self, dataset: Dataset, key: str = "",
                      prefixes: TrunkPrefixes | None = None) -> torch.nn.Module:
        net = copy.deepcopy(self.parent)
        ft = self.finetuning
        if ft.iterations == 0:
            return net
        freeze_stages(net, ft.frozen_stages)
        task = FineTuningTask(net, ft, normalization=getattr(net, "normalization", "imagenet"),
                              prefixes=prefixes, frozen_prefix=self.frozen_prefix)
        loggers = [PrefixedLogger(lg, f"finetune/{key}") for lg in self.loggers]
        trainer = self.engine.trainer(
            max_steps=ft.iterations, accumulate_grad_batches=ft.accumulate, logger=loggers or False,
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
            callbacks=list(self.callbacks), enable_progress_bar=self.progress, max_epochs=-1,
            devices=1, strategy="auto",
        )
        # val_dataloaders=[]: the task can validate, but fine-tuning never does (and Lightning
        # would otherwise warn that a validation_step has no val_dataloader)
        trainer.fit(task, train_dataloaders=DataLoader(dataset, batch_size=1, shuffle=False,
                                                       num_workers=0), val_dataloaders=[])
        return task.net

    def probabilities(self, net: torch.nn.Module, image: torch.Tensor,
                      native: tuple[int, int]) -> np.ndarray:
        """``(B, 3, h, w)`` → ``(B, H, W)`` float32 foreground probability at native size."""
        with self.engine.autocast():
            logits = net.forward_fused(image)
        return native_probabilities(logits, native).cpu().numpy()

    def object_probabilities(self, nets: Sequence[torch.nn.Module], image: torch.Tensor,
                             native: tuple[int, int], shared: int = 0,
                             prefix: FrozenPrefix | None = None) -> np.ndarray:
        """``(K, B, H, W)`` float32 probabilities of K networks whose first ``shared`` VGG stages
        are the same (``shared_stages``): those stages run once, in ``prefix`` as far as it
        goes (a frozen prefix of the nets' common stages), the rest on the first network."""
        if not shared and prefix is None:
            return np.stack([self.probabilities(net, image, native) for net in nets])
        size = (image.shape[-2], image.shape[-1])
        with self.engine.autocast():
            if prefix is None:
                start, (taps, x) = shared, nets[0].trunk_prefix(image, shared)
            else:
                start, (taps, x) = prefix.stages, prefix(image)
                if shared > start:
                    start, (taps, x) = shared, nets[0].trunk_stages(taps, x, start, shared)
            logits = [net.forward_fused_from(taps, x, start, size) for net in nets]
        return np.stack([native_probabilities(lg, native).cpu().numpy() for lg in logits])

    @torch.inference_mode()
    def segment(
        self, nets: Mapping[int, torch.nn.Module], batches: Iterable[dict], sequence: str = "",
        foreground: Mapping[int, float] | None = None,
    ) -> Iterator[tuple[dict, np.ndarray]]:
        """Yield ``(item, (H, W) uint8 labels)`` per frame in stream order.

        ``item`` holds the batch entries of that frame (``frame``, and ``raw`` when the loader
        provides it) and ``snapped``: None without contours, else ``"snapped"`` or why the frame
        was left as it is (``"no-map"``, or a skip of ``osvos_pl.snapping.snap_objects``).
        With ``calibration="prior"``, each object's probabilities are first turned into
        posteriors under its share of the annotated frame, ``foreground[id]``
        (``balanced_to_posterior``): the balanced loss's bias toward large masks undone
        before thresholding, snapping and merging.
        """
        ids = np.array(list(nets), np.uint8)
        shares = None
        if self.calibration == "prior":
            if foreground is None or set(foreground) != set(nets):
                raise ConfigError("online.calibration=prior needs the annotated frame's "
                                  "foreground share of every object")
            shares = [foreground[oid] for oid in nets]
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        blend = self.parent_weight > 0 and self.finetuning.iterations > 0
        networks = [*nets.values(), self.parent] if blend else list(nets.values())
        for net in networks:
            net.eval().to(self.engine.device, memory_format=layout)
        shared = shared_stages(networks) if self.share_trunk and len(networks) > 1 else 0
        prefix = self.frozen_prefix
        if prefix is not None and shared_stages([*networks, self.parent]) < prefix.stages:
            prefix = None  # networks not made from this parent: each runs its own stages
        for batch in batches:
            image = batch["image"].to(self.engine.device, non_blocking=True)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
            native = tuple(int(v) for v in batch["native_hw"][0])
            probs = self.object_probabilities(networks, image, native, shared, prefix)
            if blend:
                w = self.parent_weight
                probs = (1 - w) * probs[:-1] + w * probs[-1:]
            if shares is not None:
                probs = np.stack([balanced_to_posterior(p, f) for p, f in zip(probs, shares)])
            snapped = [None] * probs.shape[1]
            if self.contours is not None:
                for b, edges in enumerate(self.contours(sequence, batch, image, native)):
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


def shared_stages(nets: Sequence[torch.nn.Module]) -> int:
    """How many leading VGG stages (0-5) all ``nets`` have with equal weights: the stages
    fine-tuning kept frozen (``online.frozen_stages``), all five for copies of the parent (-OS).
    Compared by value, so a stage is shared only where sharing cannot change a mask; on the first
    network's device (the parent may stay on the CPU while its copies run on a GPU)."""
    first = [dict(layer.named_parameters()) for layer in nets[0].trunk.features]
    others = [list(net.trunk.features) for net in nets[1:]]
    for stage, end in enumerate(STAGE_ENDS):
        begin = STAGE_ENDS[stage - 1] if stage else 0
        for i in range(begin, end):
            for layers in others:
                params = dict(layers[i].named_parameters())
                if any(not torch.equal(w, params[n].to(w.device)) for n, w in first[i].items()):
                    return stage
    return len(STAGE_ENDS)
