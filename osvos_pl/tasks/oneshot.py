"""The one-shot method as one object: fine-tune a copy of the parent per object, segment a
stream of frames, snap to contours, merge objects (docs/method.md#one-shot-fine-tuning).

DAVIS 2017 and users' multi-object masks: one network per object, each pixel to the object
with the highest probability, background where no probability passes the threshold (the
authors' advice for several objects, docs/method.md#several-objects).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger
from torch.utils.data import DataLoader, Dataset

from osvos_pl.errors import ConfigError
from osvos_pl.loggers import PrefixedLogger
from osvos_pl.model.loss import CALIBRATIONS, balanced_to_posterior
from osvos_pl.model.osvos import STAGE_ENDS, freeze_stages, native_probabilities
from osvos_pl.model.param_groups import ParamGroups
from osvos_pl.model.prefix import FrozenPrefix, resolve_prefix_mode
from osvos_pl.snapping import MASK_THRESHOLD, MIN_SUPERPIXELS, UCM_THRESHOLD, snap_objects
from osvos_pl.tasks.segmentation import SegmentationTask

#: ``(sequence, frame indices, image batch, native (H, W))`` → a contour map per frame (or None)
ContourSource = Callable[[str, Sequence[int], torch.Tensor, tuple[int, int]], list]
#: ``image -> (side taps, activation)`` of the frozen stages (``OSVOSNet.trunk_prefix``)
Prefix = Callable[[torch.Tensor], tuple[list[torch.Tensor], torch.Tensor]]


class FineTuning:
    """How a copy of the parent learns one object from its annotated frame(s): the fused loss
    alone for ``iterations`` optimizer updates of ``accumulate`` samples each.

    What makes it cheap (docs/method.md#one-shot-fine-tuning):

    - ``frozen_stages`` (0-5): VGG stages 1..k keep their weights. Their output on each fixed
      view of the annotated frame (``data.augment=paper``: 6 views, ``none``: 1) is computed
      once and cached, and the backward pass stops after stage k. With random warps
      (``pytorch``) the prefix still runs every update, without gradients.
    - ``scale``: fine-tune on the views resized by this factor (relative to ``data.scale``;
      inference keeps ``data.scale``).
    - ``scheduler``: ``scheduler(optimizer, total_steps)`` → a per-update lr scheduler (e.g.
      :func:`warmup_cosine`); None keeps the lr constant. ``lr`` (None: the optimizer's own)
      is its peak: one-shot fine-tuning has its own lr, apart from the parent's.

    What keeps it from forgetting the parent (docs/method.md#one-shot-that-does-not-forget):

    - ``augment`` (None: the data module's) and ``views``: the views of the annotated frame
      (``FirstFrames``); random warps fixed once (``views=N``) are cached like the paper's 6.
    - ``l2sp``: the L2-SP penalty ``l2sp * Σ ||w - w_parent||²`` over the trained weights, a
      pull toward the parent's solution (Li et al., ICML 2018).
    """

    def __init__(
        self,
        iterations: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        param_groups: ParamGroups,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        accumulate: int = 1,
        frozen_stages: int = 0,
        scale: float = 1.0,
        scheduler: Callable[[torch.optim.Optimizer, int], object] | None = None,
        lr: float | None = None,
        augment: str | None = None,
        views: int = 0,
        l2sp: float = 0.0,
    ):
        self.iterations, self.accumulate = int(iterations), int(accumulate)
        self.augment, self.views, self.l2sp = augment, int(views), float(l2sp)
        if lr is not None:
            optimizer = functools.partial(optimizer, lr=float(lr))
        self.optimizer, self.param_groups, self.loss = optimizer, param_groups, loss
        self.frozen_stages, self.scale, self.scheduler = int(frozen_stages), float(scale), scheduler
        if not 0 <= self.frozen_stages <= len(STAGE_ENDS):
            raise ConfigError(f"online.frozen_stages={frozen_stages} must be in 0..{len(STAGE_ENDS)} "
                              "(VGG16 stages kept fixed during fine-tuning)")
        if not self.scale > 0:
            raise ConfigError(f"online.finetune_scale={scale} must be > 0")

    @property
    def samples(self) -> int:
        """Training samples one fine-tuning draws (the first-frame dataset's length)."""
        return self.iterations * self.accumulate


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1,
                  final: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over the first ``warmup`` fraction of ``total_steps`` updates, then
    a cosine decay to ``final`` x the lr; every parameter group keeps its lr multiplier."""
    ramp = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = min(1.0, (step - ramp) / max(1, total_steps - ramp))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class TrunkPrefixes:
    """The frozen stages' output on each fixed view, shared by the fine-tunings of one sequence's
    objects (docs/method.md#several-objects).

    Every object of a sequence is fine-tuned on the same views of the same frame (the warps are
    drawn from the sequence's seed, not from the object), through the same frozen stages, so
    their activations are computed for the first object and reused by the others. A view is
    reused only where its image is the same tensor value (``augment=zoom`` zooms into each
    object: its views differ by object and are computed per object).
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, compute: Prefix, key: int | None, image: torch.Tensor,
                 ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``compute(image)``, from the cache where ``key`` holds ``image``."""
        entry = self._entries.get(key) if key is not None else None
        if entry is not None and entry[0].shape == image.shape and torch.equal(entry[0], image):
            return entry[1], entry[2]
        taps, x = compute(image)
        if key is not None and entry is None:
            self._entries[key] = (image, taps, x)
        return taps, x


class FineTuningTask(SegmentationTask):
    """The fused loss on the annotated frame's views, resuming the network after its frozen
    stages from a per-view cache (``FineTuning``), shared with the sequence's other objects
    when ``prefixes`` is given; ``frozen_prefix`` (``osvos_pl.model.prefix.FrozenPrefix``)
    computes those stages instead of the network's own layers."""

    def __init__(self, net: torch.nn.Module, finetuning: FineTuning, normalization: str,
                 prefixes: TrunkPrefixes | None = None, frozen_prefix: Prefix | None = None):
        super().__init__(net, finetuning.optimizer, finetuning.param_groups, finetuning.loss,
                         normalization=normalization, deep_supervision=False, log_images=0)
        self.finetuning, self.prefixes, self.frozen_prefix = finetuning, prefixes, frozen_prefix
        self._views: dict[int, tuple] = {}
        self._anchor = ({n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
                        if finetuning.l2sp > 0 else {})

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        taps, x, size, target = self.prefix(batch)
        logits = self.net.forward_fused_from(taps, x, self.finetuning.frozen_stages, size)
        fuse_loss = self.loss(logits, target)
        loss = fuse_loss + self.finetuning.l2sp * self._distance() if self._anchor else fuse_loss
        self.log_dict({"train/loss": loss, "train/fuse_loss": fuse_loss}, on_step=True,
                      batch_size=1)
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=1)
        return loss

    def _distance(self) -> torch.Tensor:
        """``Σ ||w - w_parent||²`` over the weights fine-tuning trains (L2-SP)."""
        params = dict(self.net.named_parameters())
        return sum(((params[n] - w0) ** 2).sum() for n, w0 in self._anchor.items()
                   if params[n].requires_grad)

    @torch.no_grad()
    def prefix(self, batch: dict) -> tuple[list[torch.Tensor], torch.Tensor, tuple, torch.Tensor]:
        """``(taps, activation, (H, W), target)`` of the batch's view after the frozen stages,
        at the fine-tuning scale; computed once per fixed view (the batch's ``view``)."""
        view = batch.get("view")
        key = int(view[0]) if view is not None and len(view) == 1 else None
        if key in self._views:
            return self._views[key]
        image, target = batch["image"], batch["mask"]
        if self.finetuning.scale != 1.0:
            image, target = _rescale(image, target, self.finetuning.scale)
        if self.net.trunk.features[0].weight.is_contiguous(memory_format=torch.channels_last):
            image = image.contiguous(memory_format=torch.channels_last)
        compute = self.frozen_prefix or functools.partial(
            self.net.trunk_prefix, stages=self.finetuning.frozen_stages)
        taps, x = (self.prefixes(compute, key, image) if self.prefixes is not None
                   else compute(image))
        entry = (taps, x, (image.shape[-2], image.shape[-1]), target)
        if key is not None:
            self._views[key] = entry
        return entry

    def configure_optimizers(self):
        optimizer = super().configure_optimizers()
        if self.finetuning.scheduler is None:
            return optimizer
        scheduler = self.finetuning.scheduler(optimizer, self.finetuning.iterations)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _rescale(image: torch.Tensor, target: torch.Tensor,
             scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, 3, h, w)`` images (bilinear, antialiased) and ``(B, 1, h, w)`` 0/1 targets
    (nearest) resized by ``scale``."""
    size = tuple(max(1, round(v * scale)) for v in image.shape[-2:])
    image = F.interpolate(image, size=size, mode="bilinear", antialias=scale < 1)
    return image, F.interpolate(target, size=size, mode="nearest")


class OneShotSegmenter:
    """OSVOS on one sequence: ``finetune`` per object, then ``segment`` a frame stream.

    ``engine`` (``osvos_pl.engine.Engine``) supplies trainers, device, precision and memory
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


class NetworkContours:
    """Contour maps from a contour-branch network (``+experiment=contour``), never fine-tuned.

    ``frames`` (optional, ``(sequence, i) -> (3, h, w)`` normalised tensor) gives the branch its
    own input, e.g. at a larger scale than the segmentation's (``online.contour_scale``): the
    snapping follows the map's edges, and a map computed small and upsampled has blurred ones.
    Without it the branch sees the segmentation's input.
    """

    def __init__(self, net: torch.nn.Module, segmenter_engine,
                 frames: Callable[[str, int], torch.Tensor] | None = None):
        self.net, self.engine, self.frames = net, segmenter_engine, frames
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        self.net.eval().to(self.engine.device, memory_format=layout)

    def __call__(self, sequence: str, frames: Sequence[int], image: torch.Tensor,
                 native: tuple[int, int]) -> list[np.ndarray]:
        if self.frames is not None:
            image = torch.stack([self.frames(sequence, i) for i in frames]).to(self.engine.device)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
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
