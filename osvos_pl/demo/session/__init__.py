"""What the demo does for a page, without Gradio: the one namespace the page (``app``), the
launcher and the tests use. Each piece lives in the module named for it:

- ``clips``: an upload or a generated sequence opened as a :class:`Clip`, as predict opens it;
- ``painting``: the editor's painted layers turned into object ids, and back;
- ``box``: a box on frame 0 made into one object's mask (GrabCut, the parent's objects);
- ``parents``: which parent network runs, and whether its masks can be trusted;
- ``timing``: the expected run time, learnt from the last run;
- ``config``: predict's config, composed as its command line composes it;
- ``run``: the run itself, predict's, with the page's pictures and progress bar.
"""

from osvos_pl.demo.session.box import apply_grabcut, box_prior
from osvos_pl.demo.session.clips import Clip, generated_sequences, open_clip, open_upload
from osvos_pl.demo.session.config import predict_config
from osvos_pl.demo.session.painting import (
    OPACITY,
    colours,
    describe_labels,
    editor_value,
    labels_from_layers,
    layer_from_labels,
)
from osvos_pl.demo.session.parents import NO_PARENT, ParentChoice, parent_choice, trust_line
from osvos_pl.demo.session.run import Result, result_warning, run_clip
from osvos_pl.demo.session.timing import Timing

__all__ = [
    "NO_PARENT", "OPACITY", "Clip", "ParentChoice", "Result", "Timing", "apply_grabcut",
    "box_prior", "colours", "describe_labels", "editor_value", "generated_sequences",
    "labels_from_layers", "layer_from_labels", "open_clip", "open_upload", "parent_choice",
    "predict_config", "result_warning", "run_clip", "trust_line",
]
