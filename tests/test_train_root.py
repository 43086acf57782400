"""Training on one dataset, evaluating on another: the parent learns from DAVIS 2016 train at
240p while the evaluated sequences are the 480p val sample (``data.train_root``)."""

from __future__ import annotations

import pytest

from osvos_pl.data.datamodule import DAVISDataModule


def _dm(davis_sample, davis_train_240p, **kw) -> DAVISDataModule:
    return DAVISDataModule(root=str(davis_sample), train_root=str(davis_train_240p),
                           train_resolution="240p", train_split="train", eval_split=None,
                           sequences=["car-shadow"], scale=0.3, num_workers=0, augment="none",
                           **kw)


def test_training_frames_come_from_the_train_root_at_the_evaluated_input_size(
        davis_sample, davis_train_240p):
    """scale 0.3 of 854x480 is 256x144; the 427x240 training frames reach the same size at 0.6."""
    dm = _dm(davis_sample, davis_train_240p)
    names = dm.train_names()
    assert len(names) == 30 and "bear" in names and "car-shadow" not in names
    assert dm.eval_names() == ["car-shadow"]
    assert dm.training_scale == pytest.approx(0.6)
    batch = next(iter(dm.train_dataloader()))
    evaluated = dm.sequence_dataset("car-shadow")[0]["image"]
    assert batch["image"].shape[-2:] == evaluated.shape[-2:] == (144, 256)
    assert batch["mask"].sum() > 0
    assert dm.train_data_root == davis_train_240p and dm.data_root == davis_sample


def test_an_explicit_train_scale_wins(davis_sample, davis_train_240p):
    dm = _dm(davis_sample, davis_train_240p, train_scale=0.25)
    assert dm.training_scale == 0.25
    assert next(iter(dm.train_dataloader()))["image"].shape[-2:] == (60, 107)


def test_one_root_with_both_splits_is_unchanged(davis_sample):
    dm = DAVISDataModule(root=str(davis_sample), train_split="train", eval_split="val",
                         scale=0.3, num_workers=0)
    assert dm.train_index is dm.index and dm.training_scale == 0.3
    assert "blackswan" not in dm.train_names()


def test_parent_stage_trains_on_the_train_root_and_records_it(davis_sample, davis_train_240p,
                                                              vgg_weights, tmp_path):
    """Two updates on train-240p, validated on car-shadow at 480p: the record names both roots."""
    import json

    from tests.helpers import run_cli

    run_cli([
        "+experiment=parent", "logger=none", "hydra.run.dir=run", f"data.root={davis_sample}", f"data.train_root={davis_train_240p}",
        "data.train_resolution=240p", "data.train_sequences=[bear]", "data.sequences=[car-shadow]",
        "data.scale=0.15", "parent.updates=2", "parent.val_every=2", "parent.frozen_stages=3",
        f"model.weights={vgg_weights}", "data.num_workers=0",
    ], cwd=tmp_path)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["train_sequences"] == ["bear"] and record["eval_sequences"] == ["car-shadow"]
    assert record["artifacts"]["train_root"] == str(davis_train_240p)
    assert record["artifacts"]["data_root"] == str(davis_sample)
    assert 0 <= record["global"]["J-Mean"] <= 1
