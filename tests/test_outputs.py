"""Outputs a user passes on: predict's masks are what ``evaluate`` reads."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.helpers import copy_sample, run_cli

FRAMES = 4


@pytest.mark.slow
def test_predicts_next_command_scores_the_masks_it_wrote_for_a_davis_sequence(davis_sample, tmp_path):
    """predict on a clip made from a sample sequence (its DAVIS frame folder and first mask)
    prints a ``next:`` command that runs as printed and scores that sequence."""
    root = copy_sample(davis_sample, tmp_path / "davis", sequences=("car-shadow",), frames=FRAMES)
    frames = root / "JPEGImages" / "480p" / "car-shadow"
    proc = run_cli([f"input={frames}", f"mask={root / 'Annotations/480p/car-shadow/00000.png'}",
                    "model.weights=null", "online.iterations=2", "data.scale=0.25", "logger=none",
                    "data.num_workers=0", "overlay_video=false", "output=out"], cwd=tmp_path,
                   module="osvos_pl.predict")
    masks = tmp_path / "out" / "masks" / "car-shadow"
    assert sorted(p.stem for p in masks.glob("*.png")) == [f"{i:05d}" for i in range(FRAMES)]

    line = re.search(r"\] next: (.*)$", proc.stdout, re.MULTILINE).group(1)
    args = shlex.split(line)
    assert args[:3] == ["python", "-m", "osvos_pl.evaluate"], line
    scored = run_cli([*args[3:], "--out", "scores.json"], cwd=tmp_path, module="osvos_pl.evaluate")
    record = json.loads((tmp_path / "scores.json").read_text())
    assert set(record["sequences"]) == {"car-shadow"}, scored.stdout
    assert 0.0 <= record["global"]["J-Mean"] <= 1.0
