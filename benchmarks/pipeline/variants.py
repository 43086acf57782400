"""What the pipeline benchmark varies: input sizes and the fast-path switches against fp32 eager."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

BASE_HW = (480, 854)  # DAVIS 480p; every size is a data.scale of it
SIZES = {"240p": 0.5, "480p": 1.0, "1080p": 2.25}
QUICK_SIZES = {"60p": 0.125, "120p": 0.25}
ONLINE_ITERATIONS = 500  # conf/online/default.yaml
TARGETS = {"train": 2.5, "infer": 2.5, "finetune": 3.0}


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


def autocast(variant: Variant, device: torch.device):
    if not variant.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
