"""The parent shipped inside the package (``parent_ckpt=davis2016``): its file and checksum, what
it records, predict and the demo using it by default, -PN on request, a damaged copy refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osvos_pl.download import sha256_of
from osvos_pl.model.checkpoint import load_checkpoint, read_trained_on
from osvos_pl.model.factory import build_network
from osvos_pl.model.shipped import DEFAULT, SHIPPED, shipped_path
from osvos_pl.predict import USAGE
from osvos_pl.runner.preflight import check_predict, predict_missing, preflight
from osvos_pl.stages.records import read_record
from osvos_pl.utils.errors import ConfigError, DataError
from tests.helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
#: The five sequences of DAVIS 2016 train kept out of the parent's training (the dev split).
DEV = {"bmx-bumps", "dance-jump", "dog-agility", "drift-turn", "motocross-bumps"}
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def test_the_shipped_file_is_in_the_package_with_its_checksum_and_what_it_learnt():
    parent = SHIPPED[DEFAULT]
    assert parent.path.parent == REPO / "osvos_pl" / "weights" and parent.path.is_file()
    assert sha256_of(parent.path) == parent.sha256
    trained_on = read_trained_on(DEFAULT)
    assert trained_on["data"] == "davis" and trained_on["random_backbone"] is False
    assert len(trained_on["sequences"]) == 25 and not DEV & set(trained_on["sequences"])
    assert "ImageNet VGG16" in trained_on["backbone"] and trained_on["updates"] == 6000


def test_it_loads_float16_weights_into_the_float32_network():
    stored = torch.load(SHIPPED[DEFAULT].path, map_location="cpu", weights_only=True)
    assert {v.dtype for v in stored["state_dict"].values()} == {torch.float16}
    net = build_network(weights=None)
    loaded = load_checkpoint(net, DEFAULT)
    assert loaded.normalization == "imagenet" and loaded.trained_on["data"] == "davis"
    assert {p.dtype for p in net.parameters()} == {torch.float32}
    key = "net.trunk.features.0.weight"
    torch.testing.assert_close(net.trunk.features[0].weight, stored["state_dict"][key].float())


def test_a_damaged_copy_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from osvos_pl.model import shipped

    bad = tmp_path / SHIPPED[DEFAULT].file
    data = bytearray(SHIPPED[DEFAULT].path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: torch.load might still read it
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"SHA-256 .*\(a damaged or replaced copy\).*reinstall"):
        shipped_path(DEFAULT)
    bad.unlink()
    with pytest.raises(ConfigError, match=r"is missing.*reinstall"):
        load_checkpoint(build_network(weights=None), DEFAULT)


def _copy_of_the_package(tmp_path: Path, damage: bool) -> Path:
    """The package and its configs as an install would hold them, under ``tmp_path``; the
    shipped parent damaged (one byte flipped) where ``damage``."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "osvos_pl", site / "osvos_pl",
                    ignore=shutil.ignore_patterns("__pycache__", "*.ckpt"))
    shutil.copytree(REPO / "conf", site / "osvos_pl" / "conf")
    data = bytearray(SHIPPED[DEFAULT].path.read_bytes())
    if damage:
        data[-1000] ^= 0xFF
    (site / "osvos_pl" / "weights" / SHIPPED[DEFAULT].file).write_bytes(bytes(data))
    return site


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Path]:
    """A generated sequence's first 3 frames (a frame folder) and its first mask."""
    from osvos_pl.data.generated import ensure_generated

    root = ensure_generated(os.environ.get("OSVOS_CACHE", "~/.cache/osvos_pl"))
    folder = tmp_path_factory.mktemp("clip") / "gen-val-00"
    folder.mkdir()
    for f in sorted((root / "JPEGImages/480p/gen-val-00").glob("*.jpg"))[:3]:
        shutil.copy(f, folder / f.name)
    return folder, root / "Annotations/480p/gen-val-00/00000.png"


def test_predict_refuses_a_damaged_installed_copy_in_one_line(tmp_path, clip):
    """An installed package whose parent file was damaged: predict stops before anything is
    made, one line on stderr, exit 2."""
    site = _copy_of_the_package(tmp_path, damage=True)
    proc = run_cli([f"input={clip[0]}", f"mask={clip[1]}", "output=out"], cwd=tmp_path,
                   module="osvos_pl.predict", check=False,
                   env={"PYTHONPATH": str(site), **OFFLINE})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "parent_ckpt=davis2016" in lines[0] and "SHA-256" in lines[0]
    assert str(site / "osvos_pl" / "weights") in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def _predict(clip, tmp_path: Path, *args: str):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    proc = run_cli([f"input={clip[0]}", f"mask={clip[1]}", f"output={out}", "logger=none",
                    "online.iterations=1", "data.scale=0.5", "data.num_workers=0",
                    "online.prefix=eager", "num_threads=1", *args],
                   cwd=tmp_path, module="osvos_pl.predict",
                   env={**OFFLINE, "TORCH_HOME": str(tmp_path / "torch")})
    return proc.stdout + proc.stderr, read_record(out / "metrics.json")


@pytest.mark.slow
def test_predict_fine_tunes_the_shipped_parent_unless_told_otherwise(clip, tmp_path):
    text, record = _predict(clip, tmp_path / "default")
    assert record["config"]["parent_ckpt"] == "davis2016"
    assert "weights: parent checkpoint davis2016: the shipped OSVOS parent" in text
    assert "SHA-256 checked" in text and "trained on DAVIS 2016 train split" in text
    assert "RANDOM" not in text and "no parent_ckpt" not in text
    # parent_ckpt=null: -PN, from the backbone of model.weights (here none: random, said)
    text, record = _predict(clip, tmp_path / "pn", "parent_ckpt=null", "model.weights=null")
    assert record["config"]["parent_ckpt"] is None
    assert "without a parent network (-PN)" in text and "RANDOM" in text
    assert "parent checkpoint" not in text


def test_the_authors_parent_offline_leaves_no_folder(tmp_path, clip, capsys, monkeypatch):
    """parent_ckpt=osvos-pytorch is fetched in the preflight: offline, one line and exit 2
    before Hydra makes the output folder (its log and .hydra/)."""
    from osvos_pl.model import releases

    def offline(url, dest, timeout=60.0):
        raise DataError(f"cannot download {url}: [Errno 101] Network is unreachable")

    monkeypatch.setattr(releases, "fetch", offline)
    monkeypatch.setenv("OSVOS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        preflight("predict", USAGE, check_predict,
                  [f"input={clip[0]}", f"mask={clip[1]}", "parent_ckpt=osvos-pytorch",
                   f"output={out}"], required=predict_missing)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "no network?" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_demo_offers_the_shipped_parent_first_and_says_what_each_choice_is(tmp_path):
    pytest.importorskip("gradio")
    from osvos_pl.demo import session
    from osvos_pl.demo.__main__ import settings
    from osvos_pl.model.checkpoint import export_weights
    from osvos_pl.runner.preflight import compose

    s = settings(compose("demo", [f"work_dir={tmp_path / 'work'}",
                                  f"checkpoints={tmp_path}/*/parent.ckpt"]))
    assert s.parents == ["davis2016"]
    first = session.parent_choice(s.parents[0], s.backbone)
    assert first.value == "davis2016" and "shipped" in first.label and first.warning is None
    random = session.parent_choice(session.NO_PARENT, None)
    assert "RANDOM backbone" in random.label and "cannot be trusted" in random.warning
    quick = tmp_path / "run" / "parent.ckpt"
    quick.parent.mkdir()
    export_weights(build_network(weights=None), {"normalization": "imagenet"}, quick,
                   {"data": "generated", "random_backbone": True})
    stripes = session.parent_choice(str(quick), "imagenet")
    assert "not for real video" in stripes.label and "cannot be trusted" in stripes.warning
    assert "davis2016" in stripes.warning


def test_a_result_that_cannot_be_right_is_said_so():
    from osvos_pl.demo import session

    first = np.zeros((40, 60), np.uint8)
    first[10:30, 20:40] = 1
    empty, full = np.zeros_like(first), np.ones_like(first)
    assert "empty masks" in session.result_warning(first, [first, empty, empty, empty])
    assert "cover most of the frame" in session.result_warning(first, [first, full, full])
    assert session.result_warning(first, [first, first, np.roll(first, 3, 1)]) is None


@pytest.mark.slow
def test_a_demo_run_uses_the_parent_it_is_given_by_default(tmp_path, clip):
    pytest.importorskip("gradio")
    from osvos_pl.demo import session
    from osvos_pl.demo.__main__ import settings
    from osvos_pl.runner.preflight import compose
    from osvos_pl.tasks.first_mask import GrabCut

    s = settings(compose("demo", [f"work_dir={tmp_path / 'work'}",
                                  f"checkpoints={tmp_path}/*/parent.ckpt"]))
    labels = (np.asarray(Image.open(clip[1])) > 0).astype(np.uint8)
    result = session.run_clip(session.open_clip(clip[0]), labels, 1, s.parents[0],
                              [*s.predict, "data.scale=0.5", "online.prefix=eager"],
                              tmp_path / "run", GrabCut(), lambda f, what: None)
    assert result.record["config"]["parent_ckpt"] == "davis2016"
    assert result.record["config"]["optim"]["finetune_lr"] == pytest.approx(3e-4)  # a parent's


def test_the_quick_starts_online_run_points_to_predict_on_real_video(tmp_path):
    from osvos_pl.runner.summary import summary_lines

    def ending(root):
        record = {"stage": "online", "experiment": "online", "overrides": [], "artifacts": {},
                  "timing": {"total_seconds": 60.0}, "config": {"data": {"root": root}}}
        return "\n".join(summary_lines(record, tmp_path))

    assert "then, on real video: python -m osvos_pl.predict input=" in ending(None)
    assert "parent_ckpt=davis2016" in ending(None)
    assert "on real video" not in ending("/data/DAVIS")  # already on real data
