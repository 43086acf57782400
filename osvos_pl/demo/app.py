"""The demo's page: its components, top to bottom, and which handler each event calls.

The work is ``osvos_pl.demo.session``'s (no Gradio there); what each event does is
``osvos_pl.demo.handlers``'s; this module only lays the page out and wires it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from osvos_pl.demo import session
from osvos_pl.demo.handlers import Handlers
from osvos_pl.tasks.first_mask import GrabCut

#: The box button, by ``grabcut.method``: what makes the mask.
BOX_BUTTON = {"grabcut": "GrabCut the box", "parent": "Mask the box (the parent's objects)",
              "parent+grabcut": "Mask the box (parent + GrabCut)",
              "box-tuned": "Mask the box (the parent tuned on it)"}
#: The three steps, at the top of the page.
INTRO = ("## OSVOS: draw the object on the first frame, watch it followed\n"
         "1. Upload a video or a zip of frames, or pick a generated sequence. "
         "2. Paint each object on frame 0 in its colour (or click two corners on the "
         "preview for a box and press the box button), correct it with the brushes (white takes "
         "pixels away; the eraser removes strokes). "
         "3. Choose the updates and the parent, and run.")


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
        states = _states()
        gr.Markdown(INTRO)
        c = SimpleNamespace(**states, **_clip_inputs(settings), **_mask_inputs(settings),
                            **_run_inputs(settings), **_result_outputs())
        _wire(c, Handlers(settings, c))
    return page


def _states() -> dict:
    """What the page remembers between events, per browser tab."""
    return {"clip": gr.State(None), "result": gr.State([]), "corner": gr.State(None),
            # a digest of the mask the preview shows: redrawn only on a change
            "shown": gr.State(None),
            # the mask given to the editor (GrabCut's); its strokes go on top
            "base": gr.State(None)}


def _clip_inputs(settings: Settings) -> dict:
    """Where the clip comes from (an upload or a generated sequence), and the status line."""
    with gr.Row():
        upload = gr.File(label="video or zip of frames", elem_id="upload")
        sequence = gr.Dropdown(session.generated_sequences(settings.generated_root),
                               value=None, label="or a generated sequence", elem_id="sequence")
    status = gr.Markdown("load a clip to start", elem_id="status")
    return {"upload": upload, "sequence": sequence, "status": status}


def _mask_inputs(settings: Settings) -> dict:
    """Frame 0 to paint on, the mask's preview (two clicks there: a box), and the box's
    object and button."""
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
    return {"editor": editor, "preview": preview, "object_id": object_id, "box": box,
            "grabcut": grabcut, "mask_info": mask_info}


def _run_inputs(settings: Settings) -> dict:
    """The run's budget and parent, what the parent means, the expected time, and the button."""
    with gr.Row():
        updates = gr.Slider(0, settings.max_updates, value=settings.updates, step=1,
                            label="fine-tuning updates per object", elem_id="updates")
        choices = [session.parent_choice(p, settings.backbone)
                   for p in [*settings.parents, session.NO_PARENT]]
        parent = gr.Dropdown([(c.label, c.value) for c in choices], allow_custom_value=True,
                             value=choices[0].value, label="parent network", elem_id="parent")
    trust = gr.Markdown(session.trust_line(choices[0]), elem_id="trust")
    estimate = gr.Markdown(elem_id="estimate")
    run = gr.Button("Run OSVOS", variant="primary", elem_id="run")
    return {"updates": updates, "parent": parent, "trust": trust, "estimate": estimate,
            "run": run}


def _result_outputs() -> dict:
    """The overlay video, a slider over the overlay of each frame, and the masks' zip."""
    with gr.Row():
        video = gr.Video(label="overlay video", elem_id="overlay_video", format=None,
                         interactive=False)
        with gr.Column():
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="frame",
                              visible=False)
            frame_view = gr.Image(type="filepath", interactive=False, elem_id="frame_view",
                                  buttons=["download"], label="overlay of the frame")
    masks = gr.File(label="masks (DAVIS layout, zip)", elem_id="masks_zip", interactive=False)
    return {"video": video, "frame": frame, "frame_view": frame_view, "masks": masks}


def _wire(c: SimpleNamespace, h: Handlers) -> None:
    """Each event of the page's components ``c`` to its handler in ``h``."""
    loaded = [c.clip, c.editor, c.preview, c.mask_info, c.estimate, c.status, c.corner, c.shown,
              c.base]
    c.upload.upload(h.load_upload, [c.upload], loaded).then(
        lambda: gr.update(value=None), None, [c.sequence])  # one source shown at a time
    c.sequence.input(h.load_generated, [c.sequence], loaded).then(
        lambda: None, None, [c.upload])
    c.editor.change(h.show_mask, [c.editor, c.clip, c.updates, c.shown, c.base],
                    [c.preview, c.mask_info, c.estimate, c.shown])
    c.preview.select(h.corner, [c.corner, c.clip], [c.corner, c.box, c.status])
    c.grabcut.click(h.grabcut, [c.editor, c.clip, c.object_id, c.box, c.base, c.parent],
                    [c.editor, c.preview, c.mask_info, c.status, c.shown, c.base])
    c.parent.change(h.trust, [c.parent], [c.trust])
    c.updates.change(h.estimate, [c.editor, c.clip, c.updates, c.base], [c.estimate])
    # the status says "running" at once; the progress bar shows in the video pane only
    c.run.click(lambda: "running…", None, [c.status], show_progress="hidden").then(
        h.run, [c.clip, c.editor, c.updates, c.parent, c.base],
        [c.video, c.frame, c.frame_view, c.masks, c.status, c.result], concurrency_limit=1,
        show_progress_on=[c.video])
    c.frame.change(h.show_frame, [c.frame, c.result], [c.frame_view])
