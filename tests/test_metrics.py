"""J/F metrics against the official DAVIS numbers (reference/davis_metrics.md section 9).

The expected values were produced by the official evaluation code; the fast bit-plane path is
also checked pixel for pixel against a plain per-frame re-creation (numpy seg2bmap + cv2.dilate
with the disk, as the official 2017 code does) on random masks of awkward sizes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.morphology import disk as skimage_disk

from osvos_pl.data.io import read_mask
from osvos_pl.metrics import (
    DavisJF,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    decay_edges,
    evaluate_sequence,
    evaluate_sequence_rows,
    seg2bmap,
    summarize,
)
from osvos_pl.metrics.bitplanes import Planes, dilate_disk, pack_rows
from osvos_pl.metrics.boundary import boundary_counts, boundary_radius, disk
from osvos_pl.utils.errors import DataError

H, W = 480, 854
TOL = 1e-6


def rect(rows: tuple[int, int], cols: tuple[int, int], shape=(H, W)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


GT = rect((100, 300), (200, 500))
EMPTY = np.zeros((H, W), bool)
FULL = np.ones((H, W), bool)

# (gt, prediction, J, F) from the official code
SECTION_9 = {
    "identical": (GT, GT, 1.0, 1.0),
    "shift 5": (GT, rect((100, 300), (205, 505)), 0.9672131148, 1.0),
    "shift 8": (GT, rect((100, 300), (208, 508)), 0.9480519481, 1.0),
    "shift 9": (GT, rect((100, 300), (209, 509)), 0.9417475728, 0.616),
    "shift 20": (GT, rect((100, 300), (220, 520)), 0.875, 0.594),
    "cols 200-350": (GT, rect((100, 300), (200, 350)), 0.5, 0.6082352941),
    "both empty": (EMPTY, EMPTY, 1.0, 1.0),
    "prediction empty": (GT, EMPTY, 0.0, 0.0),
    "GT empty": (EMPTY, GT, 0.0, 0.0),
    "GT full, prediction left half": (FULL, rect((0, H), (0, W // 2)), 0.5, 0.0),
}


@pytest.mark.parametrize("case", list(SECTION_9))
def test_single_frame_j_and_f_match_official_vectors(case):
    gt, pred, j, f = SECTION_9[case]
    assert db_eval_iou(gt, pred) == pytest.approx([j], abs=TOL)
    assert db_eval_boundary(gt, pred) == pytest.approx([f], abs=TOL)


def test_batched_frames_give_the_per_frame_values():
    cases = list(SECTION_9.values())
    gt = np.stack([c[0] for c in cases])
    pred = torch.from_numpy(np.stack([c[1] for c in cases]))  # tensors are accepted too
    assert db_eval_iou(gt, pred) == pytest.approx([c[2] for c in cases], abs=TOL)
    assert db_eval_boundary(gt, pred) == pytest.approx([c[3] for c in cases], abs=TOL)


@pytest.mark.parametrize(
    ("mask", "count"),
    [
        (GT, 1000),
        (rect((100, 300), (0, 300)), 799),  # touching the left border loses that side
        (rect((50, 51), (60, 61)), 4),
        (FULL, 0),
        (rect((400, H), (600, W)), 255 + 80),  # bottom-right corner: row 399 cols 599.., col 599
    ],
)
def test_boundary_pixel_counts(mask, count):
    assert seg2bmap(mask).sum() == count
    packed = pack_rows(mask[None])
    counts = boundary_counts(packed, packed, W, 8)
    assert counts[:, 0].tolist() == [count] * 4  # matched = all: a map matches itself


def test_seg2bmap_border_rules():
    seg = np.zeros((4, 5), bool)
    seg[1:, 3:] = True  # touches the bottom and right borders
    assert seg2bmap(seg).astype(int).tolist() == [
        [0, 0, 1, 1, 1],  # above the object; the last column compares only downwards
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],  # last row: right neighbour only; bottom-right always 0
    ]


def test_tolerance_and_disk_are_the_official_ones():
    assert boundary_radius((480, 854)) == 8
    assert boundary_radius((1080, 1920)) == 18
    assert boundary_radius((480, 854), 3) == 3
    assert disk(8).sum() == 197
    for r in range(1, 25):
        assert np.array_equal(disk(r), skimage_disk(r).astype(bool)), r
    with pytest.raises(ValueError, match="whole number"):
        boundary_radius((480, 854), 2.5)


@pytest.mark.parametrize("radius", range(1, 31))
def test_bit_plane_dilation_of_a_pixel_is_the_disk(radius):
    size = 2 * radius + 1
    image = np.zeros((1, size, size + 70), bool)  # wide enough to span two words
    image[0, radius, radius + 60] = True
    planes = Planes.from_rows(pack_rows(image), image.shape[2], radius)
    work = [np.empty_like(planes.bits) for _ in range(4)]
    dilated = dilate_disk(planes.bits, planes.words, radius, work)
    rows = np.unpackbits(dilated.view(np.uint8).reshape(size + radius, -1), axis=1, bitorder="little")
    expected = np.zeros(image.shape[1:], bool)
    expected[:, 60 : 60 + size] = disk(radius)
    assert np.array_equal(rows[:size, : image.shape[2]].astype(bool), expected)
    assert not rows[size:].any() and not rows[:, image.shape[2] :].any()


def _official_f(gt: np.ndarray, pred: np.ndarray, bound_th: float) -> float:
    """The official 2017 per-frame F, re-created: numpy seg2bmap, cv2.dilate with the disk."""
    radius = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(pred.shape))
    kernel = skimage_disk(radius).astype(np.uint8)
    fg, gb = seg2bmap(pred), seg2bmap(gt)
    fg_dil, gt_dil = cv2.dilate(fg.astype(np.uint8), kernel), cv2.dilate(gb.astype(np.uint8), kernel)
    n_fg, n_gt = fg.sum(), gb.sum()
    if n_fg == 0 and n_gt > 0:
        return 0.0
    if n_fg > 0 and n_gt == 0:
        return 0.0
    if n_fg == 0 and n_gt == 0:
        return 1.0
    precision = np.sum(fg & (gt_dil > 0)) / float(n_fg)
    recall = np.sum(gb & (fg_dil > 0)) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("width", [1, 7, 8, 9, 63, 64, 65, 120, 130])
def test_fast_f_equals_per_frame_official_on_random_masks(width):
    rng = np.random.default_rng(width)
    for trial in range(6):
        h = int(rng.integers(1, 70))
        density = rng.random()
        gt = rng.random((3, h, width)) < density
        pred = rng.random((3, h, width)) < density
        pred[0] = gt[0]
        pred[1] = np.roll(gt[1], 2, axis=-1)
        bound_th = [0.008, 0.05, 1, 2, 5][trial % 5]
        expected = [_official_f(g, p, bound_th) for g, p in zip(gt, pred)]
        assert db_eval_boundary(gt, pred, bound_th).tolist() == expected  # bit for bit


def test_fast_f_equals_official_on_480p_blobs():
    noise = np.random.default_rng(0).random((4, H, W)).astype(np.float32)
    gt = np.stack([cv2.GaussianBlur(n, (0, 0), 12) for n in noise]) > 0.5
    pred = np.roll(gt, (3, -11), axis=(1, 2))
    pred[2] = cv2.dilate(gt[2].astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    expected = [_official_f(g, p, 0.008) for g, p in zip(gt, pred)]
    assert db_eval_boundary(gt, pred).tolist() == expected


def test_statistics_match_official_vectors():
    assert db_statistics([1.0] * 19 + [0.0] * 19) == pytest.approx((0.5, 0.5, 1.0), abs=TOL)
    assert db_statistics(np.linspace(1, 0, 38)) == pytest.approx((0.5, 0.5, 0.7567567568), abs=TOL)
    assert db_statistics([0.5] * 38)[1] == 0.0  # recall is strictly above 0.5
    assert all(isinstance(v, float) for v in db_statistics([0.3, 0.9, 0.7]))
    with pytest.raises(ValueError, match="non-empty"):
        db_statistics([])


@pytest.mark.parametrize(
    ("frames", "edges"),
    [(40, [0, 9, 19, 28, 37]), (50, [0, 12, 24, 35, 47]), (104, [0, 25, 51, 76, 101])],
)
def test_decay_edges(frames, edges):
    assert decay_edges(frames - 2).tolist() == edges


# ---- real DAVIS 2016 sample (shared/data/davis-sample), values from the official code ----

SEQUENCES = ("blackswan", "car-shadow")


@pytest.fixture(scope="module")
def sample_gt(davis_sample):
    """``{seq: (N, H, W) uint8}`` 0/255 annotations of the real sample."""
    root = davis_sample / "Annotations" / "480p"
    return {s: np.stack([read_mask(p) for p in sorted((root / s).glob("*.png"))]) for s in SEQUENCES}


def eroded(gt: np.ndarray) -> np.ndarray:
    """Every mask eroded by an 11×11 all-ones kernel (cv2 default border), as in section 9."""
    return np.stack([cv2.erode(m, np.ones((11, 11), np.uint8)) for m in gt])


def truncated(gt: np.ndarray) -> np.ndarray:
    """GT for frames 00000–00024, empty masks after."""
    pred = gt.copy()
    pred[25:] = 0
    return pred


ERODED = {
    "blackswan": {"J-Mean": 0.7699499329, "F-Mean": 0.9595672107, "J-Decay": 0.0015798905},
    "car-shadow": {"J-Mean": 0.8183463126, "F-Mean": 0.9392174071, "J-Decay": 0.0768932094},
}
TRUNCATED = {
    "blackswan": {"J-Mean": 0.5, "F-Mean": 0.5, "J-Decay": 1.0, "F-Decay": 1.0},
    "car-shadow": {"J-Mean": 0.6315789474, "F-Mean": 0.6315789474, "J-Decay": 1.0, "F-Decay": 1.0},
}


def check_sample_result(result: dict, expected: dict, jf: float) -> None:
    assert list(result["sequences"]) == list(SEQUENCES)
    for seq, values in expected.items():
        row = result["sequences"][seq]
        for key, value in values.items():
            assert row[key] == pytest.approx(value, abs=TOL), (seq, key)
    assert result["global"]["J&F-Mean"] == pytest.approx(jf, abs=TOL)


def test_real_sample_eroded_matches_official(sample_gt):
    per_object = {s: evaluate_sequence(g, eroded(g), multi_object=False)[1] for s, g in sample_gt.items()}
    result = summarize(per_object)
    check_sample_result(result, ERODED, 0.8717702158)
    for row in result["sequences"].values():
        assert row["J-Recall"] == row["F-Recall"] == 1.0
    assert result["sequences"]["blackswan"]["frames"] == 48
    assert result["sequences"]["car-shadow"]["frames"] == 38
    assert all(type(v) is float for v in result["global"].values())


def test_real_sample_truncated_matches_official(sample_gt):
    per_object = {s: evaluate_sequence(g, truncated(g), multi_object=False)[1] for s, g in sample_gt.items()}
    check_sample_result(summarize(per_object), TRUNCATED, 0.5657894737)


def test_sequence_of_frames_packed_one_by_one_scores_like_the_label_stack(sample_gt):
    """``evaluate_sequence_rows`` (frames packed as they are read) = ``evaluate_sequence``, bit for bit."""
    for gt in sample_gt.values():
        pred = eroded(gt)
        pred[7] = 0  # an empty prediction frame
        g = np.stack([pack_rows(frame) for frame in gt])
        p = np.stack([pack_rows(frame) for frame in pred])
        packed = evaluate_sequence_rows(g, p, gt.shape[1:])[1]
        labels = evaluate_sequence(gt, pred, multi_object=False)[1]
        assert np.array_equal(packed["J"], labels["J"]) and np.array_equal(packed["F"], labels["F"])
    with pytest.raises(DataError, match="'short'.*at least 3"):
        evaluate_sequence_rows(g[:2], p[:2], gt.shape[1:], name="short")


def test_perfect_prediction_scores_one(sample_gt):
    result = summarize({s: evaluate_sequence(g, g, False)[1] for s, g in sample_gt.items()})
    assert result["global"]["J&F-Mean"] == 1.0


def test_torchmetric_equals_sequence_evaluation(sample_gt):
    """In-loop metric, frames fed shuffled in batches, equals the offline evaluation."""
    metric = DavisJF()
    items = [(i, s, f) for i, s in enumerate(SEQUENCES) for f in range(len(sample_gt[s]))]
    order = np.random.default_rng(0).permutation(len(items))
    for batch in np.array_split(order, 12):
        obj, seq, frame = zip(*(items[k] for k in batch))
        target = torch.from_numpy(np.stack([sample_gt[s][f] > 0 for s, f in zip(seq, frame)]))
        pred = torch.from_numpy(np.stack([eroded(sample_gt[s][f : f + 1])[0] > 0 for s, f in zip(seq, frame)]))
        lengths = torch.tensor([len(sample_gt[s]) for s in seq])
        metric.update(pred, target, torch.tensor(obj), torch.tensor(frame), lengths)
    result = metric.compute()
    offline = summarize({s: evaluate_sequence(g, eroded(g), False)[1] for s, g in sample_gt.items()})
    assert result["global"] == pytest.approx(offline["global"], abs=1e-12)
    assert result["objects"][0] == pytest.approx(offline["sequences"]["blackswan"], abs=1e-12)
    assert result["objects"][1]["frames"] == 38


def test_torchmetric_counts_a_repeated_frame_once():
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.random((5, 30, 40)) < 0.5)
    pred = torch.from_numpy(rng.random((5, 30, 40)) < 0.5)
    ids, frames, lengths = torch.zeros(5, dtype=torch.long), torch.arange(5), torch.full((5,), 5)
    once, twice = DavisJF(), DavisJF()
    once.update(pred, gt, ids, frames, lengths)
    twice.update(pred, gt, ids, frames, lengths)
    twice.update(pred[1:3], gt[1:3], ids[1:3], frames[1:3], lengths[1:3])  # DDP padding repeats
    assert twice.compute() == once.compute()
    assert once.compute()["objects"][0]["frames"] == 3  # frames 0 and 4 are not scored
    expected = evaluate_sequence(gt.numpy().astype(np.uint8), pred.numpy().astype(np.uint8), False)
    assert once.compute()["objects"][0]["J-Mean"] == pytest.approx(expected[1]["J"].mean(), abs=1e-12)


def test_torchmetric_without_scored_frames_reports_nan():
    metric = DavisJF()
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    metric.update(mask, mask, torch.tensor([0]), torch.tensor([0]), torch.tensor([10]))
    result = metric.compute()
    assert result["objects"] == {} and np.isnan(result["global"]["J&F-Mean"])


# ---- DAVIS 2017 semantics ----


def two_object_sequence() -> tuple[np.ndarray, np.ndarray]:
    """5 frames 40×60: object 1 a fixed square, object 2 a bar; void (255) ring around object 1."""
    gt = np.zeros((5, 40, 60), np.uint8)
    gt[:, 5:15, 5:15] = 255
    gt[:, 6:14, 6:14] = 1
    gt[:, 25:30, 10:50] = 2
    gt[3, 25:30, 10:50] = 0  # object 2 absent in frame 3
    pred = np.zeros_like(gt)
    pred[:, 6:14, 6:14] = 1  # object 2 never predicted
    return gt, pred


def test_multi_object_missing_object_scores_zero_where_present():
    gt, pred = two_object_sequence()
    result = evaluate_sequence(gt, pred, multi_object=True)
    assert sorted(result) == [1, 2]
    assert result[1]["J"].tolist() == [1.0, 1.0, 1.0]  # void ring is background, not object
    assert result[1]["F"].tolist() == [1.0, 1.0, 1.0]
    assert result[2]["J"].tolist() == [0.0, 0.0, 1.0]  # absent in GT frame 3: both empty
    assert result[2]["F"].tolist() == [0.0, 0.0, 1.0]


def test_multi_object_void_is_background_in_gt():
    gt, pred = two_object_sequence()
    pred[:, 5:15, 5:15] = 1  # covering the void ring costs J: the ring is GT background
    j = evaluate_sequence(gt, pred, multi_object=True)[1]["J"]
    assert j == pytest.approx([64 / 100] * 3)


def test_multi_object_prediction_label_above_k_is_an_error():
    gt, pred = two_object_sequence()
    pred[2, 0, 0] = 3
    with pytest.raises(DataError, match=r"'dance', 00002.png.*\[3\].*objects 1..2"):
        evaluate_sequence(gt, pred, True, name="dance", frame_names=[f"{i:05d}.png" for i in range(5)])


def test_single_object_takes_any_label_as_the_object():
    gt, pred = two_object_sequence()
    result = evaluate_sequence(gt, pred, multi_object=False)
    assert list(result) == [1]
    assert result[1]["J"][0] == pytest.approx(64 / (100 + 200))  # GT = void ring + both objects


def test_too_short_sequence_is_an_error():
    with pytest.raises(DataError, match="at least 3"):
        evaluate_sequence(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8), False)
