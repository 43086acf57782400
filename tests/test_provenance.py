"""Checkpoints say what they were trained on, and a parent that cannot segment real frames (the
generated stand-in data, a random backbone) is warned about where it meets real frames."""

from __future__ import annotations

import logging

import pytest

from osvos_pl.model.checkpoint import (
    describe_training,
    export_weights,
    load_checkpoint,
    unsuited_for_real_frames,
)
from osvos_pl.model.factory import build_network
from osvos_pl.tasks.callbacks import TrainedOn
from tests.helpers import compose_cfg

QUICK_START = {"data": "generated", "root": "/cache/generated", "sequences": ["g0", "g1"],
               "scale": 1.0, "updates": 300, "random_backbone": True,
               "backbone": "a RANDOM VGG16 backbone (model.weights=imagenet unavailable offline)"}
DAVIS = {**QUICK_START, "data": "davis", "root": "/data/DAVIS", "random_backbone": False,
         "backbone": "ImageNet VGG16 (torchvision, via torch.hub)"}


@pytest.fixture(scope="module")
def net():
    return build_network(weights=None)


def _parent(tmp_path, net, trained_on):
    return export_weights(net, {"normalization": "imagenet"}, tmp_path / "parent.ckpt", trained_on)


def test_an_exported_parent_records_what_it_was_trained_on(net, tmp_path):
    loaded = load_checkpoint(build_network(weights=None), _parent(tmp_path, net, QUICK_START))
    assert loaded.trained_on == QUICK_START and loaded.normalization == "imagenet"
    words = describe_training(loaded.trained_on)
    assert "generated stand-in data" in words and "2 sequences" in words and "RANDOM" in words


def test_lightning_checkpoints_get_trained_on_too():
    checkpoint = {"state_dict": {}}
    TrainedOn(DAVIS).on_save_checkpoint(None, None, checkpoint)
    assert checkpoint["trained_on"] == DAVIS


@pytest.mark.parametrize("trained_on,unsuited", [
    (QUICK_START, True), ({**DAVIS, "random_backbone": True}, True),
    ({**QUICK_START, "random_backbone": False}, True), (DAVIS, False), (None, False)])
def test_generated_data_or_a_random_backbone_is_unsuited_for_real_frames(trained_on, unsuited):
    assert (unsuited_for_real_frames(trained_on) is not None) is unsuited


def _load_parent(tmp_path, ckpt, real_frames, caplog):
    from osvos_pl.stages.parent_network import parent_network as load_parent

    cfg = compose_cfg(["+experiment=online", f"parent_ckpt={ckpt}", "model.weights=null"], tmp_path)
    with caplog.at_level(logging.INFO, logger="osvos_pl"):
        net, _ = load_parent(cfg, real_frames=real_frames)
    return net, [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_quick_start_parent_on_real_frames_warns_once_with_what_to_do(net, tmp_path, caplog):
    _, warnings = _load_parent(tmp_path, _parent(tmp_path, net, QUICK_START), True, caplog)
    assert len(warnings) == 1, warnings
    assert "generated stand-in data" in warnings[0] and "RANDOM backbone" in warnings[0]
    for fix in ("parent_ckpt=davis2016", "data.root=DAVIS_ROOT", "parent_ckpt=osvos-pytorch",
                "parent_ckpt=null"):
        assert fix in warnings[0]


def test_no_warning_on_the_generated_data_or_for_a_davis_parent(net, tmp_path, caplog):
    assert _load_parent(tmp_path, _parent(tmp_path, net, QUICK_START), False, caplog)[1] == []
    caplog.clear()
    loaded, warnings = _load_parent(tmp_path, _parent(tmp_path, net, DAVIS), True, caplog)
    assert warnings == [] and "trained on /data/DAVIS" in loaded.weights_source
