"""The yardsticks: the machine's attainable GFLOP/s, and the network's FLOPs per frame."""

from __future__ import annotations

from collections.abc import Callable

import torch

from osvos_pl.model import OSVOSNet, class_balanced_bce

from .timing import timed


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
    """FLOPs per frame of a training step (forward with sides + backward) and of inference.

    Counted on fake CPU tensors (shapes only, no arithmetic): the meta device cannot run the
    network, whose upsampling leaves autocast for its device type, and ``meta`` has none.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    fake = FakeTensorMode()
    with fake:
        net = OSVOSNet(init="port")
        x = torch.empty(1, 3, *hw)
        target = torch.zeros(1, 1, *hw)
    with FlopCounterMode(display=False) as counter, fake:
        loss = sum(class_balanced_bce(o, target, "mean") for o in net(x))
        loss.backward()
    train = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter, fake, torch.no_grad():
        net.forward_fused(x)
    return {"train": train, "infer": counter.get_total_flops()}
