"""What the hardware runs fast: whether bf16 is native, and the precision that follows from it.

bf16 autocast only pays where the hardware computes in bf16: CUDA GPUs from Ampere on, and x86
CPUs with AVX512-BF16 or AMX. Elsewhere oneDNN (or ATen's reference kernels) emulates it, and a
bf16 convolution is then several times *slower* than fp32 (on an AVX2-only CPU
with torch 2.13 a 3x3 conv ran about 6x slower, a matmul several hundred times; see
benchmarks/README.md). Note that
``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is true on any AVX-512 CPU, emulated or not, so
it is not the test used here.
"""

from __future__ import annotations

import torch


def bf16_is_native(device: torch.device | str = "cpu") -> bool:
    """True where ``device`` computes bf16 in hardware (so bf16 autocast is a speed-up)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.4 has no including_emulation
            return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    return False


def fast_precision(device: torch.device | str = "cpu") -> str:
    """The Lightning precision of the fast path: ``bf16-mixed`` where bf16 is native, else fp32."""
    return "bf16-mixed" if bf16_is_native(device) else "32-true"
