"""Quality claims on real DAVIS frames (``../shared/data/davis-sample``), through the CLI.

Quarter resolution (120x214) and short schedules keep each run to a minute or so on 2 CPU
cores. Adam at lr 1e-4 (10x the default) so that a few dozen updates learn: at the default
1e-5 one-shot fine-tuning from ImageNet weights needs ~300 updates. Each test prints the
numbers it reached (``pytest -s`` shows them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from osvos_pl.data.io import read_mask
from osvos_pl.stages.records import read_record
from tests.helpers import copy_sample, run_cli

pytestmark = pytest.mark.slow

FAST = ["data.scale=0.25", "data.num_workers=0", "logger=none", "optim.optimizer.lr=1e-4",
        "num_threads=2"]


def _cli(args: list[str], out: Path) -> dict:
    run_cli([*args, *FAST, f"hydra.run.dir={out}"], cwd=out.parent)
    return read_record(out / "metrics.json")


@pytest.fixture(scope="module")
def car_root(davis_sample, tmp_path_factory) -> Path:
    """car-shadow frames 0-19 as one sequence, and frames 20-39 as a held-back sequence."""
    root = copy_sample(davis_sample, tmp_path_factory.mktemp("car"), ("car-shadow",), frames=20)
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        held = root / kind / "480p" / "car-shadow-late"
        held.mkdir(parents=True)
        src = sorted((davis_sample / kind / "480p" / "car-shadow").glob(f"*.{ext}"))[20:]
        for i, f in enumerate(src):
            shutil.copy(f, held / f"{i:05d}.{ext}")
    return root


@pytest.fixture(scope="module")
def contour_run(car_root, vgg_weights, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("contour") / "run"
    _cli(["+experiment=contour", f"data.root={car_root}", "data.train_sequences=[car-shadow]",
          "data.sequences=[car-shadow-late]", "contour.updates=40", "contour.accumulate=1",
          f"model.weights={vgg_weights}"], out)
    return out


def test_parent_overfits_the_frames_it_trained_on(car_root, vgg_weights, tmp_path):
    """From ImageNet weights, a brief parent training on car-shadow reaches
    J-Mean > 0.6 on those frames (deep supervision, the Caffe side-loss schedule)."""
    record = _cli(["+experiment=parent", f"data.root={car_root}",
                   "data.train_sequences=[car-shadow]", "data.sequences=[car-shadow]",
                   "parent.updates=40", "parent.accumulate=1", "parent.val_every=1000",
                   f"model.weights={vgg_weights}"], tmp_path / "parent")
    g = record["global"]
    print(f"parent overfit, car-shadow 0-19 at 120x214, 40 updates: J-Mean {g['J-Mean']:.3f} "
          f"F-Mean {g['F-Mean']:.3f}, {record['timing']['seconds_per_step']:.2f} s/step")
    assert record["timing"]["optimizer_steps"] == 40
    assert g["J-Mean"] > 0.6


@pytest.fixture(scope="module")
def pn_late(car_root, vgg_weights, tmp_path_factory) -> Path:
    """-PN: 40 one-shot updates from ImageNet weights on the held-back sequence, no snapping."""
    out = tmp_path_factory.mktemp("pn") / "run"
    _cli(["+experiment=online_pn", f"data.root={car_root}", "data.sequences=[car-shadow-late]",
          f"model.weights={vgg_weights}", "online.iterations=40"], out)
    return out


def test_one_shot_fine_tuning_beats_the_untuned_network(car_root, vgg_weights, pn_late, tmp_path):
    """-PN (fine-tuned from ImageNet weights, no parent) against -OS with an untrained
    parent (the same network, no fine-tuning): fine-tuning wins by a wide margin."""
    tuned = read_record(pn_late / "metrics.json")
    untuned = _cli(["+experiment=online_os", f"data.root={car_root}",
                    "data.sequences=[car-shadow-late]", f"model.weights={vgg_weights}"],
                   tmp_path / "os")
    j_tuned, j_untuned = tuned["global"]["J-Mean"], untuned["global"]["J-Mean"]
    print(f"car-shadow 20-39 at 120x214: -PN 40 updates J {j_tuned:.3f} F "
          f"{tuned['global']['F-Mean']:.3f} ({tuned['timing']['finetune_seconds_per_sequence']:.1f}"
          f" s fine-tuning); -OS J {j_untuned:.3f} F {untuned['global']['F-Mean']:.3f}")
    assert untuned["config"]["online"]["iterations"] == 0 and tuned["config"]["online"]["iterations"] == 40
    # measured: J 0.52 (F 0.07: 40 updates at quarter size over-segment the smaller, later car;
    # on frames 0-19 the same setting gives J 0.84, F 0.61); -OS J 0.00
    assert j_tuned > 0.4
    assert j_tuned > j_untuned + 0.3


def test_trained_contour_branch_beats_sobel_on_held_back_frames(contour_run):
    """The contour branch's ODS boundary F against mask boundaries of frames 20-39, never trained on."""
    c = read_record(contour_run / "metrics.json")["contours"]
    print(f"contour branch on car-shadow 20-39 at 120x214 after 40 updates: F-ODS "
          f"{c['F-ODS']:.3f} (t={c['threshold']:.2f}); Sobel {c['Sobel-F-ODS']:.3f}")
    assert c["frames"] == 20
    assert c["F-ODS"] > c["Sobel-F-ODS"]


def test_online_with_snapping_runs_on_real_frames(car_root, vgg_weights, contour_run, pn_late,
                                                  tmp_path):
    """The full method (docs/method.md#boundary-snapping) (fine-tuning + boundary snapping) end to end on real frames.

    Same seed and fine-tuning as ``pn_late``, so the predictions differ by the snapping alone.
    Quality is not claimed here: a contour branch trained for 40 updates at quarter size gives
    smooth maps with few watershed basins (measured: 4 superpixels on a 480p frame), and
    snapping to so few regions lowers J. The oracle tests in test_snapping.py show what
    snapping does with good contours."""
    out = tmp_path / "osvos"
    record = _cli(["+experiment=online", f"data.root={car_root}",
                   "data.sequences=[car-shadow-late]", f"model.weights={vgg_weights}",
                   "online.iterations=40", f"contour_ckpt={contour_run / 'contour.ckpt'}"], out)
    unsnapped = read_record(pn_late / "metrics.json")
    assert record["config"]["snapping"] is True and unsnapped["config"]["snapping"] is False
    g, b = record["global"], unsnapped["global"]
    print(f"car-shadow 20-39, 40 updates: with snapping J {g['J-Mean']:.3f} F {g['F-Mean']:.3f}; "
          f"without (-BS) J {b['J-Mean']:.3f} F {b['F-Mean']:.3f}")
    assert set(record["sequences"]) == {"car-shadow-late"}
    snapped = sorted((out / "predictions" / "car-shadow-late").glob("*.png"))
    assert [p.name for p in snapped] == [f"{i:05d}.png" for i in range(20)]
    plain = pn_late / "predictions" / "car-shadow-late"
    changed = sum(not np.array_equal(read_mask(p), read_mask(plain / p.name)) for p in snapped)
    unsnapped = record["timing"]["sequences"]["car-shadow-late"]["unsnapped_frames"]
    print(f"snapping changed {changed} of 20 frames; {unsnapped} had no contour to snap to")
    assert changed + unsnapped >= 10, "snapping left most frames as they were: was it applied?"
