"""Property tests of boundary snapping: the vote, and the superpixels it votes over.

``majority_vote`` must give each superpixel one label (strict majority of its pixels above the
mask threshold, ties to background), never carry a label from one superpixel into another, and
leave a mask alone when every pixel is its own superpixel. ``superpixels`` must return a
partition into 4-connected regions that only gets coarser as the UCM threshold rises.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from osvos_pl.snapping import MASK_THRESHOLD, majority_vote, snap, superpixels

shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))
small_shapes = st.tuples(st.integers(1, 24), st.integers(1, 24))
# probabilities with the thresholds themselves and the ends of [0, 1] drawn often
probabilities = st.one_of(
    st.sampled_from([0.0, MASK_THRESHOLD, np.nextafter(MASK_THRESHOLD, 1.0), 0.5, 1.0]),
    st.floats(0.0, 1.0),
)
thresholds = st.one_of(st.just(MASK_THRESHOLD), st.floats(0.0, 0.99))


def prob_maps(shape: tuple[int, int]):
    return arrays(np.float64, shape, elements=probabilities)


@st.composite
def contour_maps(draw) -> np.ndarray:
    """Contour probabilities: outlines of random strengths over weak noise, or plain noise."""
    shape = draw(small_shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        return rng.random(shape)
    contour = rng.random(shape) * draw(st.floats(0.0, 0.2))
    h, w = shape
    for _ in range(draw(st.integers(1, 6))):
        strength = draw(probabilities)
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        y1, x1 = draw(st.integers(y0, h - 1)), draw(st.integers(x0, w - 1))
        contour[y0, x0 : x1 + 1] = contour[y1, x0 : x1 + 1] = strength  # a rectangle's outline
        contour[y0 : y1 + 1, x0] = contour[y0 : y1 + 1, x1] = strength
    return contour


@st.composite
def label_maps(draw, shape: tuple[int, int]) -> np.ndarray:
    """Superpixel ids: a few regions (random, not necessarily connected) with arbitrary ids."""
    regions = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ids = st.lists(st.integers(0, 10_000), min_size=regions, max_size=regions, unique=True)
    ids = np.array(draw(ids))
    dtype = draw(st.sampled_from([np.int32, np.int64, np.uint16, np.uint8]))
    ids = ids % 256 if dtype == np.uint8 else ids
    return ids[rng.integers(0, regions, shape)].astype(dtype)


def ref_vote(labels: np.ndarray, fg_prob: np.ndarray, threshold: float) -> np.ndarray:
    """Per superpixel: foreground iff strictly more than half of its pixels exceed the threshold."""
    out = np.zeros(labels.shape, bool)
    for k in np.unique(labels):
        region = labels == k
        above = int((fg_prob[region] > threshold).sum())
        out[region] = 2 * above > int(region.sum())
    return out


@given(fg=shapes.flatmap(prob_maps), threshold=thresholds)
def test_one_superpixel_per_pixel_leaves_the_thresholded_mask_unchanged(fg, threshold):
    labels = np.arange(fg.size).reshape(fg.shape)
    assert np.array_equal(majority_vote(labels, fg, threshold), fg > threshold)


@given(data=st.data(), threshold=thresholds)
def test_each_superpixel_takes_its_strict_majority_and_no_label_leaks(data, threshold):
    shape = data.draw(shapes)
    labels, fg = data.draw(label_maps(shape)), data.draw(prob_maps(shape))
    out = majority_vote(labels, fg, threshold)
    assert out.dtype == bool and out.shape == shape
    assert np.array_equal(out, ref_vote(labels, fg, threshold))
    for k in np.unique(labels):
        region = labels == k
        assert out[region].all() or not out[region].any()  # one label per superpixel
        if not (fg[region] > threshold).any():
            assert not out[region].any()  # no vote above threshold: stays background
        if (fg[region] > threshold).all():
            assert out[region].all()


@given(data=st.data())
def test_a_tie_goes_to_background(data):
    half = data.draw(st.integers(1, 200))
    fg = np.array([1.0] * half + [0.0] * half)[None]
    labels = np.zeros(fg.shape, np.int64)
    assert not majority_vote(labels, fg[:, data.draw(st.permutations(range(2 * half)))]).any()


@given(contour=contour_maps(), fg_seed=st.integers(0, 2**32 - 1), power=st.floats(0.2, 5.0))
def test_snapped_mask_is_a_union_of_whole_superpixels(contour, fg_seed, power):
    fg = np.random.default_rng(fg_seed).random(contour.shape) ** power  # mostly fg ... mostly bg
    regions = superpixels(contour)
    out = snap(fg, contour)
    assert np.array_equal(out, ref_vote(regions, fg, MASK_THRESHOLD))


@given(contour=contour_maps(), threshold=st.floats(0.0, 1.0))
def test_superpixels_are_a_partition_into_4_connected_regions_0_to_k_minus_1(contour, threshold):
    regions = superpixels(contour, threshold)
    assert regions.dtype == np.int32 and regions.shape == contour.shape
    k = int(regions.max()) + 1
    assert np.array_equal(np.unique(regions), np.arange(k))
    for label in range(k):
        _, components = ndimage.label(regions == label)  # default structure: 4-connectivity
        assert components == 1


@given(contour=contour_maps(), levels=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2))
def test_a_higher_ucm_threshold_only_merges_regions(contour, levels):
    low, high = sorted(levels)
    fine, coarse = superpixels(contour, low), superpixels(contour, high)
    for label in np.unique(fine):
        assert len(np.unique(coarse[fine == label])) == 1  # each fine region inside one coarse
    assert coarse.max() <= fine.max()


@given(contour=contour_maps(), threshold=st.floats(0.0, 1.0))
def test_a_map_with_every_value_below_the_threshold_is_one_superpixel(contour, threshold):
    """Every boundary's mean strength is then below the threshold, so all of them are erased.

    Strictly below: a boundary exactly at the threshold is kept or erased depending on how the
    mean of its edge strengths rounds (higra's mean of n equal values can exceed them by 1 ulp).
    """
    assert (superpixels(contour * (threshold * 0.999), threshold) == 0).all()
