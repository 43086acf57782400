"""SegmentationTask: training the OSVOS network offline (the parent, and the contour branch).

Deep supervision: the loss is ``side_weight * Σ side losses + fused loss`` with the class-balanced
cross-entropy; ``side_weight`` follows the task's ``StagedSchedule``. Validation
segments every frame of the held-out sequences and reports DAVIS J/F (mean, recall, decay).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch

from osvos_pl.data.overlays import overlay
from osvos_pl.metrics import DavisJF
from osvos_pl.model.osvos import freeze_stages, native_probabilities
from osvos_pl.model.param_groups import ParamGroups
from osvos_pl.tasks.schedules import StagedSchedule


class SegmentationTask(pl.LightningModule):
    """The OSVOS network with its loss, optimizer and schedules (``conf/task/parent.yaml``).

    Every argument is an object built at the top (``optimizer``: a ``torch.optim`` factory with
    its settings bound; ``param_groups``: lr multipliers and weight decay; ``loss``: a callable
    ``(logits, target) -> scalar``; ``schedule``: side-loss weight and lr factor per step, or
    None for neither). ``deep_supervision=False`` trains the fused output alone (one-shot).
    ``frozen_stages`` keeps VGG stages 1..k at their starting (ImageNet) weights: with a few
    training sequences the parent then overfits less, and each update is cheaper.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        param_groups: ParamGroups,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        schedule: StagedSchedule | None = None,
        normalization: str = "imagenet",
        threshold: float = 0.5,
        log_images: int = 2,
        deep_supervision: bool = True,
        frozen_stages: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters(
            {"normalization": normalization, "weight_decay": param_groups.weight_decay,
             "frozen_stages": int(frozen_stages),
             "lr_mult": dict(param_groups.lr_mult), "threshold": float(threshold)}
        )
        self.net, self.optimizer_factory, self.param_groups = net, optimizer, param_groups
        self.loss, self.schedule = loss, schedule
        self.threshold, self.log_images = threshold, log_images
        self.deep_supervision = deep_supervision
        freeze_stages(net, int(frozen_stages))
        self.side_weight = 1.0
        self.metric = DavisJF()
        self.last_validation: dict | None = None
        self._images: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images → ``(B, 1, H, W)`` fused logits."""
        return self.net.forward_fused(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image, target = batch["image"], batch["mask"]
        if self.deep_supervision and self.side_weight > 0:
            *sides, fused = self.net(image)
            side_loss = sum(self.loss(s, target) for s in sides)
        else:
            fused, side_loss = self.net.forward_fused(image), torch.zeros((), device=image.device)
        fuse_loss = self.loss(fused, target)
        loss = self.side_weight * side_loss + fuse_loss
        self.log_dict(
            {"train/loss": loss, "train/fuse_loss": fuse_loss, "train/side_weight": self.side_weight},
            prog_bar=False, on_step=True, batch_size=image.shape[0],
        )
        self.log("loss", fuse_loss, prog_bar=True, logger=False, batch_size=image.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        native = tuple(int(v) for v in batch["native_hw"][0])
        pred = native_probabilities(self(batch["image"]), native) > self.threshold
        has = batch["has_label"].bool()
        if has.any():
            self.metric.update(
                pred[has], batch["labels"][has] > 0, batch["seq_id"][has], batch["frame"][has],
                batch["num_frames"][has],
            )
        if len(self._images) < self.log_images and int(batch["frame"][0]) == 1:
            self._images.append((batch, pred[0].cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        result = self.metric.compute()
        self.metric.reset()
        self.last_validation = result
        self.log_dict(
            {f"val/{k}": float(v) for k, v in result["global"].items()}, sync_dist=False,
            prog_bar=False,
        )
        self.log("val_jf", float(result["global"]["J&F-Mean"]), prog_bar=True, logger=False)
        self._log_overlays()

    def _log_overlays(self) -> None:
        images, self._images = self._images, []
        from pytorch_lightning.loggers import WandbLogger

        wandb_logger = next((lg for lg in self.loggers if isinstance(lg, WandbLogger)), None)
        if wandb_logger is None or not images or self.trainer.sanity_checking:
            return
        import wandb

        panels = [
            wandb.Image(overlay(_denormalise(b["image"][0], self.hparams.normalization), p))
            for b, p in images
        ]
        wandb_logger.experiment.log({"val/overlays": panels, "trainer/global_step": self.global_step})

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self.schedule is not None:
            self.side_weight = self.schedule.side_weight(self.global_step)

    def configure_optimizers(self):
        optimizer = self.param_groups.optimizer(self.net, self.optimizer_factory,
                                                include_side=self.deep_supervision)
        if self.schedule is None or not self.schedule.steps_lr:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _denormalise(image: torch.Tensor, normalization: str) -> np.ndarray:
    """Normalised ``(3, H, W)`` tensor back to ``(H, W, 3) uint8`` RGB for display."""
    from osvos_pl.utils.normalization import get_normalization

    norm = get_normalization(normalization)
    x = image.detach().float().cpu() * torch.tensor(norm.std).view(3, 1, 1)
    x = x + torch.tensor(norm.mean).view(3, 1, 1)
    if norm.bgr:
        x = x.flip(0)
    return x.clamp(0, 255).byte().permute(1, 2, 0).numpy()
