"""The browser demo's logic without a browser: masks to and from the editor's layers, uploads,
the expected time, and its command line (``conf/demo.yaml`` through the preflight)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image

from osvos_pl.utils.errors import DataError, OSVOSError

session = pytest.importorskip("osvos_pl.demo.session")


def test_painted_layers_and_masks_round_trip():
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 5:20], labels[20:35, 30:50], labels[0:4, 55:60] = 1, 2, 4
    layer = session.layer_from_labels(labels)
    assert layer.shape == (40, 60, 4)
    assert np.array_equal(session.labels_from_layers([layer], (40, 60), 4), labels)
    # a stroke in a slightly different shade (anti-aliasing) still names its object; the editor
    # may hand back a layer at another size
    layer[..., :3] = np.clip(layer[..., :3].astype(int) + 9, 0, 255)
    big = np.repeat(np.repeat(layer, 2, 0), 2, 1)
    assert np.array_equal(session.labels_from_layers([big], (40, 60), 4), labels)
    assert session.labels_from_layers([], (40, 60), 4).sum() == 0


def test_strokes_go_on_top_of_the_mask_the_editor_was_given():
    base = np.zeros((40, 60), np.uint8)
    base[5:25, 5:25] = 1
    shown = session.editor_value(np.full((40, 60, 3), 100, np.uint8), base)
    assert shown["layers"] == [] and (shown["composite"][10, 10] != 100).any()  # tinted
    stroke = np.zeros((40, 60, 4), np.uint8)
    stroke[30:35, 40:50] = (0, 128, 0, 153)    # object 2's brush
    stroke[5:25, 5:10] = (255, 255, 255, 153)  # the white brush: not an object
    labels = session.labels_from_layers([stroke], (40, 60), 4, base)
    assert (labels[30:35, 40:50] == 2).all() and (labels[5:25, 5:10] == 0).all()
    assert (labels[5:25, 10:25] == 1).all() and labels.sum() == 1 * 20 * 15 + 2 * 5 * 10
    assert session.colours(2) == ["#800000", "#008000", "#ffffff"]


def test_uploads_are_a_video_or_a_zip_of_frames(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt is not a video"):
        session.open_upload(tmp_path / "notes.txt", tmp_path)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:
        z.writestr("readme.md", "no frames")
    with pytest.raises(DataError, match="holds no frames"):
        session.open_upload(tmp_path / "empty.zip", tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        session.open_upload(tmp_path / "bad.zip", tmp_path)
    frames = tmp_path / "src"
    frames.mkdir()
    for i in (2, 10, 1):
        Image.fromarray(np.full((12, 16, 3), i, np.uint8)).save(frames / f"f{i}.png")
    with zipfile.ZipFile(tmp_path / "clip.zip", "w") as z:
        for f in frames.iterdir():
            z.write(f, f"nested/dir/{f.name}")
        z.write(frames / "f10.png", "../z-escape.png")  # no member lands outside the folder
    clip = session.open_upload(tmp_path / "clip.zip", tmp_path / "session")
    assert (clip.name, clip.frames, clip.size) == ("clip", 4, (12, 16))
    assert int(clip.first[0, 0, 0]) == 1  # natural order: f1, f2, f10
    assert not (tmp_path / "z-escape.png").exists()


def test_an_uploaded_video_and_a_bad_parent(tmp_path):
    import cv2

    from osvos_pl.tasks.first_mask import GrabCut

    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    clip = session.open_upload(tmp_path / "clip.mp4", tmp_path)
    assert (clip.name, clip.frames, clip.size) == ("clip", 5, (48, 64))
    labels = np.zeros(clip.size, np.uint8)
    labels[10:30, 10:30] = 1
    with pytest.raises(OSVOSError, match="nope.ckpt"):  # predict's preflight, before any run
        session.run_clip(clip, labels, 2, str(tmp_path / "nope.ckpt"), ["logger=none"],
                         tmp_path / "run", GrabCut(), lambda f, what: None)
    assert not (tmp_path / "run" / "masks").exists()


def test_expected_time_follows_the_budget_and_is_learnt(tmp_path):
    timing = session.Timing(tmp_path / "timing.json", 10.0, 2.0)
    assert "about 55 s" in timing.estimate(100, 1, 50, 0.05)  # 0.05 Mpx x (1000 + 100) s
    assert "rough guess" in timing.estimate(100, 1, 50, 0.05)
    record = {"timing": {"sequences": {"clip": {"finetune_seconds": 20.0, "inference_seconds": 5.0,
                                                "inference_ms_per_frame": 100.0, "frames": 50}}}}
    timing.learn(record, updates=100, objects=2, megapixels=0.05)
    again = session.Timing(tmp_path / "timing.json", 10.0, 2.0)
    assert "measured here" in again.estimate(100, 2, 50, 0.05)
    assert "about 25 s" in again.estimate(100, 2, 50, 0.05)  # the run's own 20 s + 5 s


def test_the_page_builds_without_a_server(tmp_path):
    pytest.importorskip("gradio")
    from osvos_pl.demo.app import Settings, build
    from osvos_pl.tasks.first_mask import GrabCut

    root = tmp_path / "gen"
    (root / "JPEGImages" / "480p" / "gen-val-00").mkdir(parents=True)
    page = build(Settings(tmp_path, root, 20, 100, 3, [], [], GrabCut(),
                          session.Timing(tmp_path / "t.json", 10.0, 2.0), 1.0))
    ids = {getattr(b, "elem_id", None) for b in page.blocks.values()}
    assert {"upload", "sequence", "editor", "preview", "box", "grabcut", "updates", "parent",
            "run", "overlay_video", "frame", "frame_view", "masks_zip", "status"} <= ids


@pytest.mark.parametrize("args, message", [
    (["port=70000"], "port=70000 is not a TCP port"),
    (["updates=900"], "updates=900 must be within 0..max_updates=500"),
    (["prot=80"], "did you mean port?"),
])
def test_the_command_line_is_checked_in_one_line(capsys, args, message):
    from osvos_pl.demo.__main__ import USAGE, check_demo
    from osvos_pl.runner.preflight import preflight

    with pytest.raises(SystemExit) as stop:
        preflight("demo", USAGE, check_demo, args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_with_two_objects_goes_through_predict(tmp_path):
    """The page's run is predict's: two painted objects → a palette first mask, one
    fine-tuning for both (``online.objects=auto``: joint; reported to the progress bar), and one
    per object when asked (``online.objects=per-object``), masks zipped in the DAVIS layout,
    a WebM and one overlay per frame."""
    import os

    from osvos_pl.data.generated import ensure_generated
    from osvos_pl.tasks.first_mask import GrabCut

    root = ensure_generated(os.environ.get("OSVOS_CACHE", "~/.cache/osvos_pl"))
    clip = session.open_clip(root / "JPEGImages/480p/gen-val-01", "gen-val-01")
    labels = (np.asarray(Image.open(root / "Annotations/480p/gen-val-01/00000.png")) > 0)
    labels = labels.astype(np.uint8)
    labels[5:30, 5:40] = 2
    said: list[str] = []
    result = session.run_clip(clip, labels, 2, None,
                              ["logger=none", "data.num_workers=0", "model.weights=null",
                               "data.scale=0.5"],
                              tmp_path / "run", GrabCut(), lambda f, what: said.append(what))
    assert any("fine-tuning all 2 objects together: 2/2" in s for s in said)
    assert not any("fine-tuning object" in s for s in said)
    assert said[-1] == f"segmenting frame {clip.frames}/{clip.frames}"
    first = np.asarray(Image.open(tmp_path / "run" / "first_mask.png"))
    assert np.array_equal(first, labels)  # palette ids, as predict takes several objects
    with zipfile.ZipFile(result.masks_zip) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        assert names == [f"gen-val-01/{i:05d}.png" for i in range(clip.frames)]
        assert set(np.unique(np.asarray(Image.open(z.open(names[0]))))) <= {0, 1, 2}
    assert len(result.frames) == clip.frames and result.video.stat().st_size > 0
    assert result.record["timing"]["sequences"]["gen-val-01"]["objects"] == 2
    assert result.record["timing"]["sequences"]["gen-val-01"]["object_mode"] == "joint"
    said.clear()
    session.run_clip(clip, labels, 2, None,
                     ["logger=none", "data.num_workers=0", "model.weights=null", "data.scale=0.5",
                      "online.objects=per-object"],
                     tmp_path / "per-object", GrabCut(), lambda f, what: said.append(what))
    assert any("fine-tuning object 2: 2/2" in s for s in said)
    assert "2 updates each" in said[0]
