"""A command refused before it starts: one line on stderr, exit 2, no traceback, and nothing left
behind (no output folder, no W&B run); a checkpoint that is not one is named for what it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_cli

W, H = 64, 48


@pytest.fixture
def clip(tmp_path) -> tuple[Path, Path]:
    """A frame folder of three 64x48 frames and a mask of the right size with one object."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(frames / f"{i:05d}.png")
    mask = np.zeros((H, W), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return frames, tmp_path / "mask.png"


def _predict(args: list[str], cwd: Path):
    return run_cli(args, cwd=cwd, module="osvos_pl.predict", check=False,
                   env={"WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"})


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def _nothing_left(tmp_path: Path, out: Path) -> None:
    assert not out.exists(), f"a refused run made {out}"
    assert not (tmp_path / "outputs").exists(), "a refused run made ./outputs"
    assert not list(tmp_path.rglob("wandb")), "W&B started before the run was refused"


def test_predict_without_arguments_prints_the_usage_line_and_exits_2(tmp_path):
    proc = _predict([], tmp_path)
    line = _one_line(proc)
    assert proc.returncode == 2
    assert line.startswith("usage: python -m osvos_pl.predict input=") and "mask=" in line
    _nothing_left(tmp_path, tmp_path / "outputs")


@pytest.mark.parametrize("given,missing", [(["input=clip.mp4"], "mask="),
                                           (["mask=first.png"], "input="),
                                           (["online.iterations=5"], "input= and mask=")])
def test_predict_without_input_or_mask_names_it_with_the_usage_and_exits_2(given, missing, tmp_path):
    proc = _predict(given, tmp_path)
    line = _one_line(proc)
    assert proc.returncode == 2
    assert line.startswith(f"error: {missing} ") and "usage: python -m osvos_pl.predict" in line
    _nothing_left(tmp_path, tmp_path / "outputs")


def _empty_mask(tmp_path: Path, clip) -> list[str]:
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "empty.png")
    return [f"input={clip[0]}", f"mask={tmp_path / 'empty.png'}"]


def _small_mask(tmp_path: Path, clip) -> list[str]:
    Image.fromarray(np.full((10, 12), 255, np.uint8)).save(tmp_path / "small.png")
    return [f"input={clip[0]}", f"mask={tmp_path / 'small.png'}"]


def _png_parent(tmp_path: Path, clip) -> list[str]:
    return [f"input={clip[0]}", f"mask={clip[1]}", f"parent_ckpt={clip[1]}"]


def _bad_value(tmp_path: Path, clip) -> list[str]:
    return [f"input={clip[0]}", f"mask={clip[1]}", "online.iterations=abc"]


@pytest.mark.parametrize("case,says", [
    (_empty_mask, "empty.png is empty"),
    (_small_mask, "small.png is 12x10 but the frames are 64x48"),
    (_png_parent, "mask.png is a PNG image, not a checkpoint"),
    (_bad_value, "online.iterations='abc' is not an integer"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else None)
def test_a_refused_predict_leaves_no_output_folder_and_no_wandb_run(case, says, clip, tmp_path):
    out = tmp_path / "out"
    proc = _predict([*case(tmp_path, clip), f"output={out}"], tmp_path)
    line = _one_line(proc)
    assert proc.returncode == 2 and line.startswith("error: ") and says in line, line
    _nothing_left(tmp_path, out)


def test_a_png_as_parent_ckpt_is_named_for_what_it_is(tmp_path):
    from osvos_pl.model.checkpoint import safe_load
    from osvos_pl.utils.errors import ConfigError

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "first.png")
    (tmp_path / "notes.ckpt").write_text("not weights")
    with pytest.raises(ConfigError, match=r"first\.png is a PNG image, not a checkpoint"):
        safe_load(tmp_path / "first.png")
    with pytest.raises(ConfigError, match=r"notes\.ckpt is a text file, not a checkpoint"):
        safe_load(tmp_path / "notes.ckpt")


def test_an_unknown_group_option_is_one_line_and_exit_2(tmp_path):
    proc = run_cli(["data=davis2099"], cwd=tmp_path, check=False, env={"HYDRA_FULL_ERROR": "0"})
    line = _one_line(proc)
    assert proc.returncode == 2 and "davis2099" in line and "davis2017" in line, line
    assert not (tmp_path / "outputs").exists()
