"""Boundary snapping: superpixel semantics on synthetic maps, and real gains on DAVIS frames.

The oracle tests stand in for the contour branch with the ground truth's own outline, degrade the
mask the way a fine-tuned network's output is wrong (too thin, soft, misplaced), and check that
snapping pulls the boundary back (F rises) without losing area overlap (J does not drop).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import higra as hg
import numpy as np
import pytest
import torch

from osvos_pl.data.io import read_image, read_mask
from osvos_pl.metrics import db_eval_boundary, db_eval_iou
from osvos_pl.snapping import MASK_THRESHOLD, UCM_THRESHOLD, majority_vote, snap, superpixels
from osvos_pl.utils.errors import ConfigError

SEQUENCES = ("blackswan", "car-shadow")
FRAMES = (1, 8, 15, 22, 29, 36)  # 6 frames spread over each sequence (car-shadow has 40)
F_GAIN = 0.05  # snapping must raise mean F by at least this much
J_SLACK = 0.005  # and may lower mean J by at most this much


# --- synthetic maps -------------------------------------------------------------------------


def _two_halves(strength: float | np.ndarray, shape=(20, 30)) -> np.ndarray:
    """Two flat 0 regions separated by a 1-pixel vertical contour of the given strength(s)."""
    contour = np.zeros(shape)
    contour[:, shape[1] // 2] = strength
    return contour


def test_strong_contour_separates_two_superpixels():
    labels = superpixels(_two_halves(0.8))
    assert labels.dtype == np.int32
    assert labels.max() == 1
    assert len(np.unique(labels[:, :14])) == 1 and len(np.unique(labels[:, 16:])) == 1
    assert labels[0, 0] != labels[0, -1]


@pytest.mark.parametrize("strength", [0.05, 0.2, UCM_THRESHOLD])
def test_contour_at_or_below_threshold_is_erased(strength):
    assert (superpixels(_two_halves(strength)) == 0).all()


def test_boundary_strength_is_the_mean_along_the_boundary():
    """A contour strong on half its length survives only if its *mean* exceeds the threshold."""
    weak_half = np.r_[np.full(10, 0.5), np.full(10, 0.05)]  # mean 0.275
    strong_half = np.r_[np.full(10, 0.6), np.full(10, 0.05)]  # mean 0.325
    assert superpixels(_two_halves(weak_half)).max() == 0
    assert superpixels(_two_halves(strong_half)).max() == 1


def _greedy_mean_merge(basins: np.ndarray, contour: np.ndarray, threshold: float) -> np.ndarray:
    """Naive reference: merge the pair with the lowest mean boundary strength until > threshold."""
    a = np.r_[basins[:, :-1].ravel(), basins[:-1].ravel()]
    b = np.r_[basins[:, 1:].ravel(), basins[1:].ravel()]
    w = np.r_[
        np.maximum(contour[:, :-1], contour[:, 1:]).ravel(),
        np.maximum(contour[:-1], contour[1:]).ravel(),
    ]
    parent = np.arange(basins.max() + 1)
    while True:
        ra, rb = parent[a], parent[b]
        cross = ra != rb
        if not cross.any():
            break
        lo, hi = np.minimum(ra, rb)[cross], np.maximum(ra, rb)[cross]
        key, inv = np.unique(lo * (parent.size + 1) + hi, return_inverse=True)
        mean = np.bincount(inv, w[cross]) / np.bincount(inv)
        best = int(np.argmin(mean))
        if mean[best] > threshold:
            break
        keep, gone = divmod(int(key[best]), parent.size + 1)
        parent[parent == gone] = keep
    return parent[basins]


def _same_partition(x: np.ndarray, y: np.ndarray) -> bool:
    pairs = np.unique(np.stack([x.ravel(), y.ravel()]), axis=1)
    return pairs.shape[1] == len(np.unique(x)) == len(np.unique(y))


@pytest.mark.parametrize("seed", range(3))
def test_superpixels_match_naive_greedy_mean_boundary_merging(seed):
    rng = np.random.default_rng(seed)
    contour = cv2.GaussianBlur(rng.random((40, 50)), (0, 0), 1.5)
    contour = (contour - contour.min()) / (contour.max() - contour.min())
    graph = hg.get_4_adjacency_graph(contour.shape)
    basins = hg.labelisation_watershed(
        graph, hg.weight_graph(graph, contour, hg.WeightFunction.max)
    )
    n_regions = []
    for threshold in (0.3, 0.4, 0.5, 0.6):
        expected = _greedy_mean_merge(basins, contour, threshold)
        assert _same_partition(superpixels(contour, threshold), expected), threshold
        n_regions.append(len(np.unique(expected)))
    assert any(1 < n < len(np.unique(basins)) for n in n_regions)  # some cut is non-trivial


def test_superpixels_are_connected():
    rng = np.random.default_rng(0)
    labels = superpixels(cv2.GaussianBlur(rng.random((60, 80)), (0, 0), 2.0) * 4 % 1.0)
    for k in np.unique(labels):
        n_components, _ = cv2.connectedComponents((labels == k).astype(np.uint8), connectivity=4)
        assert n_components == 2  # background + one component


def test_majority_vote_tie_goes_to_background():
    labels = np.repeat(np.array([[0, 0, 1, 1]]), 2, axis=0)  # two 2x2 superpixels
    fg_prob = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]])  # 2/4 and 3/4 foreground
    np.testing.assert_array_equal(majority_vote(labels, fg_prob), labels == 1)


def test_majority_vote_thresholds_strictly_above_122_of_255():
    labels = np.zeros((1, 3), np.int32)
    at = np.full((1, 3), MASK_THRESHOLD)
    assert not majority_vote(labels, at).any()
    assert majority_vote(labels, np.nextafter(at, 1.0)).all()


@pytest.mark.parametrize("fg_fraction, expected", [(0.6, True), (0.4, False)])
def test_flat_contour_map_gives_one_superpixel_voted_by_majority(fg_fraction, expected):
    fg_prob = np.zeros((10, 10))
    fg_prob.flat[: int(fg_fraction * 100)] = 0.9
    out = snap(fg_prob, np.zeros((10, 10)))
    assert out.dtype == bool
    assert (out == expected).all()


def test_snap_follows_the_contour_not_the_mask():
    contour = _two_halves(0.9)
    fg_prob = np.zeros(contour.shape)
    fg_prob[:, :13] = 1.0  # mask stops 2 px short of the contour at column 15
    out = snap(fg_prob, contour)
    assert out[:, :15].all() and not out[:, 16:].any()


@pytest.mark.parametrize(
    "fg_prob, contour_prob, match",
    [
        (np.zeros((4, 5)), np.zeros((4, 6)), "shape mismatch"),
        (np.zeros((4, 5, 1)), np.zeros((4, 5, 1)), r"\(H, W\)"),
        (np.full((4, 5), np.nan), np.zeros((4, 5)), "NaN"),
        (np.zeros((4, 5)), np.full((4, 5), np.inf), "NaN or inf"),
        (np.zeros((4, 5)), np.full((4, 5), 255.0), r"\[0, 1\]"),
        (np.full((4, 5), -0.5), np.zeros((4, 5)), r"\[0, 1\]"),
    ],
)
def test_snap_rejects_bad_inputs_with_clear_errors(fg_prob, contour_prob, match):
    with pytest.raises(ValueError, match=match):
        snap(fg_prob, contour_prob)


def test_majority_vote_rejects_non_integer_labels():
    with pytest.raises(ValueError, match="non-negative integers"):
        majority_vote(np.zeros((2, 2)), np.zeros((2, 2)))


# --- real DAVIS frames, oracle contours -----------------------------------------------------


def _j(gt: np.ndarray, pred: np.ndarray) -> float:
    return float(db_eval_iou(gt, pred)[0])


def _f(gt: np.ndarray, pred: np.ndarray) -> float:
    return float(db_eval_boundary(gt, pred)[0])


def _oracle_contour(gt: np.ndarray) -> np.ndarray:
    """The GT outline as a contour map: 3x3 morphological gradient, Gaussian sigma 1, max 1."""
    band = cv2.morphologyEx(gt.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    contour = cv2.GaussianBlur(band.astype(np.float64), (0, 0), 1.0)
    return contour / contour.max()


def _cluttered_contour(gt: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Oracle outline plus half-strength image edges: false contours that add superpixels."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255
    edges = np.hypot(cv2.Sobel(gray, cv2.CV_64F, 1, 0), cv2.Sobel(gray, cv2.CV_64F, 0, 1))
    return np.maximum(_oracle_contour(gt), 0.5 * edges / edges.max())


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate a mask by (dy, dx) pixels, filling the uncovered border with 0."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _degraded(gt: np.ndarray) -> dict[str, np.ndarray]:
    """Foreground probability maps with typical errors: too thin, too soft, misplaced."""
    binary = gt.astype(np.uint8)
    return {
        "eroded 11x11": cv2.erode(binary, np.ones((11, 11), np.uint8)).astype(np.float64),
        "blurred s=8": cv2.GaussianBlur(binary.astype(np.float64), (0, 0), 8.0),
        "shifted (8,10)px": _shift(binary, 8, 10).astype(np.float64),  # beyond F's 8-px tolerance
    }


@pytest.mark.parametrize("contour_kind", ["oracle", "oracle+clutter"])
@pytest.mark.parametrize("sequence", SEQUENCES)
def test_snapping_to_oracle_contours_raises_f_and_keeps_j(
    davis_sample: Path, sequence, contour_kind
):
    scores = {}  # degradation -> list of (J before, J after, F before, F after)
    for frame in FRAMES:
        gt = read_mask(davis_sample / "Annotations/480p" / sequence / f"{frame:05d}.png") > 127
        if contour_kind == "oracle":
            contour = _oracle_contour(gt)
        else:
            image = read_image(davis_sample / "JPEGImages/480p" / sequence / f"{frame:05d}.jpg")
            contour = _cluttered_contour(gt, image)
        labels = superpixels(contour)
        for name, fg_prob in _degraded(gt).items():
            before, after = fg_prob > MASK_THRESHOLD, majority_vote(labels, fg_prob)
            scores.setdefault(name, []).append(
                (_j(gt, before), _j(gt, after), _f(gt, before), _f(gt, after))
            )
    for name, rows in scores.items():
        jb, ja, fb, fa = np.mean(rows, axis=0)
        print(
            f"\n{sequence:10s} {contour_kind:14s} {name:17s} J {jb:.3f} -> {ja:.3f}   "
            f"F {fb:.3f} -> {fa:.3f}",
            end="",
        )
        assert ja >= jb - J_SLACK, f"{name}: snapping lowered J"
    jb, ja, fb, fa = np.mean([row for rows in scores.values() for row in rows], axis=0)
    print(
        f"\n{sequence:10s} {contour_kind:14s} {'mean':17s} J {jb:.3f} -> {ja:.3f}   "
        f"F {fb:.3f} -> {fa:.3f}"
    )
    assert ja >= jb - J_SLACK
    assert fa >= fb + F_GAIN


# --- snapping inside segment_stream -----------------------------------------------------------


class _FixedLogits(torch.nn.Module):
    """A stand-in network whose fused output is a fixed logit map, whatever the image."""

    def __init__(self, logits: np.ndarray):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32)[None, None])

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1).clone()


def _stream(contour_logits: np.ndarray):
    from osvos_pl.tasks.contour_sources import NetworkContours
    from tests.helpers import cpu_engine, segmenter

    fg = np.full((32, 32), -5.0)
    fg[8:20, 8:20] = 5.0  # the mask overshoots the object's true edge at column 16
    batch = {"image": torch.zeros(1, 3, 32, 32), "native_hw": torch.tensor([[32, 32]]),
             "frame": torch.tensor([0])}
    engine = cpu_engine(Path("."))
    seg = segmenter(engine, NetworkContours(_FixedLogits(contour_logits), engine))
    seg.min_superpixels = 2  # the closed square below gives two superpixels
    return list(seg.segment({1: _FixedLogits(fg)}, [batch]))


def test_stream_snaps_to_the_contour_branch_edges():
    edge = np.full((32, 32), -6.0)
    edge[8, 8:17] = edge[16, 8:17] = edge[8:17, 8] = edge[8:17, 16] = 6.0  # a closed square
    (item, labels), = _stream(edge)
    assert item["snapped"] == "snapped"
    assert labels[9:16, 9:16].all()  # the enclosed region: all of it under the mask
    assert not labels[18:].any() and not labels[:, 18:].any()  # the overshoot is cut off
    assert labels.sum() < 12 * 12


def test_stream_keeps_masks_where_the_contour_map_has_no_boundary():
    (item, labels), = _stream(np.full((32, 32), -6.0))  # flat: one superpixel
    assert item["snapped"] == "skipped-no-boundary"
    expected = np.zeros((32, 32), np.uint8)
    expected[8:20, 8:20] = 1
    np.testing.assert_array_equal(labels, expected)


class _ShapeProbe(torch.nn.Module):
    """Records the input sizes it sees; its logit map is a vertical edge down the middle."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        out = torch.full((x.shape[0], 1, *x.shape[-2:]), -6.0)
        out[..., x.shape[-1] // 2] = 6.0
        return out


def test_contour_branch_at_its_own_scale_sees_the_batch_frames_at_that_scale():
    """online.contour_scale: the branch gets the batch's decoded frames (``raw``, here 80x128)
    at its own scale (0.5: twice the segmentation's 20x32 input), one per frame of the batch,
    and its maps come back at the native size."""
    from osvos_pl.tasks.contour_sources import NetworkContours
    from osvos_pl.utils.normalization import get_normalization
    from tests.helpers import cpu_engine

    batch = {"frame": torch.tensor([3, 4]), "raw": torch.zeros(2, 80, 128, 3, dtype=torch.uint8)}
    probe = _ShapeProbe()
    contours = NetworkContours(probe, cpu_engine(Path(".")), 0.5, get_normalization("imagenet"))
    maps = contours("blackswan", batch, torch.zeros(2, 3, 20, 32), (80, 128))
    assert probe.seen == [(2, 3, 40, 64)]
    assert len(maps) == 2 and maps[0].shape == (80, 128)
    assert maps[0][:, 64].min() > 0.9 and maps[0][:, :50].max() < 0.1
    plain = _ShapeProbe()
    NetworkContours(plain, cpu_engine(Path(".")))("blackswan", batch, torch.zeros(1, 3, 20, 32),
                                                  (80, 128))
    assert plain.seen == [(1, 3, 20, 32)], "without a scale the branch sees the segmentation's input"


# --- snap_objects: one frame, several objects ---------------------------------------------------


def _square_contour() -> np.ndarray:
    """A 32x32 map with a closed square outline at rows/columns 8 and 16: 2 superpixels."""
    edge = np.zeros((32, 32))
    edge[8, 8:17] = edge[16, 8:17] = edge[8:17, 8] = edge[8:17, 16] = 0.9
    return edge


def test_snap_objects_gives_each_object_its_majority_vote_and_keeps_the_merge_order():
    from osvos_pl.snapping import SnapStatus, snap_objects

    contour = _square_contour()
    probs = np.full((2, 32, 32), 0.1, np.float32)
    probs[0, 8:20, 8:20] = 0.9  # object 1 overshoots the square
    probs[1, 9:16, 9:16] = 0.95  # object 2 covers the square's inside, more surely
    before = probs.copy()
    out, status = snap_objects(probs, contour, min_superpixels=2)
    assert status is SnapStatus.SNAPPED
    np.testing.assert_array_equal(probs, before)  # the input is not modified
    labels = superpixels(contour)
    for k in range(2):
        np.testing.assert_array_equal(out[k] > 0.5, majority_vote(labels, probs[k]))
    inside = labels == labels[12, 12]
    assert (out[:, inside] > 0.5).all()  # both objects win the square's superpixel, and the
    # merge between them is decided as before, by the higher probability
    np.testing.assert_array_equal(
        out[1, inside] > out[0, inside], probs[1, inside] > probs[0, inside]
    )
    assert (out[1, 10:15, 10:15] > out[0, 10:15, 10:15]).all()
    assert not (out[0, ~inside] > 0.5).any()  # object 1's overshoot is cut off
    np.testing.assert_array_equal(out[0, 18, 18], probs[0, 18, 18].clip(max=0.5))


@pytest.mark.parametrize(
    "probs, edges, kwargs, match",
    [
        (np.zeros((4, 5)), np.zeros((4, 5)), {}, r"\(K, H, W\)"),
        (np.zeros((0, 4, 5)), np.zeros((4, 5)), {}, r"K >= 1"),
        (np.zeros((1, 4, 5)), np.zeros((4, 6)), {}, "shape mismatch"),
        (np.zeros((1, 4, 5)), np.zeros((4, 5)), {"min_superpixels": 2.5}, "min_superpixels"),
        (np.zeros((1, 4, 5)), np.zeros((4, 5)), {"threshold": float("nan")}, "threshold"),
    ],
)
def test_snap_objects_rejects_bad_inputs(probs, edges, kwargs, match):
    from osvos_pl.snapping import snap_objects

    with pytest.raises(ValueError, match=match):
        snap_objects(probs, edges, **kwargs)


def test_prior_calibration_keeps_only_what_passes_the_balance_corrected_threshold():
    """``calibration="prior"``: an object that was 10 % of its annotated frame is foreground
    where p > 0.9 (posterior > 0.5), not p > 0.5; two objects merge by posterior."""
    from tests.helpers import cpu_engine, segmenter

    p = np.full((32, 32), 0.05)
    p[4:12, 4:12], p[16:28, 16:28] = 0.95, 0.7  # sure / unsure under the balanced loss
    logits = np.log(p / (1 - p))
    batch = {"image": torch.zeros(1, 3, 32, 32), "native_hw": torch.tensor([[32, 32]]),
             "frame": torch.tensor([0])}
    seg = segmenter(cpu_engine(Path(".")))
    seg.share_trunk = False  # the stand-in networks have no VGG trunk to share
    (_, plain), = seg.segment({1: _FixedLogits(logits)}, [batch])
    seg.calibration = "prior"
    (_, calibrated), = seg.segment({1: _FixedLogits(logits)}, [batch], foreground={1: 0.1})
    assert plain[4:12, 4:12].all() and plain[16:28, 16:28].all()
    assert calibrated[4:12, 4:12].all() and not calibrated[16:28, 16:28].any()
    # object 2 (share 0.5, only the second square at 0.7) owns it: posterior 0.7 beats object
    # 1's 0.21 there, though the raw probabilities tie
    p2 = np.full((32, 32), 0.05)
    p2[16:28, 16:28] = 0.7
    (_, merged), = seg.segment({1: _FixedLogits(logits), 2: _FixedLogits(np.log(p2 / (1 - p2)))},
                               [batch], foreground={1: 0.1, 2: 0.5})
    assert (merged[4:12, 4:12] == 1).all() and (merged[16:28, 16:28] == 2).all()
    with pytest.raises(ConfigError, match="foreground share"):
        list(seg.segment({1: _FixedLogits(logits)}, [batch]))
