"""``online.near_previous``: each object's mask kept near where it was in the previous frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from osvos_pl.tasks.temporal import follower, keep_near
from osvos_pl.utils.errors import ConfigError
from tests.helpers import cpu_engine, segmenter


def _square(labels: np.ndarray, y: int, x: int, side: int, oid: int = 1) -> np.ndarray:
    labels[y:y + side, x:x + side] = oid
    return labels


def test_a_far_part_is_dropped_and_a_part_within_reach_kept_whole():
    previous = _square(np.zeros((100, 100), np.uint8), 10, 10, 20)  # area 400: reach 0.5 * 20 = 10 px
    now = _square(np.zeros_like(previous), 14, 14, 20)  # the object moved 4 px
    now = _square(now, 36, 10, 4)                       # 6 px below it: within reach
    now = _square(now, 70, 70, 15)                      # a look-alike far away
    kept = keep_near(now, previous, grow=0.5)
    assert (kept[14:34, 14:34] == 1).all() and (kept[36:40, 10:14] == 1).all()
    assert not kept[70:85, 70:85].any()
    # a part that reaches the neighbourhood is kept whole, also where it extends far beyond it
    long = _square(np.zeros_like(previous), 12, 12, 20)
    long[20:24, 30:95] = 1
    assert (keep_near(long, previous, grow=0.5) == long).all()
    # a smaller reach drops the part 6 px away
    assert not keep_near(now, previous, grow=0.2)[36:40, 10:14].any()


def test_each_object_is_judged_by_its_own_previous_mask():
    previous = _square(_square(np.zeros((80, 80), np.uint8), 5, 5, 10, 1), 50, 50, 10, 2)
    now = _square(_square(np.zeros_like(previous), 6, 6, 10, 1), 51, 51, 10, 2)
    now = _square(now, 50, 5, 10, 2)     # object 2 appears where neither was: dropped
    now = _square(now, 5, 50, 10, 3)     # object 3 was not in the previous frame: it may enter
    kept = keep_near(now, previous, grow=0.5)
    assert (kept[6:16, 6:16] == 1).all() and (kept[51:61, 51:61] == 2).all()
    assert not kept[50:60, 5:15].any() and (kept[5:15, 50:60] == 3).all()
    assert keep_near(now, None, grow=0.5) is now  # the first frame: nothing to go by


def test_the_filter_follows_its_own_results_frame_after_frame():
    follow = follower(0.5)
    first = _square(np.zeros((60, 60), np.uint8), 5, 5, 10)
    assert (follow(first) == first).all()
    blob = _square(first.copy(), 40, 40, 10)  # frame 1: a look-alike far away
    assert (follow(blob) == first).all()
    # frame 2: the look-alike again, now beside an object that moved toward it; the previous
    # result (without the blob) is what it is judged by
    moved = _square(_square(np.zeros_like(first), 9, 9, 10), 40, 40, 10)
    assert (follow(moved) == _square(np.zeros_like(first), 9, 9, 10)).all()
    off = follower(None)
    assert off(blob) is blob


@pytest.mark.parametrize("grow", [0, -1.0])
def test_a_reach_that_is_not_positive_is_refused(grow):
    from osvos_pl.model.param_groups import ParamGroups
    from osvos_pl.tasks.finetuning import FineTuning
    from osvos_pl.tasks.segmenter import OneShotSegmenter

    with pytest.raises(ConfigError, match="online.near_previous"):
        follower(grow)
    with pytest.raises(ConfigError, match="online.near_previous"):
        OneShotSegmenter(FineTuning(0, None, ParamGroups({}), None), near_previous=grow,
                         parent=None, engine=cpu_engine(Path(".")))


class _Frames(torch.nn.Module):
    """A stand-in network whose fused output is a given probability map per frame, in order."""

    def __init__(self, probs: list[np.ndarray]):
        super().__init__()
        self.probs = [torch.tensor(p, dtype=torch.float32).clamp(1e-6, 1 - 1e-6) for p in probs]

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        p = self.probs.pop(0)
        return torch.log(p / (1 - p))[None, None].expand(x.shape[0], -1, -1, -1).clone()


def test_the_segmenter_drops_a_look_alike_far_from_the_object():
    frames = [np.full((40, 40), 0.05) for _ in range(3)]
    for i, p in enumerate(frames):
        p[5 + i:15 + i, 5 + i:15 + i] = 0.9   # the object, moving 1 px a frame
    frames[1][28:36, 28:36] = 0.9              # a look-alike in frames 1 and 2
    frames[2][28:36, 28:36] = 0.9
    out = {}
    for grow in (None, 0.5):
        seg = segmenter(cpu_engine(Path(".")))
        seg.share_trunk, seg.near_previous = False, grow  # the stand-in has no trunk to share
        batches = [{"image": torch.zeros(1, 3, 40, 40), "native_hw": torch.tensor([[40, 40]]),
                    "frame": torch.tensor([i])} for i in range(3)]
        out[grow] = [labels for _, labels in seg.segment({1: _Frames(list(frames))}, batches)]
    assert all(labels[28:36, 28:36].all() for labels in out[None][1:])
    for i, labels in enumerate(out[0.5]):
        assert not labels[28:36, 28:36].any()
        assert (labels == (frames[i] > 0.5) * (np.arange(40)[:, None] < 20)).all()
