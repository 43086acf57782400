"""Superpixels from a contour map: watershed, mean-boundary-strength UCM, threshold.

This is steps 2-4 of OSVOS boundary snapping (docs/method.md#boundary-snapping; the authors' MATLAB
``contours2OWT`` -> ``ucm_mean_pb`` -> ``ucm2part``), built on higra's C++ watershed and
average-linkage binary partition tree so that one 480x854 frame takes a fraction of a second.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from osvos_pl.snapping.checks import as_prob_map

UCM_THRESHOLD = 0.29
"""The authors' ``th_ucm``: boundaries whose UCM level is at most this are erased."""


def _higra():
    """higra, imported where snapping runs: a run without snapping (-BS, -OS, predict) needs
    neither the package nor its import time."""
    try:
        import higra
    except ImportError as err:
        raise ImportError("boundary snapping needs higra (pip install higra); runs without "
                          "contour_ckpt / contour_maps do not snap and do not need it") from err
    return higra


@functools.lru_cache(maxsize=4)
def _pixel_graph(shape: tuple[int, int]):
    """4-adjacency graph of an ``(H, W)`` grid; cached because building it costs ~30-100 ms."""
    return _higra().get_4_adjacency_graph(shape)


def superpixels(contour_prob: np.ndarray, ucm_threshold: float = UCM_THRESHOLD) -> np.ndarray:
    """Partition a frame into the regions left after erasing UCM boundaries <= ``ucm_threshold``.

    Args:
        contour_prob: ``(H, W)`` contour probability in [0, 1] (the contour branch's sigmoid).
        ucm_threshold: UCM level at or below which a boundary is removed (MATLAB: ``ucm <= th``).

    Returns:
        ``(H, W) int32`` labels ``0..K-1``; each label is one 4-connected region.

    The steps, and where they depart from the MATLAB code:

    1. *Watershed.* A watershed cut (Cousty et al., PAMI 2009) of the 4-adjacency pixel graph whose
       edge ``(p, q)`` weighs ``max(C[p], C[q])``: every regional minimum of the contour map seeds
       a basin, as in MATLAB's ``watershed(C)``. MATLAB draws 1-pixel watershed lines and later
       moves them onto a double-resolution grid; here boundaries lie *between* pixels from the
       start, so every pixel belongs to a region (what ``ucm2part`` gets by sampling that grid).
       The ``max`` makes an edge that crosses a 1-pixel ridge carry the ridge's value, which is
       the value MATLAB reads on its watershed-line pixels.
    2. *No orientation re-weighting.* MATLAB's OWT fits straight segments to the watershed arcs
       and scales each arc pixel by ``|cos|`` of the angle between the segment and a contour
       orientation that its own code calls "very approximate" (second derivatives of the
       smoothed map). That step is skipped: boundary strength is the raw contour probability.
       It can only lower strengths, mostly on curved or noisy arcs, so our UCM levels are equal
       or slightly higher there, and a few more weak arcs may survive the 0.29 threshold.
    3. *UCM by mean boundary strength* (Arbelaez et al., CVPR 2009). Adjacent regions are merged
       greedily, lowest mean boundary strength first, and the strength between two regions is
       the length-weighted mean over all pixel edges they share, which is exactly
       average-linkage clustering on the region adjacency graph with boundary lengths as
       weights. A boundary's UCM value is the level at which it disappears; this is monotone,
       so cutting the tree at ``ucm_threshold`` gives the same regions as the components of
       ``{ucm <= th}``. Ties are merged in an arbitrary order, as in the MATLAB code.
    """
    contour = as_prob_map("contour_prob", contour_prob)
    if not math.isfinite(ucm_threshold):
        raise ValueError(f"ucm_threshold must be a finite number, got {ucm_threshold!r}")
    hg = _higra()
    graph = _pixel_graph(contour.shape)
    strength = hg.weight_graph(graph, contour, hg.WeightFunction.max)
    basins = hg.labelisation_watershed(graph, strength)
    rag = hg.make_region_adjacency_graph_from_labelisation(graph, basins)
    if rag.num_edges() == 0:
        return np.zeros(contour.shape, np.int32)
    mean_strength = hg.rag_accumulate_on_edges(rag, hg.Accumulators.mean, strength)
    length = hg.rag_accumulate_on_edges(rag, hg.Accumulators.counter, strength)
    tree, level = hg.binary_partition_tree_average_linkage(
        rag, mean_strength, length.astype(np.float64)
    )
    region = hg.labelisation_horizontal_cut_from_threshold(tree, level, ucm_threshold)
    _, region = np.unique(region, return_inverse=True)
    return region[rag.vertex_map].reshape(contour.shape).astype(np.int32)
