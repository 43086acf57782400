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

from osvos_pl.records import GLOBAL_KEYS, read_record

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
