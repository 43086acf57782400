"""The frozen VGG prefix, built once per process (docs/method.md#the-frozen-prefix).

With ``online.frozen_stages=k`` VGG stages 1..k keep the parent's weights in every fine-tuned
copy of every sequence and object, so the work they do is the same function all run long: it
is worth building once, in the cheapest arithmetic the hardware has, and reusing for the
fine-tuning views and for every frame at inference (``online.prefix``):

- ``eager``: each network runs its own copy of the layers, as without a prefix;
- ``compiled``: ``torch.compile`` (inductor) with the weights frozen into the graph;
- ``int8``: quantised to int8 with torchao's PT2E flow (``X86InductorQuantizer``: static
  per-tensor activations, per-channel weights), calibrated on the run's annotated frames, then
  compiled; what follows the prefix stays in the engine's precision;
- ``auto``: ``int8`` on a CPU with VNNI where torchao and a C++ compiler are present, else
  ``eager`` (benchmarks/README.md#the-frozen-prefix says what each mode measured).

Graphs specialise on the input shape: a new shape (another batch size, the fine-tuning views at
another scale) compiles once more, a few seconds, and is reused after that.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import shutil
import time
import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from osvos_pl.model.osvos import STAGE_ENDS
from osvos_pl.model.vgg import SIDE_TAPS
from osvos_pl.utils.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX_MODES = ("auto", "eager", "compiled", "int8")


def int8_is_fast(device: torch.device) -> bool:
    """True where an int8 prefix pays: a CPU with VNNI (AVX512-VNNI/AVX-VNNI/AMX), torchao to
    quantise with, and a C++ compiler for inductor to build the kernels."""
    if device.type != "cpu" or not torch.cpu._is_vnni_supported():
        return False
    if shutil.which("g++") is None and shutil.which("c++") is None:
        return False
    return importlib.util.find_spec("torchao") is not None


def resolve_prefix_mode(mode: str, device: torch.device) -> str:
    """``online.prefix`` made concrete for ``device`` (``auto``: the fastest that holds the
    accuracy guard where it was measured, benchmarks/README.md#the-frozen-prefix)."""
    if mode not in PREFIX_MODES:
        raise ConfigError(f"online.prefix={mode!r} is unknown; choose one of {PREFIX_MODES}")
    if mode == "auto":
        return "int8" if int8_is_fast(device) else "eager"
    if mode == "int8":
        if device.type != "cpu":
            raise ConfigError(f"online.prefix=int8 quantises for x86 CPUs; this run is on "
                              f"{device.type}: use online.prefix=compiled or eager")
        if importlib.util.find_spec("torchao") is None:
            raise ConfigError("online.prefix=int8 needs torchao: pip install torchao "
                              "(or online.prefix=eager)")
    return mode


class _Stages(nn.Module):
    """VGG layers ``0..end`` as one traceable module: ``image -> (*side taps, activation)``.

    The pools round up (ceil mode) by padding odd sizes with zeros and pooling exactly: the
    same result on ReLU outputs (never negative), and a form every backend lowers correctly
    (inductor's int8 max-pool drops ``ceil_mode``).
    """

    def __init__(self, layers: Iterable[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taps = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)), 2, 2)
            else:
                x = layer(x)
            if i in SIDE_TAPS:
                taps.append(x)
        return (*taps, x)


class FrozenPrefix:
    """``image -> (side taps, activation)`` of the parent's first ``stages`` VGG stages, as
    :meth:`OSVOSNet.trunk_prefix` gives them, compiled (``mode="compiled"``) or quantised to
    int8 and compiled (``"int8"``), from a copy of the parent's layers made once.

    ``autocast``: a context factory for the precision the rest of the network runs in (the
    engine's); the prefix runs under it, so its output has that dtype. ``channels_last``:
    inference runs NHWC (``model.channels_last``). ``int8`` is calibrated by :meth:`calibrate`
    or, where that was not called, on the first images it sees. ``setup_seconds`` sums the
    export, calibration and compilation time so far (a new input shape compiles once more).
    """

    def __init__(self, net: nn.Module, stages: int, mode: str, device: torch.device | str = "cpu",
                 autocast=contextlib.nullcontext, channels_last: bool = False):
        if mode not in ("compiled", "int8"):
            raise ValueError(f"FrozenPrefix builds a compiled or int8 prefix, not {mode!r}")
        if not 1 <= stages <= len(STAGE_ENDS):
            raise ValueError(f"a frozen prefix has 1..{len(STAGE_ENDS)} stages, got {stages}")
        self.mode, self.stages, self.autocast = mode, int(stages), autocast
        self.device = torch.device(device)
        layout = torch.channels_last if channels_last else torch.preserve_format
        self._layers = _Stages(copy.deepcopy(net.trunk.features[: STAGE_ENDS[stages - 1]]))
        self._layers.eval().requires_grad_(False).to(self.device, memory_format=layout)
        self.setup_seconds = 0.0
        self._compiled, self._shapes = None, set()
        if mode == "compiled":
            self._compiled = torch.compile(self._layers, dynamic=False)

    @torch.no_grad()
    def calibrate(self, images: Iterable[torch.Tensor]) -> None:
        """int8: observe the activations on ``images`` (normalised ``(B, 3, H, W)`` batches),
        quantise and compile; nothing for a compiled prefix or one calibrated already."""
        if self._compiled is not None:
            return
        images = [im.to(self.device) for im in images]
        if not images:
            raise ValueError("int8 calibration needs at least one image")
        start = time.perf_counter()
        prepare_pt2e, convert_pt2e, xiq = _torchao()
        example = images[0][:1].expand(2, -1, -1, -1)  # batch 2: export keeps the size free
        dims = {0: torch.export.Dim("batch", max=1024),
                2: torch.export.Dim("height", min=16, max=8192),
                3: torch.export.Dim("width", min=16, max=8192)}
        with _quiet():
            exported = torch.export.export(self._layers, (example,),
                                           dynamic_shapes=(dims,)).module()
            quantizer = xiq.X86InductorQuantizer()
            quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
            # conv1_1 (3 input channels, under 1 % of the prefix's work) stays in the engine's
            # precision: quantising the image itself doubles the error at conv2_2
            quantizer.set_module_name_qconfig("layers.0", None)
            prepared = prepare_pt2e(exported, quantizer)
            for image in images:
                prepared(image)
            converted = convert_pt2e(prepared)
        self._compiled = torch.compile(converted, dynamic=False)
        self.setup_seconds += time.perf_counter() - start
        log.info("int8 prefix (VGG stages 1-%d) calibrated on %d image(s) in %.1f s",
                 self.stages, len(images), time.perf_counter() - start)

    def __call__(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self._compiled is None:
            self.calibrate([image])
        start = time.perf_counter()
        with torch.no_grad(), self.autocast(), _inductor_freezing(), _quiet():
            *taps, x = self._compiled(image)
        if image.shape not in self._shapes:  # a graph compiles at its first call per shape
            self._shapes.add(image.shape)
            self.setup_seconds += time.perf_counter() - start
        return list(taps), x


def _torchao():
    """torchao's PT2E entry points (imported quietly: it announces every optional kernel)."""
    with _quiet():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    return prepare_pt2e, convert_pt2e, xiq


@contextlib.contextmanager
def _quiet():
    """Keep torchao's and torch.export's notices (missing CUDA kernels, a pytree deprecation,
    the unquantised pools) out of the run's log."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "torch._export",
                                              "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # the pools after a zero pad stay in the engine's precision (ceil mode, above)
            warnings.filterwarnings("ignore", message="The input of maxpool2d is not quantized")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _inductor_freezing():
    """Inductor's freezing (weights folded into the graph as constants), for this call only."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=True)
