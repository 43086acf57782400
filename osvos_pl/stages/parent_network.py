"""The network one-shot fine-tunes: a parent checkpoint (shipped, downloaded or trained here), or
the ImageNet backbone alone (-PN); says in the log what it is and warns where it cannot work."""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

log = logging.getLogger(__name__)


#: What to do instead of fine-tuning a parent that cannot segment real frames.
REAL_PARENT_HINT = (
    "Instead: use the parent shipped with osvos-pl (parent_ckpt=davis2016, trained on DAVIS 2016 "
    "train; no download), train a parent on DAVIS (experiments/ablation.sh DAVIS_ROOT cpu, or "
    "python -m osvos_pl +experiment=parent data.root=DAVIS_ROOT with ImageNet weights), use the "
    "authors' parent (parent_ckpt=osvos-pytorch, downloaded), or parent_ckpt=null to fine-tune "
    "from the ImageNet backbone (model.weights=imagenet, or "
    "model.weights=/path/to/vgg16-397923af.pth offline)")


def parent_network(cfg: DictConfig, real_frames: bool = True) -> tuple[torch.nn.Module, str]:
    """The network to fine-tune: the parent checkpoint, or the ImageNet backbone (-PN).

    On ``real_frames``, a parent that records training on the generated data or from a random
    backbone is warned about once, with what to use instead: its masks there are near chance.
    """
    from osvos_pl.model.checkpoint import (
        describe_training,
        load_checkpoint,
        unsuited_for_real_frames,
    )

    if not cfg.parent_ckpt:
        net = instantiate(cfg.model)
        log.warning("no parent_ckpt: fine-tuning from %s, without a parent network (-PN); "
                    "quality is lower", getattr(net, "weights_source", "model.weights"))
        return net, net.normalization
    net = instantiate(cfg.model, weights=None)  # the checkpoint supplies every weight
    loaded = load_checkpoint(net, cfg.parent_ckpt, cache_dir=cfg.paths.cache_dir)
    net.weights_source = (f"parent checkpoint {describe_parent(cfg.parent_ckpt)} (every weight; "
                          f"{describe_training(loaded.trained_on)})")
    why = unsuited_for_real_frames(loaded.trained_on)
    if why and real_frames:
        log.warning("parent_ckpt=%s was trained %s: on real frames its masks fall far short "
                    "of fine-tuning the ImageNet weights without a parent (README, "
                    "\"Segment your own video\"). %s", cfg.parent_ckpt, why, REAL_PARENT_HINT)
    return net, loaded.normalization or net.normalization


def describe_parent(parent_ckpt: str) -> str:
    """``parent_ckpt`` for the run log: a shipped parent by name, what it is and where its
    checked file lies; any other value as given."""
    from osvos_pl.model.shipped import SHIPPED, is_shipped

    if not is_shipped(parent_ckpt):
        return str(parent_ckpt)
    shipped = SHIPPED[str(parent_ckpt)]
    return f"{shipped.name}: {shipped.about} ({shipped.path}, SHA-256 checked)"
