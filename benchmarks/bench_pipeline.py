"""Time the OSVOS pipeline against its fp32 eager reference: ``python benchmarks/bench_pipeline.py``.

Needs the package importable (``pip install -e .``, as the README installs it), and for the
fine-tuning and DataModule figures the real DAVIS sample (``../shared/data/davis-sample``
beside the checkout, or ``--root``).

In one process, on whatever device it runs (CUDA when there is one, else the CPU), at each
``--sizes`` input size (240p = 240x427, 480p = 480x854, 1080p = 1080x1922: the 480p DAVIS frame
scaled by 0.5, 1 and 2.25, as ``data.scale`` would):

- **peak**: GFLOP/s of a large matmul and of a 3x3 256->256 conv at 120x214 (NCHW and
  channels_last), fp32 and bf16 — the machine's attainable peak, the yardstick for the rest;
- **train**: one parent training step — ``OSVOSNet`` forward with the four side outputs, the
  class-balanced loss on all five logits (deep supervision), backward and an Adam step over the
  project's parameter groups — in ms per frame at batch 1 and larger batches;
- **infer**: ``forward_fused`` + sigmoid + resize to the native size, as ``segment_stream`` runs
  it per batch under ``torch.inference_mode``, ms per frame at batch 1 and 4;
- **finetune**: the project's real ``osvos_pl.stages.finetune.finetune`` (a Lightning Trainer
  built from ``trainer.*``) on car-shadow's first frame for ``--iterations`` updates, steady
  iterations/s, and the seconds ``online.iterations=500`` would take;
- **data**: the parent training loader (``DAVISDataModule.train_dataloader``, paper augmentation)
  on the real sample with 2 workers and with 0, frames/s, against the training step's frames/s;
- **memory**: peak RSS of each measurement (Linux: the high-water mark is reset before each one;
  elsewhere the process peak) and ``torch.cuda.max_memory_allocated`` on CUDA.

Each of train / infer / finetune runs in several variants: ``fp32`` (plain fp32 eager, NCHW: the
reference), ``channels_last``, ``bf16`` (autocast), ``bf16+cl`` and, with ``--compile``,
``torch.compile`` twins. Every figure is given as a speed-up over the reference at the same
size and as a fraction of the measured peak of its dtype (FLOPs counted with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device). Where the CPU has no native
bf16 (no AVX512-BF16 / AMX: oneDNN then emulates it, 10-50x slower than fp32), the bf16
variants are skipped and the peak section shows why. Sizes above 480p measure the reference
and the fastest variant of the 480p run only. ``--all-variants`` measures everything.

Prints a table per size and a summary against the issue's targets (training step >= 2.5x,
inference >= 2.5x, fine-tuning to 500 iterations >= 3x, DataModule never the bottleneck), and
writes everything to ``--out`` (JSON). Timings are the best of ``--repeat`` runs after one
warm-up; the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

from osvos_pl.model import OSVOSNet, build_param_groups, class_balanced_bce  # noqa: E402
from osvos_pl.utils.hardware import bf16_is_native  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared/data/davis-sample"
DEFAULT_WEIGHTS = REPO.parent / "shared/weights/vgg16_imagenet_features_torchvision.pth"
BASE_HW = (480, 854)  # DAVIS 480p; every size is a data.scale of it
SIZES = {"240p": 0.5, "480p": 1.0, "1080p": 2.25}
QUICK_SIZES = {"60p": 0.125, "120p": 0.25}
ONLINE_ITERATIONS = 500  # conf/online/default.yaml
TARGETS = {"train": 2.5, "infer": 2.5, "finetune": 3.0}
ONES = {k: 1.0 for k in ("weight", "bias", "dsn_weight", "dsn_bias", "fuse_weight", "fuse_bias")}


@dataclass(frozen=True)
class Variant:
    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False

    @property
    def precision(self) -> str:
        """The ``trainer.precision`` this variant is."""
        return "bf16-mixed" if self.bf16 else "32-true"

    @property
    def dtype(self) -> str:
        return "bf16" if self.bf16 else "fp32"


REFERENCE = Variant("fp32")
VARIANTS = (REFERENCE, Variant("channels_last", channels_last=True), Variant("bf16", bf16=True),
            Variant("bf16+cl", bf16=True, channels_last=True))


def scaled_hw(scale: float) -> tuple[int, int]:
    """What ``data.scale`` makes of a 480p frame (osvos_pl.data.transforms.scaled_size)."""
    return max(16, round(BASE_HW[0] * scale)), max(16, round(BASE_HW[1] * scale))


# --- timing and memory ------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, warmup: int, repeat: int,
          warmup_times: list[float] | None = None) -> list[float]:
    """Wall seconds of ``repeat`` calls after ``warmup`` ones (their seconds go to
    ``warmup_times``: first-call costs such as torch.compile), synchronised."""
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        synchronize(device)
        if warmup_times is not None:
            warmup_times.append(time.perf_counter() - start)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB elsewhere


class PeakMemory:
    """Peak RSS (MiB) and peak CUDA memory (MiB) over a ``with`` block.

    On Linux the RSS high-water mark is reset on entry (``/proc/self/clear_refs``), so the figure
    is this block's; elsewhere it is the process peak so far (``getrusage``), marked as such.
    """

    def __init__(self, device: torch.device):
        self.device, self.rss_mb, self.gpu_mb, self.rss_scope = device, None, None, "process"

    def __enter__(self) -> PeakMemory:
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.rss_scope = "block"
        except OSError:
            self.rss_scope = "process"
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        hwm = _vm_hwm_mb() if self.rss_scope == "block" else None
        self.rss_mb = hwm if hwm is not None else _maxrss_mb()
        if self.device.type == "cuda":
            self.gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def as_dict(self) -> dict:
        return {"peak_rss_mb": self.rss_mb, "rss_scope": self.rss_scope, "peak_gpu_mb": self.gpu_mb}


def autocast(variant: Variant, device: torch.device):
    if not variant.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


# --- peak and FLOPs -------------------------------------------------------------------------

def _adaptive_gflops(make: Callable[[int], tuple[Callable[[], object], float]], steps: list[int],
                     device: torch.device, repeat: int, budget_s: float = 0.25) -> dict:
    """GFLOP/s of the largest problem in ``steps`` whose single run stays near ``budget_s``.

    ``make(step)`` returns ``(fn, flops)``. Growing stops once a run takes ``budget_s``: an
    emulated dtype (bf16 on a CPU without it) then stays small instead of taking minutes.
    """
    best = None
    for step in steps:
        fn, flops = make(step)
        times = timed(fn, device, 1, repeat)
        best = {"size": step, "seconds": min(times), "gflops": flops / min(times) / 1e9}
        if min(times) >= budget_s:
            break
    return best


def measure_peak(device: torch.device, repeat: int, quick: bool) -> dict:
    """Matmul and 3x3-conv GFLOP/s in fp32 and bf16; ``peak[dtype]`` is the best of them."""
    out: dict = {"matmul": {}, "conv3x3": {}, "peak": {}}
    mm_sizes = [512, 1024, 2048] if quick else [512, 1024, 2048, 4096]
    if device.type == "cuda":
        mm_sizes += [8192]
    conv_rows = [30, 60, 120] if not quick else [30, 60]
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        def make_mm(n, dtype=dtype):
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            return (lambda: a @ b), 2.0 * n**3

        out["matmul"][name] = _adaptive_gflops(make_mm, mm_sizes, device, repeat)
        for layout in ("nchw", "channels_last"):
            def make_conv(rows, dtype=dtype, layout=layout):
                cols = round(rows * 214 / 120)
                conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, dtype)
                x = torch.randn(1, 256, rows, cols, device=device, dtype=dtype)
                if layout == "channels_last":
                    conv = conv.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)

                def run():
                    with torch.inference_mode():
                        conv(x)

                return run, 2.0 * 256 * 256 * 9 * rows * cols

            out["conv3x3"][f"{name}_{layout}"] = _adaptive_gflops(make_conv, conv_rows, device,
                                                                  repeat)
        candidates = [out["matmul"][name]["gflops"]] + [
            v["gflops"] for k, v in out["conv3x3"].items() if k.startswith(name)]
        out["peak"][name] = max(candidates)
    return out


def count_flops(hw: tuple[int, int]) -> dict:
    """FLOPs per frame of a training step (forward with sides + backward) and of inference."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = OSVOSNet(init="port")
        x = torch.empty(1, 3, *hw)
        target = torch.zeros(1, 1, *hw)
    with FlopCounterMode(display=False) as counter:
        loss = sum(class_balanced_bce(o, target, "mean") for o in net(x))
        loss.backward()
    train = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.forward_fused(x)
    return {"train": train, "infer": counter.get_total_flops()}


# --- the measurements -------------------------------------------------------------------------

def _network(variant: Variant, device: torch.device) -> torch.nn.Module:
    from osvos_pl.model.factory import build_network

    # random backbone: the weights do not change the time (no weights file needed)
    net = build_network(weights=None, init="port", channels_last=variant.channels_last)
    return net.to(device)


def _input(batch: int, hw: tuple[int, int], variant: Variant, device: torch.device):
    x = torch.randn(batch, 3, *hw, device=device)
    if variant.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def measure_train(variant: Variant, hw, batch: int, device, warmup: int, repeat: int) -> dict:
    """One parent training step (deep supervision, Adam) per call; seconds per step."""
    net = _network(variant, device).train()
    optimizer = torch.optim.Adam(build_param_groups(net, 1e-5, 0.0, ONES, include_side=True))
    x = _input(batch, hw, variant, device)
    generator = torch.Generator(device="cpu").manual_seed(0)
    target = (torch.rand(batch, 1, *hw, generator=generator) > 0.8).float().to(device)
    model = torch.compile(net) if variant.compile else net

    def step():
        with autocast(variant, device):
            *sides, fused = model(x)
            loss = sum(class_balanced_bce(s, target, "mean") for s in sides)
            loss = loss + class_balanced_bce(fused, target, "mean")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    first: list[float] = []
    with PeakMemory(device) as mem:
        times = timed(step, device, warmup, repeat, first)
    return {"times": times, "warmup_times": first, **mem.as_dict()}


def measure_infer(variant: Variant, hw, batch: int, device, warmup: int, repeat: int) -> dict:
    """The one-shot segmenter's per-batch network work: fused logits → probabilities at native
    size (``OneShotSegmenter.probabilities``)."""
    import pytorch_lightning as pl

    from osvos_pl.model.param_groups import ParamGroups
    from osvos_pl.stages.engine import Engine
    from osvos_pl.tasks.finetuning import FineTuning
    from osvos_pl.tasks.segmenter import OneShotSegmenter

    net = _network(variant, device).eval()
    if variant.compile:
        net.forward_fused = torch.compile(net.forward_fused)
    engine = Engine(pl.Trainer, device, variant.precision, variant.channels_last)
    segmenter = OneShotSegmenter(FineTuning(0, None, ParamGroups({}), None), parent=net,
                                 engine=engine)
    x = _input(batch, hw, variant, device)

    @torch.inference_mode()
    def run():
        segmenter.probabilities(net, x, hw)

    first: list[float] = []
    # inference may treat the weights as constants: inductor's freezing prepacks them for
    # oneDNN, which is where compile gains on CPU (measured 1.3-2.4x at 480p-120p, fp32)
    freezing = contextlib.nullcontext()
    if variant.compile:
        import torch._inductor.config as inductor_config

        freezing = inductor_config.patch(freezing=True)
    with PeakMemory(device) as mem, freezing:
        times = timed(run, device, warmup, repeat, first)
    return {"times": times, "warmup_times": first, **mem.as_dict()}


class TimedDataset(torch.utils.data.Dataset):
    """Wraps a dataset and records when each item is asked for (one per fine-tuning step)."""

    def __init__(self, dataset):
        self.dataset, self.stamps = dataset, []

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k):
        self.stamps.append(time.perf_counter())
        return self.dataset[k]


def compose(overrides: list[str], output_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from osvos_pl.runner.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def measure_finetune(variant: Variant, scale: float, iterations: int, root: Path,
                     weights: Path | None, device: torch.device) -> dict:
    """The project's one-shot fine-tuning (``OneShotSegmenter.finetune``, as the runner builds
    it) for ``iterations`` updates on car-shadow frame 0."""
    from hydra.utils import instantiate

    from osvos_pl.runner.run import build_datamodule, build_engine

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose([
            "+experiment=online", f"data.root={root}", "data.sequences=[car-shadow]",
            f"data.scale={scale}", f"model.weights={weights if weights else 'null'}",
            f"online.iterations={iterations}", f"trainer.precision={variant.precision}",
            f"model.channels_last={str(variant.channels_last).lower()}", "logger=none",
            "data.num_workers=0", "trainer.enable_progress_bar=false",
            f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
        ], Path(tmp))
        parent = instantiate(cfg.model)
        dm = build_datamodule(cfg, parent.normalization)
        segmenter = instantiate(cfg.task, parent=parent, engine=build_engine(cfg, Path(tmp)),
                                progress=False)
        length = segmenter.finetuning.samples
        dataset = TimedDataset(dm.first_frames("car-shadow", length, seed=int(cfg.seed)))
        with PeakMemory(device) as mem:
            _, seconds = segmenter.finetune({1: dataset})
    gaps = sorted(b - a for a, b in zip(dataset.stamps[1:], dataset.stamps[2:]))
    per_iteration = gaps[len(gaps) // 2] if gaps else seconds / iterations
    overhead = max(0.0, seconds - iterations * per_iteration)
    return {
        "iterations": iterations,
        "seconds": seconds,
        "seconds_per_iteration": per_iteration,
        "iterations_per_s": 1.0 / per_iteration,
        "setup_seconds": overhead,
        f"seconds_to_{ONLINE_ITERATIONS}": overhead + ONLINE_ITERATIONS * per_iteration,
        "precision": variant.precision,
        **mem.as_dict(),
    }


def measure_data(root: Path, scale: float, workers: int, frames: int) -> dict:
    """Frames/s of the parent training loader on the real sample (after its first batch)."""
    from osvos_pl.data.datamodule import DAVISDataModule

    dm = DAVISDataModule(root=str(root), train_sequences=["blackswan", "car-shadow"],
                         scale=scale, batch_size=1, num_workers=workers, augment="paper",
                         normalization="imagenet", validate="none")
    loader = dm.train_dataloader()
    frames = min(frames, len(loader.dataset))
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter()
    for _ in range(frames - 1):
        next(iterator)
    end = time.perf_counter()
    del iterator, loader
    gc.collect()
    return {"workers": workers, "frames": frames, "startup_seconds": first - start,
            "frames_per_s": (frames - 1) / max(end - first, 1e-9)}


# --- driver -----------------------------------------------------------------------------------

def machine_info(device: torch.device) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "device": str(device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_is_native(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return info


def _cost(row: dict) -> float:
    """What a variant is judged by: ms per frame; for fine-tuning, the seconds to 500 updates."""
    if row["section"] == "finetune":
        return row[f"seconds_to_{ONLINE_ITERATIONS}"]
    return row["ms_per_frame"]


class Bench:
    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self.results: list[dict] = []
        self.flops: dict = {}
        self.peak: dict = {}
        self.notes: list[str] = []

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def add(self, **row) -> dict:
        self.results.append(row)
        return row

    def variants_for(self, size: str, best_so_far: dict, section: str) -> list:
        """All variants at 480p and below; above, the reference and the best variant so far."""
        args = self.args
        variants = list(VARIANTS)
        if args.compile:
            fast = Variant("bf16+cl", True, True) if bf16_is_native(self.device) else \
                Variant("channels_last", channels_last=True)
            variants += [Variant("fp32+compile", compile=True),
                         Variant(f"{fast.name}+compile", fast.bf16, fast.channels_last, True)]
        if not bf16_is_native(self.device) and not args.all_variants:
            variants = [v for v in variants if not v.bf16]  # emulated: see the peak section
        pixels = scaled_hw(self.sizes[size])[0] * scaled_hw(self.sizes[size])[1]
        if pixels > BASE_HW[0] * BASE_HW[1] and not args.all_variants and best_so_far.get(section):
            best = best_so_far[section]
            variants = [REFERENCE] + ([best] if best != REFERENCE else [])
        return variants

    def run(self) -> dict:
        args, device = self.args, self.device
        self.sizes = QUICK_SIZES if args.quick else {s: SIZES[s] for s in args.sizes}
        self.log(f"machine: {json.dumps(machine_info(device))}")
        if "peak" in args.sections:
            self.log("\n== peak (GFLOP/s)")
            self.peak = measure_peak(device, max(2, args.repeat), args.quick)
            for kind in ("matmul", "conv3x3"):
                for name, r in self.peak[kind].items():
                    self.log(f"  {kind:8s} {name:20s} size {r['size']:5d} {r['gflops']:8.1f}")
        if not bf16_is_native(self.device) and not args.all_variants:
            peak = self.peak.get("peak", {})
            measured = (f" (measured peak bf16 {peak['bf16']:.1f} vs fp32 {peak['fp32']:.1f} "
                        "GFLOP/s)") if peak else ""
            self.notes.append(f"bf16 is not native on this {self.device.type}{measured}: the bf16 "
                              "variants are skipped (--all-variants runs them, slowly)")
            self.log(f"\nnote: {self.notes[-1]}")
        best_so_far: dict = {}
        for size, scale in self.sizes.items():
            hw = scaled_hw(scale)
            self.flops[size] = count_flops(hw)
            large = hw[0] * hw[1] > BASE_HW[0] * BASE_HW[1]
            repeat = min(args.repeat, 2) if large else args.repeat
            self.log(f"\n== {size} ({hw[0]}x{hw[1]}), train {self.flops[size]['train'] / 1e9:.0f} "
                     f"GFLOP/frame, inference {self.flops[size]['infer'] / 1e9:.0f} GFLOP/frame")
            if "train" in args.sections:
                self._section_train(size, hw, repeat, large, best_so_far)
            if "infer" in args.sections:
                self._section_infer(size, hw, repeat, large, best_so_far)
            if "finetune" in args.sections:
                self._section_finetune(size, scale, large, best_so_far)
            if "data" in args.sections:
                self._section_data(size, scale)
        return self.report()

    def _section_train(self, size, hw, repeat, large, best_so_far):
        self._section_network("train", measure_train, self.args.train_batches, repeat, size, hw,
                              large, best_so_far)

    def _section_infer(self, size, hw, repeat, large, best_so_far):
        self._section_network("infer", measure_infer, self.args.infer_batches, repeat + 1, size,
                              hw, large, best_so_far)

    def _section_network(self, section, measure, batches, repeat, size, hw, large, best_so_far):
        """Time ``measure`` (a training step or an inference pass) for each variant and batch."""
        batches = [1] if large and self.device.type == "cpu" else batches
        for variant in self.variants_for(size, best_so_far, section):
            for batch in batches:
                r = measure(variant, hw, batch, self.device, 1, repeat)
                row = self.add(section=section, size=size, hw=hw, variant=variant.name,
                               dtype=variant.dtype, batch=batch,
                               ms_per_frame=1000 * min(r["times"]) / batch, **r)
                self.log(f"  {section:5s}  {variant.name:22s} batch {batch:2d} "
                         f"{row['ms_per_frame']:9.1f} ms/frame  rss {r['peak_rss_mb']:.0f} MB")
        best_so_far[section] = self._fastest(size, section)

    def _section_finetune(self, size, scale, large, best_so_far):
        if not (self.args.root / "JPEGImages/480p/car-shadow").is_dir():
            self.log(f"  finetune: skipped, no DAVIS sample at {self.args.root}")
            return
        iterations = max(3, self.args.iterations // 3) if large else self.args.iterations
        for variant in self.variants_for(size, best_so_far, "finetune"):
            if variant.compile:
                continue  # finetune() has no compile switch
            r = measure_finetune(variant, scale, iterations, self.args.root, self.args.weights,
                                 self.device)
            self.add(section="finetune", size=size, hw=scaled_hw(scale), variant=variant.name,
                     dtype=variant.dtype, batch=1, ms_per_frame=1000 * r["seconds_per_iteration"],
                     **r)
            self.log(f"  finetune {variant.name:20s} {r['iterations_per_s']:6.2f} it/s, "
                     f"{r[f'seconds_to_{ONLINE_ITERATIONS}']:7.0f} s to {ONLINE_ITERATIONS} it "
                     f"(setup {r['setup_seconds']:.1f} s)  rss {r['peak_rss_mb']:.0f} MB")
        best_so_far["finetune"] = self._fastest(size, "finetune")

    def _section_data(self, size, scale):
        if not (self.args.root / "JPEGImages/480p/blackswan").is_dir():
            self.log(f"  data: skipped, no DAVIS sample at {self.args.root}")
            return
        for workers in (2, 0):
            r = measure_data(self.args.root, scale, workers, self.args.data_frames)
            self.add(section="data", size=size, hw=scaled_hw(scale), variant=f"{workers} workers",
                     dtype=None, batch=1, ms_per_frame=1000 / r["frames_per_s"], **r)
            self.log(f"  data   {workers} workers {r['frames_per_s']:8.1f} frames/s "
                     f"(startup {r['startup_seconds']:.1f} s)")

    def _fastest(self, size: str, section: str) -> Variant | None:
        rows = [r for r in self.results if r["section"] == section and r["size"] == size]
        if not rows:
            return None
        name = min(rows, key=_cost)["variant"]
        known = {v.name: v for v in VARIANTS}
        if name.endswith("+compile"):
            base = known.get(name.removesuffix("+compile"), REFERENCE)
            return Variant(name, base.bf16, base.channels_last, True)
        return known.get(name, REFERENCE)

    # --- report -------------------------------------------------------------------------------
    def report(self) -> dict:
        peak = self.peak.get("peak", {})
        for row in self.results:
            ref = self._reference(row)
            row["speedup"] = (ref / _cost(row)) if ref else None
            flops = self.flops.get(row["size"], {}).get(row["section"])
            if flops:
                row["gflops"] = flops / (row["ms_per_frame"] / 1000) / 1e9
                row["fraction_of_peak"] = row["gflops"] / peak[row["dtype"]] if peak else None
        summary = self.summary()
        self.print_tables(summary)
        return {"machine": machine_info(self.device), "settings": self.settings(),
                "peak": self.peak, "flops_per_frame": self.flops, "results": self.results,
                "summary": summary, "notes": self.notes}

    def _reference(self, row: dict) -> float | None:
        if row["section"] == "data":
            return None
        refs = [_cost(r) for r in self.results if r["section"] == row["section"]
                and r["size"] == row["size"] and r["variant"] == REFERENCE.name and r["batch"] == 1]
        return refs[0] if refs else None

    def summary(self) -> dict:
        out = {}
        for size in self.sizes:
            entry = {}
            for section, target in TARGETS.items():
                rows = [r for r in self.results if r["section"] == section and r["size"] == size]
                if not rows:
                    continue
                best = min(rows, key=_cost)
                entry[section] = {"best_variant": best["variant"], "batch": best["batch"],
                                  "ms_per_frame": best["ms_per_frame"],
                                  "speedup": best.get("speedup"), "target": target,
                                  "met": (best.get("speedup") or 0) >= target}
                if section == "finetune":
                    entry[section][f"seconds_to_{ONLINE_ITERATIONS}"] = _cost(best)
            data = {r["workers"]: r for r in self.results
                    if r["section"] == "data" and r["size"] == size}
            if data and "train" in entry:
                train_fps = 1000 / entry["train"]["ms_per_frame"]
                entry["data"] = {
                    "frames_per_s_2_workers": data.get(2, {}).get("frames_per_s"),
                    "frames_per_s_0_workers": data.get(0, {}).get("frames_per_s"),
                    "train_frames_per_s": train_fps,
                    "headroom": (data[2]["frames_per_s"] / train_fps) if 2 in data else None,
                    # one core's share of a training step spent decoding/augmenting a frame
                    "loader_cost_per_step": (train_fps / data[0]["frames_per_s"]) if 0 in data
                    else None,
                }
                entry["data"]["bottleneck"] = (entry["data"]["headroom"] or 0) < 1
            out[size] = entry
        return out

    def settings(self) -> dict:
        a = self.args
        return {"sizes": {s: scaled_hw(v) for s, v in self.sizes.items()}, "repeat": a.repeat,
                "iterations": a.iterations, "train_batches": a.train_batches,
                "infer_batches": a.infer_batches, "compile": a.compile, "quick": a.quick,
                "all_variants": a.all_variants, "root": str(a.root), "sections": a.sections,
                "threads": torch.get_num_threads(),
                "variants": [asdict(v) for v in VARIANTS]}

    def print_tables(self, summary: dict) -> None:
        peak = self.peak.get("peak", {})
        if peak:
            self.log("\npeak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
        header = (f"{'section':9s} {'variant':22s} {'batch':>5s} {'ms/frame':>10s} {'x fp32':>7s} "
                  f"{'GFLOP/s':>8s} {'% peak':>7s} {'RSS MB':>7s} {'GPU MB':>7s}  extra")
        for size in self.sizes:
            rows = [r for r in self.results if r["size"] == size]
            if not rows:
                continue
            hw = scaled_hw(self.sizes[size])
            self.log(f"\n{size} ({hw[0]}x{hw[1]})\n{header}\n{'-' * len(header)}")
            for r in rows:
                extra = ""
                if r["section"] == "finetune":
                    extra = (f"{r['iterations_per_s']:.2f} it/s, "
                             f"{r[f'seconds_to_{ONLINE_ITERATIONS}']:.0f} s to {ONLINE_ITERATIONS}")
                elif r["section"] == "data":
                    extra = f"{r['frames_per_s']:.1f} frames/s"
                elif r["variant"].endswith("+compile") and r.get("warmup_times"):
                    extra = f"first call {r['warmup_times'][0]:.0f} s"

                def fmt(value, spec):
                    return format(value, spec) if value is not None else "-"

                pct = r.get("fraction_of_peak")
                speedup = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
                self.log(f"{r['section']:9s} {r['variant']:22s} {r['batch']:5d} "
                         f"{r['ms_per_frame']:10.1f} {speedup:>7s} "
                         f"{fmt(r.get('gflops'), '8.1f'):>8s} "
                         f"{fmt(100 * pct if pct is not None else None, '6.1f'):>7s} "
                         f"{fmt(r.get('peak_rss_mb'), '7.0f'):>7s} "
                         f"{fmt(r.get('peak_gpu_mb'), '7.0f'):>7s}  {extra}")
        self.log("\nsummary (best variant against the fp32 eager reference at batch 1):")
        for size, entry in summary.items():
            parts = []
            for section in TARGETS:
                if section in entry:
                    e = entry[section]
                    mark = "ok" if e["met"] else "MISSED"
                    parts.append(f"{section} {e['speedup']:.2f}x ({e['best_variant']}, "
                                 f"batch {e['batch']}; target {e['target']}x {mark})")
            if "data" in entry:
                d = entry["data"]
                parts.append(f"data {d['frames_per_s_2_workers']:.1f} fr/s = "
                             f"{d['headroom']:.1f}x the training step "
                             f"({'BOTTLENECK' if d['bottleneck'] else 'not the bottleneck'})")
            self.log(f"  {size}: " + "; ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                        default=list(SIZES), help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--repeat", type=int, default=2,
                        help="timed runs after one warm-up (best of them is reported); sizes "
                             "above 480p use at most 2")
    parser.add_argument("--iterations", type=int, default=8,
                        help="fine-tuning updates measured (above 480p a third, at least 3)")
    parser.add_argument("--train-batches", type=lambda s: [int(x) for x in s.split(",")],
                        default=None, help="training batch sizes (default 1,2 on CPU, 1,4,8 on "
                                           "CUDA; batch 1 only above 480p on CPU)")
    parser.add_argument("--infer-batches", type=lambda s: [int(x) for x in s.split(",")],
                        default=None, help="inference batch sizes (default 1,4; batch 1 only "
                                           "above 480p on CPU)")
    parser.add_argument("--data-frames", type=int, default=30, help="frames read per loader run")
    parser.add_argument("--sections", type=lambda s: [x.strip() for x in s.split(",")],
                        default=["peak", "train", "infer", "finetune", "data"],
                        help="comma-separated subset of peak,train,infer,finetune,data")
    parser.add_argument("--compile", action="store_true",
                        help="add torch.compile variants of fp32 and of the fast path (slow warm-up)")
    parser.add_argument("--all-variants", action="store_true",
                        help="measure every variant at every size, emulated bf16 included")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 60p and 120p, 1 timed run, 3 fine-tuning iterations")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, one per core); on a machine "
                             "shared with other work, 2 threads on 2 busy cores run several "
                             "times slower than 1")
    parser.add_argument("--root", type=Path,
                        default=Path(os.environ.get("DAVIS_SAMPLE", DEFAULT_ROOT)),
                        help="DAVIS-layout root with blackswan and car-shadow (the real sample)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="VGG16 weights for the fine-tuning runs (default: random backbone; "
                             "the time does not depend on the weights)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/pipeline-<host>.json)")
    args = parser.parse_args()
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeat, args.iterations, args.data_frames = 1, 3, 10
        args.train_batches = args.train_batches or [1, 2]
        args.infer_batches = args.infer_batches or [1, 2]
    if args.train_batches is None:
        args.train_batches = [1, 4, 8] if device.type == "cuda" else [1, 2]
    if args.infer_batches is None:
        args.infer_batches = [1, 4]
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / f"pipeline-{socket.gethostname()}.json"

    start = time.perf_counter()
    result = Bench(args, device).run()
    result["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(args.out)
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
