"""Property tests of the DAVIS metrics against a slow, direct reading of the official definitions.

The reference functions below follow reference/davis_metrics.md literally — a pixel loop for
``seg2bmap``, pairwise distances for the disk tolerance, exact fractions for the decay bins — and
share no code with ``osvos_pl.metrics`` (whose fast path packs bits, crops to the objects and
dilates with shifted words). Hypothesis draws masks of awkward sizes (1 pixel to 40×40, and thin
frames up to 150 wide so that rows span several 64-bit words), related and unrelated pairs, and
whole label sequences.
"""

from __future__ import annotations

import math
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from osvos_pl.metrics import (
    STAT_KEYS,
    DavisJF,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    decay_edges,
    evaluate_sequence,
    jf_per_frame,
    seg2bmap,
    summarize,
)
from osvos_pl.metrics import boundary as boundary_module
from osvos_pl.metrics.boundary import boundary_radius
from osvos_pl.utils.errors import DataError

# ---- the official definitions, written out slowly ----------------------------------------------


def ref_seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Section 3.1: a pixel differs from its right, lower, lower-right neighbour (border rules)."""
    m = np.asarray(mask).astype(bool)
    h, w = m.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                neighbours = [(y, x + 1)]
            elif x == w - 1:
                neighbours = [(y + 1, x)]
            else:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            out[y, x] = any(m[q] != m[y, x] for q in neighbours)
    return out


def ref_radius(shape: tuple[int, int], bound_th: float) -> int:
    """Section 3.2: pixels if ``bound_th`` >= 1, else ceil(bound_th × diagonal of the shape)."""
    return int(bound_th) if bound_th >= 1 else int(np.ceil(bound_th * np.linalg.norm(shape)))


def ref_matched(points: np.ndarray, others: np.ndarray, radius: int) -> int:
    """How many of ``points`` lie within the disk dx² + dy² <= r² of some point of ``others``."""
    if len(points) == 0 or len(others) == 0:
        return 0
    d2 = ((points[:, None, :] - others[None, :, :]) ** 2).sum(axis=2)
    return int((d2.min(axis=1) <= radius * radius).sum())


def ref_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """Section 3: precision/recall of boundary pixels within tolerance, empty rules, 2PR/(P+R)."""
    radius = ref_radius(pred.shape, bound_th)
    pb, gb = np.argwhere(ref_seg2bmap(pred)), np.argwhere(ref_seg2bmap(gt))
    n_p, n_g = len(pb), len(gb)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = ref_matched(pb, gb, radius) / float(n_p)
    recall = ref_matched(gb, pb, radius) / float(n_g)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def ref_j(gt: np.ndarray, pred: np.ndarray) -> float:
    """Section 2: |P ∩ G| / |P ∪ G| on non-zero pixels; 1 when both are empty."""
    g, p = np.asarray(gt) != 0, np.asarray(pred) != 0
    union = int((g | p).sum())
    return 1.0 if union == 0 else int((g & p).sum()) / union


def ref_edges(length: int) -> list[int]:
    """Section 4: 0-based edges round_half_up(1 + i (L - 1) / 4) - 1, i = 0..4, computed exactly."""
    return [math.floor(1 + Fraction(i * (length - 1), 4) + Fraction(1, 2)) - 1 for i in range(5)]


def ref_statistics(x: list[float]) -> tuple[float, float, float]:
    """Section 4: mean, fraction strictly above 0.5, mean of first bin - mean of last bin."""
    e = ref_edges(len(x))
    first, last = x[e[0] : e[1] + 1], x[e[3] : e[4] + 1]
    return (
        sum(x) / len(x),
        sum(v > 0.5 for v in x) / len(x),
        sum(first) / len(first) - sum(last) / len(last),
    )


def ref_sequence(gt: np.ndarray, pred: np.ndarray, multi_object: bool) -> dict[int, dict]:
    """Sections 1 and 5: frames 1..N-2; 2016: any non-zero; 2017: ids 1..K of frame 0, 255 void."""
    scored = range(1, len(gt) - 1)
    if not multi_object:
        ids, pick = [1], (lambda labels, k: labels != 0)
    else:
        first = [int(v) for v in gt[0].ravel() if v != 255]
        ids, pick = list(range(1, max(first, default=0) + 1)), (lambda labels, k: labels == k)
    return {
        k: {
            "J": [ref_j(pick(gt[i], k), pick(pred[i], k)) for i in scored],
            "F": [ref_f(pick(gt[i], k), pick(pred[i], k)) for i in scored],
        }
        for k in ids
    }


# ---- strategies -------------------------------------------------------------------------------

square_shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))
wide_shapes = st.tuples(st.integers(1, 6), st.integers(56, 150))  # rows span 1-3 words
shapes = st.one_of(square_shapes, wide_shapes)
densities = st.floats(0.05, 0.95)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def masks(draw, shape: tuple[int, int]) -> np.ndarray:
    """A union of rectangles, random noise, a few scattered pixels, all empty or all full."""
    h, w = shape
    kind = draw(st.sampled_from(["rectangles"] * 3 + ["noise"] * 2 + ["pixels", "empty", "full"]))
    if kind == "noise":
        return np.random.default_rng(draw(seeds)).random(shape) < draw(densities)
    if kind == "pixels":
        return draw(arrays(np.bool_, shape))
    if kind in ("empty", "full"):
        return np.full(shape, kind == "full")
    mask = np.zeros(shape, bool)
    for _ in range(draw(st.integers(1, 3))):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        mask[y0 : y0 + draw(st.integers(1, h)), x0 : x0 + draw(st.integers(1, w))] = True
    return mask


def shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels (|dy|, |dx| <= 4), background coming in from the border."""
    h, w = mask.shape
    padded = np.pad(mask, 4)
    return padded[4 - dy : 4 - dy + h, 4 - dx : 4 - dx + w].copy()


@st.composite
def related(draw, gt: np.ndarray) -> np.ndarray:
    """A prediction for ``gt``: itself, shifted, with flipped pixels, or unrelated."""
    kinds = ["shifted"] * 3 + ["flipped pixels"] * 2 + ["unrelated"] * 2 + ["same"]
    kind = draw(st.sampled_from(kinds))
    if kind == "same":
        return gt.copy()
    if kind == "shifted":
        offsets = st.tuples(st.integers(-4, 4), st.integers(-4, 4)).filter(lambda d: d != (0, 0))
        return shifted(gt, *draw(offsets))
    if kind == "flipped pixels":
        rng = np.random.default_rng(draw(seeds))
        return gt ^ (rng.random(gt.shape) < draw(st.floats(0.01, 0.3)))
    return draw(masks(gt.shape))


@st.composite
def mask_pairs(draw, shape_strategy=shapes) -> tuple[np.ndarray, np.ndarray]:
    gt = draw(masks(draw(shape_strategy)))
    return gt, draw(related(gt))


@st.composite
def frame_stacks(draw, max_frames: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W)`` GT and prediction stacks of one shape."""
    shape = draw(square_shapes)
    gts, preds = [], []
    for _ in range(draw(st.integers(1, max_frames))):
        gt = draw(masks(shape))
        gts.append(gt)
        preds.append(draw(related(gt)))
    return np.stack(gts), np.stack(preds)


# mostly tolerances of 1-3 pixels, small against the masks, where F is neither 0 nor 1
bound_ths = st.one_of(st.just(0.008), st.floats(0.005, 0.05), st.integers(1, 3), st.integers(4, 12))
scores = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1))


# ---- seg2bmap and the tolerance -----------------------------------------------------------------


@given(mask=shapes.flatmap(masks))
def test_seg2bmap_is_the_official_neighbour_rule(mask):
    assert np.array_equal(seg2bmap(mask), ref_seg2bmap(mask))


@given(stacks=frame_stacks())
def test_seg2bmap_of_a_stack_is_the_stack_of_per_frame_maps(stacks):
    gt, _ = stacks
    assert np.array_equal(seg2bmap(gt), np.stack([ref_seg2bmap(g) for g in gt]))


@given(shape=st.tuples(st.integers(3, 40), st.integers(3, 40)), data=st.data())
def test_rectangle_clear_of_the_image_border_has_2_h_plus_w_boundary_pixels(shape, data):
    h, w = shape
    y0 = data.draw(st.integers(1, h - 2))
    x0 = data.draw(st.integers(1, w - 2))
    y1, x1 = data.draw(st.integers(y0 + 1, h - 1)), data.draw(st.integers(x0 + 1, w - 1))
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    assert seg2bmap(mask).sum() == 2 * ((y1 - y0) + (x1 - x0))


@given(
    shape=st.tuples(st.integers(1, 5000), st.integers(1, 5000)),
    bound_th=st.one_of(st.floats(1e-4, 0.999), st.integers(1, 40)),
)
def test_tolerance_radius_is_the_official_one(shape, bound_th):
    assert boundary_radius(shape, bound_th) == ref_radius(shape, bound_th)


# ---- J ---------------------------------------------------------------------------------------


@given(pair=mask_pairs())
def test_j_equals_the_direct_definition_and_is_a_symmetric_score_in_0_1(pair):
    gt, pred = pair
    j = db_eval_iou(gt, pred)
    assert j.shape == (1,) and j.dtype == np.float64
    assert j[0] == ref_j(gt, pred)
    assert 0.0 <= j[0] <= 1.0
    assert db_eval_iou(pred, gt)[0] == j[0]


@given(mask=shapes.flatmap(masks))
def test_j_of_a_mask_with_itself_is_1_and_with_its_complement_0(mask):
    assert db_eval_iou(mask, mask)[0] == 1.0  # also when both are empty
    assert db_eval_iou(mask, ~mask)[0] == 0.0
    if mask.any():
        assert db_eval_iou(mask, np.zeros_like(mask))[0] == 0.0


# ---- F ---------------------------------------------------------------------------------------


@given(pair=mask_pairs(), bound_th=bound_ths)
def test_f_equals_the_direct_definition_bit_for_bit(pair, bound_th):
    gt, pred = pair
    f = db_eval_boundary(gt, pred, bound_th)
    assert f.shape == (1,) and f.dtype == np.float64
    assert f[0] == ref_f(gt, pred, bound_th)


@given(pair=mask_pairs(), bound_th=bound_ths)
def test_f_is_a_symmetric_score_in_0_1(pair, bound_th):
    gt, pred = pair
    f = db_eval_boundary(gt, pred, bound_th)[0]
    assert 0.0 <= f <= 1.0
    assert db_eval_boundary(pred, gt, bound_th)[0] == f


@given(mask=shapes.flatmap(masks), bound_th=bound_ths)
def test_f_of_a_mask_with_itself_is_1(mask, bound_th):
    assert db_eval_boundary(mask, mask, bound_th)[0] == 1.0


@given(mask=shapes.flatmap(masks), full=st.booleans())
def test_f_is_0_when_only_one_mask_has_a_boundary(mask, full):
    assume(ref_seg2bmap(mask).any())
    no_boundary = np.full(mask.shape, full)  # empty and full-frame masks have no boundary pixel
    assert db_eval_boundary(mask, no_boundary)[0] == 0.0
    assert db_eval_boundary(no_boundary, mask)[0] == 0.0


@given(pair=mask_pairs(), radii=st.lists(st.integers(1, 15), min_size=2, max_size=2))
def test_f_never_drops_when_the_tolerance_grows(pair, radii):
    gt, pred = pair
    small, large = sorted(radii)
    assert db_eval_boundary(gt, pred, small)[0] <= db_eval_boundary(gt, pred, large)[0]


@given(pair=mask_pairs(square_shapes))
def test_f_reaches_1_when_the_tolerance_spans_the_image(pair):
    gt, pred = pair
    assume(ref_seg2bmap(gt).any() and ref_seg2bmap(pred).any())
    assert db_eval_boundary(gt, pred, sum(gt.shape))[0] == 1.0


@given(pair=mask_pairs(), bound_th=bound_ths)
def test_j_and_f_are_unchanged_by_transposing_both_masks(pair, bound_th):
    """Right and below swap roles under a transpose, the diagonal and the disk stay."""
    gt, pred = pair
    assert db_eval_iou(gt.T, pred.T)[0] == db_eval_iou(gt, pred)[0]
    assert db_eval_boundary(gt.T, pred.T, bound_th)[0] == db_eval_boundary(gt, pred, bound_th)[0]


# ---- frames, batches and input types ------------------------------------------------------------


@given(stacks=frame_stacks(), bound_th=bound_ths, chunk_words=st.integers(1, 400))
def test_batched_frames_give_the_per_frame_values_in_any_chunking(stacks, bound_th, chunk_words):
    gt, pred = stacks
    expected_f = [ref_f(g, p, bound_th) for g, p in zip(gt, pred)]
    with mock.patch.object(boundary_module, "CHUNK_WORDS", chunk_words):
        j, f = jf_per_frame(gt, pred, bound_th)
        assert db_eval_boundary(gt, pred, bound_th).tolist() == expected_f
    assert j.tolist() == [ref_j(g, p) for g, p in zip(gt, pred)]
    assert f.tolist() == expected_f
    assert db_eval_iou(gt, pred).tolist() == j.tolist()


@given(stacks=frame_stacks(max_frames=2), labels=st.integers(1, 255))
def test_any_non_zero_label_and_torch_tensors_read_as_the_object(stacks, labels):
    gt, pred = stacks
    gt_labels, pred_labels = gt.astype(np.uint8) * labels, pred.astype(np.int64) * labels
    for a, b in ((gt_labels, torch.from_numpy(pred_labels)), (torch.from_numpy(gt), pred_labels)):
        assert db_eval_iou(a, b).tolist() == db_eval_iou(gt, pred).tolist()
        assert db_eval_boundary(a, b).tolist() == db_eval_boundary(gt, pred).tolist()


# ---- sequence statistics ----------------------------------------------------------------------


@given(length=st.integers(1, 256))
def test_decay_edges_are_matlab_rounded_quarters(length):
    edges = decay_edges(length)
    assert edges.tolist() == ref_edges(length)
    assert edges[0] == 0 and edges[-1] == length - 1 and (np.diff(edges) >= 0).all()


@given(values=st.lists(scores, min_size=1, max_size=120))
def test_statistics_equal_the_direct_definition(values):
    mean, recall, decay = db_statistics(values)
    ref = ref_statistics(values)
    assert (mean, recall, decay) == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert recall == ref[1]  # a count over L: exact
    assert 0.0 <= mean <= 1.0 and 0.0 <= recall <= 1.0 and -1.0 <= decay <= 1.0


@given(value=scores, length=st.integers(1, 120))
def test_a_constant_sequence_has_no_decay_and_all_or_nothing_recall(value, length):
    mean, recall, decay = db_statistics([value] * length)
    assert mean == pytest.approx(value, abs=1e-12)
    assert decay == pytest.approx(0.0, abs=1e-12)
    assert recall == (1.0 if value > 0.5 else 0.0)  # strictly above 0.5


# ---- whole sequences, objects and the global row ----------------------------------------------


sequence_shapes = st.tuples(st.integers(3, 7), st.integers(2, 16), st.integers(2, 16))


@st.composite
def label_sequences(draw, max_label: int, shape=None) -> tuple[np.ndarray, np.ndarray]:
    """``(N, H, W) uint8`` GT and prediction label maps, 3 <= N <= 7, labels 0..max_label and 255.

    The prediction is a copy of the GT or independent, then takes the GT's labels on random pixels.
    """
    shape = shape or draw(sequence_shapes)
    label = st.one_of(st.integers(0, max_label), st.just(255))
    gt = draw(arrays(np.uint8, shape, elements=label))
    pred = gt.copy() if draw(st.booleans()) else draw(arrays(np.uint8, shape, elements=label))
    pred = np.where(draw(arrays(np.bool_, shape)), gt, pred)
    return gt, pred


def assert_same_objects(result: dict, expected: dict) -> None:
    assert list(result) == list(expected)
    for k in expected:
        assert result[k]["J"].tolist() == expected[k]["J"], k
        assert result[k]["F"].tolist() == expected[k]["F"], k


@given(seq=label_sequences(max_label=4))
def test_single_object_sequence_scores_frames_1_to_n_minus_2_of_any_non_zero_label(seq):
    gt, pred = seq
    result = evaluate_sequence(gt, pred, multi_object=False)
    assert_same_objects(result, ref_sequence(gt, pred, False))


@given(seq=label_sequences(max_label=4))
def test_multi_object_sequence_scores_each_id_of_frame_0_with_void_as_background(seq):
    gt, pred = seq
    k = max([int(v) for v in gt[0].ravel() if v != 255], default=0)
    pred[1:-1][pred[1:-1] > k] = 0  # labels above K (255 included) are refused, tested below
    result = evaluate_sequence(gt, pred, multi_object=True)
    assert_same_objects(result, ref_sequence(gt, pred, True))


@given(seq=label_sequences(max_label=4), data=st.data())
def test_multi_object_prediction_with_a_label_above_k_is_refused(seq, data):
    gt, pred = seq
    k = max([int(v) for v in gt[0].ravel() if v != 255], default=0)
    frame = data.draw(st.integers(1, len(gt) - 2))
    y, x = data.draw(st.integers(0, gt.shape[1] - 1)), data.draw(st.integers(0, gt.shape[2] - 1))
    pred[frame, y, x] = data.draw(st.integers(k + 1, 255))
    with pytest.raises(DataError, match="objects 1.."):
        evaluate_sequence(gt, pred, multi_object=True)


@st.composite
def per_object_scores(draw) -> dict[str, dict[str, np.ndarray]]:
    name = st.text("abc_", min_size=1, max_size=5)
    names = draw(st.lists(name, min_size=1, max_size=5, unique=True))
    out = {}
    for name in names:
        length = draw(st.integers(1, 40))
        vectors = st.lists(scores, min_size=length, max_size=length)
        out[name] = {"J": np.array(draw(vectors)), "F": np.array(draw(vectors))}
    return out


@given(per_object=per_object_scores())
def test_global_row_is_the_plain_mean_over_objects_and_jf_the_mean_of_j_and_f(per_object):
    result = summarize(per_object)
    rows = {}
    for name, jf in per_object.items():
        jm, jr, jd = ref_statistics(jf["J"].tolist())
        fm, fr, fd = ref_statistics(jf["F"].tolist())
        rows[name] = dict(zip(STAT_KEYS, (jm, jr, jd, fm, fr, fd)))
        expected = {**rows[name], "frames": len(jf["J"])}
        assert result["sequences"][name] == pytest.approx(expected, abs=1e-12)
    assert list(result["sequences"]) == list(per_object)
    for key in STAT_KEYS:
        mean_over_objects = sum(r[key] for r in rows.values()) / len(rows)
        assert result["global"][key] == pytest.approx(mean_over_objects, abs=1e-12)
    g = result["global"]
    assert g["J&F-Mean"] == pytest.approx((g["J-Mean"] + g["F-Mean"]) / 2, abs=1e-15)


@given(data=st.data())
def test_torchmetric_fed_frames_in_any_order_and_batching_with_repeats_equals_offline(data):
    """``DavisJF`` sees frames shuffled, in random batches, some twice (DDP padding)."""
    _, h, w = data.draw(sequence_shapes)
    lengths = data.draw(st.lists(st.integers(3, 7), min_size=1, max_size=3))
    sequences = [data.draw(label_sequences(1, (n, h, w))) for n in lengths]
    items = [(o, i) for o, n in enumerate(lengths) for i in range(n)]
    repeats = data.draw(st.lists(st.sampled_from(items), max_size=4))
    order = data.draw(st.permutations(items)) + repeats
    metric = DavisJF()
    while order:
        size = data.draw(st.integers(1, len(order)))
        batch, order = order[:size], order[size:]
        metric.update(
            torch.from_numpy(np.stack([sequences[o][1][i] != 0 for o, i in batch])),
            torch.from_numpy(np.stack([sequences[o][0][i] != 0 for o, i in batch])),
            torch.tensor([o for o, _ in batch]),
            torch.tensor([i for _, i in batch]),
            torch.tensor([lengths[o] for o, _ in batch]),
        )
    result = metric.compute()
    offline = summarize({str(o): ref_sequence(*seq, False)[1] for o, seq in enumerate(sequences)})
    assert result["global"] == pytest.approx(offline["global"], abs=1e-12)
    assert list(result["objects"]) == list(range(len(sequences)))
    for o in range(len(sequences)):
        assert result["objects"][o] == pytest.approx(offline["sequences"][str(o)], abs=1e-12)
