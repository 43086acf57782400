"""``python -m osvos_pl.evaluate``: official numbers through PNG files, record and CSV files, errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from osvos_pl.data.io import davis_palette, read_mask, write_mask
from osvos_pl.evaluate import evaluate_folders, main
from osvos_pl.metrics import GLOBAL_KEYS

SEQUENCES = ("blackswan", "car-shadow")
TOL = 1e-6


def write_predictions(davis_sample: Path, out: Path, transform) -> Path:
    """``out/<seq>/NNNNN.png`` = ``transform(index, gt mask)`` for every GT frame, 0/255 grey."""
    for seq in SEQUENCES:
        for i, path in enumerate(sorted((davis_sample / "Annotations" / "480p" / seq).glob("*.png"))):
            write_mask(out / seq / path.name, transform(i, read_mask(path)), palette=False)
    return out


def erode(_: int, mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask, np.ones((11, 11), np.uint8))


def truncate(i: int, mask: np.ndarray) -> np.ndarray:
    return mask if i <= 24 else np.zeros_like(mask)


def test_cli_reproduces_official_eroded_numbers_and_writes_record_and_csv(davis_sample, tmp_path, capsys):
    pred = write_predictions(davis_sample, tmp_path / "pred", erode)
    out, csv_dir = tmp_path / "run" / "results.json", tmp_path / "csv"
    argv = ["--pred", str(pred), "--gt", str(davis_sample), "--out", str(out), "--csv", str(csv_dir)]
    assert main(argv) == 0

    record = json.loads(out.read_text())
    assert record["experiment"] == "evaluate" and record["overrides"] == argv
    assert record["started"] <= record["finished"]
    assert record["artifacts"] == {"predictions": str(pred)}
    assert record["timing"]["seconds"] > 0 and record["timing"]["frames_per_s"] > 0
    assert list(record["global"]) == list(GLOBAL_KEYS)
    assert record["global"]["J&F-Mean"] == pytest.approx(0.8717702158, abs=TOL)
    rows = record["sequences"]
    assert rows["blackswan"]["J-Mean"] == pytest.approx(0.7699499329, abs=TOL)
    assert rows["blackswan"]["F-Mean"] == pytest.approx(0.9595672107, abs=TOL)
    assert rows["blackswan"]["J-Decay"] == pytest.approx(0.0015798905, abs=TOL)
    assert rows["car-shadow"]["J-Mean"] == pytest.approx(0.8183463126, abs=TOL)
    assert rows["car-shadow"]["F-Mean"] == pytest.approx(0.9392174071, abs=TOL)
    assert rows["car-shadow"]["J-Decay"] == pytest.approx(0.0768932094, abs=TOL)
    assert all(r["J-Recall"] == r["F-Recall"] == 1.0 for r in rows.values())

    printed = capsys.readouterr().out
    assert "0.871770" in printed and "blackswan" in printed and "car-shadow" in printed
    with open(csv_dir / "global_results-val.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0] == list(GLOBAL_KEYS) and table[1][0] == "0.872"
    with open(csv_dir / "per-sequence_results-val.csv") as fh:
        table = list(csv.reader(fh))
    assert table == [["Sequence", "J-Mean", "F-Mean"], ["blackswan", "0.770", "0.960"],
                     ["car-shadow", "0.818", "0.939"]]


def test_cli_reproduces_official_truncated_numbers(davis_sample, tmp_path):
    pred = write_predictions(davis_sample, tmp_path / "pred", truncate)
    out = tmp_path / "results.json"
    gt_dir = davis_sample / "Annotations" / "480p"  # a plain folder of <seq>/ works too
    assert main(["--pred", str(pred), "--gt", str(gt_dir), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["global"]["J&F-Mean"] == pytest.approx(0.5657894737, abs=TOL)
    for seq, value in (("blackswan", 0.5), ("car-shadow", 0.6315789474)):
        row = record["sequences"][seq]
        assert row["J-Mean"] == pytest.approx(value, abs=TOL) and row["F-Mean"] == pytest.approx(value, abs=TOL)
        assert row["J-Decay"] == pytest.approx(1.0, abs=TOL) and row["F-Decay"] == pytest.approx(1.0, abs=TOL)


def test_library_call_and_first_last_frames_may_be_missing(davis_sample, tmp_path):
    pred = write_predictions(davis_sample, tmp_path / "pred", erode)
    (pred / "car-shadow" / "00000.png").unlink()
    (pred / "car-shadow" / "00039.png").unlink()
    result = evaluate_folders(pred, davis_sample, sequences=["car-shadow"])
    assert list(result["sequences"]) == ["car-shadow"]
    assert result["sequences"]["car-shadow"]["F-Mean"] == pytest.approx(0.9392174071, abs=TOL)


@pytest.fixture()
def small_sample(davis_sample, tmp_path) -> tuple[Path, Path]:
    """GT: the first 5 car-shadow frames in a DAVIS root; predictions: the same masks."""
    gt = tmp_path / "gt" / "Annotations" / "480p" / "car-shadow"
    gt.mkdir(parents=True)
    for path in sorted((davis_sample / "Annotations" / "480p" / "car-shadow").glob("*.png"))[:5]:
        shutil.copy(path, gt / path.name)
    shutil.copytree(gt, tmp_path / "pred" / "car-shadow")
    return tmp_path / "gt", tmp_path / "pred"


def test_missing_prediction_frame_is_an_error_naming_the_file(small_sample, capsys):
    gt, pred = small_sample
    (pred / "car-shadow" / "00002.png").unlink()
    assert main(["--pred", str(pred), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert "prediction missing" in err and str(pred / "car-shadow" / "00002.png") in err


def test_size_mismatch_is_an_error_naming_both_files(small_sample, capsys):
    gt, pred = small_sample
    bad = pred / "car-shadow" / "00003.png"
    write_mask(bad, np.zeros((240, 427), np.uint8), palette=False)
    assert main(["--pred", str(pred), "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    gt_file = gt / "Annotations" / "480p" / "car-shadow" / "00003.png"
    assert str(bad) in err and str(gt_file) in err and "427x240" in err and "854x480" in err


def test_unknown_sequence_and_resolution_are_errors(small_sample, capsys):
    gt, pred = small_sample
    assert main(["--pred", str(pred), "--gt", str(gt), "--sequences", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["--pred", str(pred), "--gt", str(gt), "--resolution", "1080p"]) == 2
    assert "1080p" in capsys.readouterr().err


def write_two_object_sequence(root: Path, name: str) -> tuple[Path, Path]:
    """Palette GT (objects 1, 2; void 255 ring) and a prediction that never finds object 2."""
    gt = np.zeros((5, 40, 60), np.uint8)
    gt[:, 5:15, 5:15] = 255
    gt[:, 6:14, 6:14] = 1
    gt[:, 25:30, 10:50] = 2
    pred = np.zeros_like(gt)
    pred[:, 6:14, 6:14] = 1
    for i in range(5):
        write_mask(root / "gt" / "Annotations" / "480p" / name / f"{i:05d}.png", gt[i], palette=True)
        write_mask(root / "pred" / name / f"{i:05d}.png", pred[i], palette=True)
    return root / "gt", root / "pred"


def test_multi_object_cli_scores_each_object(tmp_path):
    gt, pred = write_two_object_sequence(tmp_path, "dance")
    out = tmp_path / "r.json"
    assert main(["--pred", str(pred), "--gt", str(gt), "--multi-object", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["sequences"]
    assert list(rows) == ["dance_1", "dance_2"]
    assert rows["dance_1"]["J-Mean"] == 1.0 and rows["dance_1"]["F-Mean"] == 1.0
    assert rows["dance_2"]["J-Mean"] == 0.0 and rows["dance_2"]["F-Mean"] == 0.0


def test_multi_object_extra_label_is_an_error(tmp_path, capsys):
    gt, pred = write_two_object_sequence(tmp_path, "dance")
    labels = read_mask(pred / "dance" / "00001.png").copy()
    labels[0, 0] = 7
    write_mask(pred / "dance" / "00001.png", labels, palette=True)
    assert main(["--pred", str(pred), "--gt", str(gt), "--multi-object"]) == 2
    err = capsys.readouterr().err
    assert "'dance'" in err and "00001.png" in err and "[7]" in err


def test_multi_object_on_binary_2016_masks_is_an_error(small_sample, capsys):
    gt, pred = small_sample
    assert main(["--pred", str(pred), "--gt", str(gt), "--multi-object"]) == 2
    assert "drop --multi-object" in capsys.readouterr().err


def test_multi_object_sequences_are_scored_in_order_and_a_later_error_still_stops(tmp_path, capsys):
    """Sequences are decoded ahead of the one being scored; rows and errors keep their order."""
    for name in ("dance", "bike", "zebra"):
        gt, pred = write_two_object_sequence(tmp_path, name)
    out = tmp_path / "r.json"
    assert main(["--pred", str(pred), "--gt", str(gt), "--multi-object", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["sequences"]
    assert list(rows) == ["bike_1", "bike_2", "dance_1", "dance_2", "zebra_1", "zebra_2"]
    (pred / "zebra" / "00002.png").unlink()
    assert main(["--pred", str(pred), "--gt", str(gt), "--multi-object"]) == 2
    assert str(pred / "zebra" / "00002.png") in capsys.readouterr().err


def _pillow_labels(path: Path) -> np.ndarray:
    """What read_mask returned before OpenCV decoded masks: Pillow, mode by mode."""
    with Image.open(path) as im:
        if im.mode in ("P", "L"):
            return np.asarray(im)
        if im.mode in ("1", "I", "I;16"):
            return (np.asarray(im) > 0).astype(np.uint8) * 255
        return np.asarray(im.convert("L"))


def test_masks_read_with_opencv_give_pillows_labels(tmp_path):
    """8-bit grey and palette PNGs go through OpenCV (palette indices kept, transparency and
    palette ignored); every other kind through Pillow; the labels are the same either way."""
    labels = np.random.default_rng(0).integers(0, 7, (37, 53)).astype(np.uint8)
    labels[0, :5] = 255
    files = {"grey": Image.fromarray(labels, "L"), "rgb": Image.fromarray(np.stack([labels * 30] * 3, -1)),
             "1-bit": Image.fromarray(labels > 3), "16-bit": Image.fromarray(labels.astype(np.uint16) * 999)}
    palette = Image.fromarray(labels, "L").convert("P")
    palette.putpalette(davis_palette())
    files["palette"] = palette
    for name, im in files.items():
        im.save(tmp_path / f"{name}.png")
    palette.save(tmp_path / "palette-trns.png", transparency=0)
    Image.fromarray(labels, "L").save(tmp_path / "grey-trns.png", transparency=3)
    for path in sorted(tmp_path.glob("*.png")):
        assert np.array_equal(read_mask(path), _pillow_labels(path)), path.name
    assert np.array_equal(read_mask(tmp_path / "palette.png"), labels)


def test_evaluate_imports_neither_torch_nor_lightning_hydra_wandb(small_sample):
    """Start-up is most of a short evaluation: scoring PNG folders needs none of them."""
    gt, pred = small_sample
    code = ("import sys; from osvos_pl.evaluate import main; "
            f"assert main(['--pred', {str(pred)!r}, '--gt', {str(gt)!r}]) == 0; "
            "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'torchmetrics', 'lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'wandb'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
