"""The measurements: a training step, inference, one-shot fine-tuning and the data loader."""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
from pathlib import Path

import torch

from osvos_pl.model import build_param_groups, class_balanced_bce

from .timing import PeakMemory, timed
from .variants import ONLINE_ITERATIONS, Variant, autocast

ONES = {k: 1.0 for k in ("weight", "bias", "dsn_weight", "dsn_bias", "fuse_weight", "fuse_bias")}


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
        segmenter.object_probabilities([net], x, hw)

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

    from osvos_pl.stages.assembly import build_datamodule, build_engine

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
