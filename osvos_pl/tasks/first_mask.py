"""A first-frame mask from a box and/or scribbles, with OpenCV's GrabCut.

One-shot segmentation needs the object named on frame 0; drawing a mask PNG at the video's
exact size in another program is the main obstacle for a user with only a clip. GrabCut
(``cv2.grabCut``: colour GMMs + graph cut) turns a box around the object, or a few foreground /
background points, into a mask offline, with no model to fetch. ``predict box=...`` and the
browser demo both use :class:`GrabCut`, built from ``conf/predict.yaml``'s ``grabcut`` node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from osvos_pl.utils.errors import DataError

Box = tuple[int, int, int, int]
Point = tuple[int, int]


def _pixels(value, count: int) -> list[int]:
    """``count`` pixel coordinates from a list or a ``"a,b,..."`` string, rounded; ValueError or
    TypeError where there are not exactly ``count`` numbers."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != count:
        raise ValueError(f"{len(parts)} values, not {count}")
    return [int(round(float(p))) for p in parts]


def parse_box(value, size: tuple[int, int] | None = None) -> Box:
    """``[x0, y0, x1, y1]`` (or ``"x0,y0,x1,y1"``) in pixels → a box, checked against the frame
    ``size`` ``(H, W)`` where given: corners inside it, x0 < x1 and y0 < y1."""
    try:
        x0, y0, x1, y1 = _pixels(value, 4)
    except (TypeError, ValueError):
        raise DataError(f"box={_shown(value)} is not x0,y0,x1,y1 (four pixel coordinates, e.g. "
                        "box=[40,30,200,150])") from None
    if x0 >= x1 or y0 >= y1:
        raise DataError(f"box={x0},{y0},{x1},{y1} is empty: it needs x0 < x1 and y0 < y1 "
                        "(left, top, right, bottom)")
    if size is not None:
        h, w = size
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise DataError(f"box={x0},{y0},{x1},{y1} leaves the {w}x{h} frame: keep 0 <= x <= {w} "
                            f"and 0 <= y <= {h}")
    return x0, y0, x1, y1


def _shown(value) -> str:
    """A value as the user typed it: ``[1, 2, 3]`` → ``1,2,3``."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return str(value)
    return ",".join(_shown(v) for v in value)


def parse_points(values: Sequence, key: str, size: tuple[int, int] | None = None) -> list[Point]:
    """``[[x, y], ...]`` (or ``["x,y", ...]``) → points, inside the frame ``size`` where given."""
    points = []
    for value in values or ():
        try:
            x, y = _pixels(value, 2)
        except (TypeError, ValueError):
            raise DataError(f"{key} entry {_shown(value)} is not a point x,y (write {key}=[[x,y],...], "
                            f"e.g. {key}=[[120,80],[130,95]])") from None
        if size is not None and not (0 <= x < size[1] and 0 <= y < size[0]):
            raise DataError(f"{key} point {x},{y} is outside the {size[1]}x{size[0]} frame")
        points.append((x, y))
    return points


#: How a box becomes a first mask (``grabcut.method``): GrabCut from the box alone (colour
#: only), the parent's object probability inside the box, GrabCut started from the parent's
#: labels inside the box instead of "everything in the box is probably the object", or the
#: probability of a copy of the parent whose heads were fine-tuned on the frame with the box as
#: their label (``osvos_pl.tasks.box_tuning``).
METHODS = ("grabcut", "parent", "parent+grabcut", "box-tuned")

#: The methods whose mask is a probability inside the box thresholded, with no GrabCut after.
THRESHOLDED = ("parent", "box-tuned")


@dataclass(frozen=True)
class GrabCut:
    """How ``box=`` / ``fg=`` / ``bg=`` become a mask: ``method`` (``METHODS``), ``threshold``
    on the parent's probability (its methods) and the height in px of the frame the parent
    sees (``prior_height``, for :func:`parent_prior`) and the share of the box its mask must
    fill to be used (``min_box_share``, else GrabCut; for ``box-tuned`` also the share of its
    convex hull, ``min_solidity``), ``iterations`` of the GMM/graph-cut loop
    (its k-means start drawn from OpenCV's generator, seeded with ``seed``: the same mask on
    every run),
    ``scribble_radius`` px of the disk each fg/bg point marks as certain; ``box-tuned``'s
    fine-tuning: ``tune_*`` and ``pair_*`` (:class:`~osvos_pl.tasks.box_tuning.BoxTuning`)."""

    iterations: int = 5
    scribble_radius: int = 4
    method: str = "box-tuned"
    threshold: float = 0.5
    prior_height: int = 240
    min_box_share: float = 0.1
    min_solidity: float = 0.35
    seed: int = 0
    tune_steps: int = 50
    tune_lr: float = 1e-3
    tune_margin: float = 0.05
    tune_outside: float = 1.0
    tune_projection: float = 1.0
    tune_pairwise: float = 5.0
    tune_parent: float = 0.5
    pair_dilation: int = 2
    pair_theta: float = 2.0
    pair_tau: float = 0.3

    def __post_init__(self):
        if self.method not in METHODS:
            raise DataError(f"grabcut.method={self.method} is unknown: choose one of "
                            f"{', '.join(METHODS)}")
        bad = self.tuning.problems()
        if not 0 <= self.min_solidity <= 1:
            bad.append(f"grabcut.min_solidity={self.min_solidity} (in [0, 1])")
        if bad:
            raise DataError(f"{'; '.join(bad)}: out of range")

    @property
    def tuning(self):
        """``box-tuned``'s knobs as a :class:`~osvos_pl.tasks.box_tuning.BoxTuning`."""
        from osvos_pl.tasks.box_tuning import BoxTuning

        return BoxTuning(steps=self.tune_steps, lr=self.tune_lr, margin=self.tune_margin,
                         outside=self.tune_outside, projection=self.tune_projection,
                         pairwise=self.tune_pairwise, parent=self.tune_parent,
                         dilation=self.pair_dilation, theta=self.pair_theta, tau=self.pair_tau)

    def prior(self, net, normalization, image: np.ndarray,
              box: Box | None = None) -> np.ndarray | None:
        """The ``(H, W)`` object probability this method reads on ``image`` for ``box``: the
        parent's (:func:`parent_prior`); for ``box-tuned``, where the parent sees an object in
        the box (:meth:`sees_object`), that of its copy fine-tuned on the frame with the box as
        the label (``osvos_pl.tasks.box_tuning``). Where the parent sees no object there, or
        its mask fills less than ``min_solidity`` of its convex hull (a ring or specks: on the
        generated stripes it sees only the object's rim, and a copy tuned from that keeps the
        rim), ``None``: GrabCut works from the box alone."""
        if self.method != "box-tuned" or box is None:
            return parent_prior(net, normalization, image, int(self.prior_height))
        import torch

        from osvos_pl.model.osvos import native_probabilities
        from osvos_pl.tasks.box_tuning import parent_features, scale_box, tune_heads

        small, taps, logit = parent_features(net, normalization, image, int(self.prior_height))
        prior = native_probabilities(logit, image.shape[:2])[0].numpy()
        x0, y0, x1, y1 = box
        if not (self.sees_object(prior, box)
                and solidity(prior[y0:y1, x0:x1] > self.threshold) >= self.min_solidity):
            return None
        tuned = tune_heads(net, small, taps, logit, scale_box(box, image.shape[:2],
                                                              small.shape[:2]), self.tuning)
        with torch.no_grad():
            return native_probabilities(tuned, image.shape[:2])[0].numpy()

    @property
    def needs_prior(self) -> bool:
        """Whether this method reads the parent's probabilities (``prior`` of ``__call__``)."""
        return self.method != "grabcut"

    def sees_object(self, prior: np.ndarray | None, box: Box | None) -> bool:
        """Whether the parent's ``prior`` is used for ``box``: a parent method, and the parent
        sees an object there (above ``threshold`` on at least ``min_box_share`` of the box).
        Where it does not (a kind of object it never learnt, such as the generated stripes),
        GrabCut works from the box alone."""
        if prior is None or box is None or not self.needs_prior:
            return False
        x0, y0, x1, y1 = box
        return float((prior[y0:y1, x0:x1] > self.threshold).mean()) >= self.min_box_share

    def __call__(self, image: np.ndarray, box: Box | None = None, fg: Sequence[Point] = (),
                 bg: Sequence[Point] = (), prior: np.ndarray | None = None) -> np.ndarray:
        """``(H, W) bool`` object mask of the ``(H, W, 3) uint8`` RGB ``image``.

        With a box, outside it is background; inside it is probably foreground, or, given the
        parent's ``(H, W)`` object ``prior`` (:meth:`prior`) and a parent ``method``, foreground
        where the prior is above ``threshold`` (``parent`` / ``box-tuned``: that is the mask;
        ``parent+grabcut``: GrabCut starts from it). Without a box everything is probably
        background. fg / bg points are certain either way. Empty result or nothing to start from: a DataError saying what to
        draw.
        """
        if box is None and not fg:
            raise DataError("GrabCut needs a box around the object or foreground points (fg=)")
        h, w = image.shape[:2]
        mask = np.full((h, w), cv2.GC_PR_BGD if box is None else cv2.GC_BGD, np.uint8)
        use_prior = self.sees_object(prior, box)
        if box is not None:
            x0, y0, x1, y1 = box
            inside = cv2.GC_PR_FGD
            if use_prior:
                inside = np.where(prior[y0:y1, x0:x1] > self.threshold, cv2.GC_PR_FGD,
                                  cv2.GC_PR_BGD)
            mask[y0:y1, x0:x1] = inside
        for points, label in ((bg, cv2.GC_BGD), (fg, cv2.GC_FGD)):
            for x, y in points:
                cv2.circle(mask, (int(x), int(y)), self.scribble_radius, int(label), -1)
        if (mask == cv2.GC_BGD).all() or not ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
            raise DataError("GrabCut needs some background: draw a box smaller than the frame")
        if not (use_prior and self.method in THRESHOLDED):
            bgr = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.setRNGSeed(int(self.seed))
            models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(bgr, mask, None, *models, self.iterations, cv2.GC_INIT_WITH_MASK)
        out = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if not out.any():
            raise DataError("GrabCut found no object: draw the box tighter around it or add "
                            "foreground points (fg=)")
        return out


def solidity(mask: np.ndarray) -> float:
    """The share of its convex hull that the ``(h, w) bool`` mask fills (pixels over the hull
    of their centres: a little above 1 for a solid disk); 0 for an empty mask."""
    points = cv2.findNonZero(mask.astype(np.uint8))
    if points is None:
        return 0.0
    return float(mask.sum()) / max(1.0, cv2.contourArea(cv2.convexHull(points)))


def parent_prior(net, normalization, image: np.ndarray, height: int = 240) -> np.ndarray:
    """The parent's ``(H, W) float32`` object probability on the ``(H, W, 3) uint8`` RGB
    ``image``, run on the frame resized to ``height`` px (the shipped parent learnt from 240p
    frames: objects at the size it knows), ``normalization`` the ``Normalization`` it was
    trained on. The parent has learnt what objects look like, so inside a box it tells the
    object from background of the same colour, which GrabCut alone (colour models) cannot."""
    import torch

    from osvos_pl.data.transforms import resize_pair, scaled_size
    from osvos_pl.model.osvos import native_probabilities

    scale = min(4.0, height / image.shape[0])
    small, _ = resize_pair(image, None, scaled_size(image.shape[:2], scale))
    net.eval()
    with torch.inference_mode():
        logits = net.forward_fused(normalization(small)[None])
        return native_probabilities(logits, image.shape[:2])[0].numpy()
