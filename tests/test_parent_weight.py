"""``online.parent_weight``: the parent keeps a say in each frame's probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from osvos_pl.utils.errors import ConfigError
from tests.helpers import cpu_engine, segmenter


class _Fixed(torch.nn.Module):
    """A stand-in network whose fused output is one probability map, whatever the image."""

    def __init__(self, prob: np.ndarray):
        super().__init__()
        p = torch.tensor(prob, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
        self.register_buffer("logits", torch.log(p / (1 - p))[None, None])

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1).clone()


def _segment(weight: float, finetuned: np.ndarray, parent: np.ndarray, iterations: int = 1,
             objects: int = 1) -> np.ndarray:
    seg = segmenter(cpu_engine(Path(".")))
    seg.share_trunk = False  # the stand-ins have no VGG trunk to share
    seg.finetuning.iterations = iterations
    seg.parent, seg.parent_weight = _Fixed(parent), weight
    batch = {"image": torch.zeros(1, 3, 16, 16), "native_hw": torch.tensor([[16, 16]]),
             "frame": torch.tensor([0])}
    nets = {k + 1: _Fixed(finetuned if k == 0 else np.full((16, 16), 0.01))
            for k in range(objects)}
    (_, labels), = seg.segment(nets, [batch])
    return labels


def test_blend_weighs_the_finetuned_and_the_parent_probabilities():
    ft, parent = np.full((16, 16), 0.05), np.full((16, 16), 0.05)
    ft[:, :8] = 0.9               # fine-tuning is sure of the left half
    parent[:, 4:] = 0.9           # the parent of the right three quarters
    ft[:, 12:] = 0.3              # and fine-tuning half-forgot the rightmost quarter
    # w = 0: the fine-tuned mask; w = 1: the parent's; w = 0.5: where the mean passes 0.5
    assert (_segment(0.0, ft, parent) == (ft > 0.5)).all()
    assert (_segment(1.0, ft, parent) == (parent > 0.5)).all()
    mixed = _segment(0.5, ft, parent).astype(bool)
    assert (mixed == ((ft + parent) / 2 > 0.5)).all()
    assert mixed[:, 4:8].all() and mixed[:, 12:].all() and not mixed[:, :4].any()


def test_no_blend_without_finetuning_and_objects_keep_their_ids():
    ft, parent = np.full((16, 16), 0.05), np.full((16, 16), 0.95)
    # -OS (0 updates): the networks are the parent already, nothing to blend
    assert not _segment(0.5, ft, parent, iterations=0).any()
    ft[:8] = 0.9
    labels = _segment(0.3, ft, parent, objects=2)
    # object 1 keeps its pixels; the parent's evidence alone (0.3 * 0.95) passes nowhere
    assert set(np.unique(labels)) == {0, 1} and (labels[:8] == 1).all()


def test_weight_outside_0_1_is_refused():
    from osvos_pl.model.param_groups import ParamGroups
    from osvos_pl.tasks.finetuning import FineTuning
    from osvos_pl.tasks.segmenter import OneShotSegmenter

    with pytest.raises(ConfigError, match="online.parent_weight"):
        OneShotSegmenter(FineTuning(0, None, ParamGroups({}), None), parent_weight=1.5,
                         parent=None, engine=cpu_engine(Path(".")))


class _Mirrored(torch.nn.Module):
    """A stand-in whose foreground is the image's left columns (x < 5) as it sees them: on a
    mirrored frame it marks the frame's right columns instead."""

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((x.shape[0], 1, *x.shape[-2:]), -5.0)
        logits[..., :5] = 5.0
        return logits + x[:, :1] * 0  # keeps the input's batch size and device


def test_test_flip_averages_each_frame_with_its_mirror_mapped_back():
    seg = segmenter(cpu_engine(Path(".")))
    seg.share_trunk = False
    seg.finetuning.iterations = 1
    batch = {"image": torch.zeros(1, 3, 16, 16), "native_hw": torch.tensor([[16, 16]]),
             "frame": torch.tensor([0])}
    seg.threshold = 0.4
    (_, plain), = seg.segment({1: _Mirrored()}, [batch])
    seg.test_flip = True
    (_, both), = seg.segment({1: _Mirrored()}, [batch])
    # alone: the left five columns; with the mirror: each side has probability ~0.5 on its own
    # side only (the left from the frame, the right from the mirror mapped back), above 0.4
    assert plain[:, :5].all() and not plain[:, 5:].any()
    assert both[:, :5].all() and both[:, 11:].all() and not both[:, 5:11].any()
    seg.threshold = 0.6  # and neither half reaches 0.6: it is a mean, not a union
    (_, strict), = seg.segment({1: _Mirrored()}, [batch])
    assert not strict.any()
