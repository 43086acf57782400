"""The parent fine-tuned on frame 0 with the box as its only label (``grabcut.method=box-tuned``).

The shipped parent, thresholded inside a box, keeps what it takes for objects there: other
objects and clutter inside the box, and a border a few pixels fat (a 240p network; recall
near 1, precision 0.6-0.85 on the DAVIS 2016 train frames). A box says more than "outside is
background", and BoxInst (Tian et al., CVPR 2021) turns it into losses a mask network learns
from without a mask: here they fine-tune a copy of the parent's side heads (prep convs + fuse;
the VGG trunk runs once, frozen) on the one frame, for a few dozen Adam steps:

- ``outside``: pixels outside the box are background (BCE) — negatives that teach the heads
  what of the scene is not the object, inside the box too (poles, statues);
- ``projection``: the mask's maximum over rows must span the box's width, over columns its
  height (dice on the two 1-D projections, BoxInst's tightness term). A user's box is a little
  larger than the object, so the target is the box shrunk by ``margin`` on each side that is not
  the frame's edge, and the band between the two is left out;
- ``pairwise``: neighbours (``dilation`` px apart, 8 directions) of similar colour — Lab
  similarity ``exp(-|dc| / theta) >= tau`` — take the same label (BoxInst's pairwise term: it
  pulls the border onto colour edges);
- ``parent``: BCE towards the parent's own probability inside the box — without it the three
  terms alone let a few runs collapse to an empty mask (the box losses have trivial minima).

Measured on frame 0 of the dev split (five DAVIS 2016 train sequences the parent never saw):
mean IoU 0.659 for the parent's mask, 0.725 tuned (benchmarks/README.md#a-first-mask-from-a-box).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class BoxTuning:
    """The tuning's knobs (``conf/predict.yaml``'s ``grabcut.tune_*`` / ``pair_*``)."""

    steps: int = 50
    lr: float = 1e-3
    margin: float = 0.05
    outside: float = 1.0
    projection: float = 1.0
    pairwise: float = 5.0
    parent: float = 0.5
    dilation: int = 2
    theta: float = 2.0
    tau: float = 0.3

    def problems(self) -> list[str]:
        """Each knob outside its range, as ``name=value (range)``."""
        checks = [("tune_steps", self.steps, self.steps >= 0 and int(self.steps) == self.steps,
                   "an integer >= 0"),
                  ("tune_lr", self.lr, self.lr > 0, "> 0"),
                  ("tune_margin", self.margin, 0 <= self.margin < 0.5, "in [0, 0.5)"),
                  ("pair_dilation", self.dilation,
                   self.dilation >= 1 and int(self.dilation) == self.dilation, "an integer >= 1"),
                  ("pair_theta", self.theta, self.theta > 0, "> 0"),
                  ("pair_tau", self.tau, 0 < self.tau <= 1, "in (0, 1]")]
        checks += [(f"tune_{name}", getattr(self, name), getattr(self, name) >= 0, ">= 0")
                   for name in ("outside", "projection", "pairwise", "parent")]
        return [f"grabcut.{key}={value} ({rule})" for key, value, ok, rule in checks if not ok]


def scale_box(box: Box, size: tuple[int, int], small: tuple[int, int]) -> Box:
    """``box`` on a ``size = (H, W)`` frame → the same box on the ``small = (h, w)`` one."""
    sy, sx = small[0] / size[0], small[1] / size[1]
    x0, y0, x1, y1 = box
    x0, y0 = int(round(x0 * sx)), int(round(y0 * sy))
    return (x0, y0, max(x0 + 1, int(round(x1 * sx))), max(y0 + 1, int(round(y1 * sy))))


def projection_targets(box: Box, size: tuple[int, int], margin: float):
    """The box's two 1-D projections on a ``size = (h, w)`` frame, as ``(tx, ty, keep_x,
    keep_y)``: 1 on the box shrunk by ``margin / (1 + 2 margin)`` of its width / height on each
    side away from the frame's edge (the object, if the box adds ``margin`` of the object's size
    on each side), 0 outside the box; ``keep_*`` leaves out the band between the two."""
    h, w = size
    x0, y0, x1, y1 = box
    k = margin / (1 + 2 * margin)
    sx0, sx1 = x0 + (k * (x1 - x0) if x0 > 0 else 0), x1 - (k * (x1 - x0) if x1 < w else 0)
    sy0, sy1 = y0 + (k * (y1 - y0) if y0 > 0 else 0), y1 - (k * (y1 - y0) if y1 < h else 0)
    xs, ys = torch.arange(w) + 0.5, torch.arange(h) + 0.5
    tx = ((xs >= sx0) & (xs < sx1)).float()
    ty = ((ys >= sy0) & (ys < sy1)).float()
    return tx, ty, (tx > 0) | (xs < x0) | (xs >= x1), (ty > 0) | (ys < y0) | (ys >= y1)


def _offsets(dilation: int) -> list[tuple[int, int]]:
    d = dilation
    return [(dy, dx) for dy in (-d, 0, d) for dx in (-d, 0, d) if (dy, dx) != (0, 0)]


def _shifted(x: torch.Tensor, dy: int, dx: int, d: int) -> torch.Tensor:
    """``(..., h, w)`` → each pixel's neighbour at ``(dy, dx)`` (edge pixels repeated)."""
    h, w = x.shape[-2:]
    pad = F.pad(x.reshape(1, -1, h, w), (d, d, d, d), mode="replicate").reshape(
        *x.shape[:-2], h + 2 * d, w + 2 * d)
    return pad[..., d + dy:d + dy + h, d + dx:d + dx + w]


def similar_neighbours(image: np.ndarray, dilation: int, theta: float, tau: float) -> torch.Tensor:
    """``(8, h, w) bool``: whether each pixel of the ``(h, w, 3) uint8`` RGB ``image`` and its
    neighbour in each direction, ``dilation`` px away, have similar colour:
    ``exp(-|Lab difference| / theta) >= tau`` (BoxInst: theta 2, tau 0.3)."""
    lab = torch.from_numpy(cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2Lab))
    lab = lab.permute(2, 0, 1)
    sims = [torch.exp(-(lab - _shifted(lab, dy, dx, dilation)).norm(dim=0) / theta)
            for dy, dx in _offsets(dilation)]
    return torch.stack(sims) >= tau


def _dice(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 1 - 2 * (p * t).sum() / (p.pow(2).sum() + t.pow(2).sum() + 1e-6)


def box_losses(logit: torch.Tensor, box: Box, similar: torch.Tensor, tuning: BoxTuning,
               parent: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The four terms (module docstring) for an ``(h, w)`` logit map and a ``box`` on it:
    ``similar`` from :func:`similar_neighbours`, ``parent`` the parent's ``(h, w)``
    probability (no ``parent`` term without it)."""
    h, w = logit.shape
    x0, y0, x1, y1 = box
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    terms = {"outside": (F.binary_cross_entropy_with_logits(logit[~inside],
                                                            torch.zeros_like(logit[~inside]))
                         if (~inside).any() else logit.sum() * 0)}
    p = torch.sigmoid(logit)
    tx, ty, keep_x, keep_y = projection_targets(box, (h, w), tuning.margin)
    terms["projection"] = (_dice(p.max(0).values[keep_x], tx[keep_x])
                           + _dice(p.max(1).values[keep_y], ty[keep_y]))
    # log P(same label) = log(p_i p_j + (1 - p_i)(1 - p_j)), in log space for stability
    fg, bg = F.logsigmoid(logit), F.logsigmoid(-logit)
    total, count = logit.sum() * 0, 0
    for k, (dy, dx) in enumerate(_offsets(tuning.dilation)):
        edges = similar[k] & inside
        if edges.any():
            same = torch.logaddexp(fg + _shifted(fg, dy, dx, tuning.dilation),
                                   bg + _shifted(bg, dy, dx, tuning.dilation))
            total = total - same[edges].sum()
            count += int(edges.sum())
    terms["pairwise"] = total / max(count, 1)
    if parent is not None:
        terms["parent"] = F.binary_cross_entropy_with_logits(logit[inside], parent[inside])
    return terms


def parent_features(net, normalization, image: np.ndarray, height: int):
    """The ``(H, W, 3) uint8`` RGB ``image`` resized to ``height`` px (``(h, w, 3)``), the
    parent's four side taps on it (frozen: computed once for every tuning step) and its
    ``(1, 1, h, w)`` logit."""
    from osvos_pl.data.transforms import resize_pair, scaled_size

    scale = min(4.0, height / image.shape[0])
    small, _ = resize_pair(image, None, scaled_size(image.shape[:2], scale))
    net.eval()
    with torch.no_grad():
        taps = [t.float() for t in net.trunk(normalization(small)[None])]
        logit = net._fused([conv(t) for conv, t in zip(net.prep, taps)], small.shape[:2])
    return small, taps, logit


def tune_heads(net, small: np.ndarray, taps: list[torch.Tensor], parent: torch.Tensor, box: Box,
               tuning: BoxTuning) -> torch.Tensor:
    """The ``(1, 1, h, w)`` logit of a copy of ``net`` whose side heads were fine-tuned with
    :func:`box_losses` on the ``(h, w, 3)`` frame ``small`` (its ``taps`` and the parent's logit
    ``parent`` from :func:`parent_features`) for ``box`` (in ``small``'s pixels):
    ``tuning.steps`` Adam steps. ``net`` itself is left as it was (the demo keeps its parent).
    Deterministic on a machine: no augmentation, no sampling."""
    size = small.shape[:2]
    heads = copy.deepcopy(net)
    for param in heads.parameters():
        param.requires_grad_(False)
    params = [p for m in (*heads.prep, heads.fuse) for p in m.parameters()]
    for param in params:
        param.requires_grad_(True)
    similar = similar_neighbours(small, tuning.dilation, tuning.theta, tuning.tau)
    target = torch.sigmoid(parent[0, 0].float()) if tuning.parent else None
    weights = {"outside": tuning.outside, "projection": tuning.projection,
               "pairwise": tuning.pairwise, "parent": tuning.parent}
    optimizer = torch.optim.Adam(params, lr=tuning.lr)
    with torch.enable_grad():
        for _ in range(int(tuning.steps)):
            logit = heads._fused([conv(t) for conv, t in zip(heads.prep, taps)], size)[0, 0]
            terms = box_losses(logit, box, similar, tuning, target)
            loss = sum(weights[k] * v for k, v in terms.items())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return heads._fused([conv(t) for conv, t in zip(heads.prep, taps)], size)
