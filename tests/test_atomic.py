"""Files written through a temporary name: readable as ``open()`` would make them, and the
sweep of interrupted runs' temporaries leaves this run's own alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from osvos_pl.data.io import write_mask
from osvos_pl.data.overlays import write_image
from osvos_pl.model.checkpoint import export_weights
from osvos_pl.utils.atomic import atomic_path, atomic_write_json, remove_stale_temporaries


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_are_readable_by_group_and_others_under_umask_022(umask_022, tmp_path):
    atomic_write_json(tmp_path / "metrics.json", {"ok": 1})
    export_weights(torch.nn.Linear(2, 1), {"normalization": "imagenet"}, tmp_path / "parent.ckpt")
    write_image(tmp_path / "sheet.png", np.zeros((4, 4, 3), np.uint8))
    write_mask(tmp_path / "masks" / "00000.png", np.zeros((4, 4), np.uint8), palette=False)
    for name in ("metrics.json", "parent.ckpt", "sheet.png", "masks/00000.png"):
        assert _mode(tmp_path / name) == 0o644, f"{name}: {oct(_mode(tmp_path / name))}"


def test_a_stricter_umask_is_kept(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_json(tmp_path / "private.json", {})
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "private.json") == 0o600


def test_the_sweep_leaves_a_temporary_this_run_is_writing(tmp_path):
    with atomic_path(tmp_path / "overlay.mp4") as live:
        live.write_bytes(b"frames so far")
        assert remove_stale_temporaries(tmp_path) == []
        assert live.is_file()
    assert (tmp_path / "overlay.mp4").read_bytes() == b"frames so far"


def test_the_sweep_removes_a_temporary_older_than_the_run(tmp_path):
    old = tmp_path / ".overlay.mp4.abcd1234.tmp.mp4"
    old.write_bytes(b"half")
    os.utime(old, (1e9, 1e9))
    assert remove_stale_temporaries(tmp_path) == [old] and not old.exists()
