"""Property tests of the data layer: mask PNG round trips, and augmentation keeping masks aligned.

Alignment is checked without trusting the transforms' geometry: the image is drawn from the
mask (object pixels bright, background dark, both textured), so after any joint transform the
object must still be where the image is bright. Masks are "tartans" — rows and columns cut into
bands at least ``MIN_BAND`` pixels wide, each tile one label — so no feature is thinner than the
interpolation can follow at the scales used here (0.5x-2x, rotation, zoom 0.75-1.25).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from osvos_pl.data.io import davis_palette, read_mask, write_mask
from osvos_pl.data.transforms import PAPER_SCALES, build_augmentation, paper_versions, resize_pair

shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))
labels_maps = shapes.flatmap(lambda s: arrays(np.uint8, s))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("masks")


def fresh_png(folder: Path) -> Path:
    """A path in a new empty folder (one per example: module fixtures outlive examples)."""
    return Path(tempfile.mkdtemp(dir=folder)) / "00000.png"


# ---- mask IO ----------------------------------------------------------------------------------


def voc_label_of(rgb: np.ndarray) -> np.ndarray:
    """Inverse PASCAL VOC colour map: label bit 3j + c is bit 7 - j of channel c (R, G, B)."""
    rgb = rgb.astype(np.int64)
    label = np.zeros(rgb.shape[:-1], np.int64)
    for j in range(8):
        for c in range(3):
            label |= ((rgb[..., c] >> (7 - j)) & 1) << (3 * j + c)
    return label


@given(labels=labels_maps)
def test_grey_mask_round_trips_exactly_and_leaves_no_temporary(labels, folder):
    path = fresh_png(folder)
    write_mask(path, 255 - labels, palette=False)  # replaced atomically by the second write
    assert write_mask(path, labels, palette=False) == path
    with Image.open(path) as im:
        assert im.mode == "L"
    back = read_mask(path)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@given(labels=labels_maps)
def test_palette_mask_round_trips_and_its_colours_are_the_davis_ones(labels, folder):
    path = fresh_png(folder)
    write_mask(path, labels, palette=True)
    assert np.array_equal(read_mask(path), labels)
    with Image.open(path) as im:
        assert im.mode == "P"
        rgb = np.asarray(im.convert("RGB"))
    assert np.array_equal(voc_label_of(rgb), labels)  # colours decode back to the labels


def test_davis_palette_is_the_voc_colour_map():
    palette = np.array(davis_palette()).reshape(256, 3)
    assert np.array_equal(voc_label_of(palette), np.arange(256))
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]


@given(mask=shapes.flatmap(lambda s: arrays(np.bool_, s)), palette=st.booleans())
def test_binary_mask_written_as_0_255_reads_back_as_0_255(mask, palette, folder):
    path = fresh_png(folder)
    write_mask(path, mask.astype(np.uint8) * 255, palette=palette)
    back = read_mask(path)
    assert set(np.unique(back).tolist()) <= {0, 255}
    assert np.array_equal(back > 0, mask)


@given(mask=shapes.flatmap(lambda s: arrays(np.bool_, s)), bits=st.sampled_from(["1", "16"]))
def test_1_bit_and_16_bit_masks_read_as_0_255(mask, bits, folder):
    path = fresh_png(folder)
    data = mask if bits == "1" else mask.astype(np.uint16) * np.uint16(40000)
    Image.fromarray(data).save(path)
    back = read_mask(path)
    assert back.dtype == np.uint8
    assert np.array_equal(back, mask.astype(np.uint8) * 255)


@given(labels=labels_maps)
def test_rgb_mask_with_equal_channels_reads_as_its_grey_value(labels, folder):
    path = fresh_png(folder)
    Image.fromarray(np.repeat(labels[..., None], 3, axis=2)).save(path)
    assert np.array_equal(read_mask(path), labels)


# ---- augmentation keeps image and mask aligned --------------------------------------------------

MIN_BAND = 4  # pixels: at scale 0.5 the thinnest feature is still 2 pixels wide


@st.composite
def bands(draw, length: int) -> list[int]:
    """Cut points 0 = c0 < c1 < ... = length, every band at least MIN_BAND wide."""
    cuts = [0]
    for width in draw(st.lists(st.integers(MIN_BAND, 3 * MIN_BAND), min_size=1, max_size=10)):
        if length - (cuts[-1] + width) < MIN_BAND:
            break
        cuts.append(cuts[-1] + width)
    return [*cuts, length]


@st.composite
def tartans(draw, labels: int = 1) -> np.ndarray:
    """``(H, W) uint8`` tiles of labels 0..labels, 16 <= H, W <= 40."""
    h, w = draw(st.integers(16, 40)), draw(st.integers(16, 40))
    rows, cols = draw(bands(h)), draw(bands(w))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tiles = rng.integers(0, labels + 1, (len(rows) - 1, len(cols) - 1), dtype=np.uint8)
    return np.repeat(np.repeat(tiles, np.diff(rows), axis=0), np.diff(cols), axis=1)


def draw_image(mask: np.ndarray, seed: int) -> np.ndarray:
    """``(H, W, 3) uint8``: object pixels textured in 200..255, background in 0..55."""
    texture = np.random.default_rng(seed).integers(0, 56, (*mask.shape, 3))
    return (texture + 200 * (mask > 0)[..., None]).astype(np.uint8)


def assert_aligned(image: np.ndarray, mask: np.ndarray, edge_ring: bool = False) -> None:
    """The object is where the image is bright, up to one pixel next to an object boundary.

    Nearest-neighbour masks and cubic/area images sample half a pixel apart, so a pixel next to a
    boundary may go either way; a pixel with only one label within one pixel may not. With
    ``edge_ring`` the outermost ring is free too: there a cubic image mixes in the fill colour
    from beyond the canvas, which a nearest-neighbour mask never sees.
    """
    assert image.shape[:2] == mask.shape
    obj = mask > 0
    kernel = np.ones((3, 3), np.uint8)
    near_obj = cv2.dilate(obj.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    near_bg = cv2.dilate((~obj).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    free = near_obj & near_bg
    if edge_ring:
        free[[0, -1], :] = free[:, [0, -1]] = True
    wrong = ((image.mean(axis=2) > 127.5) != obj) & ~free
    assert not wrong.any(), f"{wrong.sum()} pixel(s) misaligned, first at {np.argwhere(wrong)[0]}"


@given(mask=tartans(labels=3), seed=st.integers(0, 2**31 - 1))
def test_paper_augmentation_keeps_mask_aligned_and_labels_exact(mask, seed):
    augment = build_augmentation("paper")
    augment.set_random_seed(seed)
    out = augment(image=draw_image(mask, seed), mask=mask)
    assert out["mask"].dtype == np.uint8
    assert set(np.unique(out["mask"])) <= set(np.unique(mask))  # nearest: no blended labels
    h, w = mask.shape
    oh, ow = out["mask"].shape
    assert any(abs(oh - h * s) <= 1 and abs(ow - w * s) <= 1 for s in PAPER_SCALES)
    assert_aligned(out["image"], out["mask"])


@given(
    mask=tartans(labels=3),
    seed=st.integers(0, 2**31 - 1),
    fill=st.tuples(*[st.integers(0, 55)] * 3),
)
def test_pytorch_augmentation_keeps_mask_aligned_and_labels_exact(mask, seed, fill):
    augment = build_augmentation("pytorch", fill_rgb=fill)
    augment.set_random_seed(seed)
    out = augment(image=draw_image(mask, seed), mask=mask)
    assert out["image"].shape[:2] == out["mask"].shape == mask.shape  # same canvas
    assert set(np.unique(out["mask"])) <= set(np.unique(mask)) | {0}
    assert_aligned(out["image"], out["mask"], edge_ring=True)


@given(mask=tartans(labels=3), seed=st.integers(0, 2**31 - 1))
def test_paper_versions_are_three_scales_as_is_and_flipped_all_aligned(mask, seed):
    image = draw_image(mask, seed)
    versions = paper_versions(image, mask)
    assert len(versions) == 2 * len(PAPER_SCALES)
    h, w = mask.shape
    for k, s in enumerate(PAPER_SCALES):
        (img, msk), (img_f, msk_f) = versions[2 * k], versions[2 * k + 1]
        assert msk.shape == (max(16, round(h * s)), max(16, round(w * s)))
        assert np.array_equal(img_f, img[:, ::-1]) and np.array_equal(msk_f, msk[:, ::-1])
        assert set(np.unique(msk)) <= set(np.unique(mask))
        assert_aligned(img, msk)
    assert np.array_equal(versions[-2][0], image) and np.array_equal(versions[-2][1], mask)


@given(mask=tartans(labels=3), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_resize_pair_keeps_mask_aligned_between_half_and_double_size(mask, seed, data):
    h, w = mask.shape
    hw = (data.draw(st.integers(h // 2, 2 * h)), data.draw(st.integers(w // 2, 2 * w)))
    image = draw_image(mask, seed)
    img, msk = resize_pair(image, mask, hw)
    assert img.shape == (*hw, 3) and msk.shape == hw
    assert set(np.unique(msk)) <= set(np.unique(mask))
    assert_aligned(img, msk)
    same_img, same_msk = resize_pair(image, mask, (h, w))
    assert same_img is image and same_msk is mask
