"""Optional dependencies are imported where their feature runs, not by every command.

"Unimportable" as on a machine without the package: ``sys.modules[name] = None``, so ``import``
fails and ``importlib.util.find_spec`` reports it absent (``online.prefix=auto`` then stays
eager without torchao).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

OPTIONAL = ("higra", "torchao", "gradio", "wandb")

_BLOCK = "import sys\nfor name in {names!r}:\n    sys.modules[name] = None\n"


def _run(names: tuple[str, ...], body: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK.format(names=list(names)) + body],
                          capture_output=True, text=True, cwd=cwd)


def _command(module: str, args: list[str]) -> str:
    """``python -m module args`` inside the blocking process."""
    return (f"import runpy\nsys.argv = [{module!r}, *{args!r}]\n"
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n")


@pytest.mark.parametrize("name", OPTIONAL)
def test_online_predict_and_evaluate_import_without(name):
    proc = _run((name,), "import osvos_pl.stages.online, osvos_pl.predict, osvos_pl.evaluate\n"
                         "import osvos_pl.runner.run\n"
                         f"print(sys.modules.get({name!r}) is None)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "True"


def test_snapping_without_higra_says_what_to_install():
    proc = _run(("higra",), "import numpy as np\nfrom osvos_pl.snapping import superpixels\n"
                            "superpixels(np.zeros((8, 8)))")
    assert proc.returncode != 0
    assert "boundary snapping needs higra (pip install higra)" in proc.stderr


@pytest.mark.slow
def test_bs_runs_on_the_generated_data_without_any_optional_dependency(tmp_path):
    out = tmp_path / "bs"
    proc = _run(OPTIONAL, _command("osvos_pl", [
        "+experiment=online_bs", "online.iterations=2", "logger=csv", "data.num_workers=0",
        "trainer.enable_progress_bar=false", f"paths.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={out}"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "metrics.json").is_file() and list((out / "predictions").rglob("*.png"))


def _clip(folder: Path, frames: int = 4) -> tuple[Path, Path]:
    """A square drifting over a textured background, and its first mask."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 90, (96, 128, 3), dtype=np.uint8)
    (folder / "frames").mkdir(parents=True)
    for i in range(frames):
        image = background.copy()
        image[30:62, 20 + 8 * i:52 + 8 * i] = (230, 200, 40)
        Image.fromarray(image).save(folder / "frames" / f"{i:05d}.jpg")
    mask = np.zeros((96, 128), np.uint8)
    mask[30:62, 20:52] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "frames", folder / "mask.png"


@pytest.mark.slow
def test_predict_runs_without_any_optional_dependency(tmp_path):
    frames, mask = _clip(tmp_path / "clip")
    out = tmp_path / "predict"
    proc = _run(OPTIONAL, _command("osvos_pl.predict", [
        f"input={frames}", f"mask={mask}", "online.iterations=2", "logger=none",
        "trainer.enable_progress_bar=false", f"output={out}"]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert len(list(out.rglob("*.png"))) >= 4
