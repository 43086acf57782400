"""The authors' released weights, converted on load: synthetic files in exactly their layouts.

``AuthorsOSVOS`` below is the authors' PyTorch-port network written from their layer
definitions (kmaninis/OSVOS-PyTorch ``networks/vgg_osvos.py`` and ``layers/osvos_layers.py``):
its module names give their state-dict keys, its forward is theirs (ConvTranspose2d upsampling
with their bilinear surgery, centre crop by negative padding). Its state dict, saved in the
legacy (PyTorch 0.4) format and zipped as they ship it, stands in for ``pth_parent_model.zip``;
a ``.mat`` written with their cell layout stands in for ``vgg_mat.zip``. Nothing is downloaded:
"downloads" are ``file://`` URLs or a refused local port.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
from torch import nn

from osvos_pl.model import (
    OSVOSNet,
    WeightsUnavailableError,
    authors,
    convert,
    load_backbone,
    releases,
)
from osvos_pl.utils.errors import ConfigError

# --- the authors' network, from their layer definitions -----------------------------------

LAY_LIST = [[64, 64], ["M", 128, 128], ["M", 256, 256, 256], ["M", 512, 512, 512],
            ["M", 512, 512, 512]]

#: Their conv modules → this project's trunk index (torchvision numbering), written out by hand.
TRUNK = {"stages.0.0": 0, "stages.0.2": 2, "stages.1.1": 5, "stages.1.3": 7, "stages.2.1": 10,
         "stages.2.3": 12, "stages.2.5": 14, "stages.3.1": 17, "stages.3.3": 19, "stages.3.5": 21,
         "stages.4.1": 24, "stages.4.3": 26, "stages.4.5": 28}
HEADS = {**{f"side_prep.{k}": f"prep.{k}" for k in range(4)},
         **{f"score_dsn.{k}": f"score_dsn.{k}" for k in range(4)}, "fuse": "fuse"}


def upsample_filt(size: int) -> np.ndarray:
    """Their bilinear filter: factor (size+1)//2, centre factor-0.5 for even sizes."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Their centre crop: F.pad with negative pads ceil/floor of -(excess)/2."""
    crop_h = (x.shape[2] - height) / -2
    crop_w = (x.shape[3] - width) / -2
    return F.pad(x, [int(np.ceil(crop_w)), int(np.floor(crop_w)),
                     int(np.ceil(crop_h)), int(np.floor(crop_h))])


class AuthorsOSVOS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        in_channels = [3, 64, 128, 256, 512]
        self.stages, self.side_prep, self.score_dsn = (nn.ModuleList() for _ in range(3))
        self.upscale, self.upscale_ = nn.ModuleList(), nn.ModuleList()
        for i, cfg in enumerate(LAY_LIST):
            layers, c = [], in_channels[i]
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                else:
                    layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                    c = v
            self.stages.append(nn.Sequential(*layers))
            if i > 0:
                self.side_prep.append(nn.Conv2d(cfg[-1], 16, kernel_size=3, padding=1))
                self.score_dsn.append(nn.Conv2d(16, 1, kernel_size=1, padding=0))
                k, s = 2 ** (1 + i), 2 ** i
                self.upscale_.append(nn.ConvTranspose2d(1, 1, kernel_size=k, stride=s, bias=False))
                self.upscale.append(nn.ConvTranspose2d(16, 16, kernel_size=k, stride=s, bias=False))
        self.fuse = nn.Conv2d(64, 1, kernel_size=1, padding=0)
        self._random_weights()

    def _random_weights(self) -> None:
        """Trained-looking values (their init is N(0, 0.001), which would hide mistakes)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, std=(2 / fan_in) ** 0.5)
                nn.init.normal_(m.bias, std=0.1)
            elif isinstance(m, nn.ConvTranspose2d):  # their interp_surgery
                m.weight.data.zero_()
                filt = torch.from_numpy(upsample_filt(m.weight.shape[-1]))
                for i in range(m.weight.shape[0]):
                    m.weight.data[i, i] = filt

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        crop_h, crop_w = x.shape[-2], x.shape[-1]
        x = self.stages[0](x)
        side, side_out = [], []
        for i in range(1, len(self.stages)):
            x = self.stages[i](x)
            side_temp = self.side_prep[i - 1](x)
            side.append(center_crop(self.upscale[i - 1](side_temp), crop_h, crop_w))
            side_out.append(center_crop(self.upscale_[i - 1](self.score_dsn[i - 1](side_temp)),
                                        crop_h, crop_w))
        side_out.append(self.fuse(torch.cat(side, dim=1)))
        return side_out


@pytest.fixture(scope="module")
def authors_net() -> AuthorsOSVOS:
    torch.manual_seed(0)
    return AuthorsOSVOS().eval()


@pytest.fixture(scope="module")
def parent_zip(authors_net, tmp_path_factory) -> Path:
    """``pth_parent_model.zip`` holding ``parent_epoch-239.pth`` (legacy torch.save format)."""
    folder = tmp_path_factory.mktemp("parent")
    pth = folder / "parent_epoch-239.pth"
    torch.save(authors_net.state_dict(), pth, _use_new_zipfile_serialization=False)
    archive = folder / "pth_parent_model.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(pth, pth.name)
    return archive


@pytest.fixture(scope="module")
def caffe_vgg() -> dict[str, np.ndarray]:
    """Caffe-layout VGG16: ``conv1_1`` … weights ``(C_out, C_in, 3, 3)``, biases ``(C_out,)``."""
    rng = np.random.default_rng(1)
    shapes = [(out, inp) for _, out, inp in _conv_channels()]
    return {f"w{i}": rng.normal(0, 0.05, (out, inp, 3, 3)).astype(np.float32)
            for i, (out, inp) in enumerate(shapes)} | {
        f"b{i}": rng.normal(0, 1, out).astype(np.float32) for i, (out, _) in enumerate(shapes)}


def _conv_channels() -> list[tuple[str, int, int]]:
    convs, c = [], 3
    for cfg in LAY_LIST:
        for v in cfg:
            if v != "M":
                convs.append((f"conv{len(convs)}", v, c))
                c = v
    return convs


def _cells(arrays: list[np.ndarray]) -> np.ndarray:
    cell = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        cell[0, i] = a
    return cell


def write_vgg_mat(path: Path, weights: list[np.ndarray], biases: list[np.ndarray]) -> Path:
    """Their layout: cells 'weights' (matcaffe W x H x C_in x C_out) and 'biases' (C_out x 1)."""
    scipy.io.savemat(path, {"weights": _cells(weights), "biases": _cells(biases)})
    return path


@pytest.fixture(scope="module")
def vgg_zip(caffe_vgg, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vgg")
    mat = write_vgg_mat(folder / "vgg_caffe.mat",
                        [caffe_vgg[f"w{i}"].transpose() for i in range(13)],
                        [caffe_vgg[f"b{i}"][:, None] for i in range(13)])
    archive = folder / "vgg_mat.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # the parent's is deflated
        zf.write(mat, mat.name)
    return archive


def _offline(*args, **kwargs):
    raise AssertionError("nothing may be downloaded here")


# --- the parent -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def converted(parent_zip) -> tuple[dict[str, torch.Tensor], str]:
    return authors.resolve_parent(parent_zip)


def test_parent_zip_puts_every_tensor_where_it_belongs(converted, authors_net):
    state, normalization = converted
    assert normalization == "caffe"
    net = OSVOSNet(upsample="center")
    net.load_state_dict(state, strict=True)
    ours, theirs = net.state_dict(), authors_net.state_dict()
    pairs = {**{k: f"trunk.features.{i}" for k, i in TRUNK.items()}, **HEADS}
    assert len(pairs) * 2 == len(ours) == len(state)
    for their_name, our_name in pairs.items():
        for p in ("weight", "bias"):
            torch.testing.assert_close(ours[f"{our_name}.{p}"], theirs[f"{their_name}.{p}"],
                                       rtol=0, atol=0)


@pytest.mark.parametrize("hw", [(64, 96), (37, 53)])
def test_converted_parent_gives_the_authors_logits(converted, authors_net, hw):
    net = OSVOSNet(upsample="center").eval()
    net.load_state_dict(converted[0], strict=True)
    x = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(2)) * 60
    with torch.no_grad():
        theirs, ours, fused = authors_net(x), net(x), net.forward_fused(x)
    assert theirs[-1].std() > 0.1  # a real signal, not a constant map
    scale = max(t.abs().max().item() for t in theirs)
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(o, t, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(fused, theirs[-1], rtol=0, atol=1e-5 * scale)


def test_unzipped_parent_pth_converts_too(parent_zip, authors_net, tmp_path):
    with zipfile.ZipFile(parent_zip) as zf:
        zf.extractall(tmp_path)
    state, _ = authors.resolve_parent(tmp_path / "parent_epoch-239.pth")
    torch.testing.assert_close(state["fuse.weight"], authors_net.fuse.weight, rtol=0, atol=0)


def test_authors_parent_is_recognised_by_name_archive_or_keys(parent_zip, tmp_path):
    with zipfile.ZipFile(parent_zip) as zf:
        zf.extractall(tmp_path)
    ours = tmp_path / "weights.pth"
    torch.save(OSVOSNet().state_dict(), ours)
    assert authors.is_authors_parent("osvos-pytorch")
    assert authors.is_authors_parent(parent_zip)
    assert authors.is_authors_parent(tmp_path / "parent_epoch-239.pth")
    assert not authors.is_authors_parent(ours)
    assert not authors.is_authors_parent(tmp_path / "missing.pth")
    assert not authors.is_authors_parent(None)


def test_load_parent_converts_into_the_net_and_warns_unless_centre_crop(parent_zip, authors_net,
                                                                       caplog):
    net = OSVOSNet(upsample="caffe")
    with caplog.at_level(logging.WARNING, logger="osvos_pl.model.authors"):
        assert authors.load_authors_parent(net, parent_zip) == "caffe"
    assert "model.upsample=center" in caplog.text
    torch.testing.assert_close(net.prep[3].weight, authors_net.side_prep[3].weight, rtol=0, atol=0)


@pytest.fixture(scope="module")
def authors_state(authors_net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in authors_net.state_dict().items()}


def test_parent_missing_a_key_is_refused_naming_file_and_key(authors_state):
    state = {k: v for k, v in authors_state.items() if k != "upscale_.3.weight"}
    with pytest.raises(ConfigError, match=r"p\.pth lacks 'upscale_\.3\.weight'.*pth_parent_model"):
        convert.convert_parent_state(state, "p.pth")


def test_parent_with_a_wrong_shape_is_refused_naming_both_shapes(authors_state):
    state = dict(authors_state, **{"side_prep.0.weight": torch.zeros(16, 64, 3, 3)})
    with pytest.raises(ConfigError, match=r"side_prep\.0\.weight has shape \(16, 64, 3, 3\), "
                                          r"expected \(16, 128, 3, 3\)"):
        convert.convert_parent_state(state, "p.pth")


def test_parent_with_trained_upsampling_is_refused(authors_state):
    state = dict(authors_state, **{"upscale.1.weight": authors_state["upscale.1.weight"] * 1.1})
    with pytest.raises(ConfigError, match=r"upscale\.1\.weight is not the fixed bilinear"):
        convert.convert_parent_state(state, "p.pth")


def test_osvos_pl_state_is_refused_with_a_hint(authors_state):
    with pytest.raises(ConfigError, match=r"unexpected key 'trunk\..*without conversion"):
        convert.convert_parent_state(OSVOSNet().state_dict(), "mine.pth")


def test_damaged_archive_is_refused_with_the_fix(parent_zip, tmp_path):
    bad = tmp_path / "pth_parent_model.zip"
    bad.write_bytes(parent_zip.read_bytes()[: 1 << 20])
    with pytest.raises(ConfigError, match=r"not a readable zip.*Delete it"):
        authors.resolve_parent(bad)


# --- the Caffe VGG --------------------------------------------------------------------------

@pytest.mark.parametrize("member", [False, True])
def test_caffe_vgg_lands_in_the_trunk_in_pytorch_order(vgg_zip, caffe_vgg, tmp_path, member):
    source = vgg_zip
    if member:
        with zipfile.ZipFile(vgg_zip) as zf:
            zf.extractall(tmp_path)
        source = tmp_path / "vgg_caffe.mat"
    net = OSVOSNet()
    assert load_backbone(net, source) == "caffe"
    for i, index in enumerate(sorted(TRUNK.values())):
        conv = net.trunk.features[index]
        torch.testing.assert_close(conv.weight.data, torch.from_numpy(caffe_vgg[f"w{i}"]),
                                   rtol=0, atol=0)
        torch.testing.assert_close(conv.bias.data, torch.from_numpy(caffe_vgg[f"b{i}"]),
                                   rtol=0, atol=0)


def test_caffe_vgg_matches_the_authors_own_reading(vgg_zip, tmp_path):
    """Their loader: loadmat, then ``weights[0][i].transpose()`` and ``biases[0][i][:, 0]``."""
    with zipfile.ZipFile(vgg_zip) as zf:
        zf.extractall(tmp_path)
    mat = scipy.io.loadmat(tmp_path / "vgg_caffe.mat")
    state, _ = authors.resolve_backbone(tmp_path / "vgg_caffe.mat")
    for i, index in enumerate(sorted(TRUNK.values())):
        theirs_w = torch.from_numpy(mat["weights"][0][i].transpose())
        theirs_b = torch.from_numpy(mat["biases"][0][i][:, 0])
        torch.testing.assert_close(state[f"features.{index}.weight"], theirs_w, rtol=0, atol=0)
        torch.testing.assert_close(state[f"features.{index}.bias"], theirs_b, rtol=0, atol=0)


def test_mat_in_pytorch_order_is_refused_naming_the_entry(caffe_vgg, tmp_path):
    mat = write_vgg_mat(tmp_path / "vgg_caffe.mat", [caffe_vgg[f"w{i}"] for i in range(13)],
                        [caffe_vgg[f"b{i}"][:, None] for i in range(13)])
    with pytest.raises(ConfigError, match=r"vgg_caffe\.mat: weights\{1\} \(conv1_1\) has shape "
                                          r"\(3, 3, 3, 64\), expected \(64, 3, 3, 3\)"):
        load_backbone(OSVOSNet(), mat)


def test_mat_without_biases_is_refused(caffe_vgg, tmp_path):
    path = tmp_path / "vgg_caffe.mat"
    scipy.io.savemat(path, {"weights": _cells([caffe_vgg["w0"].transpose()])})
    with pytest.raises(ConfigError, match=r"no 'weights' and 'biases' cells .*\['weights'\]"):
        load_backbone(OSVOSNet(), path)


def test_parent_archive_given_as_backbone_is_refused(parent_zip):
    with pytest.raises(ConfigError, match=r"not one vgg_caffe\.mat"):
        load_backbone(OSVOSNet(), parent_zip)


# --- download, cache, checksum --------------------------------------------------------------

def _serve(monkeypatch, name: str, archive: Path, **changes) -> None:
    """Point release ``name`` at a local ``file://`` copy of ``archive``."""
    release = getattr(releases, name)
    served = dataclasses.replace(release, url=archive.as_uri(), **changes)
    monkeypatch.setattr(releases, name, served)


def test_download_is_cached_recorded_and_checked(monkeypatch, parent_zip, authors_net, tmp_path):
    _serve(monkeypatch, "PARENT", parent_zip)
    state, _ = authors.resolve_parent("osvos-pytorch", tmp_path)
    cached = tmp_path / "weights" / "pth_parent_model.zip"
    assert cached.is_file() and (tmp_path / "weights" / "pth_parent_model.zip.sha256").is_file()
    torch.testing.assert_close(state["prep.2.bias"], authors_net.side_prep[2].bias, rtol=0, atol=0)

    monkeypatch.setattr(releases, "fetch", _offline)  # the second time comes from the cache
    authors.resolve_parent("osvos-pytorch", tmp_path)
    with open(cached, "ab") as fh:
        fh.write(b"damage")
    with pytest.raises(ConfigError, match=r"pth_parent_model\.zip has sha256 .*Delete it"):
        authors.resolve_parent("osvos-pytorch", tmp_path)


def test_download_with_a_wrong_pinned_checksum_is_set_aside(monkeypatch, vgg_zip, tmp_path):
    _serve(monkeypatch, "CAFFE_VGG", vgg_zip, sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"expected 0{64}; moved it to .*\.corrupt"):
        load_backbone(OSVOSNet(), "caffe-vgg", cache_dir=tmp_path)
    assert not (tmp_path / "weights" / "vgg_mat.zip").exists()


def test_no_network_says_what_to_download_and_where(monkeypatch, tmp_path):
    monkeypatch.setattr(releases, "CAFFE_VGG", dataclasses.replace(
        releases.CAFFE_VGG, url="http://127.0.0.1:9/vgg_mat.zip"))  # refused at once
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone(OSVOSNet(), "caffe-vgg", cache_dir=tmp_path)
    message = str(err.value)
    assert "http://127.0.0.1:9/vgg_mat.zip" in message
    assert f"put vgg_mat.zip (or the vgg_caffe.mat inside it) in {tmp_path / 'weights'}" in message
    assert "model.weights=/path/to/vgg_mat.zip" in message


def test_files_placed_by_hand_in_the_cache_are_used(monkeypatch, vgg_zip, caffe_vgg, tmp_path):
    """Their download scripts unzip and delete the zip: the bare .mat in the cache is enough."""
    monkeypatch.setattr(releases, "fetch", _offline)
    (tmp_path / "weights").mkdir()
    with zipfile.ZipFile(vgg_zip) as zf:
        zf.extractall(tmp_path / "weights")
    net = OSVOSNet()
    assert load_backbone(net, "caffe-vgg", cache_dir=tmp_path) == "caffe"
    torch.testing.assert_close(net.trunk.features[28].bias.data,
                               torch.from_numpy(caffe_vgg["b12"]), rtol=0, atol=0)
    shutil.copy(vgg_zip, tmp_path / "weights" / "vgg_mat.zip")  # the zip wins, and is recorded
    assert load_backbone(OSVOSNet(), "caffe-vgg", cache_dir=tmp_path) == "caffe"
    assert (tmp_path / "weights" / "vgg_mat.zip.sha256").is_file()


def test_a_release_without_a_cache_dir_is_refused_naming_paths_cache_dir(monkeypatch):
    monkeypatch.setattr(releases, "fetch", _offline)
    with pytest.raises(ConfigError, match=r"model\.weights=caffe-vgg .*paths\.cache_dir"):
        load_backbone(OSVOSNet(), "caffe-vgg")
    with pytest.raises(ConfigError, match=r"parent_ckpt=osvos-pytorch .*paths\.cache_dir"):
        authors.resolve_parent("osvos-pytorch")


def test_the_model_config_downloads_into_paths_cache_dir(monkeypatch, vgg_zip, tmp_path):
    """conf/model hands ``paths.cache_dir`` to the factory: the .mat placed there is found."""
    from hydra.utils import instantiate

    from osvos_pl.runner.preflight import compose

    monkeypatch.setattr(releases, "fetch", _offline)
    (tmp_path / "weights").mkdir()
    shutil.copy(vgg_zip, tmp_path / "weights" / "vgg_mat.zip")
    cfg = compose("config", [f"paths.cache_dir={tmp_path}", "model.weights=caffe-vgg"])
    assert cfg.model.cache_dir == str(tmp_path)
    assert instantiate(cfg.model).normalization == "caffe"


def test_missing_local_file_names_the_alternatives(tmp_path):
    with pytest.raises(ConfigError, match=r"parent_ckpt: file not found: .*nope\.zip.*"
                                          r"parent_ckpt=osvos-pytorch"):
        authors.resolve_parent(tmp_path / "nope.zip")
