"""``DavisJF``: DAVIS J/F as a torchmetrics ``Metric`` for validation loops, DDP included.

Each ``update`` scores its frames at once (J and F are per-frame quantities) and keeps only five
numbers per frame: object id, frame index, sequence length, J, F. ``compute`` gathers them
from every process, keeps one value per (object, frame) — a DistributedSampler pads the last
batches with repeated samples, which must not count twice — drops each object's first and last
frame, and applies the official per-object statistics and global averaging (``summary``).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from osvos_pl.metrics.boundary import BOUND_TH
from osvos_pl.metrics.sequence import jf_per_frame
from osvos_pl.metrics.summary import global_row, object_row

_STATES = ("object_ids", "frame_ids", "num_frames", "j", "f")


class DavisJF(Metric):
    """Official DAVIS J/F over whole sequences, from frames seen in any order and process.

    ``compute()`` returns ``{"global": {"J&F-Mean", "J-Mean", ..., "F-Decay"}, "objects":
    {object_id: {"J-Mean", ..., "F-Decay", "frames"}}}`` with plain Python numbers (the global
    values are NaN when no scored frame was seen). All states are 1-D float64 (ids are exact
    up to 2^53), so empty and filled states gather alike across processes.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, bound_th: float = BOUND_TH, **kwargs):
        super().__init__(**kwargs)
        self.bound_th = bound_th
        for name in _STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        object_ids: torch.Tensor,
        frame_ids: torch.Tensor,
        num_frames: torch.Tensor,
    ) -> None:
        """Score a batch: ``(B, H, W)`` bool/0-1 ``preds`` and ``target``; ``(B,)`` long ids.

        ``object_ids`` names the object (e.g. the sequence index for single-object data),
        ``frame_ids`` the frame's 0-based index in its sequence and ``num_frames`` the
        sequence's length N (frames 0 and N-1 are not scored).
        """
        if preds.shape != target.shape or preds.ndim != 3:
            raise ValueError(
                f"DavisJF.update: preds {tuple(preds.shape)} and target {tuple(target.shape)} "
                "must both be (B, H, W) masks at the annotation's size"
            )
        batch = preds.shape[0]
        for what, ids in (("object_ids", object_ids), ("frame_ids", frame_ids), ("num_frames", num_frames)):
            if ids.shape != (batch,):
                raise ValueError(f"DavisJF.update: {what} must have shape ({batch},), got {tuple(ids.shape)}")
        j, f = jf_per_frame(target, preds, self.bound_th)
        for name, values in zip(_STATES, (object_ids, frame_ids, num_frames, j, f)):
            getattr(self, name).append(torch.as_tensor(values, dtype=torch.float64, device=self.device))

    def _values(self, name: str) -> np.ndarray:
        """A state as one numpy vector (after a DDP sync it is already one tensor)."""
        value = getattr(self, name)
        if isinstance(value, list) and not value:
            return np.empty(0)
        return dim_zero_cat(value).cpu().numpy()

    def compute(self) -> dict:
        obj, frame, length, j, f = (self._values(n) for n in _STATES)
        scored = (frame > 0) & (frame < length - 1)
        obj, frame, j, f = obj[scored].astype(np.int64), frame[scored].astype(np.int64), j[scored], f[scored]
        # unique (object, frame) pairs, first occurrence, sorted by object then frame
        _, first = np.unique(np.stack([obj, frame], axis=1), axis=0, return_index=True)
        obj, j, f = obj[first], j[first], f[first]
        starts = np.flatnonzero(np.diff(obj, prepend=obj[:1] - 1))
        objects = {
            int(obj[a]): object_row(j[a:b], f[a:b])
            for a, b in zip(starts, [*starts[1:], obj.size])
        }
        return {"global": global_row(objects.values()), "objects": objects}
