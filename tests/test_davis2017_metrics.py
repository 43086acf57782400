"""DAVIS 2017 per-object scores on real palette masks (schoolgirls, 7 objects) against a slow,
direct implementation of the official definitions (reference/davis_metrics.md sections 2-5).

The reference here is the official code's algorithm written out plainly, one frame and one
object at a time: numpy ``seg2bmap`` by its neighbour rule, ``cv2.dilate`` with the disk
``dx² + dy² <= r²``, statistics with exactly computed bin edges. It shares nothing with
``osvos_pl.metrics`` (bit-packed rows, dilation by shifted words, object boxes). Predictions are
made from the real annotations: the annotation of two frames earlier (a tracker that lags),
objects 2 and 3 swapped for ten frames, object 4 lost for ten frames, and a crop in which
object 1 walks out of the picture (empty ground truth for the second half).
"""

from __future__ import annotations

import math
import shutil
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from osvos_pl.data.io import read_mask, write_mask
from osvos_pl.evaluate import main
from osvos_pl.metrics import STAT_KEYS, evaluate_sequence, summarize

TOL = 1e-6
SEQ = "schoolgirls"
CROP = 200  # columns [0, 200): object 1 walks out of them around frame 40


# ---- the official definitions, one frame and one object at a time -----------------------------


def direct_seg2bmap(mask: np.ndarray) -> np.ndarray:
    """A pixel differs from its right, lower or lower-right neighbour; the last row compares only
    to the right, the last column only below, the bottom-right pixel is never a boundary."""
    m = mask.astype(bool)
    b = np.zeros_like(m)
    b[:, :-1] |= m[:, :-1] != m[:, 1:]
    b[:-1, :] |= m[:-1, :] != m[1:, :]
    b[:-1, :-1] |= m[:-1, :-1] != m[1:, 1:]
    return b


def direct_disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def direct_f(gt: np.ndarray, pred: np.ndarray) -> float:
    radius = math.ceil(0.008 * math.hypot(*pred.shape))
    gb, pb = direct_seg2bmap(gt), direct_seg2bmap(pred)
    disk = direct_disk(radius)
    g_dil = cv2.dilate(gb.astype(np.uint8), disk).astype(bool)
    p_dil = cv2.dilate(pb.astype(np.uint8), disk).astype(bool)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = int((pb & g_dil).sum()) / n_p
    recall = int((gb & p_dil).sum()) / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def direct_j(gt: np.ndarray, pred: np.ndarray) -> float:
    union = int((gt | pred).sum())
    return 1.0 if union == 0 else int((gt & pred).sum()) / union


def direct_statistics(x: list[float]) -> tuple[float, float, float]:
    """Mean; fraction strictly above 0.5; mean of the first minus the last of 4 bins whose
    0-based edges are round_half_up(1 + i (L - 1) / 4) - 1, inclusive at both ends."""
    e = [math.floor(1 + Fraction(i * (len(x) - 1), 4) + Fraction(1, 2)) - 1 for i in range(5)]
    first, last = x[e[0] : e[1] + 1], x[e[3] : e[4] + 1]
    return (sum(x) / len(x), sum(v > 0.5 for v in x) / len(x),
            sum(first) / len(first) - sum(last) / len(last))


def direct_2017(gt: np.ndarray, pred: np.ndarray, name: str) -> dict[str, dict[str, float]]:
    """Per object ``<name>_<k>``: J/F M, R, D over frames 1..N-2; K = frame 0's largest id, void
    (255) as background."""
    gt = np.where(gt == 255, 0, gt)
    rows = {}
    for k in range(1, int(gt[0].max()) + 1):
        j = [direct_j(gt[i] == k, pred[i] == k) for i in range(1, len(gt) - 1)]
        f = [direct_f(gt[i] == k, pred[i] == k) for i in range(1, len(gt) - 1)]
        rows[f"{name}_{k}"] = dict(zip(STAT_KEYS, (*direct_statistics(j), *direct_statistics(f))))
    return rows


# ---- real masks and predictions made from them -------------------------------------------------


@pytest.fixture(scope="module")
def gt(davis2017_sample) -> np.ndarray:
    paths = sorted((davis2017_sample / "Annotations/240p" / SEQ).glob("*.png"))
    return np.stack([read_mask(p) for p in paths])


def lagging(gt: np.ndarray) -> np.ndarray:
    """Frame t predicted as the annotation of t-2, objects 2 and 3 swapped in frames 30-39,
    object 4 lost in frames 50-59."""
    pred = np.concatenate([gt[:2], gt[:-2]]).copy()
    swap = pred[30:40].copy()
    pred[30:40][swap == 2], pred[30:40][swap == 3] = 3, 2
    pred[50:60][pred[50:60] == 4] = 0
    return pred


def eroded(gt: np.ndarray) -> np.ndarray:
    """Every object eroded on its own by a 5x5 square."""
    out = np.zeros_like(gt)
    kernel = np.ones((5, 5), np.uint8)
    for k in range(1, 8):
        for i, frame in enumerate(gt):
            out[i][cv2.erode((frame == k).astype(np.uint8), kernel).astype(bool)] = k
    return out


def assert_rows_match(ours: dict, reference: dict) -> None:
    assert list(ours) == list(reference)
    for name, row in reference.items():
        for key, value in row.items():
            assert ours[name][key] == pytest.approx(value, abs=TOL), (name, key)


def test_per_object_scores_match_the_official_definitions_on_schoolgirls(gt):
    pred = lagging(gt)
    per_object = evaluate_sequence(gt, pred, multi_object=True, name=SEQ)
    result = summarize({f"{SEQ}_{k}": v for k, v in per_object.items()})
    reference = direct_2017(gt, pred, SEQ)
    assert len(reference) == 7
    assert_rows_match(result["sequences"], reference)
    for key in STAT_KEYS:
        assert result["global"][key] == pytest.approx(np.mean([r[key] for r in reference.values()]),
                                                      abs=TOL)
    assert result["global"]["J&F-Mean"] == pytest.approx(
        (result["global"]["J-Mean"] + result["global"]["F-Mean"]) / 2, abs=TOL)
    assert reference[f"{SEQ}_2"]["J-Mean"] < 0.95  # the swap and the lag cost something
    assert 0 < reference[f"{SEQ}_4"]["J-Recall"] < 1  # object 4 lost for ten frames


def test_an_object_that_leaves_the_frame_scores_as_the_official_code(gt):
    """In the crop object 1 walks out: its ground truth is empty for the second half; the lagging
    prediction keeps it two frames longer (J = F = 0 there), then both are empty (J = F = 1)."""
    gt_c, pred_c = gt[:, :, :CROP], lagging(gt)[:, :, :CROP]
    present = (gt_c == 1).reshape(len(gt_c), -1).any(axis=1)
    predicted = (pred_c == 1).reshape(len(pred_c), -1).any(axis=1)
    assert present[0] and not present[-10:].any()  # it leaves and stays out
    assert (predicted & ~present)[1:-1].any()  # empty GT, object predicted
    per_object = evaluate_sequence(gt_c, pred_c, multi_object=True, name=SEQ)
    reference = direct_2017(gt_c, pred_c, SEQ)
    assert_rows_match(summarize({f"{SEQ}_{k}": v for k, v in per_object.items()})["sequences"],
                      reference)
    j1 = per_object[1]["J"]
    gone = ~present[1:-1] & ~predicted[1:-1]
    assert (j1[gone] == 1).all() and (j1[(predicted & ~present)[1:-1]] == 0).all()
    assert reference[f"{SEQ}_1"]["J-Decay"] < 0  # scores 1 once it is gone: "improves"


def write_void_root(davis2017_sample: Path, gt: np.ndarray, root: Path) -> np.ndarray:
    """A DAVIS 2017 root (ImageSets/2017) whose annotations carry a 2-pixel void (255) band
    around object 2, as DAVIS 2017 marks uncertain boundaries; returns the new annotations."""
    shutil.copytree(davis2017_sample / "ImageSets", root / "ImageSets")
    band = np.ones((5, 5), np.uint8)
    out = gt.copy()
    for i, frame in enumerate(gt):
        ring = cv2.dilate((frame == 2).astype(np.uint8), band).astype(bool) & (frame == 0)
        out[i][ring] = 255
        write_mask(root / "Annotations/240p" / SEQ / f"{i:05d}.png", out[i], palette=True)
    return out


def test_evaluate_scores_a_2017_root_per_object_with_void_as_background(
        davis2017_sample, gt, tmp_path, capsys):
    annotations = write_void_root(davis2017_sample, gt, tmp_path / "gt")
    assert (annotations == 255).any()
    pred = eroded(gt)
    for i, frame in enumerate(pred):
        write_mask(tmp_path / "pred" / SEQ / f"{i:05d}.png", frame, palette=True)
    out = tmp_path / "record.json"
    assert main(["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "--resolution", "240p", "--out", str(out)]) == 0  # 2017 from the layout
    printed = capsys.readouterr()
    assert "DAVIS 2017 root" in printed.err
    reference = direct_2017(annotations, pred, SEQ)
    import json

    record = json.loads(out.read_text())
    assert_rows_match(record["sequences"], reference)
    lines = {line.split()[0]: line.split()[1:] for line in printed.out.splitlines()
             if line.strip().startswith(f"{SEQ}_")}
    assert sorted(lines) == [f"{SEQ}_{k}" for k in range(1, 8)]
    for name, row in reference.items():  # mean, recall and decay of J and F, printed per object
        assert [float(v) for v in lines[name]] == pytest.approx([row[k] for k in STAT_KEYS],
                                                                abs=1e-6)


def test_single_object_scores_a_2017_root_as_one_foreground(davis2017_sample, gt, tmp_path,
                                                            capsys):
    pred = eroded(gt)
    for i, frame in enumerate(pred):
        write_mask(tmp_path / "pred" / SEQ / f"{i:05d}.png", frame, palette=True)
    out = tmp_path / "record.json"
    assert main(["--pred", str(tmp_path / "pred"), "--gt", str(davis2017_sample),
                 "--resolution", "240p", "--single-object", "--out", str(out)]) == 0
    import json

    rows = json.loads(out.read_text())["sequences"]
    assert list(rows) == [SEQ]
    j = [direct_j(gt[i] > 0, pred[i] > 0) for i in range(1, len(gt) - 1)]
    assert rows[SEQ]["J-Mean"] == pytest.approx(np.mean(j), abs=TOL)
    assert "DAVIS 2017 root" not in capsys.readouterr().err
