"""What each action on the page does: one handler per event, over the page's components.

Every handler answers with the components it changes; an input error (a wrong file, an empty
mask, a bad checkpoint) becomes one line in the status field instead of a traceback, and any
other failure too, so the page never breaks.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import gradio as gr
import numpy as np

from osvos_pl.demo import session
from osvos_pl.tasks.first_mask import parse_box
from osvos_pl.utils.errors import OSVOSError

if TYPE_CHECKING:
    from osvos_pl.demo.app import Settings

log = logging.getLogger("osvos_pl.demo")

#: The run's progress bar: each object's fine-tuning, then the frames (``session.PageProgress``).
PROGRESS = gr.Progress()


def _one_line(fn):
    """A handler whose input errors (and any failure) end as one line in the status field."""
    @functools.wraps(fn)
    def safe(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except OSVOSError as exc:
            return {self.c.status: f"error: {exc}"}
        except Exception as exc:  # noqa: BLE001 — the page must survive any failure
            log.exception("demo handler %s failed", fn.__name__)
            return {self.c.status: f"error: {type(exc).__name__}: {exc}"}
    return safe


class Handlers:
    """The page's event handlers (one per action), over a Settings and the page's components
    ``c`` (by name: ``c.status``, ``c.editor``, ...)."""

    def __init__(self, settings: Settings, components: SimpleNamespace):
        self.s, self.c = settings, components

    # -- loading --------------------------------------------------------------------------
    def _loaded(self, clip: session.Clip) -> list:
        empty = np.zeros(clip.size, np.uint8)
        return [clip, session.editor_value(clip.first, empty), clip.first,
                session.describe_labels(empty), self._estimate(clip, 0, self.s.updates),
                f"loaded {clip.name}: {clip.frames} frames of {clip.size[1]}x{clip.size[0]}",
                None, hashlib.sha1(empty.tobytes()).hexdigest(), empty]

    @_one_line
    def load_upload(self, path):
        try:
            if not path:
                raise OSVOSError("no file uploaded")
            return self._loaded(session.open_upload(path, self._session_dir()))
        except OSVOSError as exc:
            return [gr.update()] * 5 + [f"error: {exc}", None, gr.update(), gr.update()]

    @_one_line
    def load_generated(self, name):
        try:
            return self._loaded(session.open_clip(
                self.s.generated_root / "JPEGImages" / "480p" / name, name))
        except OSVOSError as exc:
            return [gr.update()] * 5 + [f"error: {exc}", None, gr.update(), gr.update()]

    def _session_dir(self) -> Path:
        path = self.s.work_dir / "sessions" / uuid.uuid4().hex[:12]
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- the mask ---------------------------------------------------------------------------
    def _labels(self, editor, clip: session.Clip, base) -> np.ndarray:
        layers = (editor or {}).get("layers") or []
        return session.labels_from_layers(layers, clip.size, self.s.max_objects, base)

    def show_mask(self, editor, clip, updates, shown, base):
        """The preview follows the painted mask; redrawn only when the mask changed (a redrawn
        image would swallow a click on it)."""
        if clip is None or not editor:
            return gr.update(), gr.update(), gr.update(), shown
        from osvos_pl.data.overlays import overlay

        labels = self._labels(editor, clip, base)
        digest = hashlib.sha1(labels.tobytes()).hexdigest()
        if digest == shown:
            return gr.update(), gr.update(), gr.update(), shown
        return (overlay(clip.first, labels), session.describe_labels(labels),
                self._estimate(clip, len(np.unique(labels)) - 1, updates), digest)

    def corner(self, first, clip, evt: gr.SelectData):
        """Two clicks on the preview: the box's corners."""
        if clip is None:
            return None, gr.update(), "error: load a clip first"
        x, y = (int(v) for v in evt.index)
        if first is None:
            return (x, y), gr.update(), f"box corner at {x},{y}: click the opposite corner"
        (x0, y0), (x1, y1) = first, (x, y)
        text = f"{min(x0, x1)},{min(y0, y1)},{max(x0, x1)},{max(y0, y1)}"
        return None, text, f"box {text}: press GrabCut"

    def trust(self, parent):
        return session.trust_line(session.parent_choice(parent, self.s.backbone))

    @_one_line
    def grabcut(self, editor, clip, object_id, box_text, base, parent=None):
        if clip is None:
            raise OSVOSError("load a clip first")
        if not (box_text or "").strip():
            raise OSVOSError("draw a box first: click two corners on the preview, or type "
                             "x0,y0,x1,y1")
        from osvos_pl.data.overlays import overlay
        from osvos_pl.predict import METHOD_WORDS

        box = parse_box(box_text, clip.size)
        prior = session.box_prior(self.s.grabcut, parent, self.s.predict, clip.first,
                                  self.s.work_dir / "check", box)
        labels, how = session.apply_grabcut(self.s.grabcut, clip.first,
                                            self._labels(editor, clip, base), int(object_id),
                                            box, prior)
        method = self.s.grabcut.method if self.s.grabcut.sees_object(prior, box) else "grabcut"
        return {self.c.editor: session.editor_value(clip.first, labels),
                self.c.preview: overlay(clip.first, labels),
                self.c.mask_info: session.describe_labels(labels),
                self.c.status: f"box, object {object_id}, by {METHOD_WORDS[method]}: {how}",
                self.c.shown: hashlib.sha1(labels.tobytes()).hexdigest(), self.c.base: labels}

    def estimate(self, editor, clip, updates, base):
        if clip is None:
            return ""
        labels = self._labels(editor, clip, base)
        return self._estimate(clip, len(np.unique(labels)) - 1, updates)

    def _estimate(self, clip: session.Clip, objects: int, updates) -> str:
        return self.s.timing.estimate(int(updates), objects, clip.frames, self._megapixels(clip))

    def _megapixels(self, clip: session.Clip) -> float:
        h, w = clip.size
        return h * w * self.s.scale ** 2 / 1e6

    # -- the run -------------------------------------------------------------------------------
    @_one_line
    def run(self, clip, editor, updates, parent, base, progress=PROGRESS):
        if clip is None:
            raise OSVOSError("load a clip first (upload one or pick a generated sequence)")
        labels = self._labels(editor, clip, base)
        output = self._session_dir() / "run"
        choice = session.parent_choice(parent, self.s.backbone)
        parent_ckpt = None if choice.value == session.NO_PARENT else choice.value
        result = session.run_clip(clip, labels, int(updates), parent_ckpt, self.s.predict,
                                  output, self.s.grabcut,
                                  lambda f, what: progress(f, desc=what))
        objects = len(np.unique(labels)) - 1
        self.s.timing.learn(result.record, int(updates), objects, self._megapixels(clip))
        seconds = result.record.get("timing", {}).get("total_seconds", 0.0)
        from osvos_pl.tasks.progress import duration

        return {self.c.video: str(result.video),
                self.c.frame: gr.update(maximum=max(1, len(result.frames) - 1), value=0,
                                       visible=True),
                self.c.frame_view: str(result.frames[0]) if result.frames else None,
                self.c.masks: str(result.masks_zip),
                self.c.status: f"done in {duration(seconds)}: {len(result.frames)} frames, "
                             f"{objects} object(s), {int(updates)} updates each, parent "
                             f"{choice.value}; masks in {result.masks_zip.name}"
                             + "".join(f" — **warning: {w}**" for w in
                                       (result.warning, choice.warning) if w),
                self.c.result: [str(p) for p in result.frames]}

    def show_frame(self, i, frames):
        if not frames:
            return gr.update()
        return frames[min(int(i), len(frames) - 1)]
