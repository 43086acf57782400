"""The wheel carries the Hydra configs, so an installed (non-editable) osvos_pl finds conf/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_conf_and_the_app_finds_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w",
                    str(tmp_path), "-q"], check=True, capture_output=True)
    wheel = next(tmp_path.glob("osvos_pl-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    expected = {p.relative_to(REPO).as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    assert {f"osvos_pl/{e}" for e in expected} <= names
    # the installed package, run from elsewhere, composes its config from inside the wheel
    out = subprocess.run(
        [sys.executable, "-c", "from osvos_pl.config import config_dir; print(config_dir())"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert out == str(tmp_path / "site" / "osvos_pl" / "conf")
