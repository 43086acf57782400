"""Decode once (``data.decode_cache``) and augment in batches (``data.augment_on=device``).

- a cached draw is the very bytes of an uncached one (memory and mmap), the mmap cache is
  reused and keyed by the scale;
- a resumed loader draws the same samples, cached and on the device path, whichever worker
  makes them;
- the device path draws its parameters from albumentations' distributions (two-sample KS tests
  on every parameter against the albumentations pipeline's applied parameters), its outputs have
  the same statistics (foreground fraction, brightness), the same matrix warps like OpenCV, and
  masks stay binary (nearest).
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import ks_2samp
from torch.utils.data import DataLoader

from osvos_pl.data.batch_augment import BatchAugment, affine_matrix, sample_params, warp
from osvos_pl.data.datamodule import DAVISDataModule
from osvos_pl.data.datasets import TrainFrames, TrainingDraws
from osvos_pl.data.davis import DAVISIndex
from osvos_pl.data.transforms import WARPS, build_augmentation, mask_boundary
from osvos_pl.utils.errors import ConfigError
from osvos_pl.utils.normalization import get_normalization

NORM = get_normalization("imagenet")


def _frames(root, augment="strong", scale=0.125, augment_on="workers", seed=7, seqs=("blackswan",)):
    return TrainFrames(DAVISIndex(root), list(seqs), NORM, scale, augment, seed=seed,
                       augment_on=augment_on)


def _small_pair(davis_sample, hw=(60, 107)):
    image = np.asarray(Image.open(davis_sample / "JPEGImages/480p/blackswan/00000.jpg"))
    mask = (np.asarray(Image.open(davis_sample / "Annotations/480p/blackswan/00000.png")) > 0)
    return (cv2.resize(image, hw[::-1], interpolation=cv2.INTER_AREA),
            cv2.resize(mask.astype(np.uint8), hw[::-1], interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize("mode", ["memory", "mmap"])
@pytest.mark.parametrize("augment", ["strong", "paper"])
def test_cached_draws_are_the_bytes_of_uncached_ones(davis_sample, tmp_path, mode, augment):
    plain, cached = _frames(davis_sample, augment), _frames(davis_sample, augment)
    cached.keep_decoded(mode, str(tmp_path))
    keys = [key for _ in range(2) for key in TrainingDraws(plain, 1, seed=7)][::7]  # every item twice
    for key in keys:
        a, b = plain[key], cached[key]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"]), key


def test_mmap_cache_is_built_once_and_keyed_by_the_scale(davis_sample, tmp_path, monkeypatch):
    first = _frames(davis_sample)
    first.keep_decoded("mmap", str(tmp_path))
    assert len(list((tmp_path / "decoded").iterdir())) == 1
    again = _frames(davis_sample)
    monkeypatch.setattr(again, "decode", lambda k: pytest.fail("decoded again"))
    again.keep_decoded("mmap", str(tmp_path))  # the same data and scale: the folder is reused
    assert torch.equal(again[(3, 5)]["image"], first[(3, 5)]["image"])
    _frames(davis_sample, scale=0.1).keep_decoded("mmap", str(tmp_path))
    assert len(list((tmp_path / "decoded").iterdir())) == 2
    assert not list((tmp_path / "decoded").glob(".*")), "no temporary folder left"
    with pytest.raises(ConfigError, match="decode_cache"):
        _frames(davis_sample).keep_decoded("disk", str(tmp_path))


def _batches(ds, device_augment, start, workers, n):
    loader = DataLoader(ds, batch_size=2, num_workers=workers,
                        sampler=TrainingDraws(ds, 2, seed=7, start_batch=start))
    out = []
    for batch in loader:
        out.append(device_augment(batch) if device_augment else batch)
        if len(out) == n:
            return out
    return out


@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_resumed_loader_draws_the_same_samples_cached_and_on_the_device(davis_sample, tmp_path,
                                                                        augment_on):
    """A run resumed at batch 3 (another worker count) trains on batches 3.. of the
    uninterrupted run, with the decode cache and with the device path."""
    ds = _frames(davis_sample, augment_on=augment_on)
    ds.keep_decoded("mmap", str(tmp_path))
    batch_augment = BatchAugment(ds.device_spec, NORM) if ds.on_device else None
    uninterrupted = _batches(ds, batch_augment, 0, 0, 6)
    resumed = _batches(ds, batch_augment, 3, 2, 3)
    for a, b in zip(uninterrupted[3:], resumed, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert not torch.equal(uninterrupted[3]["image"], uninterrupted[4]["image"])


def test_device_path_through_the_datamodule_hook(davis_sample):
    dm = DAVISDataModule(root=str(davis_sample), train_sequences=["blackswan"], scale=0.125,
                         batch_size=3, num_workers=0, augment="shift", augment_on="device",
                         validate="none", normalization="imagenet")
    raw = next(iter(dm.train_dataloader()))
    assert raw["pixels"].dtype == torch.uint8 and raw["pixels"].shape == (3, 60, 107, 3)
    batch = dm.on_after_batch_transfer(raw, 0)
    assert batch["image"].shape == (3, 3, 60, 107) and batch["image"].dtype == torch.float32
    assert set(torch.unique(batch["mask"]).tolist()) <= {0.0, 1.0} and batch["mask"].sum() > 0
    val = {"image": torch.zeros(1), "frame": 0}
    assert dm.on_after_batch_transfer(val, 0) is val  # validation batches pass through
    with pytest.raises(ConfigError, match="paper"):
        DAVISDataModule(root=str(davis_sample), train_sequences=["blackswan"], augment="paper",
                        augment_on="device", validate="none").train_dataloader()


def _albumentations_params(name, pair, n):
    """Parameters albumentations applied in ``n`` draws: forward matrix with the flip folded
    in, colour ``[alpha, beta, hue, sat]`` (identity where not drawn), blur drawn or not."""
    image, mask = pair
    h, w = mask.shape
    pipeline = A.Compose(build_augmentation(name, NORM.mean_rgb()).transforms,
                         save_applied_params=True)
    pipeline.set_random_seed(0)
    rows = []
    for _ in range(n):
        applied = dict(pipeline(image=image, mask=mask)["applied_transforms"])
        flip = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])
        matrix = applied["Affine"]["matrix"] @ (flip if "HorizontalFlip" in applied else np.eye(3))
        bc = applied.get("RandomBrightnessContrast", {"alpha": 1.0, "beta": 0.0})
        hsv = applied.get("HueSaturationValue", {"hue_shift": 0.0, "sat_shift": 0.0})
        rows.append([*matrix[:2].ravel(), bc["alpha"], bc["beta"], hsv["hue_shift"],
                     hsv["sat_shift"], "GaussianBlur" in applied])
    return np.array(rows, np.float64)


def _device_params(name, hw, n):
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(n):
        p = sample_params(WARPS[name], hw, rng)
        rows.append([*p["warp"][:2].flatten().tolist(), *p["colour"].tolist(),
                     float(p["blur"][2] != 1)])
    return np.array(rows, np.float64)


@pytest.mark.parametrize("name", ["pytorch", "strong", "shift"])
def test_device_parameters_follow_albumentations_distributions(davis_sample, name):
    """Every parameter (the six matrix entries: flip, rotation, zoom in x and y, shift; contrast,
    brightness, hue, saturation, blur) by a two-sample KS test against albumentations."""
    pair, n = _small_pair(davis_sample), 500
    ours, theirs = _device_params(name, pair[1].shape, n), _albumentations_params(name, pair, n)
    names = ["m00", "m01", "m02", "m10", "m11", "m12", "alpha", "beta", "hue", "sat", "blur"]
    for j, column in enumerate(names):
        if np.ptp(theirs[:, j]) == 0:
            assert np.ptp(ours[:, j]) == 0 and ours[0, j] == theirs[0, j], column
            continue
        assert ks_2samp(ours[:, j], theirs[:, j], method="asymp").pvalue > 1e-3, (name, column)


def test_the_ks_check_would_see_a_wrong_zoom(davis_sample):
    """The test above can fail: a zoom range of the pytorch set in place of strong's is seen."""
    pair = _small_pair(davis_sample)
    theirs = _albumentations_params("strong", pair, 500)
    rng = np.random.default_rng(1)
    wrong = [sample_params(WARPS["pytorch"], pair[1].shape, rng)["warp"][1, 1] for _ in range(500)]
    assert ks_2samp(wrong, theirs[:, 4], method="asymp").pvalue < 1e-3


@pytest.mark.parametrize("name", ["pytorch", "strong"])
def test_device_outputs_have_albumentations_statistics(davis_sample, name):
    """Foreground fraction (mean, spread) and the image's brightness over 300 draws agree."""
    (image, mask), n = _small_pair(davis_sample), 300
    pipeline = build_augmentation(name, NORM.mean_rgb())
    pipeline.set_random_seed(0)
    theirs = [pipeline(image=image, mask=mask) for _ in range(n)]
    fg_a = np.array([o["mask"].mean() for o in theirs])
    lum_a = np.array([o["image"].mean() for o in theirs])
    rng = np.random.default_rng(2)
    items = [{"pixels": torch.from_numpy(image.copy()),
              "target": torch.from_numpy(mask.copy()).unsqueeze(0),
              **sample_params(WARPS[name], mask.shape, rng)} for _ in range(n)]
    batch = torch.utils.data.default_collate(items)
    out = BatchAugment(WARPS[name], NORM)(batch)
    fg_b = out["mask"].mean((1, 2, 3)).numpy()
    pixels = out["image"] * torch.tensor(NORM.std).view(1, 3, 1, 1) + torch.tensor(
        NORM.mean).view(1, 3, 1, 1)
    lum_b = pixels.mean((1, 2, 3)).numpy()
    for a, b in ((fg_a, fg_b), (lum_a, lum_b)):
        se = np.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean())
        assert 0.85 < b.std() / a.std() < 1.15, (name, a.std(), b.std())


def test_device_warp_is_opencvs_for_the_same_matrix(davis_sample):
    """The grid_sample warp of a forward matrix matches cv2.warpAffine (bicubic, mean-colour
    borders; nearest mask), and the matrix is albumentations' for the same parameters."""
    image, mask = _small_pair(davis_sample, (120, 214))
    rng = np.random.default_rng(0)
    fill = NORM.mean_rgb()
    for _ in range(4):
        p = sample_params(WARPS["shift"], mask.shape, rng)
        matrix = p["warp"].double().numpy()
        want_img = cv2.warpAffine(image, matrix[:2], (214, 120), flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        want_mask = cv2.warpAffine(mask, matrix[:2], (214, 120), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        got_img, got_mask = warp(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                                 torch.from_numpy(mask)[None, None].float(), p["warp"][None],
                                 torch.tensor(fill, dtype=torch.float32))
        got_img = got_img[0].permute(1, 2, 0).numpy()
        assert np.median(np.abs(got_img - want_img)) < 1.0
        assert np.abs(got_img - want_img).mean() < 3.0
        got_mask = got_mask[0, 0].numpy()
        assert set(np.unique(got_mask)) <= {0.0, 1.0}, "nearest: still binary"
        iou = ((got_mask > 0) & (want_mask > 0)).sum() / ((got_mask > 0) | (want_mask > 0)).sum()
        assert iou > 0.97, iou
    from albumentations.augmentations.geometric.functional import (
        center,
        create_affine_transformation_matrix,
    )

    theirs = create_affine_transformation_matrix({"x": 5, "y": -3}, {"x": 0, "y": 0},
                                                 {"x": 0.8, "y": 1.3}, 17.0, center((120, 214)))
    ours = affine_matrix((120, 214), False, 17.0, (0.8, 1.3), (5, -3))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


def test_device_path_keeps_masks_and_contour_targets_binary(davis_sample):
    ds = _frames(davis_sample, "shift", augment_on="device")
    batch = torch.utils.data.default_collate([ds[(k, k)] for k in range(0, 50, 5)])
    for contour in (False, True):
        out = BatchAugment(ds.device_spec, NORM, contour=contour)(batch)
        assert set(torch.unique(out["mask"]).tolist()) == {0.0, 1.0}, contour
    edges = BatchAugment(ds.device_spec, NORM, contour=True)(batch)["mask"]
    filled = BatchAugment(ds.device_spec, NORM)(batch)["mask"]
    for edge, mask in zip(edges[:, 0].numpy(), filled[:, 0].numpy(), strict=True):
        np.testing.assert_array_equal(edge, mask_boundary(mask.astype(np.uint8)))


def test_lightning_fit_hands_the_task_augmented_batches(davis_sample, tmp_path):
    """Under ``trainer.fit(datamodule=...)`` Lightning calls the DataModule's hook: the task
    sees normalised float images and 0/1 masks, never the uint8 pixels."""
    import pytorch_lightning as pl

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w, self.seen = torch.nn.Parameter(torch.zeros(1)), []

        def training_step(self, batch, batch_idx):
            self.seen.append({k: v.dtype for k, v in batch.items()})
            return (self.w * batch["image"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = DAVISDataModule(root=str(davis_sample), train_sequences=["blackswan"], scale=0.125,
                         batch_size=2, num_workers=0, augment="strong", augment_on="device",
                         decode_cache="memory", validate="none", normalization="imagenet",
                         cache_dir=str(tmp_path))
    probe = Probe()
    pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, limit_val_batches=0, enable_model_summary=False,
               default_root_dir=tmp_path).fit(probe, datamodule=dm)
    assert probe.seen == [{"image": torch.float32, "mask": torch.float32}] * 2


def test_contour_map_targets_are_cached_and_nearest_warped_on_the_device(davis_sample, tmp_path):
    """Soft contour-map targets (float32) go through both options: cached as float32, warped
    by nearest (no value that was not in the map appears)."""
    from osvos_pl.data.contours import ContourMaps

    maps = ContourMaps(davis_sample / "Contours/480p")
    ds = TrainFrames(DAVISIndex(davis_sample), ["blackswan"], NORM, 0.125, "strong",
                     target="contour_maps", seed=3, contour_maps=maps, augment_on="device")
    plain = [ds[(k, k)] for k in range(0, 50, 10)]
    ds.keep_decoded("mmap", str(tmp_path))
    cached = [ds[(k, k)] for k in range(0, 50, 10)]
    for a, b in zip(plain, cached, strict=True):
        assert a["target"].dtype == torch.float32 and torch.equal(a["target"], b["target"])
    batch = torch.utils.data.default_collate(cached)
    out = BatchAugment(ds.device_spec, NORM)(batch)["mask"]
    for warped, source in zip(out, batch["target"], strict=True):
        assert set(torch.unique(warped).tolist()) <= set(torch.unique(source).tolist()) | {0.0}
    assert out.max() > 0


def test_bad_cache_and_device_settings_are_refused_before_a_run(tmp_path):
    from osvos_pl.runner.validation import validate_config
    from tests.helpers import compose_cfg

    stages = ("parent", "online", "contour")
    ok = compose_cfg(["+experiment=parent", "data.augment=strong", "data.augment_on=device",
                      "data.decode_cache=mmap"], tmp_path)
    validate_config(ok, stages)
    for override, match in (("data.decode_cache=disk", r"data\.decode_cache"),
                            ("data.augment_on=gpu", r"data\.augment_on"),
                            ("data.augment_on=device", "paper")):  # the default augment
        with pytest.raises(ConfigError, match=match):
            validate_config(compose_cfg(["+experiment=parent", override], tmp_path), stages)
    online = compose_cfg(["+experiment=online", "data.augment_on=device"], tmp_path)
    validate_config(online, stages)  # the online stage does not use the training loader


def test_device_colour_and_blur_are_albumentations_for_the_same_parameters(davis_sample):
    """Brightness/contrast, hue/saturation (OpenCV's uint8 HSV) and the Gaussian blur, given the
    same numbers, give albumentations' image up to its uint8 rounding."""
    from albucore import multiply_add
    from albumentations.augmentations.blur.functional import create_gaussian_kernel_1d
    from albumentations.augmentations.pixel.functional import shift_hsv

    from osvos_pl.data.batch_augment import blur, recolour

    image, _ = _small_pair(davis_sample, (120, 214))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for alpha, beta, hue, sat in ((1.2, -20.0, 10.0, 25.0), (0.8, 30.0, -14.0, -28.0)):
        want = shift_hsv(multiply_add(image, alpha, beta, inplace=False), hue, sat, 0)
        got = recolour(x, torch.tensor([[alpha, beta, hue, sat]]))[0].permute(1, 2, 0).numpy()
        diff = np.abs(got - want.astype(np.float32))
        assert diff.mean() < 1.5 and np.percentile(diff, 99) < 6, (diff.mean(), diff.max())
    for sigma, size in ((0.7, 3), (2.5, 5)):
        kernel = create_gaussian_kernel_1d(sigma, size).astype(np.float32)
        taps = np.zeros(5, np.float32)
        taps[(5 - size) // 2:(5 + size) // 2] = kernel
        want = cv2.sepFilter2D(image, -1, kernel, kernel).astype(np.float32)
        got = blur(x, torch.from_numpy(taps)[None])[0].permute(1, 2, 0).numpy()
        assert np.abs(got - want).max() <= 1.0  # OpenCV rounds to uint8
