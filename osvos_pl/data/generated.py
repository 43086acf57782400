"""The generated default dataset: a small DAVIS-layout dataset the project writes itself.

It lets a fresh machine run every stage with no download, and is designed so that the quick
start *shows the method working* from a randomly initialised VGG16 in a few minutes on a CPU:

- the **objects** are what a parent network can learn to call foreground: shapes with smooth
  lobes, each filled with stripes of one saturated hue (a bright and a dark shade) that move and
  turn with it; they drift, sway, turn and grow or shrink smoothly from frame to frame;
- every sequence also holds a **distractor**: a smaller object of the same kind in another hue,
  never annotated. The parent learns what such objects look like and marks the distractor too;
  only the annotated first frame says which one to follow — what the online stage's one-shot
  fine-tuning adds (OSVOS's point: the parent knows objects, the first frame names one);
- the **backgrounds** are clutter without saturated colour: grey-ish smooth noise with a faint
  tint, low-contrast grey blobs, sliding as the camera pans; in every other sequence an
  unannotated grey bar crosses the scene and hides part of the objects.

Every sequence has its own hues, stripe widths and angles, shapes and paths, so the validation
sequences show objects the parent has never seen. It is written once, in the exact DAVIS layout
(JPEGImages/480p, Annotations/480p, ImageSets), to a cache folder and reused, so the same
DAVISIndex reads it. ``year=2016`` writes one annotated object with 0/255 grey masks;
``year=2017`` writes two with palette masks (ids 1, 2).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from osvos_pl.data.io import write_mask

VERSION = 3


@dataclass(frozen=True)
class GeneratedSpec:
    """What to generate; part of the cache folder name, so a change writes a new folder."""

    year: int = 2016
    train_sequences: int = 6
    val_sequences: int = 2
    frames: int = 12
    height: int = 180
    width: int = 320
    seed: int = 0

    def folder_name(self) -> str:
        return (
            f"generated-davis{self.year}-v{VERSION}-{self.train_sequences}x{self.val_sequences}"
            f"x{self.frames}-{self.height}x{self.width}-s{self.seed}"
        )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, channels: int) -> np.ndarray:
    """``(H, W, channels) float32`` noise in [0, 1] with features about ``cell`` px wide."""
    low = rng.random((max(2, h // cell), max(2, w // cell), channels)).astype(np.float32)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, channels)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """``(H, W, 3) float32`` clutter without saturated colour: grey-ish noise, a faint tint and
    low-contrast grey blobs (edges that are not objects)."""
    lum = 0.3 + 0.45 * _smooth_noise(rng, h, w, 12, 1) + 0.1 * _smooth_noise(rng, h, w, 4, 1)
    img = lum + rng.uniform(-0.06, 0.06, 3).astype(np.float32)
    img = img + 0.04 * (_smooth_noise(rng, h, w, 16, 3) - 0.5)
    for _ in range(int(rng.integers(4, 9))):
        blob = np.zeros((h, w), np.uint8)
        centre = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.05, 0.2) * h))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        img[blob > 0] = 0.6 * img[blob > 0] + 0.4 * rng.uniform(0.3, 0.75)
    return img


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """One RGB colour in [0, 1] from HSV in [0, 1]."""
    pixel = np.array([[[hue * 179, saturation * 255, value * 255]]], np.uint8)
    return cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def _new_object(rng: np.random.Generator, h: int, w: int, column: float) -> dict:
    """Look and path of one object; ``column`` (0-1) is where across the frame it starts."""
    hue = rng.uniform(0, 1)
    return {
        "bright": _hsv(hue, rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0)),
        "dark": _hsv((hue + rng.uniform(-0.08, 0.08)) % 1, 1.0, rng.uniform(0.35, 0.55)),
        "period": rng.uniform(0.05, 0.12) * h, "angle": rng.uniform(0, np.pi),
        "radius": rng.uniform(0.2, 0.3) * h, "aspect": rng.uniform(0.7, 1.3),
        "lobes": int(rng.integers(2, 6)), "wobble": rng.uniform(0.05, 0.25),
        "spin": rng.uniform(-0.06, 0.06), "growth": rng.uniform(-0.015, 0.02),
        "phase": rng.uniform(0, 2 * np.pi), "sway": rng.uniform(0, 0.06) * h,
        "start": np.array([rng.uniform(0.35, 0.65) * h, column * w]),
        "velocity": np.array([rng.uniform(-1.5, 1.5), rng.uniform(-4, 4)]) * h / 144,
    }


def _draw_object(frame: np.ndarray, labels: np.ndarray, k: int, ob: dict, t: int) -> None:
    """Paint object ``k`` at time ``t`` into ``frame`` (float RGB) and ``labels`` (ids)."""
    h, w = labels.shape
    cy, cx = ob["start"] + t * ob["velocity"]
    cy = np.clip(cy + ob["sway"] * np.sin(0.5 * t + ob["phase"]), 0.2 * h, 0.8 * h)
    cx = np.clip(cx, 0.15 * w, 0.85 * w)
    turn = ob["phase"] + ob["spin"] * t
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    r = ob["radius"] * (1 + ob["growth"] * t) * (1 + ob["wobble"] * np.sin(ob["lobes"] * a + ob["phase"]))
    outline = np.stack([cx + r * np.cos(a + turn) * ob["aspect"], cy + r * np.sin(a + turn)], 1)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.round(outline).astype(np.int32)], 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    across = (np.cos(ob["angle"] + turn) * (xx - cx) + np.sin(ob["angle"] + turn) * (yy - cy))
    stripes = np.where((np.sin(2 * np.pi * across / ob["period"]) > 0)[..., None],
                       ob["bright"], ob["dark"])
    frame[inside > 0] = stripes[inside > 0]
    labels[inside > 0] = k


def _sequence(rng: np.random.Generator, spec: GeneratedSpec, n_objects: int, occlude: bool):
    """Yield ``(frame (H, W, 3) uint8, labels (H, W) uint8 ids)`` for each of ``spec.frames``."""
    h, w = spec.height, spec.width
    background = _background(rng, h, w)
    columns = [0.5] if n_objects == 1 else np.linspace(0.3, 0.7, n_objects)
    objects = [_new_object(rng, h, w, c) for c in columns]
    distractor = _new_object(rng, h, w, 0.15 if rng.random() < 0.5 else 0.85)
    distractor["radius"] *= rng.uniform(0.5, 0.65)  # smaller than any annotated object
    pan = rng.uniform(-2, 2)
    bar_x0, bar_speed = rng.uniform(0.55, 0.85) * w, rng.uniform(0.03, 0.06) * w
    for t in range(spec.frames):
        frame = np.roll(background, int(round(pan * t)), axis=1)
        labels = np.zeros((h, w), np.uint8)
        _draw_object(frame, labels, 0, distractor, t)  # painted, labelled background
        for k, ob in enumerate(objects, start=1):
            _draw_object(frame, labels, k, ob, t)
        if occlude:
            x = int(bar_x0 - t * bar_speed)
            bar = slice(max(0, x), max(0, x + w // 12))
            frame[:, bar] = 0.55 + 0.1 * frame[:, bar].mean(-1, keepdims=True)
            labels[:, bar] = 0
        yield np.clip(frame * 255, 0, 255).astype(np.uint8), labels


def generate(root: Path, spec: GeneratedSpec) -> Path:
    """Write the dataset to ``root`` (which must not exist) in the DAVIS layout."""
    rng = np.random.default_rng(spec.seed)
    splits = {"train": spec.train_sequences, "val": spec.val_sequences}
    lines: dict[str, list[str]] = {}
    for split, count in splits.items():
        lines[split] = []
        for s in range(count):
            name = f"gen-{split}-{s:02d}"
            img_dir = root / "JPEGImages" / "480p" / name
            img_dir.mkdir(parents=True)
            n_obj = 2 if spec.year == 2017 else 1
            for t, (frame, labels) in enumerate(_sequence(rng, spec, n_obj, occlude=s % 2 == 1)):
                Image.fromarray(frame).save(img_dir / f"{t:05d}.jpg", quality=92)
                out = root / "Annotations" / "480p" / name / f"{t:05d}.png"
                if spec.year == 2016:
                    write_mask(out, (labels > 0).astype(np.uint8) * 255, palette=False)
                else:
                    write_mask(out, labels, palette=True)
                lines[split].append(
                    f"/JPEGImages/480p/{name}/{t:05d}.jpg /Annotations/480p/{name}/{t:05d}.png"
                )
    for split, rows in lines.items():
        path = root / "ImageSets" / "480p" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
        if spec.year == 2017:
            names = sorted({r.split("/")[3] for r in rows})
            (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
            (root / "ImageSets" / "2017" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def ensure_generated(cache_dir: str | Path, spec: GeneratedSpec | None = None) -> Path:
    """The generated dataset's root under ``cache_dir``, writing it first if absent.

    Written into a temporary folder and renamed, so an interrupted write is never reused and
    concurrent jobs (a multirun) do not see a half-written dataset.
    """
    spec = spec or GeneratedSpec()
    cache_dir = Path(cache_dir).expanduser()
    root = cache_dir / spec.folder_name()
    if root.is_dir():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{spec.folder_name()}."))
    try:
        generate(tmp / "root", spec)
        try:
            (tmp / "root").rename(root)
        except OSError:
            if not root.is_dir():  # lost a race to another job only if the winner's copy is there
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
