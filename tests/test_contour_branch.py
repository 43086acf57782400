"""The contour branch trained on a detector's contour maps as soft targets (contour.source=maps)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from osvos_pl.data.contours import ContourMaps
from osvos_pl.data.davis import DAVISIndex
from osvos_pl.utils.errors import ConfigError
from osvos_pl.utils.normalization import get_normalization
from tests.helpers import compose_cfg, copy_sample

SEQ = "car-shadow"


@pytest.fixture(scope="module")
def root_and_maps(davis_sample: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A DAVIS root with car-shadow's first 3 frames, and the real maps of frames 0 and 1 only
    (the last frame lacks its map, as in the detector's own output)."""
    base = tmp_path_factory.mktemp("maps-root")
    root = copy_sample(davis_sample, base / "DAVIS", (SEQ,), frames=3)
    (root / "ImageSets" / "480p").mkdir(parents=True)
    lines = [f"/JPEGImages/480p/{SEQ}/{i:05d}.jpg /Annotations/480p/{SEQ}/{i:05d}.png"
             for i in range(3)]
    for split in ("train", "val"):
        (root / "ImageSets" / "480p" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    maps = base / "maps"
    (maps / SEQ).mkdir(parents=True)
    for i in range(2):
        shutil.copy(davis_sample / "Contours" / "480p" / SEQ / f"{i:05d}.png", maps / SEQ)
    return root, maps


def test_train_frames_take_the_maps_as_soft_targets_resized_by_area(root_and_maps):
    from osvos_pl.data.datasets import TrainFrames

    root, maps_dir = root_and_maps
    maps = ContourMaps(maps_dir)
    frames = TrainFrames(DAVISIndex(root), [SEQ], get_normalization("imagenet"), scale=0.25,
                         augment="none", target="contour_maps", contour_maps=maps)
    assert len(frames) == 2, "only frames with a map are training samples"
    target = frames[0]["mask"][0].numpy()
    full = maps.get(SEQ, "00000")
    expected = cv2.resize(full, target.shape[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(target, expected, atol=1e-6)
    soft = (target > 0.05) & (target < 0.95)
    assert soft.mean() > 0.01, "the target keeps the map's probabilities, not a 0/1 boundary"
    boundary = TrainFrames(DAVISIndex(root), [SEQ], get_normalization("imagenet"), scale=0.25,
                           augment="none", target="contour")
    assert len(boundary) == 3 and set(np.unique(boundary[0]["mask"].numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("source", ["maps", "masks"])
def test_contour_stage_learns_from_its_source_and_is_scored_against_the_maps(
        source, root_and_maps, tmp_path):
    """source=maps: soft loss on the maps; source=masks: mask boundaries, 0/1 loss. Either way a
    given maps_root is also what the branch is scored against."""
    from hydra.utils import instantiate

    from osvos_pl.runner.run import run

    root, maps = root_and_maps
    cfg = compose_cfg(["+experiment=contour", f"data.root={root}", f"contour.source={source}",
                       f"contour.maps_root={maps}", "contour.updates=2", "contour.accumulate=1",
                       "contour.val_every=1000", "data.scale=0.25", "data.num_workers=0",
                       "model.weights=null", "logger=none", "trainer.enable_progress_bar=false"],
                      tmp_path)
    soft = source == "maps"
    assert cfg.data.contour_maps == str(maps)
    assert cfg.data.target == ("contour_maps" if soft else "contour")
    assert instantiate(cfg.task.loss).keywords["soft"] is soft
    record = run(cfg, tmp_path)
    scores = record["contours"]
    assert scores["maps-frames"] == 2, "frame 2 has no map and is left out of the maps' F"
    for key in ("maps-F-ODS", "maps-Sobel-F-ODS", "F-ODS"):
        assert 0.0 <= scores[key] <= 1.0
    assert (tmp_path / "contour.ckpt").is_file()


def test_contour_source_maps_needs_a_root_and_unknown_sources_are_refused(tmp_path):
    from osvos_pl.runner.run import STAGES
    from osvos_pl.runner.validation import validate_config

    cfg = compose_cfg(["+experiment=contour", "contour.source=maps"], tmp_path)
    with pytest.raises(ConfigError, match="contour.source=maps needs contour.maps_root"):
        validate_config(cfg, STAGES)
    cfg = compose_cfg(["+experiment=contour", "contour.source=edges"], tmp_path)
    with pytest.raises(ConfigError, match="contour.source='edges'"):
        validate_config(cfg, STAGES)
    default = compose_cfg(["+experiment=contour"], tmp_path)
    assert default.data.contour_maps is None and default.task.loss.soft is False
    assert default.data.target == "contour"


def test_a_wrong_size_training_map_is_refused_before_training(root_and_maps, tmp_path):
    from PIL import Image

    from osvos_pl.runner.run import run
    from osvos_pl.utils.errors import DataError

    root, maps = root_and_maps
    bad = tmp_path / "maps"
    shutil.copytree(maps, bad)
    Image.new("L", (100, 50)).save(bad / SEQ / "00001.png")
    cfg = compose_cfg(["+experiment=contour", f"data.root={root}", "contour.source=maps",
                       f"contour.maps_root={bad}", "contour.updates=2", "contour.accumulate=1",
                       "data.scale=0.25", "data.num_workers=0", "model.weights=null",
                       "logger=none", "trainer.enable_progress_bar=false"], tmp_path / "out")
    with pytest.raises(DataError, match=r"00001.png is 100x50 but the frames"):
        run(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "contour.ckpt").exists()
