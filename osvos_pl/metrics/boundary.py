"""F, the DAVIS boundary measure (contour accuracy), exact to the official evaluation.

Definitions (reference/davis_metrics.md section 3): boundary map = ``seg2bmap`` (a pixel differs
from its right, lower or lower-right neighbour; last row: right only; last column: lower only;
bottom-right pixel 0); tolerance r = ceil(0.008 · image diagonal) pixels (8 at 480p); a
boundary pixel is matched if the other mask's boundary map, dilated by the disk of radius r,
covers it; F = 2PR / (P + R) with the official empty-map rules.

``seg2bmap`` below is the plain numpy definition. ``db_eval_boundary`` computes the same thing
on bit planes (``bitplanes``), several frames per op and only inside the box that holds the
objects, which is what makes it fast.
"""

from __future__ import annotations

import math

import numpy as np

from osvos_pl.metrics.bitplanes import (
    Planes,
    column_mask,
    count_bits,
    dilate_disk,
    pack_rows,
    row_words,
)
from osvos_pl.metrics.inputs import as_frames

BOUND_TH = 0.008
CHUNK_WORDS = 1 << 16  # ~512 kB per plane array: a chunk's working set stays in L2 cache


def seg2bmap(seg) -> np.ndarray:
    """Boundary map of ``(..., H, W)`` masks (non-zero = object), official rules, same shape bool.

    A pixel is on the boundary if it differs from its right, lower or lower-right neighbour; in
    the last row only the right neighbour counts, in the last column only the lower one, and the
    bottom-right pixel is 0. So the image border is never a boundary and an h×w rectangle has
    2(h + w) boundary pixels.
    """
    seg = np.asarray(seg).astype(bool)
    b = np.zeros_like(seg)
    right = seg[..., :, :-1] != seg[..., :, 1:]
    below = seg[..., :-1, :] != seg[..., 1:, :]
    b[..., :-1, :-1] = right[..., :-1, :] | below[..., :, :-1] | (seg[..., :-1, :-1] != seg[..., 1:, 1:])
    b[..., -1, :-1] = right[..., -1, :]
    b[..., :-1, -1] = below[..., :, -1]
    return b


def boundary_radius(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Tolerance in pixels: ``bound_th`` × image diagonal rounded up if < 1, else pixels as given.

    480×854 → 8, 1080×1920 → 18.
    """
    if not bound_th > 0:
        raise ValueError(f"bound_th={bound_th} must be positive (0.008 = the official tolerance)")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(
                f"bound_th={bound_th} pixels is not a whole number; the official disk is only "
                "defined on the pixel grid for integer radii — pass an integer"
            )
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(*shape))


def disk(radius: int) -> np.ndarray:
    """``(2r+1, 2r+1)`` bool footprint with ``dx² + dy² ≤ r²`` (skimage ``disk``; r=8: 197 ones)."""
    d = np.arange(-radius, radius + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius


def _object_box(g: np.ndarray, p: np.ndarray) -> tuple[slice, slice] | None:
    """Rows and byte columns of packed rows that hold every boundary pixel; None if all empty.

    The box reaches one pixel beyond the objects on every side (or to the image edge), so it
    holds the outside pixels that ``seg2bmap`` marks above and left of an object, and its last
    row and column are either the image's or empty — which makes ``seg2bmap`` of the crop equal
    the crop of ``seg2bmap`` (the last-row/column rules give 0 on an empty line either way).
    """
    occupied = g | p
    rows = np.flatnonzero(occupied.max(axis=2).max(axis=0))  # max: SIMD, unlike any() on bytes
    if rows.size == 0:
        return None
    cols = np.flatnonzero(occupied.max(axis=1).max(axis=0))
    h, nbytes = occupied.shape[1:]
    return (
        slice(max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)),
        slice(max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, nbytes)),
    )


def _seg2bmap_planes(seg: Planes, out: np.ndarray, work: list[np.ndarray]) -> None:
    """``seg2bmap`` on bit planes into ``out``, treating the crop as the whole image."""
    words, bits = seg.words, seg.bits
    m_right = np.tile(column_mask(seg, seg.width - 1, seg.height), seg.frames)
    m_below = np.tile(column_mask(seg, seg.width, seg.height - 1), seg.frames)[:-words]
    right, tmp = work[0], work[1][:-words]
    np.right_shift(bits, 1, out=right)
    np.left_shift(bits[1:], 63, out=work[1][:-1])
    right[:-1] |= work[1][:-1]
    np.bitwise_xor(bits, right, out=out)
    out &= m_right
    np.bitwise_xor(bits[:-words], bits[words:], out=tmp)
    tmp &= m_below
    out[:-words] |= tmp
    np.bitwise_xor(bits[:-words], right[words:], out=tmp)
    tmp &= m_below
    tmp &= m_right[:-words]
    out[:-words] |= tmp


def f_from_counts(n_pred, n_gt, matched_pred, matched_gt) -> np.ndarray:
    """F per frame from boundary pixel counts, with the official empty-map rules.

    An empty boundary map has precision (prediction) or recall (GT) 1, so one empty map gives
    F = 0 and two give F = 1; the divisions are done in the official order, bit for bit.
    """
    precision = np.where(n_pred > 0, matched_pred / np.maximum(n_pred, 1).astype(np.float64), 1.0)
    recall = np.where(n_gt > 0, matched_gt / np.maximum(n_gt, 1).astype(np.float64), 1.0)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)


def _chunk_counts(g: np.ndarray, p: np.ndarray, width: int, radius: int) -> np.ndarray:
    """``(4, n)`` counts (gt, pred, matched_gt, matched_pred) for packed rows of n frames."""
    n = g.shape[0]
    box = _object_box(g, p)
    if box is None:
        return np.zeros((4, n), np.int64)
    rows, cols = box
    crop_width = min(cols.stop * 8, width) - cols.start * 8
    gp = Planes.from_rows(g[:, rows, cols], crop_width, radius)
    pp = Planes.from_rows(p[:, rows, cols], crop_width, radius)
    gb, pb, *work = (np.empty_like(gp.bits) for _ in range(6))
    _seg2bmap_planes(gp, gb, work)
    _seg2bmap_planes(pp, pb, work)
    counts = [count_bits(gb, n), count_bits(pb, n)]
    for source, target in ((pb, gb), (gb, pb)):
        covered = dilate_disk(source, gp.words, radius, work)
        covered &= target
        counts.append(count_bits(covered, n))
    return np.stack(counts)


def boundary_counts(g: np.ndarray, p: np.ndarray, width: int, radius: int) -> np.ndarray:
    """Per-frame boundary pixel counts of packed rows (``pack_rows``) of GT ``g`` and pred ``p``.

    Returns ``(4, T) int64``: GT boundary pixels, prediction boundary pixels, GT boundary pixels
    within ``radius`` of the prediction's boundary, and prediction boundary pixels within
    ``radius`` of the GT's. Frames go through in chunks that fit in cache.
    """
    t, h, _ = g.shape
    frame_words = (h + radius) * row_words(width, radius)
    chunk = max(1, CHUNK_WORDS // frame_words)
    parts = [_chunk_counts(g[i : i + chunk], p[i : i + chunk], width, radius) for i in range(0, t, chunk)]
    return np.concatenate(parts, axis=1) if parts else np.zeros((4, 0), np.int64)


def db_eval_boundary(gt, pred, bound_th: float = BOUND_TH) -> np.ndarray:
    """F per frame of ``(H, W)`` or ``(T, H, W)`` masks (non-zero = object), ``(T,) float64``.

    ``bound_th`` < 1 is a fraction of the image diagonal, ≥ 1 whole pixels (official meaning).
    A single ``(H, W)`` frame gives a length-1 array. Accepts numpy arrays or torch tensors.
    """
    gt, pred = as_frames(gt, pred)
    radius = boundary_radius(gt.shape[1:], bound_th)
    n_gt, n_pred, matched_gt, matched_pred = boundary_counts(
        pack_rows(gt), pack_rows(pred), gt.shape[2], radius
    )
    return f_from_counts(n_pred, n_gt, matched_pred, matched_gt)
