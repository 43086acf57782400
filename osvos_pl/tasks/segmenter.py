"""The one-shot method on a sequence: fine-tune a copy of the parent per object, segment a
stream of frames, snap to contours, merge objects (docs/method.md#one-shot-fine-tuning).

DAVIS 2017 and users' multi-object masks (docs/method.md#several-objects): ``per-object`` (the
paper's): one network per object, each pixel to the object with the highest probability,
background where no probability passes the threshold (the authors' advice for several objects);
``joint`` (the default for several objects): one network with a K+1-class head for all of
them, each pixel to the most probable class (``osvos_pl.tasks.joint``).
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
from osvos_pl.model.osvos import freeze_stages, widen_head
from osvos_pl.model.prefix import FrozenPrefix, resolve_prefix_mode
from osvos_pl.snapping import MASK_THRESHOLD, MIN_SUPERPIXELS, UCM_THRESHOLD, snap_objects
from osvos_pl.tasks.contour_sources import ContourSource
from osvos_pl.tasks.finetuning import FineTuning, FineTuningTask, TrunkPrefixes
from osvos_pl.tasks.joint import OBJECT_MODES, JointNetwork, blend_parent
from osvos_pl.tasks.loggers import PrefixedLogger
from osvos_pl.tasks.networks import object_probabilities, shared_stages
from osvos_pl.tasks.temporal import checked_reach, follower
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
    ``near_previous`` (``online.near_previous``): each object's parts far from its mask in the
    previous frame are dropped (``osvos_pl.tasks.temporal``); None: every frame alone (the paper).
    ``test_flip`` (``online.test_flip``): every network also sees each frame mirrored, and each
    probability is the mean of the two (the mirror's mapped back): twice the inference, for a
    copy whose views of frame 0 were mirrored only at random.

    ``prefix`` (``online.prefix``): how the frozen stages run, the same for every copy of the
    parent (``osvos_pl.model.prefix``): ``eager`` (each network's own layers), ``compiled``,
    ``int8``, or ``auto``. A compiled or int8 prefix is built once, at its first use, from the
    parent, and serves the fine-tuning views and every frame; ``prefix_images`` (a callable
    returning normalised image batches, e.g. the run's annotated frames) calibrates int8.

    ``objects`` (``online.objects``, ``osvos_pl.tasks.joint.joint_for``): ``per-object``
    (:meth:`finetune`, one binary network per object) or ``joint`` (:meth:`finetune_joint`, one
    network whose head scores background and every object, ``joint_head`` as ``widen_head``,
    trained with ``joint_loss``; the merge is the argmax over the K + 1 classes, ``threshold``
    is not used but with snapping), or ``auto`` (per-object for one object, else joint).
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
        near_previous: float | None = None,
        test_flip: bool = False,
        *,
        parent: torch.nn.Module,
        engine,
        contours: ContourSource | None = None,
        callbacks: Sequence[pl.Callback] = (),
        progress: bool = True,
        share_trunk: bool = True,
        prefix: str = "eager",
        prefix_images: Callable[[], list[torch.Tensor]] | None = None,
        objects: str = "per-object",
        joint_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        joint_head: str = "prep",
    ):
        if objects not in OBJECT_MODES:
            raise ConfigError(f"online.objects={objects!r}; choose one of {OBJECT_MODES}")
        if objects != "per-object" and (calibration != "none" or joint_loss is None):
            raise ConfigError(f"online.objects={objects} needs a joint_loss and online.calibration="
                              "none (the prior calibration is per object; or per-object)")
        self.objects, self.joint_loss, self.joint_head = objects, joint_loss, joint_head
        self.finetuning, self.threshold = finetuning, float(threshold)
        self.ucm_threshold, self.snap_mask_threshold = float(ucm_threshold), float(snap_mask_threshold)
        self.min_superpixels = int(min_superpixels)
        if calibration not in CALIBRATIONS:
            raise ConfigError(f"online.calibration={calibration!r}; choose one of {CALIBRATIONS}")
        self.calibration = calibration
        if not 0.0 <= float(parent_weight) <= 1.0:
            raise ConfigError(f"online.parent_weight={parent_weight} must be in [0, 1] (the "
                              "parent's share of each frame's foreground probability)")
        self.parent_weight, self.near_previous = float(parent_weight), checked_reach(near_previous)
        self.test_flip = bool(test_flip)
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

    def finetune_joint(self, dataset: Dataset, ids: Sequence[int], name: str = "",
                       ) -> tuple[JointNetwork, float]:
        """One fine-tuned copy of the parent for all objects ``ids``, its fused head widened to
        K + 1 classes (``widen_head``), on ``dataset``'s class-index views with ``joint_loss``;
        returns it and its seconds. ``iterations=0``: the widened parent (every object ties)."""
        start = time.perf_counter()
        self._finetunings += 1
        ft = copy.copy(self.finetuning)
        ft.loss = self.joint_loss
        net = widen_head(copy.deepcopy(self.parent), len(ids), self.joint_head)
        net = self.finetune_object(dataset, name or f"sequence{self._finetunings}", net=net, ft=ft)
        seconds = time.perf_counter() - start if ft.iterations else 0.0
        return JointNetwork(net, list(ids)), seconds

    def finetune_object(self, dataset: Dataset, key: str = "",
                        prefixes: TrunkPrefixes | None = None, net: torch.nn.Module | None = None,
                        ft: FineTuning | None = None) -> torch.nn.Module:
        """``net`` (a copy of the parent) fine-tuned on ``dataset`` by ``ft`` (``finetuning``)."""
        net = copy.deepcopy(self.parent) if net is None else net
        ft = ft or self.finetuning
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

    def object_probabilities(self, nets: Sequence[torch.nn.Module], image: torch.Tensor,
                             native: tuple[int, int], shared: int = 0,
                             prefix: FrozenPrefix | None = None) -> np.ndarray:
        """``(K, B, H, W)`` probabilities of ``nets``, their first ``shared`` stages run once
        (``osvos_pl.tasks.networks.object_probabilities``) under the engine's autocast."""
        return object_probabilities(nets, image, native, self.engine.autocast, shared, prefix)

    @torch.inference_mode()
    def segment(
        self, nets: Mapping[int, torch.nn.Module] | JointNetwork, batches: Iterable[dict],
        sequence: str = "", foreground: Mapping[int, float] | None = None,
    ) -> Iterator[tuple[dict, np.ndarray]]:
        """Yield ``(item, (H, W) uint8 labels)`` per frame in stream order.

        ``nets``: one binary network per object id (``finetune``) or one ``JointNetwork``
        (``finetune_joint``). ``item`` holds the batch entries of that frame (``frame``, and
        ``raw`` when the loader provides it) and ``snapped``: None without contours, else
        ``"snapped"`` or why the frame was left as it is (``"no-map"``, or a skip of
        ``osvos_pl.snapping.snap_objects``). With ``calibration="prior"``, each object's
        probabilities are first turned into posteriors under its share of the annotated frame,
        ``foreground[id]`` (``balanced_to_posterior``): the balanced loss's bias toward large
        masks undone before thresholding, snapping and merging.
        """
        joint = isinstance(nets, JointNetwork)
        ids = np.array(nets.ids if joint else list(nets), np.uint8)
        shares = None
        if self.calibration == "prior":
            if foreground is None or set(foreground) != set(nets):
                raise ConfigError("online.calibration=prior needs the annotated frame's "
                                  "foreground share of every object")
            shares = [foreground[oid] for oid in nets]
        blend = self.parent_weight > 0 and self.finetuning.iterations > 0
        networks = [nets.net] if joint else list(nets.values())
        networks, shared, prefix = self._inference_networks(networks + [self.parent] * blend)
        follow = follower(self.near_previous)
        for batch in batches:
            image = batch["image"].to(self.engine.device, non_blocking=True)
            if self.engine.nhwc_inference:
                image = image.contiguous(memory_format=torch.channels_last)
            native = tuple(int(v) for v in batch["native_hw"][0])
            probs = self.object_probabilities(networks, image, native, shared, prefix)
            if self.test_flip:  # the mean with the mirrored frame's maps, mirrored back
                mirrored = self.object_probabilities(networks, image.flip(-1), native, shared, prefix)
                probs = (probs + mirrored[..., ::-1]) / 2
            if blend:
                w = self.parent_weight
                probs = (blend_parent(probs[:-1], probs[-1], w) if joint
                         else (1 - w) * probs[:-1] + w * probs[-1:])
            if shares is not None:
                probs = np.stack([balanced_to_posterior(p, f) for p, f in zip(probs, shares)])
            snapped = self._snap(probs, sequence, batch, image, native)
            # joint: the argmax over the K + 1 classes (background: 1 - the objects' sum)
            floor = 1 - probs.sum(0) if joint and self.contours is None else self.threshold
            labels = np.where(probs.max(0) > floor, ids[probs.argmax(0)], 0).astype(np.uint8)
            for b in range(labels.shape[0]):
                item = {k: (v[b] if isinstance(v, (torch.Tensor, list)) else v)
                        for k, v in batch.items() if k != "image"}
                item["snapped"] = snapped[b]
                yield item, follow(labels[b])

    def _inference_networks(self, networks: list[torch.nn.Module],
                            ) -> tuple[list[torch.nn.Module], int, FrozenPrefix | None]:
        """``networks`` in eval mode on the device, the VGG stages they share and the frozen
        prefix that runs them (None where they were not made from this parent)."""
        layout = torch.channels_last if self.engine.nhwc_inference else torch.preserve_format
        for net in networks:
            net.eval().to(self.engine.device, memory_format=layout)
        shared = shared_stages(networks) if self.share_trunk and len(networks) > 1 else 0
        prefix = self.frozen_prefix
        if prefix is not None and shared_stages([*networks, self.parent]) < prefix.stages:
            prefix = None  # networks not made from this parent: each runs its own stages
        return networks, shared, prefix

    def _snap(self, probs: np.ndarray, sequence: str, batch: dict, image: torch.Tensor,
              native: tuple[int, int]) -> list[str | None]:
        """Snap ``(K, B, H, W)`` ``probs`` in place to each frame's contours; per frame, None
        (no contours), ``"snapped"`` or why it was left as it is."""
        snapped = [None] * probs.shape[1]
        if self.contours is None:
            return snapped
        for b, edges in enumerate(self.contours(sequence, batch, image, native)):
            if edges is None:
                snapped[b] = "no-map"
                continue
            probs[:, b], status = snap_objects(
                probs[:, b], edges, self.ucm_threshold, self.snap_mask_threshold,
                self.threshold, self.min_superpixels)
            snapped[b] = status.value
        return snapped
