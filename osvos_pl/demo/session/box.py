"""A box drawn on frame 0 made into one object's mask, by ``grabcut.method``: GrabCut, the
parent's objects, or both; the parent's network is built once and kept while it is chosen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from osvos_pl.demo.session.config import predict_config
from osvos_pl.demo.session.parents import NO_PARENT
from osvos_pl.tasks.first_mask import Box, GrabCut
from osvos_pl.tasks.mask_report import describe_mask

#: ``(parent, predict overrides)`` → ``(network, normalization)``: one parent at a time.
_PRIORS: dict[tuple, tuple] = {}


def apply_grabcut(grabcut: GrabCut, image: np.ndarray, labels: np.ndarray, object_id: int,
                  box: Box, prior: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """``labels`` with object ``object_id`` replaced by the box's mask (``grabcut.method``,
    reading the parent's ``prior`` where it is one of the parent methods); and how it looks
    (``describe_mask``)."""
    mask = grabcut(image, box, prior=prior)
    out = np.where(labels == object_id, 0, labels).astype(np.uint8)
    out[mask] = object_id
    used = grabcut.sees_object(prior, box)
    return out, describe_mask(mask, box, prior if used else None, grabcut.threshold)


def box_prior(grabcut: GrabCut, value: str | None, overrides: Sequence[str],
              image: np.ndarray, work: Path, box: Box | None = None) -> np.ndarray | None:
    """The parent's object probability on ``image`` for the box (``grabcut.method``), from the
    parent the page would run (``value``; None without one), its network built once per parent
    with predict's config (``overrides``); ``box-tuned`` tunes a copy of it on ``box``."""
    if not grabcut.needs_prior or value in (None, "", NO_PARENT):
        return None
    from hydra.utils import instantiate

    from osvos_pl.model.checkpoint import load_checkpoint
    from osvos_pl.utils.normalization import get_normalization

    key = (str(value), tuple(overrides))
    if key not in _PRIORS:
        _PRIORS.clear()  # one parent in memory at a time
        cfg = predict_config([*overrides, f"parent_ckpt={value}"], work)
        net = instantiate(cfg.model, weights=None)
        loaded = load_checkpoint(net, cfg.parent_ckpt, cache_dir=cfg.paths.cache_dir)
        _PRIORS[key] = net, get_normalization(loaded.normalization or net.normalization)
    net, normalization = _PRIORS[key]
    return grabcut.prior(net, normalization, image, box)
