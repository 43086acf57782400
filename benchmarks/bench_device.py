"""Per-update and per-frame cost of the OSVOS network on one device: fp32 eager NCHW (the
reference setting) against the fast path (bf16 autocast where native, NHWC, ``torch.compile``).

    python benchmarks/bench_device.py [--device cuda] [--out device.json]

Fine-tuning updates run at 240x427 (the reference preset's size), batch 1, Adam, fused loss;
inference at 480x854 in batches. Random weights: the cost does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from osvos_pl.model import OSVOSNet, class_balanced_bce
from osvos_pl.utils.hardware import bf16_is_native


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return 1000 * (time.perf_counter() - start) / repeats


def update_ms(device, bf16: bool, nhwc: bool, hw=(240, 427), repeats: int = 20) -> float:
    net = OSVOSNet(init="port").to(device)
    layout = torch.channels_last if nhwc else torch.contiguous_format
    net = net.to(memory_format=layout)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)
    x = torch.randn(1, 3, *hw, device=device).contiguous(memory_format=layout)
    y = (torch.rand(1, 1, *hw, device=device) > 0.7).float()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = class_balanced_bce(net.forward_fused(x), y, "mean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _timed(step, device, repeats)


@torch.inference_mode()
def frame_ms(device, bf16: bool, nhwc: bool, compile_: bool, batch: int, hw=(480, 854),
             repeats: int = 10) -> float:
    net = OSVOSNet(init="port").to(device).eval()
    layout = torch.channels_last if nhwc else torch.contiguous_format
    net = net.to(memory_format=layout)
    forward = torch.compile(net.forward_fused) if compile_ else net.forward_fused
    x = torch.randn(batch, 3, *hw, device=device).contiguous(memory_format=layout)

    def infer():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        torch.sigmoid(logits.float())

    return _timed(infer, device, repeats) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    device = torch.device(args.device)
    native = bf16_is_native(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    rows = {
        "update_ms_reference_fp32_nchw_240p": update_ms(device, False, False),
        "update_ms_fast_240p": update_ms(device, native, True),
        "frame_ms_reference_fp32_nchw_b1_480p": frame_ms(device, False, False, False, 1),
        "frame_ms_fast_b8_480p": frame_ms(device, native, True, False, 8),
    }
    if args.compile:
        rows["frame_ms_fast_compiled_b8_480p"] = frame_ms(device, native, True, True, 8)
    result = {"device": name, "torch": torch.__version__, "bf16_native": native, **rows}
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
