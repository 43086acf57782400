"""HED/OSVOS class-balanced sigmoid cross-entropy (docs/method.md#loss).

Foreground is usually a small part of a frame, so each class is weighted by the *other*
class's share: for image i with |Y+| foreground and |Y-| background pixels (|Y| in all),
foreground pixels weigh w+ = |Y-|/|Y| and background pixels w- = |Y+|/|Y|. The weights are
computed per image, as the authors' Caffe layer does (the PyTorch port pools the counts
over the batch; with batch 1, as in the paper, the two agree). An image without foreground
thus contributes zero loss, again as in Caffe.

The weighting moves the loss's optimum: for a pixel whose true foreground probability is q,
the network learns p = w+ q / (w+ q + w- (1 - q)), so p > 0.5 already where q > |Y+|/|Y| (a
tenth, for an object a tenth of the frame): masks come out too large wherever the network is
unsure. :func:`balanced_to_posterior` inverts that map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

REDUCTIONS = ("sum", "mean")

#: How the one-shot segmenter reads probabilities before its threshold: as the network gives
#: them, or as posteriors under the annotated frame's class balance (:func:`balanced_to_posterior`)
CALIBRATIONS = ("none", "prior")


def balanced_to_posterior(prob, foreground: float):
    """Undo the class balancing: ``q = f p / (f p + (1 - f)(1 - p))`` for a network trained with
    the balanced loss on frames whose foreground share is ``f`` (e.g. the annotated frame's).

    ``prob``: probabilities (array or tensor, any shape); ``q > 0.5`` exactly where
    ``p > 1 - f``. ``f`` is clipped to [1e-4, 1 - 1e-4] so that no pixel is forced to a class.
    """
    f = min(max(float(foreground), 1e-4), 1 - 1e-4)
    return f * prob / (f * prob + (1 - f) * (1 - prob))


def class_balanced_bce(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "sum", soft: bool = False
) -> torch.Tensor:
    """Class-balanced BCE of ``(B, 1, H, W)`` logits against a same-shape target in [0, 1].

    The target is binarised with ``>= 0.5`` (as the PyTorch port does), unless ``soft``: then
    a pixel of target y counts y as foreground and 1 - y as background, and the shares are
    the target's mean, ``w+ = 1 - mean(y)``, ``w- = mean(y)`` — the same loss for a 0/1
    target, for distilling a contour detector's probability maps. Per pixel the stable
    BCE-with-logits is used, so any logit magnitude is safe; it is computed in at least
    float32, also for bf16/fp16 logits.

    ``reduction``:
      - ``"sum"``: each image's weighted sum over pixels, then divided by the batch size —
        the reference loss (thousands at 480p), meant for SGD at lr 1e-8.
      - ``"mean"``: each image's weighted mean over pixels, then the batch mean — the same
        loss divided by H*W, for ordinary learning rates (e.g. Adam 1e-5).

    Returns a scalar tensor.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is unknown; choose one of {REDUCTIONS}")
    if logits.shape != target.shape or logits.dim() < 2:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the "
            "same (B, 1, H, W) shape"
        )
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    dims = tuple(range(1, logits.dim()))
    pixels = target[0].numel()
    if soft:
        y = target.to(logits.dtype).clamp(0, 1)
        fg_share = y.sum(dim=dims, keepdim=True) / pixels
        # -(w+ y log p + w- (1 - y) log(1 - p)), with -log p = softplus(-x), -log(1-p) = softplus(x)
        per_pixel = ((1.0 - fg_share) * y * F.softplus(-logits)
                     + fg_share * (1.0 - y) * F.softplus(logits))
    else:
        positive = (target >= 0.5).to(logits.dtype)
        fg_share = positive.sum(dim=dims, keepdim=True) / pixels  # |Y+| / |Y|, per image
        weight = torch.where(positive.bool(), 1.0 - fg_share, fg_share)
        per_pixel = F.binary_cross_entropy_with_logits(logits, positive, weight, reduction="none")
    per_image = per_pixel.sum(dim=dims)
    if reduction == "mean":
        per_image = per_image / pixels
    return per_image.mean()


#: How :func:`class_balanced_ce` shares the weight among the classes present in an image
BALANCES = ("classes", "background")


def class_balanced_ce(logits: torch.Tensor, target: torch.Tensor, reduction: str = "sum",
                      balance: str = "classes") -> torch.Tensor:
    """Class-balanced softmax cross-entropy of ``(B, C, H, W)`` logits (background and C - 1
    objects) against ``(B, 1, H, W)`` or ``(B, H, W)`` class indices (``online.objects=joint``).

    Balanced as :func:`class_balanced_bce` is, per image: class c, of pixel share s_c, weighs
    ``w_c = (1 / s_c) / Σ_j (1 / s_j)`` over the classes present (an absent class weighs 0), so
    every present class carries the same total weight (``balance="classes"``). With
    ``balance="background"`` the background carries half the weight, as in the binary loss
    (``w_0 = 1 - s_0``), and the objects share the other half equally, each by the inverse of its
    share (``w_k = s_0 (1 - s_0) / (K' s_k)`` for K' objects present). With two classes both give
    ``w_1 = s_0`` and ``w_0 = s_1``: the binary loss's weights, and for logits ``[0, x]`` exactly
    ``class_balanced_bce(x)``. An image of one class contributes zero loss, as there.
    ``reduction`` as :func:`class_balanced_bce` (``"sum"`` over pixels, or ``"mean"``), then the
    batch mean. Returns a scalar tensor.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is unknown; choose one of {REDUCTIONS}")
    labels = target[:, 0] if target.dim() == 4 else target
    if logits.dim() != 4 or labels.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"logits {tuple(logits.shape)} must be (B, C, H, W) and target "
                         f"{tuple(target.shape)} (B, 1, H, W) or (B, H, W) class indices")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    classes, labels = logits.shape[1], labels.round().long()
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"target holds class indices outside 0..{classes - 1}")
    pixels = labels[0].numel()
    counts = F.one_hot(labels.flatten(1), classes).sum(1).to(logits.dtype)  # (B, C)
    if balance not in BALANCES:
        raise ValueError(f"balance={balance!r} is unknown; choose one of {BALANCES}")
    inverse = torch.where(counts > 0, pixels / counts.clamp(min=1), torch.zeros_like(counts))
    weights = inverse / inverse.sum(1, keepdim=True)
    if balance == "background":  # background against all objects, as the binary loss
        background = counts[:, :1] / pixels
        objects = (counts[:, 1:] > 0).sum(1, keepdim=True).clamp(min=1)
        weights = torch.cat([1 - background, background * (1 - background) * inverse[:, 1:]
                             / objects], 1)
    if (counts > 0).sum(1).min() < 2:  # an image of one class: no balance to learn
        weights = torch.where((counts > 0).sum(1, keepdim=True) < 2, 0.0, weights)
    per_pixel = F.cross_entropy(logits, labels, reduction="none")  # (B, H, W)
    weight = torch.gather(weights, 1, labels.flatten(1)).view_as(per_pixel)
    per_image = (weight * per_pixel).sum(dim=(1, 2))
    if reduction == "mean":
        per_image = per_image / pixels
    return per_image.mean()
