"""Bad input, end to end through the CLI: each case exits non-zero, says which file or key is
wrong, and leaves nothing under a final name (no metrics.json, no predictions, no records).

The roots are built in ``tmp_path`` from the first frames of the real DAVIS sample; one case
breaks one thing. A clean copy of the same root must run, so a failure can only come from the
broken input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osvos_pl.data.io import davis_palette
from tests.helpers import copy_sample, run_cli

SEQ = "car-shadow"
FRAMES = 4
FAST = ["data.scale=0.25", "data.num_workers=0", "online.iterations=0", "model.weights=null",
        "logger=none", "trainer.enable_progress_bar=false"]


def _frame(root: Path, i: int) -> Path:
    return root / "JPEGImages" / "480p" / SEQ / f"{i:05d}.jpg"


def _mask(root: Path, i: int) -> Path:
    return root / "Annotations" / "480p" / SEQ / f"{i:05d}.png"


def corrupt_jpeg(root: Path, tmp: Path) -> tuple[list[str], str]:
    path = _frame(root, 2)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG" + bytes(200))
    return [], str(path)


def truncated_png(root: Path, tmp: Path) -> tuple[list[str], str]:
    path = _mask(root, 2)  # a later mask: the online stage scores it, so it is checked up front
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return [], str(path)


def non_binary_2016_mask(root: Path, tmp: Path) -> tuple[list[str], str]:
    path = _mask(root, 1)
    labels = np.asarray(Image.open(path).convert("L")).copy()
    labels[labels > 0] = 128
    Image.fromarray(labels).save(path)
    return [], str(path)


def ids_beyond_first_frame_2017(root: Path, tmp: Path) -> tuple[list[str], str]:
    """Palette masks: frame 0 has object 1; frame 2 also has an object 2 frame 0 never had."""
    for i in range(FRAMES):
        labels = (np.asarray(Image.open(_mask(root, i)).convert("L")) > 0).astype(np.uint8)
        if i == 2:
            labels[:40, :40] = 2
        im = Image.fromarray(labels, mode="L").convert("P")
        im.putpalette(davis_palette())
        im.save(_mask(root, i))
    return ["data=davis2017"], str(_mask(root, 2))


def mixed_frame_sizes(root: Path, tmp: Path) -> tuple[list[str], str]:
    path = _frame(root, 3)
    with Image.open(path) as im:
        im.resize((im.width // 2, im.height // 2)).save(path)
    return [], str(path)


def split_lists_missing_sequence(root: Path, tmp: Path) -> tuple[list[str], str]:
    split = root / "ImageSets" / "480p" / "val.txt"
    split.parent.mkdir(parents=True)
    split.write_text("".join(
        f"/JPEGImages/480p/{seq}/00000.jpg /Annotations/480p/{seq}/00000.png\n"
        for seq in (SEQ, "bear")))
    return ["data.sequences=null"], str(split)  # evaluate the split, not an explicit list


def unwritable_output_dir(root: Path, tmp: Path) -> tuple[list[str], str]:
    # Tests run as root, and root writes into a chmod 0o555 folder regardless. A folder that
    # cannot be created at all fails for root too: the output dir's parent is a regular file.
    blocker = tmp / "blocker"
    blocker.write_text("a file where the output folder's parent should be")
    return [f"hydra.run.dir={blocker / 'run'}"], str(blocker)


def wrong_type_config_value(root: Path, tmp: Path) -> tuple[list[str], str]:
    return ["online.iterations=abc"], "online.iterations"


CASES = [corrupt_jpeg, truncated_png, non_binary_2016_mask, ids_beyond_first_frame_2017,
         mixed_frame_sizes, split_lists_missing_sequence, unwritable_output_dir,
         wrong_type_config_value]


def _online(root: Path, out: Path, extra: list[str], cwd: Path):
    args = ["+experiment=online", f"data.root={root}", f"data.sequences=[{SEQ}]", *FAST,
            f"hydra.run.dir={out}", *extra]  # a later override of the same key wins
    return run_cli(args, cwd=cwd, check=False)


def _final_outputs(tmp: Path) -> list[Path]:
    """Files under their final names that a run writes: records and predicted masks."""
    return sorted(p for pattern in ("metrics.json", "predictions/**/*.png", "sequences/*.json")
                  for p in tmp.rglob(pattern))


@pytest.mark.slow
def test_clean_sample_root_runs(davis_sample, tmp_path):
    """The control: the unbroken root runs, so each failure below comes from its one defect."""
    root = copy_sample(davis_sample, tmp_path / "davis", sequences=(SEQ,), frames=FRAMES)
    proc = _online(root, tmp_path / "out", [], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert len(list((tmp_path / "out" / "predictions" / SEQ).glob("*.png"))) == FRAMES


@pytest.mark.slow
@pytest.mark.parametrize("breaker", CASES, ids=lambda f: f.__name__)
def test_bad_input_fails_naming_the_culprit_and_writes_nothing(breaker, davis_sample, tmp_path):
    root = copy_sample(davis_sample, tmp_path / "davis", sequences=(SEQ,), frames=FRAMES)
    extra, culprit = breaker(root, tmp_path)
    proc = _online(root, tmp_path / "out", extra, tmp_path)
    assert proc.returncode != 0, f"{breaker.__name__} was accepted:\n{proc.stderr[-3000:]}"
    assert culprit in proc.stderr, f"stderr does not name {culprit}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr or breaker is unwritable_output_dir, proc.stderr[-3000:]
    assert _final_outputs(tmp_path) == []
