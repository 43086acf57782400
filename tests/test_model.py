"""The OSVOS network: shapes, fixed upsampling alignment, init, weights loading, param groups."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from osvos_pl.model import (
    OSVOSNet,
    WeightsUnavailableError,
    build_param_groups,
    class_balanced_bce,
    load_backbone,
    weights,
)
from osvos_pl.model.osvos import STRIDES, FixedBilinearUpsample
from osvos_pl.model.vgg import CONV_INDEX
from osvos_pl.utils.errors import ConfigError
from osvos_pl.utils.normalization import get_normalization

REFERENCE_MULT = {
    "weight": 1.0, "bias": 2.0, "dsn_weight": 0.1, "dsn_bias": 0.2,
    "fuse_weight": 0.01, "fuse_bias": 0.02,
}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@pytest.fixture(scope="module")
def port_net() -> OSVOSNet:
    """Random trunk, all heads N(0, 0.001): every output depends on the input."""
    torch.manual_seed(0)
    return OSVOSNet(init="port").eval()


# --- shapes -------------------------------------------------------------------------------

@pytest.mark.parametrize("upsample", ["caffe", "center"])
@pytest.mark.parametrize("hw", [(64, 64), (37, 53), (33, 17), (1, 1)])
def test_every_output_has_the_input_resolution(upsample, hw):
    net = OSVOSNet(upsample=upsample)
    with torch.no_grad():
        outputs = net(torch.randn(2, 3, *hw))
    assert len(outputs) == 5
    assert all(o.shape == (2, 1, *hw) for o in outputs)


def test_trunk_taps_have_ceil_mode_sizes(port_net):
    with torch.no_grad():
        taps = port_net.trunk(torch.randn(1, 3, 37, 53))
    assert [t.shape[1:] for t in taps] == [
        (c, _ceil_div(37, s), _ceil_div(53, s)) for c, s in zip((128, 256, 512, 512), STRIDES)
    ]


def test_forward_fused_equals_the_fused_output_of_forward(port_net):
    x = torch.randn(1, 3, 37, 53)
    with torch.no_grad():
        fused = port_net(x)[-1]
        assert fused.abs().max() > 0
        torch.testing.assert_close(port_net.forward_fused(x), fused, rtol=0, atol=0)


def test_channels_last_and_bf16_autocast_give_the_same_logits(port_net):
    x = torch.randn(1, 3, 37, 53)
    net_cl = OSVOSNet(init="port")
    net_cl.load_state_dict(port_net.state_dict())
    net_cl = net_cl.eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = port_net(x)
        out = net_cl(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net_cl.forward_fused(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert low.shape == ref[-1].shape and torch.isfinite(low).all()
    scale = ref[-1].abs().max().item()
    torch.testing.assert_close(low.float(), ref[-1], rtol=0.1, atol=0.1 * scale)


def test_unknown_modes_are_refused():
    with pytest.raises(ConfigError, match="model.upsample"):
        OSVOSNet(upsample="nearest")
    with pytest.raises(ConfigError, match="model.init"):
        OSVOSNet(init="xavier")


# --- fixed bilinear upsampling ------------------------------------------------------------

def _impulse(stride: int, hw: tuple[int, int], at: tuple[int, int], channels: int = 1):
    x = torch.zeros(1, channels, _ceil_div(hw[0], stride), _ceil_div(hw[1], stride))
    x[0, -1, at[0], at[1]] = 1.0
    return x


def _centroid(y: torch.Tensor) -> tuple[float, float]:
    w = y[0, -1].double()
    rows, cols = torch.meshgrid(
        torch.arange(w.shape[0], dtype=torch.float64),
        torch.arange(w.shape[1], dtype=torch.float64), indexing="ij",
    )
    return float((w * rows).sum() / w.sum()), float((w * cols).sum() / w.sum())


@pytest.mark.parametrize("stride", STRIDES)
def test_caffe_upsampling_puts_a_feature_pixel_at_the_centre_of_its_input_cell(stride):
    """Feature pixel (i, j) at stride s covers input pixels centred at s*i + (s-1)/2."""
    hw, at = (100, 150), (3, 5)
    y = FixedBilinearUpsample(stride, "caffe")(_impulse(stride, hw, at, channels=3), hw)
    assert y.shape == (1, 3, *hw)
    assert y[0, :2].abs().max() == 0  # channel-wise: nothing leaks into other channels
    expected = (stride * at[0] + (stride - 1) / 2, stride * at[1] + (stride - 1) / 2)
    assert _centroid(y) == pytest.approx(expected, abs=1e-9)
    peak_rows = torch.nonzero(y[0, -1] == y[0, -1].max())[:, 0].unique().tolist()
    assert peak_rows == [stride * at[0] + stride // 2 - 1, stride * at[0] + stride // 2]


@pytest.mark.parametrize("stride", STRIDES)
def test_bilinear_upsampling_of_a_constant_is_constant_inside(stride):
    hw = (6 * stride, 5 * stride)
    x = torch.ones(1, 1, 6, 5)
    y = FixedBilinearUpsample(stride)(x, hw)[0, 0]
    inner = y[stride : -stride, stride : -stride]
    torch.testing.assert_close(inner, torch.ones_like(inner))


@pytest.mark.parametrize(("stride", "col_shift"), [(2, 0), (4, 1), (8, 1), (16, 5)])
def test_center_mode_shifts_columns_at_480x854(stride, col_shift):
    """The ports' centre crop (floor((up - target) / 2)) moves the peak left by 0, 1, 1, 5 px."""
    hw, at = (480, 854), (10, 20)
    x = _impulse(stride, hw, at)
    caffe = _centroid(FixedBilinearUpsample(stride, "caffe")(x, hw))
    center = _centroid(FixedBilinearUpsample(stride, "center")(x, hw))
    assert caffe[0] - center[0] == pytest.approx(0, abs=1e-9)
    assert caffe[1] - center[1] == pytest.approx(col_shift, abs=1e-9)


def test_upsampling_kernels_are_fixed_buffers_never_trained():
    net = OSVOSNet(init="port")
    kernels = {name: b.clone() for name, b in net.named_buffers()}
    assert len(kernels) == 4 and all("upsample" in name for name in kernels)
    param_names = [name for name, _ in net.named_parameters()]
    assert not any("upsample" in name for name in param_names)
    assert not any("upsample" in key for key in net.state_dict())  # derived, not saved
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    outputs = net(torch.randn(1, 3, 32, 32))
    sum(o.sum() for o in outputs).backward()
    optimizer.step()
    for name, buffer in net.named_buffers():
        assert not buffer.requires_grad and buffer.grad is None
        torch.testing.assert_close(buffer, kernels[name], rtol=0, atol=0)


# --- initialisation -----------------------------------------------------------------------

def test_caffe_init_zeroes_score_and_fuse_weights():
    net = OSVOSNet(init="caffe")
    assert all(conv.weight.abs().max() == 0 for conv in (*net.score_dsn, net.fuse))
    assert all(0.0005 < conv.weight.std() < 0.002 for conv in net.prep)
    assert all(conv.bias.abs().max() == 0 for conv in (*net.prep, *net.score_dsn, net.fuse))
    with torch.no_grad():
        assert all(o.abs().max() == 0 for o in net(torch.randn(1, 3, 32, 32)))


def test_port_init_draws_every_new_conv_from_n_0_0001():
    net = OSVOSNet(init="port")
    for conv in (*net.prep, net.fuse):
        assert 0.0005 < conv.weight.std() < 0.002
    dsn = torch.cat([conv.weight.flatten() for conv in net.score_dsn])
    assert 0.0005 < dsn.std() < 0.002
    assert all(conv.bias.abs().max() == 0 for conv in (*net.prep, *net.score_dsn, net.fuse))


# --- backbone weights ---------------------------------------------------------------------

def _conv1_1(net: OSVOSNet) -> torch.Tensor:
    return net.trunk.features[0].weight


def test_real_weights_load_and_ask_for_imagenet_input(vgg_weights):
    net = OSVOSNet()
    assert load_backbone(net, str(vgg_weights)) == "imagenet"
    state = torch.load(vgg_weights, weights_only=True)
    torch.testing.assert_close(_conv1_1(net), state["features.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(net.trunk.features[28].bias, state["features.28.bias"])


def test_weights_without_features_prefix_load(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    path = tmp_path / "bare.pth"
    torch.save({k.removeprefix("features."): v for k, v in state.items()}, path)
    net = OSVOSNet()
    assert load_backbone(net, path) == "imagenet"
    torch.testing.assert_close(_conv1_1(net), state["features.0.weight"], rtol=0, atol=0)


def test_caffe_named_weights_load_and_ask_for_caffe_input(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    index_to_name = {i: name for name, i in CONV_INDEX.items()}
    caffe = {}
    for key, value in state.items():
        _, index, param = key.split(".")
        caffe[f"{index_to_name[int(index)]}.{param}"] = value
    caffe["fc6.weight"] = torch.zeros(1)  # classifier layers are ignored
    path = tmp_path / "caffe.pth"
    torch.save(caffe, path)
    net = OSVOSNet()
    assert load_backbone(net, path) == "caffe"
    torch.testing.assert_close(net.trunk.features[26].weight, state["features.26.weight"])


def test_wrong_shape_is_refused_naming_key_and_shapes(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    state["features.10.weight"] = torch.zeros(256, 64, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    net = OSVOSNet()
    before = _conv1_1(net).clone()
    with pytest.raises(ConfigError) as err:
        load_backbone(net, path)
    message = str(err.value)
    assert str(path) in message and "'features.10.weight'" in message
    assert "(256, 64, 3, 3)" in message and "(256, 128, 3, 3)" in message
    torch.testing.assert_close(_conv1_1(net), before, rtol=0, atol=0)  # nothing half-loaded


def test_unknown_key_is_refused_naming_it(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    state["backbone.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "unknown.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"unrecognised key 'backbone\.conv1\.weight'.*Caffe"):
        load_backbone(OSVOSNet(), path)


def test_index_that_is_not_a_conv_is_refused(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    state["features.1.weight"] = torch.zeros(1)  # index 1 is a ReLU
    path = tmp_path / "relu.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"'features\.1\.weight'"):
        load_backbone(OSVOSNet(), path)


def test_incomplete_file_is_refused_naming_the_missing_key(vgg_weights, tmp_path):
    state = torch.load(vgg_weights, weights_only=True)
    del state["features.28.bias"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"features\.28\.bias"):
        load_backbone(OSVOSNet(), path)


def test_missing_file_is_refused_with_the_alternatives(tmp_path):
    with pytest.raises(ConfigError, match=r"not found: .*nope\.pth.*model\.weights=imagenet"):
        load_backbone(OSVOSNet(), tmp_path / "nope.pth")


def test_no_weights_keeps_random_init():
    net = OSVOSNet()
    before = _conv1_1(net).clone()
    assert load_backbone(net, None) == "imagenet"
    torch.testing.assert_close(_conv1_1(net), before, rtol=0, atol=0)


def test_imagenet_download_failure_raises_weights_unavailable(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    hub_calls = []
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: hub_calls.append(a) or offline())
    monkeypatch.setattr(weights, "_reachable", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached
    with pytest.raises(WeightsUnavailableError, match=r"no network.*model\.weights=/path"):
        load_backbone(OSVOSNet(), "imagenet")
    # torch.hub, which prints 'Downloading: "https://…"' first, is not entered offline
    assert hub_calls == []


def test_imagenet_download_drops_the_classifier(monkeypatch, vgg_weights):
    full = dict(torch.load(vgg_weights, weights_only=True))
    full["classifier.0.weight"] = torch.zeros(4096, 25088)
    full["classifier.6.bias"] = torch.zeros(1000)
    calls = []

    def cached(url, **kwargs):
        calls.append(url)
        return full

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", cached)
    monkeypatch.setattr(weights, "_reachable", lambda url: None)  # as if online
    net = OSVOSNet()
    assert load_backbone(net, "imagenet") == "imagenet"
    assert calls == ["https://download.pytorch.org/models/vgg16-397923af.pth"]
    torch.testing.assert_close(_conv1_1(net), full["features.0.weight"], rtol=0, atol=0)


def _normalise(image: np.ndarray, preset: str) -> torch.Tensor:
    """``(H, W, 3)`` RGB → ``(1, 3, H, W)`` normalised as the data pipeline does."""
    return get_normalization(preset)(image).unsqueeze(0)


def test_normalization_presets_map_the_mean_colour_to_zero():
    for preset, mean_rgb in (("imagenet", (123.675, 116.28, 103.53)),
                             ("caffe", (122.67892, 116.66877, 104.00699))):
        image = np.broadcast_to(np.asarray(mean_rgb, dtype=np.float64), (2, 2, 3))
        assert _normalise(image, preset).abs().max() < 1e-4
    assert _normalise(np.full((1, 1, 3), 255, np.uint8), "imagenet")[0, :, 0, 0].tolist() == (
        pytest.approx([(1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    )


def test_real_weights_on_a_real_frame_give_finite_useful_activations(vgg_weights, davis_sample):
    frame = Image.open(davis_sample / "JPEGImages/480p/blackswan/00000.jpg").convert("RGB")
    x = _normalise(np.asarray(frame.resize((107, 60), Image.BILINEAR)), "imagenet")
    torch.manual_seed(0)
    net = OSVOSNet(init="port").eval()
    load_backbone(net, vgg_weights)
    with torch.no_grad():
        taps = net.trunk(x)
        fused = net.forward_fused(x)
    assert torch.isfinite(fused).all() and fused.abs().max() > 0
    for tap in taps:
        assert torch.isfinite(tap).all()
        assert 0.01 < (tap > 0).float().mean() < 0.99  # neither dead nor saturated
        assert tap.max() < 1e4


# --- optimizer groups ---------------------------------------------------------------------

def test_param_groups_cover_every_trainable_parameter_once():
    net = OSVOSNet()
    groups = build_param_groups(net, lr=1e-8, weight_decay=2e-4, lr_mult=REFERENCE_MULT)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters()}
    assert sum(p.numel() for p in net.parameters()) == 14_714_688 + sum(
        16 * c * 9 + 16 for c in (128, 256, 512, 512)
    ) + 4 * 17 + 65


def test_param_groups_carry_reference_multipliers_and_decay_on_weights_only():
    net = OSVOSNet()
    groups = {g["name"]: g for g in build_param_groups(net, 1e-8, 2e-4, REFERENCE_MULT)}
    expected = {
        "backbone_weight": (1e-8, 2e-4), "backbone_bias": (2e-8, 0.0),
        "dsn_weight": (1e-9, 2e-4), "dsn_bias": (2e-9, 0.0),
        "fuse_weight": (1e-10, 2e-4), "fuse_bias": (2e-10, 0.0),
    }
    assert set(groups) == set(expected)
    for name, (lr, wd) in expected.items():
        assert groups[name]["lr"] == pytest.approx(lr, rel=1e-12)
        assert groups[name]["weight_decay"] == wd
    assert all(p.dim() == 1 for name in ("backbone_bias", "dsn_bias", "fuse_bias")
               for p in groups[name]["params"])
    assert {id(p) for p in groups["fuse_weight"]["params"]} == {id(net.fuse.weight)}
    assert len(groups["backbone_weight"]["params"]) == 13 + 4
    torch.optim.SGD(list(groups.values()), lr=1e-8, momentum=0.9)


def test_online_groups_leave_out_the_side_scores():
    net = OSVOSNet()
    groups = build_param_groups(net, 1e-5, 0.0, REFERENCE_MULT, include_side=False)
    assert {g["name"] for g in groups} == {
        "backbone_weight", "backbone_bias", "fuse_weight", "fuse_bias"
    }
    dsn = {id(p) for conv in net.score_dsn for p in conv.parameters()}
    assert not dsn & {id(p) for g in groups for p in g["params"]}


def test_missing_multiplier_is_a_config_error():
    mult = dict(REFERENCE_MULT)
    del mult["fuse_bias"]
    with pytest.raises(ConfigError, match="fuse_bias"):
        build_param_groups(OSVOSNet(), 1e-8, 2e-4, mult)


def test_one_training_step_moves_the_fused_logits(vgg_weights):
    """From the Caffe init (fuse weights 0) a few Adam steps on the fused loss must learn."""
    torch.manual_seed(0)
    net = OSVOSNet()
    load_backbone(net, vgg_weights)
    x = torch.randn(1, 3, 32, 48)
    target = torch.zeros(1, 1, 32, 48)
    target[..., 8:24, 12:36] = 1.0
    groups = build_param_groups(net, 1e-4, 0.0, dict.fromkeys(REFERENCE_MULT, 1.0), False)
    optimizer = torch.optim.Adam(groups)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = class_balanced_bce(net.forward_fused(x), target, "mean")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert net.forward_fused(x).detach().abs().max() > 1e-3


@pytest.mark.parametrize("stages", [0, 2])
def test_parent_frozen_stages_keep_their_weights_and_leave_the_optimizer(stages, tmp_path):
    """parent.frozen_stages reaches the task through the config: stages 1..k are not in the
    optimizer and keep their weights through training steps; the stage after them moves."""
    from hydra.utils import instantiate

    from osvos_pl.model.osvos import STAGE_ENDS
    from tests.helpers import compose_cfg

    cfg = compose_cfg(["+experiment=parent", f"parent.frozen_stages={stages}", "logger=none"],
                      tmp_path)
    torch.manual_seed(0)
    task = instantiate(cfg.task, net=OSVOSNet(init="port"))
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    frozen = [p for layer in task.net.trunk.features[: STAGE_ENDS[stages - 1] if stages else 0]
              for p in layer.parameters()]
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert len(frozen) == 4 * stages and not any(id(p) in trained for p in frozen)
    first = task.net.trunk.features[0].weight.detach().clone()
    start = STAGE_ENDS[stages - 1] if stages else 0
    after = next(layer for layer in task.net.trunk.features[start:] if hasattr(layer, "weight")).weight
    after_before = after.detach().clone()
    target = torch.zeros(1, 1, 32, 48)
    target[..., 8:24, 12:36] = 1.0
    batch = {"image": torch.randn(1, 3, 32, 48), "mask": target}
    for _ in range(3):
        optimizer.zero_grad()
        task.training_step(batch, 0).backward()
        optimizer.step()
    assert torch.equal(task.net.trunk.features[0].weight, first) == (stages > 0)
    assert not torch.equal(after, after_before), "the first trained stage must move"
