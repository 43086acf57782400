"""What the demo does for a page, without Gradio: open a clip, turn painted layers into a
mask and back, GrabCut a box into it, run predict on it, package the results.

The run is predict's own (:func:`osvos_pl.predict.segment_clip` on a config composed from
``conf/predict.yaml`` and checked by predict's preflight), so the page and the command line
segment a clip the same way; only the pictures for the page (a WebM a browser plays, one
overlay per frame for the slider) are added through the online stage's per-frame hook.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytorch_lightning as pl
from PIL import Image

from osvos_pl.data.frames import IMAGE_EXTS, FrameSource, natural_key
from osvos_pl.data.io import davis_palette, write_mask
from osvos_pl.data.overlays import overlay
from osvos_pl.tasks.first_mask import Box, GrabCut, describe_mask
from osvos_pl.utils.errors import ConfigError, DataError

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv")
PALETTE = np.array(davis_palette(), np.uint8).reshape(256, 3)
#: Opacity of the painted mask over the frame (the brush's and GrabCut's layer alike).
OPACITY = 0.6

#: ``(fraction done, what is happening)`` for the page's progress bar.
Progress = Callable[[float, str], None]
#: The progress bar of the run in this thread (set by :func:`run_clip`).
PAGE_PROGRESS: ContextVar[Progress | None] = ContextVar("page_progress", default=None)


class PageProgress(pl.Callback):
    """Fine-tuning updates, to the page's progress bar (``PAGE_PROGRESS``).

    The runner builds the segmenter's callbacks from the config, so :func:`run_clip` adds this
    one as ``callbacks.page_progress``; it finds the bar of the run in its own thread, where
    Lightning trains. One fine-tuning per object: ``fine-tuning object 2: 17/50 updates``.
    """

    def __init__(self):
        self.fits = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self.fits += 1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        report = PAGE_PROGRESS.get()
        if report is not None and trainer.max_steps > 0:
            report(trainer.global_step / trainer.max_steps,
                   f"fine-tuning object {self.fits}: {trainer.global_step}/{trainer.max_steps} "
                   "updates")


@dataclass(frozen=True)
class Clip:
    """A clip as predict takes it (``input``: a video file or a frame folder) and its frame 0."""

    input: Path
    name: str
    first: np.ndarray  # (H, W, 3) uint8 RGB
    frames: int
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        return self.first.shape[:2]


def open_clip(path: str | Path, name: str | None = None) -> Clip:
    """A video file or frame folder, checked as predict checks its ``input=``."""
    source = FrameSource(path)
    count = source.count or sum(1 for _ in source)
    return Clip(source.path, name or source.path.stem, source.first(), count, source.fps)


def open_upload(path: str | Path, session_dir: Path) -> Clip:
    """An uploaded video, or a zip of frames (unpacked flat into ``session_dir``), as a Clip;
    anything else is a DataError naming what is accepted."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTS:
        return open_clip(path)
    if suffix != ".zip":
        raise DataError(f"{path.name} is not a video ({', '.join(VIDEO_EXTS)}) or a .zip of "
                        f"frames ({', '.join(IMAGE_EXTS)})")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()
                       and Path(m.filename).suffix.lower() in IMAGE_EXTS
                       and not Path(m.filename).name.startswith(".")]
            if not members:
                raise DataError(f"{path.name} holds no frames ({', '.join(IMAGE_EXTS)})")
            frames = session_dir / "frames" / path.stem
            shutil.rmtree(frames, ignore_errors=True)
            frames.mkdir(parents=True)
            for m in members:  # flat, by base name: nothing lands outside the folder
                (frames / Path(m.filename).name).write_bytes(archive.read(m))
    except zipfile.BadZipFile:
        raise DataError(f"{path.name} is not a readable zip file") from None
    return open_clip(frames, path.stem)


def generated_sequences(root: Path) -> list[str]:
    """The bundled generated sequences (``osvos_pl.data.generated``) under its root."""
    return sorted(p.name for p in (root / "JPEGImages" / "480p").iterdir() if p.is_dir())


def colours(count: int) -> list[str]:
    """The brushes, ``#rrggbb``: objects 1..count in their DAVIS palette colours, then white,
    which paints "no object" (to take pixels away from a mask)."""
    return ["#" + "".join(f"{c:02x}" for c in PALETTE[k]) for k in range(1, count + 1)] + \
        ["#" + "".join(f"{c:02x}" for c in NOT_AN_OBJECT)]


#: The brush colour that paints background (object id 0).
NOT_AN_OBJECT = (255, 255, 255)


def labels_from_layers(layers: Sequence[np.ndarray | None], size: tuple[int, int],
                       objects: int, base: np.ndarray | None = None) -> np.ndarray:
    """``(H, W) uint8`` object ids: ``base`` (the mask the editor was given, baked into its
    picture) with the user's strokes (its RGBA layers) on top. A painted pixel (alpha at least
    half the brush's) takes the object whose brush colour is nearest, white taking it away."""
    labels = np.zeros(size, np.uint8) if base is None else np.array(base, np.uint8)
    ref = np.array([NOT_AN_OBJECT, *PALETTE[1:objects + 1]], np.int32)
    for layer in layers:
        if layer is None:
            continue
        layer = np.asarray(layer)
        if layer.shape[:2] != size:
            layer = cv2.resize(layer, size[::-1], interpolation=cv2.INTER_NEAREST)
        if layer.ndim != 3 or layer.shape[2] < 4:
            continue
        painted = layer[..., 3] >= 255 * OPACITY / 2
        rgb = layer[painted][:, :3].astype(np.int32)
        labels[painted] = ((rgb[:, None] - ref[None]) ** 2).sum(-1).argmin(1)
    return labels


def layer_from_labels(labels: np.ndarray) -> np.ndarray:
    """``(H, W, 4) uint8`` RGBA: each object in its brush colour at the brush's opacity, as
    strokes would paint it (:func:`labels_from_layers` reads it back)."""
    layer = np.zeros((*labels.shape, 4), np.uint8)
    layer[..., :3] = PALETTE[labels]
    layer[..., 3] = np.where(labels > 0, round(255 * OPACITY), 0)
    return layer


def editor_value(image: np.ndarray, labels: np.ndarray) -> dict:
    """The editor's value for frame ``image`` showing the mask ``labels`` (tinted as strokes
    would tint it) and no strokes yet. The editor bakes a given layer into its picture and
    hands back only new strokes, so the mask itself stays on the server (``base`` of
    :func:`labels_from_layers`)."""
    layer = layer_from_labels(labels)
    alpha = layer[..., 3:] / 255.0
    shown = (image * (1 - alpha) + layer[..., :3] * alpha).round().astype(np.uint8)
    return {"background": shown, "layers": [], "composite": shown}


def apply_grabcut(grabcut: GrabCut, image: np.ndarray, labels: np.ndarray, object_id: int,
                  box: Box, prior: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """``labels`` with object ``object_id`` replaced by the box's mask (``grabcut.method``,
    reading the parent's ``prior`` where it is one of the parent methods); and how it looks
    (``describe_mask``)."""
    mask = grabcut(image, box, prior=prior)
    out = np.where(labels == object_id, 0, labels).astype(np.uint8)
    out[mask] = object_id
    used = grabcut.sees_object(prior, box)
    return out, describe_mask(mask, box, prior if used else None, grabcut.threshold)


# -- which parent runs, and what the page says about it ------------------------------------------

#: The parent dropdown's value for "no parent" (predict's ``parent_ckpt=null``: -PN).
NO_PARENT = "none"
#: Measured on real video with an unsuitable network (issue 33's trial, predict on DAVIS dog).
UNTRUSTED_J = "J 0.17-0.38 on a real DAVIS clip where the shipped parent gets far more"


@dataclass(frozen=True)
class ParentChoice:
    """One entry of the parent dropdown: the ``value`` predict gets as ``parent_ckpt`` (or
    NO_PARENT), a ``label`` that says what the choice really is, and ``warning``: why masks
    of real video from it cannot be trusted, or None."""

    value: str
    label: str
    warning: str | None = None


def imagenet_cached() -> bool:
    """Whether ``model.weights=imagenet`` finds torchvision's VGG16 in the torch hub cache
    (offline, without it, the backbone is random)."""
    import torch

    from osvos_pl.model.weights import IMAGENET_URL

    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name).is_file()


def parent_choice(value: str | None, backbone: str | None) -> ParentChoice:
    """What running with the parent ``value`` really means, with predict's ``model.weights``
    ``backbone`` for the no-parent case (a file is read only for its ``trained_on``)."""
    from osvos_pl.model.checkpoint import read_trained_on, unsuited_for_real_frames
    from osvos_pl.model.convert import PARENT
    from osvos_pl.model.shipped import SHIPPED
    from osvos_pl.utils.errors import OSVOSError

    value = NO_PARENT if value in (None, "", "null", NO_PARENT) else str(value)
    if value == NO_PARENT:
        return _no_parent(backbone)
    if value in SHIPPED:
        return ParentChoice(value, f"{value}: {SHIPPED[value].about}")
    if value == PARENT.name:
        return ParentChoice(value, "osvos-pytorch: the authors' parent (downloaded on first use)")
    try:
        why = unsuited_for_real_frames(read_trained_on(value))
    except OSVOSError as exc:
        return ParentChoice(value, f"{value} (cannot be used: {exc})", f"{exc}")
    if why is None:
        return ParentChoice(value, f"{value}: a parent trained on real frames")
    return ParentChoice(value, f"{value}: trained {why} — not for real video",
                        f"this parent was trained {why}: on real video its masks cannot be "
                        f"trusted ({UNTRUSTED_J}); it suits the generated sequences only. For "
                        f"real video choose {next(iter(SHIPPED))}, the shipped parent.")


def _no_parent(backbone: str | None) -> ParentChoice:
    from osvos_pl.model.shipped import SHIPPED

    random = ("there is no parent and the backbone is RANDOM (no ImageNet features): masks of "
              f"real video from it cannot be trusted ({UNTRUSTED_J}). Choose "
              f"{next(iter(SHIPPED))}, the shipped parent.")
    if backbone is None or str(backbone) in ("null", "None"):
        return ParentChoice(NO_PARENT, "none: fine-tune a RANDOM backbone (no parent, "
                                       "model.weights=null)", random)
    if str(backbone) == "imagenet" and not imagenet_cached():
        return ParentChoice(NO_PARENT, "none: fine-tune a RANDOM backbone (no parent; the "
                                       "ImageNet weights are not on this machine: downloaded "
                                       "if there is network)",
                            "offline, " + random)
    source = "ImageNet VGG16" if str(backbone) == "imagenet" else f"the VGG16 weights {backbone}"
    return ParentChoice(NO_PARENT, f"none: fine-tune {source} without a parent (-PN, lower "
                                   "quality)")


def result_warning(first: np.ndarray, masks: Sequence[np.ndarray]) -> str | None:
    """Why a run's masks look wrong, or None: nearly every mask empty, or covering most of the
    frame, when the first mask (``first``: object ids) is neither — what a network without
    object features (a random backbone, a parent of generated stripes) gives on real video."""
    if not masks:
        return None
    given = float((first > 0).mean())
    later = [float((m > 0).mean()) for m in masks[1:]] or [float((masks[0] > 0).mean())]
    empty = sum(a < 0.1 * given for a in later) / len(later)
    full = sum(a > max(0.8, 3 * given) for a in later) / len(later)
    if empty > 0.5:
        return (f"{round(100 * empty)}% of the frames have (nearly) empty masks: this result "
                "cannot be trusted")
    if full > 0.5 and given < 0.5:
        return (f"the masks cover most of the frame on {round(100 * full)}% of the frames: this "
                "result cannot be trusted")
    return None


_PRIORS: dict[tuple, tuple] = {}


def box_prior(grabcut: GrabCut, value: str | None, overrides: Sequence[str],
              image: np.ndarray, work: Path) -> np.ndarray | None:
    """The parent's object probability on ``image`` for the box (``grabcut.method``), from the
    parent the page would run (``value``; None without one), its network built once per parent
    with predict's config (``overrides``)."""
    if not grabcut.needs_prior or value in (None, "", NO_PARENT):
        return None
    from hydra.utils import instantiate

    from osvos_pl.model.checkpoint import load_checkpoint
    from osvos_pl.tasks.first_mask import parent_prior
    from osvos_pl.utils.normalization import get_normalization

    key = (str(value), tuple(overrides))
    if key not in _PRIORS:
        _PRIORS.clear()  # one parent in memory at a time
        cfg = predict_config([*overrides, f"parent_ckpt={value}"], work)
        net = instantiate(cfg.model, weights=None)
        loaded = load_checkpoint(net, cfg.parent_ckpt)
        _PRIORS[key] = net, get_normalization(loaded.normalization or net.normalization)
    net, normalization = _PRIORS[key]
    return parent_prior(net, normalization, image, int(grabcut.prior_height))


def describe_labels(labels: np.ndarray) -> str:
    ids = [int(k) for k in np.unique(labels) if k]
    if not ids:
        return "no object painted yet"
    total = labels.size
    return "; ".join(f"object {k}: {100 * (labels == k).sum() / total:.1f}% of the frame"
                     for k in ids)


class Timing:
    """Expected run time on this machine: seconds per update and per frame, per megapixel of
    input, measured by the last run (``path``, JSON) or, before any, ``prior`` (conf)."""

    def __init__(self, path: Path, update_seconds_per_megapixel: float,
                 frame_seconds_per_megapixel: float):
        self.path = Path(path)
        self.rates = {"update": float(update_seconds_per_megapixel),
                      "frame": float(frame_seconds_per_megapixel), "measured": None}
        if self.path.is_file():
            try:
                self.rates.update(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                pass  # a broken file: the prior stands until the next run rewrites it

    def estimate(self, updates: int, objects: int, frames: int, megapixels: float) -> str:
        seconds = megapixels * (updates * max(1, objects) * self.rates["update"]
                                + frames * self.rates["frame"])
        from osvos_pl.tasks.progress import duration

        basis = (f"measured here by the last run ({self.rates['measured']})"
                 if self.rates["measured"] else "a rough guess until a run measures this machine")
        return (f"expected: about {duration(seconds)} for {updates} updates x "
                f"{max(1, objects)} object(s) and {frames} frames — {basis}")

    def learn(self, record: dict, updates: int, objects: int, megapixels: float) -> None:
        """Rates from a finished run's record (``timing.sequences.<name>``), saved for later."""
        for t in record.get("timing", {}).get("sequences", {}).values():
            if updates:
                self.rates["update"] = t["finetune_seconds"] / (updates * objects * megapixels)
            self.rates["frame"] = t["inference_seconds"] / (max(1, t["frames"]) * megapixels)
            self.rates["measured"] = (f"{t['finetune_seconds']:.0f} s fine-tuning, "
                                      f"{t['inference_ms_per_frame']:.0f} ms per frame")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rates))


@dataclass(frozen=True)
class Result:
    video: Path        # overlay.webm (the browser plays VP8 WebM; predict's overlay.mp4 too)
    frames: list[Path]  # one overlay JPEG per frame, for the slider
    masks_zip: Path    # masks/<name>/NNNNN.png, DAVIS layout
    record: dict
    warning: str | None = None  # why the masks look wrong (result_warning), or None


def predict_config(overrides: Sequence[str], output: Path):
    """predict's config as its command line would compose it, output pinned to ``output``."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from osvos_pl.runner.config import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("predict", overrides=[*overrides, f"output={output}",
                                                 f"paths.output_dir={output}"])
    except HydraException as exc:
        raise ConfigError(" ".join(str(exc).split())) from None


def run_clip(clip: Clip, labels: np.ndarray, updates: int, parent_ckpt: str | None,
             overrides: Sequence[str], output: Path, grabcut: GrabCut,
             progress: Progress) -> Result:
    """Segment ``clip`` from the first-frame ``labels`` with predict's run, into ``output``."""
    from osvos_pl.predict import segment_clip
    from osvos_pl.runner.preflight import check_predict

    ids = [int(k) for k in np.unique(labels) if k]
    if not ids:
        raise DataError("the mask is empty: paint the object on frame 0 (or draw a box and "
                        "press GrabCut) first")
    output.mkdir(parents=True, exist_ok=True)
    mask = write_mask(output / "first_mask.png", labels if len(ids) > 1 else labels * 255,
                      palette=len(ids) > 1)
    args = [*overrides, f"input={clip.input}", f"mask={mask}", f"data.name={clip.name}",
            "+callbacks.page_progress._target_=osvos_pl.demo.session.PageProgress",
            f"online.iterations={int(updates)}",
            f"parent_ckpt={parent_ckpt}" if parent_ckpt else "parent_ckpt=null"]
    cfg = predict_config(args, output)
    check_predict(cfg)
    frames_dir = output / "overlay_frames"
    frames_dir.mkdir(exist_ok=True)
    video = output / "overlay.webm"
    writer: list[cv2.VideoWriter] = []
    progress(0.0, f"fine-tuning {len(ids)} object(s), {updates} updates each")

    def on_frame(name: str, item: dict, frame_labels: np.ndarray) -> None:
        i = int(item["frame"])
        shown = overlay(item["raw"].numpy(), frame_labels)
        if not writer:
            writer.append(cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"),
                                          clip.fps, shown.shape[1::-1]))
        bgr = cv2.cvtColor(shown, cv2.COLOR_RGB2BGR)
        writer[0].write(bgr)
        cv2.imwrite(str(frames_dir / f"{i:05d}.jpg"), bgr)
        progress((i + 1) / clip.frames, f"segmenting frame {i + 1}/{clip.frames}")

    token = PAGE_PROGRESS.set(progress)
    try:
        record = segment_clip(cfg, output, grabcut, on_frame=on_frame)
    finally:
        PAGE_PROGRESS.reset(token)
        for w in writer:
            w.release()
    masks = output / "masks"
    masks_zip = Path(shutil.make_archive(str(output / f"{clip.name}-masks"), "zip", masks))
    frames = sorted(frames_dir.glob("*.jpg"), key=natural_key)
    pngs = sorted((masks / clip.name).glob("*.png"), key=natural_key)
    sampled = pngs[:: max(1, len(pngs) // 50)]  # enough to judge, cheap on a long clip
    warning = result_warning(labels, [np.asarray(Image.open(p)) for p in sampled])
    return Result(video, frames, masks_zip, record, warning)
