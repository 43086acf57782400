"""The wheel carries the Hydra configs and the shipped parent, so an installed (non-editable)
osvos_pl finds conf/ and ``parent_ckpt=davis2016``."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
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
        [sys.executable, "-c", "from osvos_pl.runner.config import config_dir; print(config_dir())"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert out == str(tmp_path / "site" / "osvos_pl" / "conf")


@pytest.mark.slow
def test_the_wheel_carries_the_shipped_parent_and_predict_finds_it_in_a_fresh_venv(tmp_path):
    """``pip wheel .`` holds osvos_pl/weights/<the parent>; installed (no deps) into a new venv
    that borrows this one's dependencies, predict runs from another folder and fine-tunes the
    parent from the venv's own copy, SHA-256 checked."""
    import numpy as np
    from PIL import Image

    from osvos_pl.model.shipped import DEFAULT, SHIPPED

    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w",
                    str(tmp_path), "-q"], check=True, capture_output=True)
    wheel = next(tmp_path.glob("osvos_pl-*.whl"))
    member = f"osvos_pl/weights/{SHIPPED[DEFAULT].file}"
    with zipfile.ZipFile(wheel) as zf:
        assert zf.getinfo(member).file_size == SHIPPED[DEFAULT].path.stat().st_size
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    # the dependencies from this environment (a .pth line: its own .pth files, among them the
    # editable checkout's, are not read)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(clip / f"{i}.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    run = tmp_path / "elsewhere"
    run.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1",
           "HTTPS_PROXY": "http://127.0.0.1:9", "OSVOS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(python), "-m", "osvos_pl.predict", f"input={clip}",
                           f"mask={tmp_path / 'mask.png'}", "online.iterations=1",
                           "online.prefix=eager", "data.num_workers=0", "logger=none",
                           "num_threads=1", "output=out"],
                          cwd=run, env=env, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "parent checkpoint davis2016" in text and "SHA-256 checked" in text
    assert str(site / member) in text  # the venv's own copy, not the checkout's
    assert len(list((run / "out" / "masks").rglob("*.png"))) == 2
