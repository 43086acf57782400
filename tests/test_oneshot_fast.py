"""Issue 15, one-shot in seconds: the fine-tuning levers compute what the plain path computes.

- the trunk can stop after any VGG stage and resume from there (``trunk_prefix`` /
  ``forward_fused_from``), giving ``forward_fused``'s logits;
- fine-tuning with frozen stages and a per-view cache gives the loss and gradients of the plain
  forward on the trainable part, and the cache is filled once per fixed view;
- the warm-up + cosine schedule keeps each group's lr multiplier;
- the presets compose to the settings they name.
"""

from __future__ import annotations

import pytest
import torch

from osvos_pl.model.loss import class_balanced_bce
from osvos_pl.model.osvos import STAGE_ENDS, OSVOSNet, freeze_stages
from osvos_pl.model.param_groups import ParamGroups
from osvos_pl.tasks.finetuning import FineTuning, FineTuningTask, warmup_cosine
from tests.helpers import compose_cfg

ONES = {"weight": 1.0, "bias": 1.0, "dsn_weight": 1.0, "dsn_bias": 1.0, "fuse_weight": 1.0,
        "fuse_bias": 1.0}


def _net(seed: int = 0) -> OSVOSNet:
    torch.manual_seed(seed)
    return OSVOSNet(init="port")


def _finetuning(stages: int, scale: float = 1.0) -> FineTuning:
    loss = lambda logits, target: class_balanced_bce(logits, target, "mean")  # noqa: E731
    return FineTuning(4, torch.optim.Adam, ParamGroups(ONES), loss, frozen_stages=stages,
                      scale=scale)


@pytest.mark.parametrize("stages", range(len(STAGE_ENDS) + 1))
def test_resuming_after_any_stage_gives_the_fused_logits(stages):
    net, x = _net(), torch.randn(2, 3, 37, 53)
    with torch.no_grad():
        taps, h = net.trunk_prefix(x, stages)
        resumed = net.forward_fused_from(taps, h, stages, (37, 53))
        torch.testing.assert_close(resumed, net.forward_fused(x), rtol=0, atol=0)
    assert len(taps) == max(0, stages - 1)


@pytest.mark.parametrize("stages", [2, 3, 4])
def test_cached_frozen_prefix_gives_the_plain_loss_and_gradients(stages):
    """Two nets, same weights: one fine-tunes through ``FineTuningTask`` (prefix from the cache
    on the second step), the other runs ``forward_fused`` on the image with the same stages
    frozen; the losses and every trainable gradient agree, and frozen layers get none."""
    plain, cached = _net(), _net()
    for net in (plain, cached):
        freeze_stages(net, stages)
    task = FineTuningTask(cached, _finetuning(stages), "imagenet")
    image = torch.randn(1, 3, 45, 61)
    target = (torch.rand(1, 1, 45, 61) > 0.7).float()
    batch = {"image": image, "mask": target, "view": torch.tensor([3])}
    loss_plain = class_balanced_bce(plain.forward_fused(image), target, "mean")
    loss_plain.backward()
    for _ in range(2):  # the second step reads the prefix from the cache
        cached.zero_grad()
        taps, h, size, y = task.prefix(batch)
        loss = task.loss(cached.forward_fused_from(taps, h, stages, size), y)
        loss.backward()
        torch.testing.assert_close(loss, loss_plain, rtol=1e-6, atol=0)
        for (name, p), q in zip(cached.named_parameters(), plain.parameters()):
            if not p.requires_grad:
                assert p.grad is None and q.grad is None, name
            elif name.startswith("score_dsn"):
                continue  # the fused loss does not reach the side heads
            else:
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-8, msg=name)
    assert list(task._views) == [3]
    frozen = [p for layer in cached.trunk.features[: STAGE_ENDS[stages - 1]]
              for p in layer.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)


def test_random_warps_are_not_cached():
    """Without a ``view`` (``data.augment=pytorch``: every sample a new warp) the prefix runs on
    each batch."""
    task = FineTuningTask(_net(), _finetuning(3), "imagenet")
    for seed in range(2):
        torch.manual_seed(seed)
        batch = {"image": torch.randn(1, 3, 32, 32), "mask": torch.ones(1, 1, 32, 32)}
        taps, h, _, _ = task.prefix(batch)
        expected = task.net.trunk_prefix(batch["image"], 3)[1]
        torch.testing.assert_close(h, expected, rtol=0, atol=0)
    assert not task._views


def test_finetune_scale_resizes_views_and_keeps_targets_binary():
    task = FineTuningTask(_net(), _finetuning(0, scale=0.5), "imagenet")
    target = torch.zeros(1, 1, 40, 60)
    target[..., 10:30, 20:40] = 1
    _, x, size, y = task.prefix({"image": torch.randn(1, 3, 40, 60), "mask": target,
                                 "view": torch.tensor([0])})
    assert size == (20, 30) and x.shape[-2:] == (20, 30) and y.shape == (1, 1, 20, 30)
    assert set(y.unique().tolist()) == {0.0, 1.0}


def test_warmup_cosine_ramps_up_then_decays_and_keeps_the_multipliers():
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [p], "lr": 1.0}, {"params": [q], "lr": 0.1}], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=100, warmup=0.1)
    lrs = []
    for _ in range(100):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    first = [a for a, _ in lrs]
    assert first[0] == pytest.approx(0.1) and first[9] == pytest.approx(1.0)
    assert all(b <= a for a, b in zip(first[9:], first[10:])) and first[-1] < 0.01
    assert all(b == pytest.approx(a * 0.1) for a, b in lrs)


def test_finetuning_lr_overrides_the_optimizer_lr():
    ft = FineTuning(1, torch.optim.Adam, ParamGroups(ONES), None, lr=3e-4)
    optimizer = ft.param_groups.optimizer(_net(), ft.optimizer, include_side=False)
    assert {g["lr"] for g in optimizer.param_groups} == {3e-4}


def test_reference_preset_is_the_ports_cpu_setting(tmp_path):
    cfg = compose_cfg(["+experiment=online", "+preset=reference"], tmp_path)
    assert cfg.parent_ckpt is None
    assert (cfg.data.scale, cfg.data.augment, cfg.data.eval_batch_size) == (0.5, "pytorch", 1)
    assert cfg.online.augment is None  # the one-shot views follow data.augment
    assert (cfg.model.upsample, cfg.model.init, cfg.model.channels_last) == ("center", "port", False)
    assert cfg.trainer.precision == "32-true"
    assert cfg.optim.optimizer._target_ == "torch.optim.Adam" and not cfg.optim.optimizer.fused
    assert cfg.optim.finetune_lr == 1e-5 and cfg.optim.loss_reduction == "mean"
    assert cfg.online.iterations == 300 and cfg.online.frozen_stages == 0
    assert cfg.online.finetune_scale == 1.0 and cfg.online.scheduler is None


def test_paper_optimiser_fine_tunes_at_its_own_lr(tmp_path):
    cfg = compose_cfg(["+experiment=online", "optim=sgd_caffe"], tmp_path)
    assert cfg.optim.finetune_lr == cfg.optim.optimizer.lr == 1e-8


FRAMES, J_BAR = 10, 0.5


@pytest.mark.slow
def test_fast_preset_learns_the_object_on_real_frames(davis_sample, vgg_weights, tmp_path):
    """The fast preset as it ships (100 updates, stages 1-3 frozen, warm-up + cosine to lr
    1e-3) from the ImageNet backbone alone (-PN) on car-shadow's first frame, scored on its
    next frames at quarter resolution: it learns the object."""
    from osvos_pl.runner.run import run
    from tests.helpers import copy_sample

    root = copy_sample(davis_sample, tmp_path / "davis", ("car-shadow",), frames=FRAMES)
    cfg = compose_cfg([
        "+experiment=online_pn", "+preset=fast", f"data.root={root}",
        "data.sequences=[car-shadow]", "data.scale=0.25", "data.num_workers=0", "logger=none",
        f"model.weights={vgg_weights}", "online.overlays=0",
        "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
    ], tmp_path / "out")
    assert (cfg.online.iterations, cfg.online.frozen_stages) == (100, 3)
    record = run(cfg, tmp_path / "out")
    j = record["global"]["J-Mean"]
    print(f"fast preset, car-shadow 0-{FRAMES - 1} at 120x214: J {j:.4f}, "
          f"{record['timing']['finetune_seconds_per_sequence']:.1f} s fine-tuning")
    assert j > J_BAR


def _first_frame(h: int = 48, w: int = 64):
    import numpy as np

    image = np.full((h, w, 3), 90, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    image[12:30, 20:44], mask[12:30, 20:44] = (230, 40, 40), 1
    return image, mask


@pytest.mark.parametrize("augment", ["strong", "shift", "zoom"])
def test_fixed_random_views_are_drawn_once_per_seed_and_named_for_the_cache(augment):
    """``views=N``: N warps of the annotated frame, the same for the same seed, each sample one
    of them with its ``view`` id (so the frozen prefix is cached), and the mask moved with it."""
    from osvos_pl.data.datasets import FirstFrames
    from osvos_pl.utils.normalization import get_normalization

    norm = get_normalization("imagenet")
    a = FirstFrames([_first_frame()], norm, 20, augment, seed=3, views=5)
    b = FirstFrames([_first_frame()], norm, 20, augment, seed=3, views=5)
    c = FirstFrames([_first_frame()], norm, 20, augment, seed=4, views=5)
    assert len(a.normalised) == 5 and a.augment is None
    for x, y in zip(a.normalised, b.normalised):
        torch.testing.assert_close(x["image"], y["image"], rtol=0, atol=0)
    assert any(not torch.equal(x["image"], y["image"]) for x, y in zip(a.normalised, c.normalised))
    seen = {int(a[k]["view"]) for k in range(20)}
    assert seen <= set(range(5)) and len(seen) > 1
    for view in a.normalised:  # the red object moves with its mask (colours change a little)
        redness, inside = view["image"][0] - view["image"][1], view["mask"][0] > 0
        assert inside.any() and redness[inside].mean() > redness[~inside].mean() + 1.5


def test_l2sp_pulls_the_fine_tuned_weights_toward_the_parent():
    """Same updates, same data: with ``l2sp`` the trained weights end nearer the parent's, the
    logged fused loss excludes the penalty, and frozen weights have no anchor."""
    from osvos_pl.data.datasets import FirstFrames
    from osvos_pl.utils.normalization import get_normalization

    sample = FirstFrames([_first_frame()], get_normalization("imagenet"), 1, "none")[0]
    batch = {k: v.unsqueeze(0) if torch.is_tensor(v) else torch.tensor([v])
             for k, v in sample.items()}
    distances = {}
    for l2sp in (0.0, 10.0):
        net = _net()
        freeze_stages(net, 3)
        loss_fn = lambda logits, target: class_balanced_bce(logits, target, "mean")  # noqa: E731
        ft = FineTuning(8, torch.optim.Adam, ParamGroups(ONES), loss_fn, frozen_stages=3,
                        l2sp=l2sp)
        task = FineTuningTask(net, ft, "imagenet")
        parent = {n: p.detach().clone() for n, p in net.named_parameters()}
        optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(8):
            optimizer.zero_grad()
            task.training_step(batch, 0).backward()
            optimizer.step()
        distances[l2sp] = sum(float(((p - parent[n]) ** 2).sum())
                              for n, p in net.named_parameters())
        if l2sp:
            assert all(net.get_parameter(n).requires_grad for n in task._anchor)
            assert float(task._distance()) == pytest.approx(distances[l2sp], rel=1e-4)
    assert 0 < distances[10.0] < 0.5 * distances[0.0]


def test_object_zoom_enlarges_the_object_and_keeps_it_in_view():
    import numpy as np

    from osvos_pl.data.transforms import object_zoom

    image, mask = _first_frame()
    for seed in range(10):
        zimg, zmask = object_zoom(image, mask, np.random.default_rng(seed))
        assert zimg.shape == image.shape and zmask.shape == mask.shape
        assert zmask.sum() >= mask.sum() and zmask.any()
        red = (zimg[..., 0] > 200) & (zimg[..., 1] < 80)
        assert (red == (zmask > 0)).mean() > 0.95
    empty = np.zeros_like(mask)
    assert object_zoom(image, empty, np.random.default_rng(0))[0] is image


def test_objects_share_a_views_prefix_only_where_its_image_is_the_same():
    """``TrunkPrefixes``: a second object's task reuses the first's activations of a view; a view
    whose image differs (``augment=zoom`` zooms into each object) is computed again."""
    from unittest import mock

    from osvos_pl.tasks.finetuning import TrunkPrefixes

    prefixes, image = TrunkPrefixes(), torch.randn(1, 3, 45, 61)
    tasks = [FineTuningTask(_net(), _finetuning(3), "imagenet", prefixes=prefixes) for _ in range(2)]
    for task in tasks:
        freeze_stages(task.net, 3)
    with mock.patch.object(OSVOSNet, "trunk_prefix", autospec=True,
                           side_effect=OSVOSNet.trunk_prefix) as prefix:
        first = tasks[0].prefix({"image": image, "mask": torch.zeros(1, 1, 45, 61),
                                 "view": torch.tensor([0])})
        second = tasks[1].prefix({"image": image.clone(), "mask": torch.ones(1, 1, 45, 61),
                                  "view": torch.tensor([0])})
        assert prefix.call_count == 1 and second[1] is first[1]
        assert second[3].min() == 1  # the target stays the object's own
        tasks[1].prefix({"image": image + 1, "mask": torch.ones(1, 1, 45, 61),
                         "view": torch.tensor([1])})
        tasks[0].prefix({"image": image + 2, "mask": torch.ones(1, 1, 45, 61),
                         "view": torch.tensor([1])})
        assert prefix.call_count == 3
