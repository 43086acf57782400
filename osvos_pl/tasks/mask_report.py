"""How a first mask looks, in one line (``describe_mask``): what ``predict box=`` and the demo
print under a mask made from a box, so that a user sees a cut-off object or a leak into
background before the whole clip is segmented from it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from osvos_pl.tasks.first_mask import Box


def describe_mask(mask: np.ndarray, box: Box | None = None, prior: np.ndarray | None = None,
                  threshold: float = 0.5) -> str:
    """How a first mask looks, in one line: its area (of the frame, of the box) and which box
    edges it touches. A mask that touches an edge is cut off there, or it leaked into
    background of the object's colour; with the parent's ``prior`` the two are told apart (the
    parent sees the object where the mask touches the edge, or background), without it both
    are named. One far smaller than its box likely missed part of the object."""
    h, w = mask.shape
    area = int(mask.sum())
    text = f"{area} px, {100 * area / (h * w):.1f}% of the frame"
    if box is None:
        return text
    x0, y0, x1, y1 = box
    inside = mask[y0:y1, x0:x1]
    text += f", {100 * inside.sum() / max(1, inside.size):.0f}% of the box"
    lines = (("left", np.s_[:, 0]), ("top", np.s_[0, :]), ("right", np.s_[:, -1]),
             ("bottom", np.s_[-1, :]))
    edges = [(name, where) for name, where in lines if inside[where].any()]
    if not edges:
        return f"{text}; inside the box, touching none of its edges"
    if prior is None:
        return (f"{text}; touches the box's {', '.join(n for n, _ in edges)} edge(s): the object "
                "may be cut off there (draw the box larger), or the mask leaked into background "
                "of the object's colour (check it)")
    cut, leaked, ended = _edge_verdicts(mask, box, prior, threshold, [n for n, _ in edges])
    words = [f"the object may be cut off at the box's {', '.join(cut)} edge(s): the parent sees "
             "it go on beyond — draw the box larger"] if cut else []
    words += [f"at the {', '.join(leaked)} edge(s) it reaches background the parent does not "
              "take for the object — check the mask there"] if leaked else []
    words += [f"it reaches the {', '.join(ended)} edge(s), where the parent sees the object "
              "end"] if ended else []
    return f"{text}; {'; '.join(words)}"


def _edge_verdicts(mask: np.ndarray, box: Box, prior: np.ndarray, threshold: float,
                   edges: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Each box edge the mask touches, judged by the parent's ``prior``: ``cut`` where the
    parent still sees the object a few pixels beyond the edge, ``leaked`` where it sees no
    object at the touching pixels themselves, ``ended`` otherwise (the object ends there; also
    where the edge is the frame's, which cuts nothing)."""
    h, w = mask.shape
    x0, y0, x1, y1 = box
    gap = max(2, round(0.05 * max(x1 - x0, y1 - y0)))  # px beyond the edge: past a soft border
    lines = {"left": (np.s_[y0:y1, x0], np.s_[y0:y1, x0 - gap], x0 - gap >= 0),
             "top": (np.s_[y0, x0:x1], np.s_[y0 - gap, x0:x1], y0 - gap >= 0),
             "right": (np.s_[y0:y1, x1 - 1], np.s_[y0:y1, x1 - 1 + gap], x1 - 1 + gap < w),
             "bottom": (np.s_[y1 - 1, x0:x1], np.s_[y1 - 1 + gap, x0:x1], y1 - 1 + gap < h)}
    cut, leaked, ended = [], [], []
    for name in edges:
        on, beyond, inside_frame = lines[name]
        touching = mask[on]
        if prior[on][touching].mean() <= threshold:
            leaked.append(name)
        elif inside_frame and prior[beyond][touching].mean() > threshold:
            cut.append(name)
        else:
            ended.append(name)
    return cut, leaked, ended
