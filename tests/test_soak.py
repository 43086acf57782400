"""A small run of the fault-injection soak (``benchmarks/soak.py``): a parent training stopped
twice and an online run stopped once, at random moments, by SIGKILL, SIGTERM or SIGINT to the
process group, resumed each time, end exactly as their uninterrupted twins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_runs_killed_at_random_moments_end_as_uninterrupted_ones(tmp_path):
    summary_path = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--kills", "2", "--online-kills",
         "1", "--seed", "0", "--out", str(tmp_path / "soak"), "--json", str(summary_path)],
        capture_output=True, text=True, timeout=1800)
    assert summary_path.is_file(), proc.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    stages = {s["stage"]: s for s in summary["stages"]}
    assert [stages[s]["differences"] for s in ("parent", "online")] == [[], []]
    assert proc.returncode == 0
    assert stages["parent"]["kills"] == 2 and stages["online"]["kills"] == 1
    assert all(s["resumes"] == s["kills"] for s in stages.values())  # each stop: one re-run
    assert summary["online_masks"] == 18
    assert 0.01 < summary["online_foreground_fraction"] < 0.9, "trivial masks prove nothing"
