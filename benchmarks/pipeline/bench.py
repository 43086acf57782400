"""The pipeline benchmark's run: which variants to measure at each size, section by section."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
from dataclasses import asdict
from pathlib import Path

import torch

from osvos_pl.utils.hardware import bf16_is_native

from .measure import measure_data, measure_finetune, measure_infer, measure_train
from .peak import count_flops, measure_peak
from .report import add_ratios, cost, print_tables, summarize
from .variants import (
    BASE_HW,
    ONLINE_ITERATIONS,
    QUICK_SIZES,
    REFERENCE,
    SIZES,
    VARIANTS,
    Variant,
    scaled_hw,
)


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


class Bench:
    """One run: the sections at each size, the rows they measured, and the report."""

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
        name = min(rows, key=cost)["variant"]
        known = {v.name: v for v in VARIANTS}
        if name.endswith("+compile"):
            base = known.get(name.removesuffix("+compile"), REFERENCE)
            return Variant(name, base.bf16, base.channels_last, True)
        return known.get(name, REFERENCE)

    def report(self) -> dict:
        peak = self.peak.get("peak", {})
        add_ratios(self.results, self.flops, peak)
        summary = summarize(self.results, self.sizes)
        print_tables(self.log, self.results, self.sizes, peak, summary)
        return {"machine": machine_info(self.device), "settings": self.settings(),
                "peak": self.peak, "flops_per_frame": self.flops, "results": self.results,
                "summary": summary, "notes": self.notes}

    def settings(self) -> dict:
        a = self.args
        return {"sizes": {s: scaled_hw(v) for s, v in self.sizes.items()}, "repeat": a.repeat,
                "iterations": a.iterations, "train_batches": a.train_batches,
                "infer_batches": a.infer_batches, "compile": a.compile, "quick": a.quick,
                "all_variants": a.all_variants, "root": str(a.root), "sections": a.sections,
                "threads": torch.get_num_threads(),
                "variants": [asdict(v) for v in VARIANTS]}
