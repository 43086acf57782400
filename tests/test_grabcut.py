"""A first mask without a mask file: ``predict box=`` / ``fg=`` / ``bg=`` through GrabCut."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from osvos_pl.metrics import db_eval_iou
from osvos_pl.predict import USAGE, box_as_list
from osvos_pl.runner.preflight import check_predict, predict_missing, preflight
from osvos_pl.tasks.first_mask import GrabCut, parse_box
from osvos_pl.tasks.mask_report import describe_mask
from osvos_pl.utils.errors import DataError
from tests.helpers import run_cli

SIZE = (426, 240)  # (W, H): half of 480p (even: an mp4 keeps it)
FRAMES = 4


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(db_eval_iou(a[None], b[None])[0])


def _disk_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grey noise with a red disk: ``(image, truth)``."""
    image = rng.integers(90, 160, (120, 160, 3), dtype=np.uint8)
    truth = np.zeros((120, 160), np.uint8)
    cv2.circle(truth, (70, 60), 25, 1, -1)
    image[truth > 0] = (200, 30, 30)
    return image, truth > 0


def test_scribbles_alone_find_the_object():
    image, truth = _disk_scene(np.random.default_rng(0))
    mask = GrabCut()(image, fg=[(70, 60)], bg=[(5, 5), (150, 110)])
    assert _iou(mask, truth) > 0.9


def test_box_and_description():
    image, truth = _disk_scene(np.random.default_rng(1))
    mask = GrabCut()(image, box=(35, 25, 106, 96))
    assert _iou(mask, truth) > 0.9
    assert "none of its edges" in describe_mask(mask, (35, 25, 106, 96))
    cut = describe_mask(mask, (60, 25, 106, 96))  # the box's left edge crosses the disk
    assert "left edge" in cut and "draw the box larger" in cut


def test_bad_prompts_are_named():
    with pytest.raises(DataError, match="x0 < x1"):
        parse_box("50,10,20,40")
    with pytest.raises(DataError, match="leaves the 160x120 frame"):
        parse_box([0, 0, 170, 40], (120, 160))
    with pytest.raises(DataError, match="needs a box"):
        GrabCut()(np.zeros((10, 10, 3), np.uint8))


@pytest.fixture(scope="module")
def clip(davis_sample, tmp_path_factory):
    """``(mp4, (H, W) bool truth of frame 0, box)``: car-shadow's first frames, half size; the
    box is the annotation's bounding box plus 2 % of the width, as a user would draw it."""
    root = tmp_path_factory.mktemp("grabcut-clip")
    writer = cv2.VideoWriter(str(root / "car-shadow.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE)
    for i in range(FRAMES):
        frame = cv2.imread(str(davis_sample / f"JPEGImages/480p/car-shadow/{i:05d}.jpg"))
        writer.write(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    gt = np.asarray(Image.open(davis_sample / "Annotations/480p/car-shadow/00000.png"))
    gt = cv2.resize(gt, SIZE, interpolation=cv2.INTER_NEAREST) > 0
    ys, xs = np.nonzero(gt)
    m = round(0.02 * SIZE[0])
    box = (xs.min() - m, ys.min() - m, xs.max() + 1 + m, ys.max() + 1 + m)
    return root / "car-shadow.mp4", gt, ",".join(str(int(v)) for v in box)


def _predict(args: list[str], out: Path, tmp_path: Path, check: bool = True):
    return run_cli([*args, "logger=none", "model.weights=null", "online.iterations=2",
                    "data.num_workers=0", f"output={out}"],
                   cwd=tmp_path, module="osvos_pl.predict", check=check)


@pytest.mark.slow
def test_predict_from_a_box_on_real_frames(clip, tmp_path):
    video, truth, box = clip
    proc = _predict([f"input={video}", f"box={box}"], tmp_path / "box", tmp_path)
    first = np.asarray(Image.open(tmp_path / "box" / "first_mask.png")) > 0
    iou = _iou(first, truth)
    print(f"first mask (the default: the parent tuned on the box) on car-shadow frame 0 "
          f"({SIZE[0]}x{SIZE[1]}, box={box}): IoU {iou:.3f}")
    # measured 0.87 on this frame decoded from an mp4 (GrabCut from the parent's labels 0.63,
    # GrabCut alone 0.79, the parent alone 0.86; over ten val frames at 480p the default does
    # not lead: benchmarks/README.md#a-first-mask-from-a-box)
    assert iou >= 0.75
    assert "first mask by the parent fine-tuned on the frame with the box" in proc.stdout
    assert "% of the box" in proc.stdout
    by_box = sorted((tmp_path / "box" / "masks" / "car-shadow").glob("*.png"))
    assert len(by_box) == FRAMES and (tmp_path / "box" / "overlay.mp4").is_file()
    # the same run from that PNG given as mask= (which wins over box=): the same masks
    proc = _predict([f"input={video}", f"mask={tmp_path / 'box' / 'first_mask.png'}",
                     f"box={box}"], tmp_path / "mask", tmp_path)
    assert "box/fg/bg ignored" in proc.stdout
    assert not (tmp_path / "mask" / "first_mask.png").exists()
    for path in by_box:
        same = tmp_path / "mask" / "masks" / "car-shadow" / path.name
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(same)))


@pytest.mark.parametrize("args, message", [
    ([], "mask= is required — usage: python -m osvos_pl.predict"),
    (["box=0,0,900,100"], "leaves the 426x240 frame"),
    (["box=[10,10,40]"], "box=10,10,40 is not x0,y0,x1,y1"),
    (["fg=[[5,5,5]]"], "fg entry 5,5,5 is not a point"),
])
def test_preflight_refuses_a_bad_prompt(clip, capsys, args, message):
    """In one line, exit 2, before Hydra makes a folder (predict's ``__main__`` runs this)."""
    with pytest.raises(SystemExit) as stop:
        preflight("predict", USAGE, check_predict, box_as_list([f"input={clip[0]}", *args]),
                  required=predict_missing)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_parent_tells_a_leak_from_a_cut_off_object():
    """A mask that reaches the box's right edge: where the parent sees background there it is a
    leak (into background of the object's colour), not a cut-off object to draw larger."""
    image, truth = _disk_scene(np.random.default_rng(2))
    mask = truth.copy()
    mask[55:65, 70:106] = True  # leaked rightwards along a strip of the same colour
    prior = truth.astype(np.float32)
    leak = describe_mask(mask, (35, 25, 106, 96), prior)
    assert "right" in leak and "background the parent does not take" in leak
    assert "draw the box larger" not in leak
    cut = describe_mask(truth, (60, 25, 106, 96), prior)
    assert "cut off at the box's left edge" in cut and "draw the box larger" in cut
    # a soft border: the mask reaches the box where the parent sees the object end, just
    # inside it (the shipped parent's 240p probabilities are blurred): no cut-off to report
    ends = describe_mask(truth, (45, 35, 96, 86), prior)
    assert "where the parent sees the object end" in ends and "cut off" not in ends
    assert "leaked" in describe_mask(mask, (35, 25, 106, 96))  # without a parent: both named


def test_the_parent_starts_grabcut_where_the_box_holds_more_than_the_object():
    """A box around the object and a region of its very colour beside it: the parent's labels
    (here the true disk, blurred) keep the object alone; GrabCut started from them is no worse
    than from the box (colour models cannot split one colour: on real frames, where colours
    differ, it gains — benchmarks/README.md#a-first-mask-from-a-box)."""
    image, truth = _disk_scene(np.random.default_rng(3))
    image[40:80, 100:135] = (200, 30, 30)  # background of the object's colour, inside the box
    box = (35, 25, 140, 96)
    prior = cv2.GaussianBlur(truth.astype(np.float32), (9, 9), 3)
    alone = GrabCut(method="grabcut")(image, box)
    started = GrabCut(method="parent+grabcut")(image, box, prior=prior)
    assert _iou(started, truth) >= _iou(alone, truth) - 0.02
    assert _iou(GrabCut(method="parent")(image, box, prior=prior), truth) > 0.85
    assert np.array_equal(GrabCut(method="parent+grabcut")(image, box), alone)  # no parent
    with pytest.raises(DataError, match="grabcut.method=magic is unknown"):
        GrabCut(method="magic")


def test_where_the_parent_sees_no_object_grabcut_works_from_the_box():
    """A kind of object the parent never learnt (the generated stripes: probability 0-0.3 on
    them): its mask would be a few specks, so the box's mask is GrabCut's."""
    image, truth = _disk_scene(np.random.default_rng(4))
    box = (35, 25, 106, 96)
    blind = np.where(truth, 0.2, 0.0).astype(np.float32)
    blind[60, 70] = 0.9  # one speck
    for method in ("parent", "parent+grabcut"):
        grabcut = GrabCut(method=method)
        assert not grabcut.sees_object(blind, box)
        assert np.array_equal(grabcut(image, box, prior=blind), GrabCut(method="grabcut")(image, box))
    assert GrabCut().sees_object(truth.astype(np.float32), box)
