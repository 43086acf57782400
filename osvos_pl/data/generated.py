"""The generated default dataset: a small DAVIS-layout dataset the project writes itself.

It lets a fresh machine run every stage with no download. Textured objects move, scale and get
occluded (by an unannotated textured bar) over textured backgrounds. It is written once, in the
exact DAVIS layout (JPEGImages/480p, Annotations/480p, ImageSets), to a cache folder and reused,
so the same DAVISIndex reads it. ``year=2016`` writes one object with 0/255 grey masks;
``year=2017`` writes two objects with palette masks (ids 1, 2).
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

VERSION = 1


@dataclass(frozen=True)
class GeneratedSpec:
    """What to generate; part of the cache folder name, so a change writes a new folder."""

    year: int = 2016
    train_sequences: int = 4
    val_sequences: int = 2
    frames: int = 10
    height: int = 180
    width: int = 320
    seed: int = 0

    def folder_name(self) -> str:
        return (
            f"generated-davis{self.year}-v{VERSION}-{self.train_sequences}x{self.val_sequences}"
            f"x{self.frames}-{self.height}x{self.width}-s{self.seed}"
        )


def _texture(rng: np.random.Generator, h: int, w: int, vivid: bool = False) -> np.ndarray:
    """A smooth-noise plus stripes texture, ``(H, W, 3) uint8``; ``vivid`` for objects."""
    low = rng.random((max(2, h // 24), max(2, w // 24), 3)).astype(np.float32)
    noise = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    base = rng.uniform(0.2, 0.9, 3).astype(np.float32)
    if vivid:  # saturated, high-contrast stripes: objects stand out from the background
        tex = 0.25 * noise + 0.75 * stripes[..., None] * base / base.max()
    else:  # muted: grey-ish noise with faint stripes
        tex = 0.35 + 0.3 * noise.mean(-1, keepdims=True) + 0.15 * noise + 0.1 * stripes[..., None]
    return np.clip(tex * 255, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, r: float,
                kind: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    if kind == 0:
        cv2.ellipse(m, (int(cx), int(cy)), (int(r * 1.3), int(r)), 20, 0, 360, 1, -1)
    else:
        pts = np.array([[cx + r * np.cos(a), cy + r * np.sin(a)]
                        for a in np.linspace(0, 2 * np.pi, 6 + kind, endpoint=False)], np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m


def _sequence(rng: np.random.Generator, spec: GeneratedSpec, n_objects: int, occlude: bool):
    h, w = spec.height, spec.width
    background = _texture(rng, h, w)
    objects = []
    for _ in range(n_objects):
        objects.append({
            "tex": _texture(rng, h, w, vivid=True),
            "start": np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.2, 0.5) * w]),
            "vel": np.array([rng.uniform(-2.0, 2.0), rng.uniform(3.0, 7.0)]),
            "r0": rng.uniform(0.12, 0.2) * h, "growth": rng.uniform(-0.02, 0.03),
            "kind": int(rng.integers(0, 3)),
        })
    bar_tex, bar_x0 = _texture(rng, h, w), rng.uniform(0.6, 0.9) * w
    for t in range(spec.frames):
        frame = background.copy()
        labels = np.zeros((h, w), np.uint8)
        for k, ob in enumerate(objects, start=1):
            cy, cx = ob["start"] + t * ob["vel"]
            m = _shape_mask(rng, h, w, cy, cx, ob["r0"] * (1 + ob["growth"] * t), ob["kind"])
            frame[m > 0] = ob["tex"][m > 0]
            labels[m > 0] = k
        if occlude:  # an unannotated bar crossing the scene hides part of the objects
            x = int(bar_x0 - t * 0.05 * w)
            bar = np.zeros((h, w), bool)
            bar[:, max(0, x): max(0, x + w // 14)] = True
            frame[bar] = bar_tex[bar]
            labels[bar] = 0
        yield frame, labels


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
