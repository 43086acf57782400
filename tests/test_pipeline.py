"""End to end through the CLI on the generated default dataset: parent, online, sweeps, merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osvos_pl.stages.records import merge_records, read_record
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

TINY = ["data.scale=0.5", "data.num_workers=0", "data.generated.frames=6",
        "data.generated.train_sequences=2", "data.generated.val_sequences=2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def parent_run(cache, tmp_path_factory) -> Path:
    """The main command, shortened: parent training on the generated default, W&B offline."""
    out = tmp_path_factory.mktemp("parent")
    run_cli(["+experiment=parent", *TINY, "parent.updates=3", "parent.accumulate=2",
             "parent.val_every=4", "model.weights=null", f"paths.cache_dir={cache}",
             f"hydra.run.dir={out}"], cwd=out, env={"WANDB_MODE": "offline"})
    return out


def test_parent_run_leaves_checkpoint_record_and_offline_wandb_run(parent_run):
    record = read_record(parent_run / "metrics.json")
    assert record["experiment"] == "parent" and record["stage"] == "parent"
    assert record["timing"]["optimizer_steps"] == 3
    assert set(record["sequences"]) == {"gen-val-00", "gen-val-01"}
    assert 0.0 <= record["global"]["J&F-Mean"] <= 1.0
    assert (parent_run / "parent.ckpt").is_file()
    assert (parent_run / "checkpoints" / "last.ckpt").is_file()
    assert (parent_run / ".hydra" / "config.yaml").is_file()
    offline_runs = list((parent_run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, "exactly one offline W&B run"
    assert not list(parent_run.rglob("*.tmp*")), "no temporary files left behind"


def test_online_sweep_multirun_gives_two_complete_records(parent_run, cache, tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(["-m", "+experiment=online", *TINY, "online.iterations=0,2", "model.weights=null",
             f"parent_ckpt={parent_run / 'parent.ckpt'}", f"paths.cache_dir={cache}",
             "logger=csv", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    records = sorted((read_record(p) for p in sweep.glob("*/metrics.json")),
                     key=lambda r: r["config"]["online"]["iterations"])
    assert [r["config"]["online"]["iterations"] for r in records] == [0, 2]
    for r in records:
        assert set(r["sequences"]) == {"gen-val-00", "gen-val-01"}
        assert r["global"]["J&F-Mean"] == pytest.approx(
            (r["global"]["J-Mean"] + r["global"]["F-Mean"]) / 2)
    pngs = sorted((sweep / "1" / "predictions" / "gen-val-00").glob("*.png"))
    assert [p.stem for p in pngs] == [f"{i:05d}" for i in range(6)]


def test_joblib_per_sequence_jobs_merge_to_the_single_job_numbers(parent_run, cache, tmp_path):
    common = [*TINY, "online.iterations=2", "model.weights=null", "logger=none", "num_threads=1",
              f"parent_ckpt={parent_run / 'parent.ckpt'}", f"paths.cache_dir={cache}"]
    run_cli(["+experiment=online", *common, "data.sequences=[gen-val-00,gen-val-01]",
             f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    run_cli(["-m", "+experiment=online", *common, "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=2", "data.sequences=[gen-val-00],[gen-val-01]",
             f"hydra.sweep.dir={tmp_path / 'jobs'}"], cwd=tmp_path)
    single = read_record(tmp_path / "single" / "metrics.json")
    merged = merge_records(read_record(p) for p in (tmp_path / "jobs").glob("*/metrics.json"))
    assert merged["sequences"] == single["sequences"]
    for key, value in single["global"].items():
        assert merged["global"][key] == pytest.approx(value, abs=1e-12)


def test_online_rerun_skips_finished_sequences(parent_run, cache, tmp_path):
    args = ["+experiment=online", *TINY, "online.iterations=1", "model.weights=null",
            "logger=none", f"parent_ckpt={parent_run / 'parent.ckpt'}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    run_cli(args, cwd=tmp_path)
    done = tmp_path / "run" / "sequences" / "gen-val-00.json"
    first = json.loads(done.read_text())
    (tmp_path / "run" / "sequences" / "gen-val-01.json").unlink()  # as if killed mid-way
    proc = run_cli(args, cwd=tmp_path)
    assert "gen-val-00: already done" in proc.stdout + proc.stderr
    assert json.loads(done.read_text()) == first
    assert (tmp_path / "run" / "sequences" / "gen-val-01.json").is_file()


def test_multi_object_2017_merges_objects_into_a_palette(cache, tmp_path):
    import numpy as np
    from PIL import Image

    run_cli(["+experiment=online", "data=davis2017", *TINY, "data.sequences=[gen-val-00]",
             "online.iterations=2", "model.weights=null", "logger=none", f"paths.cache_dir={cache}",
             f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    record = read_record(tmp_path / "run" / "metrics.json")
    assert set(record["sequences"]) == {"gen-val-00_1", "gen-val-00_2"}
    # online.objects=auto: one network for both objects
    assert record["timing"]["sequences"]["gen-val-00"]["object_mode"] == "joint"
    png = tmp_path / "run" / "predictions" / "gen-val-00" / "00003.png"
    with Image.open(png) as im:
        assert im.mode == "P"
        assert set(np.unique(np.asarray(im))) <= {0, 1, 2}
