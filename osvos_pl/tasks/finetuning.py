"""One-shot fine-tuning: how a copy of the parent learns an object from its annotated frame
(docs/method.md#one-shot-fine-tuning): the settings (``FineTuning``), the Lightning module that
trains on the frame's views (``FineTuningTask``), and the frozen stages' output shared by a
sequence's objects (``TrunkPrefixes``)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from osvos_pl.model.osvos import STAGE_ENDS
from osvos_pl.model.param_groups import ParamGroups
from osvos_pl.tasks.segmentation import SegmentationTask
from osvos_pl.utils.errors import ConfigError

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

    What keeps it from forgetting the parent (docs/method.md#one-shot-that-does-not-forget),
    besides the views of the annotated frame it learns from (``osvos_pl.data.datasets.Views``):

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
        l2sp: float = 0.0,
    ):
        self.iterations, self.accumulate = int(iterations), int(accumulate)
        self.l2sp = float(l2sp)
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
