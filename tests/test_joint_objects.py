"""Several objects that compete (``online.objects=joint``, issue 35): one network whose head scores
background and each object, fine-tuned once per sequence, merged by the argmax over K + 1 classes.

- the loss: class-balanced softmax cross-entropy (each class the same weight, or the background
  half as the binary loss), on inputs whose value is computed by hand, and the binary loss
  exactly for two classes;
- the head: every object starts as the parent's binary fused logit (K = 1: the binary network);
  with ``prep`` each class has its own prep features;
- the online stage end to end: palette masks with the objects' ids (generated DAVIS 2017; the
  real schoolgirls frames with all seven objects, slow);
- an object absent from frame 0's annotation is refused, naming the mask files;
- an object that leaves the frame: its id leaves the masks, nothing breaks.
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from osvos_pl.data.io import read_mask, write_mask
from osvos_pl.model.loss import class_balanced_bce, class_balanced_ce
from osvos_pl.model.osvos import OSVOSNet, native_class_probabilities, widen_head
from osvos_pl.stages.records import read_record
from osvos_pl.tasks.joint import joint_for
from osvos_pl.utils.errors import DataError
from tests.helpers import run_cli

TINY = ["data.scale=0.5", "data.num_workers=0", "data.generated.frames=6",
        "data.generated.train_sequences=2", "data.generated.val_sequences=2"]
# one-shot from the ImageNet backbone that learns a few coloured shapes in seconds
QUICK = ["online.iterations=30", "online.augment=none", "optim.finetune_lr=5e-3",
         "online.scheduler=null", "online.frozen_stages=4", "logger=none", "data.num_workers=0",
         "online.objects=joint"]


# ---- the loss ----------------------------------------------------------------------------------


def test_balanced_cross_entropy_weighs_each_class_by_its_inverse_share():
    # zero logits: every pixel costs log 3. Shares 4/6, 1/6, 1/6 → inverse 1.5, 6, 6 → weights
    # 1/9, 4/9, 4/9; the sum is log 3 × (4 × 1/9 + 4/9 + 4/9) = 4/3 log 3
    target = torch.tensor([[[0, 0, 0], [0, 1, 2]]], dtype=torch.float32)
    logits = torch.zeros(1, 3, 2, 3)
    assert class_balanced_ce(logits, target).item() == pytest.approx(4 / 3 * math.log(3))
    assert class_balanced_ce(logits, target, "mean").item() == pytest.approx(4 / 3 * math.log(3) / 6)
    # a confident right answer on the rare classes, log-odds 2 on the background pixels:
    # background pixels cost log(1 + 2 e^-2) at weight 1/9, the object pixels ~0
    logits = torch.zeros(1, 3, 2, 3)
    logits[0, 0] = 2.0
    logits[0, 1, 1, 1] = logits[0, 2, 1, 2] = 50.0
    logits[0, 0, 1, 1:] = 0.0
    expected = 4 * (1 / 9) * math.log(1 + 2 * math.exp(-2))
    assert class_balanced_ce(logits, target).item() == pytest.approx(expected, rel=1e-5)
    # an image of one class has nothing to balance: no loss, as the binary loss
    assert class_balanced_ce(torch.randn(1, 3, 2, 3), torch.zeros(1, 2, 3)).item() == 0.0


def test_two_classes_are_the_binary_balanced_loss():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 9, 7, generator=generator)
    target = (torch.rand(2, 1, 9, 7, generator=generator) > 0.8).float()
    for reduction in ("sum", "mean"):
        joint = class_balanced_ce(torch.cat([torch.zeros_like(x), x], 1), target, reduction)
        assert joint.item() == pytest.approx(class_balanced_bce(x, target, reduction).item(),
                                             rel=1e-6)


def test_background_balance_gives_the_background_half_as_the_binary_loss():
    # shares 4/6, 1/6, 1/6: w_0 = 1 - s_0 = 1/3 per background pixel; the objects share the other
    # half, w_k = s_0 (1 - s_0) / (K' s_k) = (2/3)(1/3) / (2 × 1/6) = 2/3; zero logits cost log 3
    target = torch.tensor([[[0, 0, 0], [0, 1, 2]]], dtype=torch.float32)
    logits = torch.zeros(1, 3, 2, 3)
    loss = class_balanced_ce(logits, target, balance="background").item()
    assert loss == pytest.approx(math.log(3) * (4 * 1 / 3 + 2 / 3 + 2 / 3))
    # background and the objects carry the same total weight: right on either, half the loss
    sure = logits.clone()
    sure[0, 0, 0, :] = sure[0, 0, 1, 0] = 50.0
    assert class_balanced_ce(sure, target, balance="background").item() == pytest.approx(
        loss / 2, rel=1e-5)
    sure = logits.clone()
    sure[0, 1, 1, 1] = sure[0, 2, 1, 2] = 50.0
    assert class_balanced_ce(sure, target, balance="background").item() == pytest.approx(
        loss / 2, rel=1e-5)
    # two classes: the binary loss, as with balance="classes"
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 9, 7, generator=generator)
    binary = (torch.rand(2, 1, 9, 7, generator=generator) > 0.7).float()
    joint = class_balanced_ce(torch.cat([torch.zeros_like(x), x], 1), binary, balance="background")
    assert joint.item() == pytest.approx(class_balanced_bce(x, binary).item(), rel=1e-6)
    with pytest.raises(ValueError, match="balance"):
        class_balanced_ce(logits, target, balance="objects")


# ---- the head ----------------------------------------------------------------------------------


def test_every_object_starts_as_the_binary_network():
    torch.manual_seed(0)
    net = OSVOSNet(init="port")
    image = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        binary = net.forward_fused(image)
        one = widen_head(copy.deepcopy(net), 1).forward_fused(image)
        three = widen_head(net, 3).forward_fused(image)
    assert one.shape == (1, 2, 32, 40) and three.shape == (1, 4, 32, 40)
    probs = native_class_probabilities(one, (32, 40))
    assert torch.allclose(probs[:, 1], torch.sigmoid(binary[:, 0]), atol=1e-6)
    assert torch.equal(three[:, 0], torch.zeros_like(three[:, 0]))  # background logit 0
    # the same logit, up to the rounding of a wider convolution
    assert all(torch.allclose(three[:, k], binary[:, 0], atol=1e-6) for k in (1, 2, 3))
    assert torch.equal(three[:, 1], three[:, 3])


def test_a_prep_head_gives_each_class_its_own_features():
    torch.manual_seed(0)
    net = OSVOSNet(init="port")
    image = torch.randn(1, 3, 32, 40)
    fuse = widen_head(copy.deepcopy(net), 2, "fuse")
    prep = widen_head(copy.deepcopy(net), 2, "prep")
    with torch.no_grad():
        assert torch.allclose(prep.forward_fused(image), fuse.forward_fused(image), atol=1e-6)
    assert [conv.out_channels for conv in prep.prep] == [48] * 4  # 16 per class
    # a change to object 1's prep copy moves object 1's logit only
    with torch.no_grad():
        before = prep.forward_fused(image)
        for conv in prep.prep:
            conv.weight[16:32] += 0.01 * torch.randn_like(conv.weight[16:32])
        after = prep.forward_fused(image)
    assert not torch.allclose(after[:, 1], before[:, 1])
    assert torch.equal(after[:, 0], before[:, 0]) and torch.equal(after[:, 2], before[:, 2])
    with pytest.raises(Exception, match="joint_head"):
        widen_head(copy.deepcopy(net), 2, "sides")


def test_auto_keeps_the_binary_network_for_one_object_and_joins_several():
    assert [joint_for("auto", k) for k in (1, 2, 7)] == [False, True, True]
    assert [joint_for("per-object", k) for k in (1, 7)] == [False, False]
    assert [joint_for("joint", k) for k in (1, 7)] == [True, True]


# ---- the online stage --------------------------------------------------------------------------


def test_joint_online_stage_writes_palette_masks_of_the_objects(tmp_path):
    run_cli(["+experiment=online", "data=davis2017", *TINY, "data.sequences=[gen-val-00]",
             "online.iterations=2", "model.weights=null", "logger=none", "online.objects=joint",
             f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=tmp_path)
    record = read_record(tmp_path / "run" / "metrics.json")
    assert set(record["sequences"]) == {"gen-val-00_1", "gen-val-00_2"}
    assert record["timing"]["sequences"]["gen-val-00"]["objects"] == 2
    pngs = sorted((tmp_path / "run" / "predictions" / "gen-val-00").glob("*.png"))
    assert len(pngs) == 6
    for png in pngs:
        with Image.open(png) as im:
            assert im.mode == "P"
            assert set(np.unique(np.asarray(im))) <= {0, 1, 2}


@pytest.mark.slow
def test_joint_mode_finds_all_seven_real_objects(davis2017_sample, vgg_weights, tmp_path):
    root = tmp_path / "davis2017"
    shutil.copytree(davis2017_sample / "ImageSets", root / "ImageSets")
    for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        out = root / kind / "240p" / "schoolgirls"
        out.mkdir(parents=True)
        for f in sorted((davis2017_sample / kind / "240p" / "schoolgirls").glob(f"*.{ext}"))[:4]:
            shutil.copy(f, out / f.name)
    run_cli(["+experiment=online", "data=davis2017", f"data.root={root}", "data.resolution=240p",
             "data.sequences=[schoolgirls]", "data.scale=0.4", *QUICK,
             f"model.weights={vgg_weights}", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    record = read_record(tmp_path / "run" / "metrics.json")
    assert list(record["sequences"]) == [f"schoolgirls_{k}" for k in range(1, 8)]
    masks = np.stack([read_mask(p) for p in
                      sorted((tmp_path / "run" / "predictions" / "schoolgirls").glob("*.png"))])
    assert masks.shape == (4, 240, 432)
    assert set(np.unique(masks)) == set(range(8))  # the K + 1 classes, as palette ids


# ---- what cannot be learnt, and what goes away ------------------------------------------------


def _frames(folder: Path, count: int, squares) -> list[np.ndarray]:
    """``count`` 96x128 frames of grey noise with coloured squares; ``squares(i)`` gives frame
    i's ``[(id, colour, (top, left))]``; returns the frames' palette labels."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(count):
        image = (110 + 30 * rng.random((96, 128, 1))).repeat(3, 2).astype(np.uint8)
        lab = np.zeros((96, 128), np.uint8)
        for oid, colour, (top, left) in squares(i):
            image[top:top + 24, max(left, 0):max(left + 24, 0)] = colour
            lab[top:top + 24, max(left, 0):max(left + 24, 0)] = oid
        Image.fromarray(image).save(folder / f"{i:05d}.jpg", quality=95)
        labels.append(lab)
    return labels


def test_an_object_missing_from_frame_0_is_refused_naming_the_files(tmp_path):
    from osvos_pl.data.clip import ClipDataModule
    from osvos_pl.data.datasets import Views
    from osvos_pl.tasks.joint import joint_views

    labels = _frames(tmp_path / "frames", 3, lambda i: [(1, (200, 30, 30), (20, 20))]
                     + ([(2, (30, 30, 200), (50, 80))] if i == 2 else []))
    first, later = tmp_path / "first.png", tmp_path / "frame2.png"
    write_mask(first, labels[0], palette=True)
    write_mask(later, labels[2], palette=True)
    dm = ClipDataModule(str(tmp_path / "frames"), str(first), masks=[f"2:{later}"],
                        augment="none")
    ids = dm.object_ids(dm.name)
    assert ids == [1, 2]  # the clip takes objects from every annotated frame
    with pytest.raises(DataError) as error:
        joint_views(Views(augment="none"), dm, dm.name, 2, ids, multi=True)
    message = str(error.value)
    assert str(later) in message and str(first) in message and "[2]" in message
    joint_views(Views(augment="none"), dm, dm.name, 2, [1], multi=True)  # frame 0's objects: fine


@pytest.mark.slow
def test_an_object_that_leaves_the_frame_leaves_the_masks(vgg_weights, tmp_path):
    """Object 2 walks out of the frame to the left: gone from frames 3-5 (images and masks)."""
    root = tmp_path / "davis"
    seq = "leaving"
    labels = _frames(root / "JPEGImages" / "480p" / seq, 6, lambda i: [
        (1, (200, 30, 30), (20, 80)), (2, (30, 30, 200), (56, 40 - 30 * i))])
    for i, lab in enumerate(labels):
        write_mask(root / "Annotations" / "480p" / seq / f"{i:05d}.png", lab, palette=True)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(f"{seq}\n")
    assert 2 not in labels[3] and 2 in labels[0]
    run_cli(["+experiment=online", "data=davis2017", f"data.root={root}",
             f"data.sequences=[{seq}]", *QUICK, f"model.weights={vgg_weights}",
             f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    record = read_record(tmp_path / "run" / "metrics.json")
    assert set(record["sequences"]) == {f"{seq}_1", f"{seq}_2"}
    masks = np.stack([read_mask(p) for p in
                      sorted((tmp_path / "run" / "predictions" / seq).glob("*.png"))])
    assert masks.shape == (6, 96, 128)
    assert (masks[0] == 2).any() and (masks[:3] == 1).any()
    assert (masks[3:] == 2).mean() < 0.01  # object 2's id has left with it
