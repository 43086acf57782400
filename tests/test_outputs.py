"""Outputs a user passes on: predict's masks are what ``evaluate`` reads."""

from __future__ import annotations

import json

import pytest

from tests.helpers import copy_sample, run_cli

FRAMES = 4


@pytest.mark.slow
def test_evaluate_scores_the_masks_predict_wrote_for_a_davis_sequence(davis_sample, tmp_path):
    root = copy_sample(davis_sample, tmp_path / "davis", sequences=("car-shadow",), frames=FRAMES)
    frames = root / "JPEGImages" / "480p" / "car-shadow"
    out = tmp_path / "out"
    run_cli([f"input={frames}", f"mask={root / 'Annotations/480p/car-shadow/00000.png'}",
             "model.weights=null", "online.iterations=2", "data.scale=0.25", "logger=none",
             "data.num_workers=0", "overlay_video=false", f"output={out}",
             f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, module="osvos_pl.predict")
    masks = out / "masks" / "car-shadow"
    assert sorted(p.stem for p in masks.glob("*.png")) == [f"{i:05d}" for i in range(FRAMES)]

    proc = run_cli(["--pred", str(out / "masks"), "--gt", str(root),
                    "--out", str(tmp_path / "scores.json")], cwd=tmp_path,
                   module="osvos_pl.evaluate")
    record = json.loads((tmp_path / "scores.json").read_text())
    assert set(record["sequences"]) == {"car-shadow"}, proc.stdout
    assert 0.0 <= record["global"]["J-Mean"] <= 1.0
