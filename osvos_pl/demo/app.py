"""The demo's page: Gradio components wired to ``osvos_pl.demo.session``.

Every handler answers with a dict of the components it changes; an input error (a wrong file,
an empty mask, a bad checkpoint) becomes one line in the status field instead of a traceback,
and any other failure too, so the page never breaks.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

from osvos_pl.demo import session
from osvos_pl.tasks.first_mask import GrabCut, parse_box
from osvos_pl.utils.errors import OSVOSError

log = logging.getLogger("osvos_pl.demo")

NO_PARENT = session.NO_PARENT
#: The box button, by ``grabcut.method``: what makes the mask.
BOX_BUTTON = {"grabcut": "GrabCut the box", "parent": "Mask the box (the parent's objects)",
              "parent+grabcut": "Mask the box (parent + GrabCut)"}
#: The run's progress bar: each object's fine-tuning, then the frames (``session.PageProgress``).
PROGRESS = gr.Progress()


@dataclass(frozen=True)
class Settings:
    """What the page offers (``conf/demo.yaml``), as objects."""

    work_dir: Path
    generated_root: Path
    updates: int
    max_updates: int
    max_objects: int
    parents: list[str]
    predict: list[str]
    grabcut: GrabCut
    timing: session.Timing
    scale: float
    backbone: str | None = "imagenet"  # predict's model.weights: what "no parent" fine-tunes


def build(settings: Settings) -> gr.Blocks:
    """The page. Nothing is fetched from outside the machine: analytics off, system fonts."""
    with gr.Blocks(title="OSVOS: segment a video from one frame", analytics_enabled=False) as page:
        clip_state, result_state, corner = gr.State(None), gr.State([]), gr.State(None)
        shown = gr.State(None)  # a digest of the mask the preview shows: redrawn only on a change
        base = gr.State(None)  # the mask given to the editor (GrabCut's); its strokes go on top
        gr.Markdown("## OSVOS: draw the object on the first frame, watch it followed\n"
                    "1. Upload a video or a zip of frames, or pick a generated sequence. "
                    "2. Paint each object on frame 0 in its colour (or click two corners on the "
                    "preview for a box and press the box button), correct it with the brushes (white takes "
                    "pixels away; the eraser removes strokes). "
                    "3. Choose the updates and the parent, and run.")
        with gr.Row():
            upload = gr.File(label="video or zip of frames", elem_id="upload")
            sequence = gr.Dropdown(session.generated_sequences(settings.generated_root),
                                   value=None, label="or a generated sequence", elem_id="sequence")
        status = gr.Markdown("load a clip to start", elem_id="status")
        with gr.Row():
            editor = gr.ImageEditor(
                type="numpy", image_mode="RGBA", sources=[], layers=False, transforms=[],
                label="frame 0: paint the objects (one colour per object)", elem_id="editor",
                brush=gr.Brush(colors=[(c, session.OPACITY) for c in
                                       session.colours(settings.max_objects)],
                               color_mode="fixed", default_size=8),
                eraser=gr.Eraser(default_size=12))
            preview = gr.Image(type="numpy", interactive=False, elem_id="preview", buttons=[],
                               label="the mask on frame 0 (click two corners to draw a box)")
        with gr.Row():
            object_id = gr.Radio(list(range(1, settings.max_objects + 1)), value=1,
                                 label="object for the box (brushes: red, green, olive, blue "
                                       "for objects 1-4; white takes pixels away)",
                                 elem_id="object")
            box = gr.Textbox(label="box x0,y0,x1,y1 (px)", elem_id="box")
            grabcut = gr.Button(BOX_BUTTON[settings.grabcut.method], elem_id="grabcut")
        mask_info = gr.Markdown(elem_id="mask_info")
        with gr.Row():
            updates = gr.Slider(0, settings.max_updates, value=settings.updates, step=1,
                                label="fine-tuning updates per object", elem_id="updates")
            choices = [session.parent_choice(p, settings.backbone)
                       for p in [*settings.parents, NO_PARENT]]
            parent = gr.Dropdown([(c.label, c.value) for c in choices], allow_custom_value=True,
                                 value=choices[0].value, label="parent network",
                                 elem_id="parent")
        trust = gr.Markdown(_trust(choices[0]), elem_id="trust")
        estimate = gr.Markdown(elem_id="estimate")
        run = gr.Button("Run OSVOS", variant="primary", elem_id="run")
        with gr.Row():
            video = gr.Video(label="overlay video", elem_id="overlay_video", format=None,
                             interactive=False)
            with gr.Column():
                frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame",
                                  visible=False)
                frame_view = gr.Image(type="filepath", interactive=False, elem_id="frame_view",
                                      buttons=["download"],
                                      label="overlay of the frame")
        masks = gr.File(label="masks (DAVIS layout, zip)", elem_id="masks_zip", interactive=False)

        handlers = _Handlers(settings, status=status, editor=editor, preview=preview,
                             mask_info=mask_info, video=video, frame=frame,
                             frame_view=frame_view, masks=masks, result=result_state,
                             shown=shown, base=base)
        loaded = [clip_state, editor, preview, mask_info, estimate, status, corner, shown, base]
        upload.upload(handlers.load_upload, [upload], loaded).then(
            lambda: gr.update(value=None), None, [sequence])  # one source shown at a time
        sequence.input(handlers.load_generated, [sequence], loaded).then(
            lambda: None, None, [upload])
        editor.change(handlers.show_mask, [editor, clip_state, updates, shown, base],
                      [preview, mask_info, estimate, shown])
        preview.select(handlers.corner, [corner, clip_state], [corner, box, status])
        grabcut.click(handlers.grabcut, [editor, clip_state, object_id, box, base, parent],
                      [editor, preview, mask_info, status, shown, base])
        parent.change(handlers.trust, [parent], [trust])
        updates.change(handlers.estimate, [editor, clip_state, updates, base], [estimate])
        # the status says "running" at once; the progress bar shows in the video pane only
        run.click(lambda: "running…", None, [status], show_progress="hidden").then(
            handlers.run, [clip_state, editor, updates, parent, base],
            [video, frame, frame_view, masks, status, result_state], concurrency_limit=1,
            show_progress_on=[video])
        frame.change(handlers.show_frame, [frame, result_state], [frame_view])
    return page


def _trust(choice: session.ParentChoice) -> str:
    """The line under the parent dropdown: which network runs, and a warning where its masks
    of real video cannot be trusted."""
    if choice.warning:
        return f"**warning: {choice.warning}**"
    return f"runs: {choice.label}"


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


class _Handlers:
    """The page's event handlers (one per action), over a Settings."""

    def __init__(self, settings: Settings, **components):
        self.s, self.c = settings, SimpleNamespace(**components)

    # -- loading --------------------------------------------------------------------------
    def _loaded(self, clip: session.Clip) -> dict:
        empty = np.zeros(clip.size, np.uint8)
        return [clip, session.editor_value(clip.first, empty), clip.first, session.describe_labels(empty),
                self._estimate(clip, 0, self.s.updates),
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
        return _trust(session.parent_choice(parent, self.s.backbone))

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
                                  self.s.work_dir / "check")
        labels, how = session.apply_grabcut(self.s.grabcut, clip.first,
                                            self._labels(editor, clip, base), int(object_id),
                                            box, prior)
        method = self.s.grabcut.method if self.s.grabcut.sees_object(prior, box) else "grabcut"
        return {self.c.editor: session.editor_value(clip.first, labels), self.c.preview: overlay(clip.first, labels),
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
        parent_ckpt = None if choice.value == NO_PARENT else choice.value
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
