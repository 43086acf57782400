"""Wall time and peak memory of a measurement, synchronised with the device."""

from __future__ import annotations

import gc
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


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
