"""The paper-reproduction recipe runs end to end at the smallest scale, and its table is the
run records' numbers (not merely "a table printed")."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from osvos_pl.stages.records import GLOBAL_KEYS, read_record

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ablation_recipe_table_equals_run_records(tmp_path):
    out = tmp_path / "ablation"
    env = {
        **os.environ, "PYTHON": sys.executable, "WANDB_MODE": "disabled",
        "OVERRIDES": (f"paths.cache_dir={tmp_path / 'cache'} model.weights=null logger=none "
                      "data.num_workers=0 data.generated.frames=5 data.generated.train_sequences=1 "
                      "data.generated.val_sequences=2"),
    }
    proc = subprocess.run(["bash", str(REPO / "experiments" / "ablation.sh"), "generated", "smoke",
                           str(out)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert (out / "ablation.md").is_file() and (out / "ablation.tex").is_file()
    table = subprocess.run([sys.executable, "-m", "osvos_pl.report", str(out), "--table",
                            "ablation", "--format", "csv"], capture_output=True, text=True,
                           check=True, env=env).stdout
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(table))}
    expected = {"OSVOS": "osvos", "-BS": "bs", "-PN": "pn", "-OS": "os"}
    assert set(rows) == set(expected)
    for method, folder in expected.items():
        record = read_record(out / folder / "metrics.json")
        for key in GLOBAL_KEYS:
            assert float(rows[method][key]) == pytest.approx(record["global"][key], abs=1e-12), (
                method, key)
    latex = (out / "ablation.tex").read_text()
    assert sum(line.strip().startswith(m) for m in expected for line in latex.splitlines()) == 4


@pytest.mark.slow
def test_official_split_recipe_trains_on_train_scores_val_and_adds_the_reference_row(
        tmp_path, davis_sample, davis_train_240p, vgg_weights):
    """The paper's protocol at smoke scale: the parent learns from DAVIS 2016 train at 240p
    without the dev sequence and is selected on it; every scored run reads the 480p val sample;
    the -OS fit check reads the train root; the authors' masks become a reference row."""
    import json

    published = davis_sample.parent / "osvos-published" / "davis2016-val"
    out = tmp_path / "ablation"
    env = {
        **os.environ, "PYTHON": sys.executable, "WANDB_MODE": "disabled",
        "TRAIN_ROOT": str(davis_train_240p), "TRAIN_RES": "240p", "EVAL_SPLIT": "val",
        "DEV_SEQ": "dog-agility", "FIT_SEQ": "rollerblade", "DATA_SCALE": "0.1",
        "CONTOUR_MAPS": str(davis_sample / "Contours" / "480p"), "REFERENCE": str(published),
        "OVERRIDES": f"model.weights={vgg_weights} logger=none data.num_workers=0",
    }
    proc = subprocess.run(["bash", str(REPO / "experiments" / "ablation.sh"), str(davis_sample),
                           "smoke", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    parent = read_record(out / "parent" / "metrics.json")
    assert parent["eval_sequences"] == ["dog-agility"]
    assert len(parent["train_sequences"]) == 29 and "dog-agility" not in parent["train_sequences"]
    assert parent["config"]["data"]["scale"] == pytest.approx(0.2)  # 0.1 of 480p = 0.2 of 240p
    for run in ("osvos", "osvos-maps", "bs", "pn", "os"):
        record = read_record(out / run / "metrics.json")
        assert sorted(record["sequences"]) == ["blackswan", "car-shadow"], run
    fit = read_record(out / "fit" / "os-train" / "metrics.json")
    assert list(fit["sequences"]) == ["rollerblade"]
    reference = json.loads((out / "reference.json").read_text())
    rows = (out / "ablation.md").read_text()
    assert "OSVOS, the authors' published masks" in rows
    assert f"{100 * reference['global']['J&F-Mean']:.1f}" in rows
    assert "| parent |" in (out / "steps.md").read_text()


@pytest.mark.slow
def test_dev_recipe_chooses_on_held_out_train_sequences_and_tables_what_it_ran(
        tmp_path, davis_train_240p, vgg_weights):
    """dev.sh: the parent never sees the dev sequence, each chosen run scores only it (the larger
    input at 5/3 the protocol's scale), and the choice table has a row per run it ran."""
    out = tmp_path / "dev"
    env = {
        **os.environ, "PYTHON": sys.executable, "WANDB_MODE": "disabled",
        "DEV_SEQ": "dog-agility", "TRAIN_RES": "240p", "DATA_SCALE": "0.1",
        "ONLY": "os shift12-large",
        "OVERRIDES": f"model.weights={vgg_weights} logger=none data.num_workers=0",
    }
    proc = subprocess.run(["bash", str(REPO / "experiments" / "dev.sh"), str(davis_train_240p),
                           "smoke", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "dog-agility" not in read_record(out / "parent" / "metrics.json")["train_sequences"]
    scales = {}
    for run in ("os", "shift12-large"):
        record = read_record(out / "oneshot" / run / "metrics.json")
        assert list(record["sequences"]) == ["dog-agility"], run
        scales[run] = record["config"]["data"]["scale"]
    assert scales == {"os": pytest.approx(0.2), "shift12-large": pytest.approx(0.2 * 5 / 3)}
    assert not (out / "oneshot" / "default").exists()  # ONLY ran just the two
    table = (out / "choice.md").read_text()
    assert "os" in table and "shift12-large" in table and "l2sp" not in table
