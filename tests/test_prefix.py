"""The frozen prefix (``online.prefix``, osvos_pl.model.prefix): VGG stages 1..k built once,
compiled or quantised to int8, giving what each network's own layers give, and used by the
segmenter for the fine-tuning views and for every frame.

The compiled and int8 cases run inductor, which builds C++ kernels: they need a C++ compiler
and (int8) torchao, both installed by ``.ci/run``; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from unittest import mock

import numpy as np
import pytest
import torch

from osvos_pl.model import prefix as prefix_module
from osvos_pl.model.osvos import OSVOSNet, freeze_stages
from osvos_pl.model.prefix import FrozenPrefix, _Stages, resolve_prefix_mode
from osvos_pl.utils.errors import ConfigError
from tests.helpers import cpu_engine

HAVE_COMPILER = shutil.which("g++") is not None or shutil.which("c++") is not None
try:
    import torchao  # noqa: F401

    HAVE_TORCHAO = True
except ImportError:
    HAVE_TORCHAO = False
IN_CI = os.environ.get("CI") == "true"

needs_compiler = pytest.mark.skipif(not HAVE_COMPILER and not IN_CI,
                                    reason="inductor needs a C++ compiler (g++)")
needs_torchao = pytest.mark.skipif(not (HAVE_COMPILER and HAVE_TORCHAO) and not IN_CI,
                                   reason="the int8 prefix needs torchao and a C++ compiler")


def _net(seed: int = 0) -> OSVOSNet:
    torch.manual_seed(seed)
    return OSVOSNet(init="port").eval()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# --- choosing a mode ------------------------------------------------------------------------

def test_unknown_and_impossible_modes_are_config_errors():
    with pytest.raises(ConfigError, match="online.prefix='fast'"):
        resolve_prefix_mode("fast", torch.device("cpu"))
    with pytest.raises(ConfigError, match="x86 CPUs"):
        resolve_prefix_mode("int8", torch.device("cuda"))
    assert resolve_prefix_mode("compiled", torch.device("cpu")) == "compiled"
    assert resolve_prefix_mode("eager", torch.device("cpu")) == "eager"


@pytest.mark.parametrize("vnni, compiler, torchao_found, expected", [
    (True, True, True, "int8"), (False, True, True, "eager"), (True, False, True, "eager"),
    (True, True, False, "eager"),
])
def test_auto_is_int8_only_on_a_vnni_cpu_with_torchao_and_a_compiler(
        monkeypatch, vnni, compiler, torchao_found, expected):
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni)
    monkeypatch.setattr(prefix_module.shutil, "which", lambda name: "/usr/bin/g++" if compiler else None)
    real_find_spec = prefix_module.importlib.util.find_spec
    monkeypatch.setattr(prefix_module.importlib.util, "find_spec",
                        lambda name: (real_find_spec(name) if torchao_found else None)
                        if name == "torchao" else real_find_spec(name))
    assert resolve_prefix_mode("auto", torch.device("cpu")) == expected
    assert resolve_prefix_mode("auto", torch.device("cuda")) == "eager"
    if not torchao_found:
        with pytest.raises(ConfigError, match="pip install torchao"):
            resolve_prefix_mode("int8", torch.device("cpu"))


def test_the_traceable_stages_equal_trunk_prefix_at_odd_sizes():
    """The pools' ceil mode done as zero padding + exact pooling (the form inductor's int8 pool
    lowers correctly) gives ``trunk_prefix``'s taps and activation, at every stage."""
    net, image = _net(), torch.randn(2, 3, 37, 53)
    with torch.no_grad():
        for stages in range(1, 6):
            taps, x = net.trunk_prefix(image, stages)
            *got_taps, got = _Stages(net.trunk.features[: prefix_module.STAGE_ENDS[stages - 1]])(image)
            assert len(got_taps) == len(taps)
            for a, b in zip([*got_taps, got], [*taps, x]):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_trunk_stages_resumes_where_a_prefix_ends():
    net, image = _net(), torch.randn(1, 3, 29, 41)
    with torch.no_grad():
        taps5, x5 = net.trunk_prefix(image, 5)
        taps, x = net.trunk_stages(*net.trunk_prefix(image, 2), 2, 5)
    assert len(taps) == len(taps5) == 4
    for a, b in zip([*taps, x], [*taps5, x5]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# --- compiled and int8 ----------------------------------------------------------------------

@needs_compiler
def test_a_compiled_prefix_gives_the_eager_stages():
    net, image = _net(), torch.randn(2, 3, 33, 47)
    prefix = FrozenPrefix(net, 2, "compiled")
    with torch.no_grad():
        expected_taps, expected = net.trunk_prefix(image, 2)
    taps, x = prefix(image)
    assert len(taps) == 1 and x.shape == expected.shape
    torch.testing.assert_close(taps[0], expected_taps[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)
    assert prefix.setup_seconds > 0
    with torch.no_grad():
        net.trunk.features[0].weight.add_(1.0)  # built once: a copy, unaffected by the parent
    torch.testing.assert_close(prefix(image)[1], x, rtol=0, atol=0)


@needs_torchao
def test_an_int8_prefix_stays_close_to_fp32_and_compiles_once_per_shape():
    """Calibrated on a few images, the int8 stages 1-3 stay within a few percent of fp32 (on
    real frames the error is 2-4 %: benchmarks/README.md#the-frozen-prefix), in the shapes the
    ceil-mode pools give at odd sizes."""
    net = _net(1)
    calibration = [torch.randn(1, 3, 41, 57) for _ in range(3)]
    prefix = FrozenPrefix(net, 3, "int8")
    prefix.calibrate(calibration)
    calibrated = prefix.setup_seconds
    image = torch.randn(3, 3, 41, 57)
    with torch.no_grad():
        expected_taps, expected = net.trunk_prefix(image, 3)
    taps, x = prefix(image)
    first_call = prefix.setup_seconds
    assert calibrated > 0 and first_call > calibrated
    assert [t.shape for t in taps] == [t.shape for t in expected_taps] == [
        (3, 128, 21, 29), (3, 256, 11, 15)]
    assert _relative_error(taps[0], expected_taps[0]) < 0.06
    assert _relative_error(x, expected) < 0.08
    prefix(image)
    assert prefix.setup_seconds == first_call  # the shape's graph is reused


@needs_torchao
def test_the_segmenter_runs_views_and_frames_through_one_prefix(tmp_path):
    """One int8 prefix, calibrated once on ``prefix_images``, computes the fine-tuning views
    (each network's own frozen layers are never run) and every inference batch; networks not
    made from the parent run their own stages."""
    from osvos_pl.model.loss import class_balanced_bce
    from osvos_pl.model.param_groups import ParamGroups
    from osvos_pl.tasks.finetuning import FineTuning
    from osvos_pl.tasks.segmenter import OneShotSegmenter

    parent = _net(2)
    ones = dict.fromkeys(("weight", "bias", "dsn_weight", "dsn_bias", "fuse_weight", "fuse_bias"),
                         1.0)
    finetuning = FineTuning(2, torch.optim.Adam, ParamGroups(ones),
                            lambda logits, target: class_balanced_bce(logits, target, "mean"),
                            frozen_stages=3)
    calls = []
    images = lambda: calls.append(1) or [torch.randn(1, 3, 33, 45)]  # noqa: E731
    seg = OneShotSegmenter(finetuning, parent=parent, engine=cpu_engine(tmp_path), prefix="int8",
                           prefix_images=images, progress=False)
    assert seg.prefix_mode == "int8"
    views = [{"image": torch.randn(3, 33, 45), "mask": (torch.rand(1, 33, 45) > 0.5).float(),
              "view": 0}] * 2

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return len(views)

        def __getitem__(self, i):
            return views[i]

    batch = {"image": torch.randn(2, 3, 33, 45), "native_hw": torch.tensor([[33, 45], [33, 45]]),
             "frame": torch.tensor([1, 2])}
    with mock.patch.object(FrozenPrefix, "__call__", autospec=True,
                           side_effect=FrozenPrefix.__call__) as frozen, \
         mock.patch.object(OSVOSNet, "trunk_prefix", autospec=True,
                           side_effect=OSVOSNet.trunk_prefix) as own:
        nets, _ = seg.finetune({1: Views()}, "toy")
        assert frozen.call_count == 1 and own.call_count == 0  # one fixed view, cached
        labels = [m for _, m in seg.segment(nets, [batch], "toy")]
        assert frozen.call_count == 2 and own.call_count == 0
        stranger = _net(3)
        freeze_stages(stranger, 3)
        next(seg.segment({1: stranger}, [batch], "toy"))
        assert frozen.call_count == 2
    assert calls == [1] and seg.prefix_timing["setup_seconds"] > 0
    assert len(labels) == 2 and labels[0].shape == (33, 45)
    assert set(np.unique(labels[0])) <= {0, 1}
