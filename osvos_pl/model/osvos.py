"""The OSVOS network: VGG16 trunk, four side outputs and the learned 64-channel fusion.

Follows the authors' Caffe code (docs/method.md#architecture): each side stage
(conv2_2 … conv5_3, strides 2–16) gets a 3x3 "prep" conv to 16 channels without ReLU. Two
heads share the prep maps: a 1x1 "score_dsn" conv per stage, upsampled to a side logit
(deep supervision, parent training only); and the fused logit, a 1x1 conv over the
concatenation of the four 16-channel prep maps, each upsampled channel-wise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from osvos_pl.model.vgg import SIDE_CHANNELS, SIDE_TAPS, VGG16Trunk
from osvos_pl.utils.errors import ConfigError

#: Strides of the four side stages (conv2_2, conv3_3, conv4_3, conv5_3) w.r.t. the input.
STRIDES: tuple[int, ...] = (2, 4, 8, 16)
#: End (exclusive index in ``trunk.features``) of each of VGG16's five stages: stage 1 after
#: conv1_2's ReLU, stages 2-5 at their side taps. ``STAGE_ENDS[k - 1]`` ends stage ``k``.
STAGE_ENDS: tuple[int, ...] = (4, *(tap + 1 for tap in SIDE_TAPS))
PREP_CHANNELS = 16
UPSAMPLE_MODES = ("caffe", "center")
INIT_MODES = ("caffe", "port")


def bilinear_kernel(size: int) -> torch.Tensor:
    """The standard ``(size, size)`` bilinear deconvolution kernel (FCN/Caffe ``bilinear``).

    ``size`` is even (twice the stride). 1-D profile ``1 - |i - c| / f`` with
    ``f = size / 2`` and ``c = f - 0.5``; the 2-D kernel is its outer product. With stride
    ``f`` it interpolates linearly between neighbouring feature pixels.
    """
    if size % 2:
        raise ValueError(f"bilinear_kernel expects an even size (2 * stride), got {size}")
    f = size // 2
    profile = 1 - (torch.arange(size, dtype=torch.float64) - (f - 0.5)).abs() / f
    return torch.outer(profile, profile).float()


class FixedBilinearUpsample(nn.Module):
    """Fixed (never trained) bilinear upsampling by ``stride``, cropped to the input size.

    A transposed conv with the kernel-``2s`` bilinear filter, stride ``s``, applied to every
    channel separately (the diagonal 16→16 deconv of the authors' Caffe code, as a grouped conv). The
    ``(n + 1) * s`` output is cropped to the target size at a top-left offset of:

    - ``"caffe"``: ``s / 2`` on both axes, as the authors' Caffe Crop layers (docs/method.md#upsampling) (stride 2 there uses pad 1,
      which is the same thing). Geometrically exact: feature pixel ``i`` of a ceil-mode
      stride-``s`` map covers input pixels centred at ``s * i + (s - 1) / 2``, and that is
      where its upsampled peak lands.
    - ``"center"``: ``floor((up - target) / 2)`` per axis, as the PyTorch/TF ports. At 480x854
      this shifts columns by 0, 1, 1, 5 px for s = 2, 4, 8, 16 versus ``"caffe"``.

    The kernel is a non-persistent buffer: it follows ``.to()`` but is neither a parameter
    nor saved in checkpoints (it is fully determined by ``stride``).
    """

    def __init__(self, stride: int, mode: str = "caffe") -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ConfigError(f"model.upsample={mode!r} is unknown; choose one of {UPSAMPLE_MODES}")
        self.stride, self.mode = stride, mode
        kernel = bilinear_kernel(2 * stride).view(1, 1, 2 * stride, 2 * stride)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, C, h, w)`` with ``h = ceil(H / s)`` → ``(B, C, H, W)`` for ``size = (H, W)``."""
        channels, s = x.shape[1], self.stride
        # in float32 whatever the autocast: oneDNN has no bf16/fp16 kernel for this grouped
        # transposed conv, and its fallback is 10-20x slower than float32 on a CPU (30 ms
        # against 2 ms for stride 16 at 120x214, 230 ms against 12-48 ms at 480x854)
        with torch.autocast(x.device.type, enabled=False):
            wide = torch.promote_types(x.dtype, torch.float32)
            weight = self.kernel.to(wide).expand(channels, 1, 2 * s, 2 * s)
            up = F.conv_transpose2d(x.to(wide), weight, stride=s, groups=channels)
        (height, width), (up_h, up_w) = size, up.shape[-2:]
        if self.mode == "caffe":
            top = left = s // 2
        else:
            top, left = (up_h - height) // 2, (up_w - width) // 2
        if up_h < top + height or up_w < left + width:
            raise ValueError(
                f"stride-{s} features {tuple(x.shape[-2:])} are too small for output {size}: "
                f"expected ceil(size / {s}) rows and columns"
            )
        return up[..., top : top + height, left : left + width].to(x.dtype)


class OSVOSNet(nn.Module):
    """OSVOS: ``(B, 3, H, W)`` normalised image → logits at the input resolution.

    Args:
        upsample: ``"caffe"`` (crop offset s/2, the paper's code) or ``"center"`` (the
            PyTorch/TF ports' centre crop, 1–5 px column shifts at 480x854).
        init: initialisation of the new convs. ``"caffe"``: prep N(0, 0.001), score_dsn and
            fuse weights 0 (Caffe's default constant filler); ``"port"``: every new conv
            N(0, 0.001), as the PyTorch/TF ports. Biases 0 in both. The trunk starts He-normal
            until backbone weights are loaded (see ``load_backbone``).

    Works at any input size (odd ones too): ceil-mode pools keep every stage covering the
    whole image, and each upsampled map is cropped back to ``(H, W)``. Uses only ops that
    accept ``channels_last`` tensors and bf16 autocast.
    """

    def __init__(self, upsample: str = "caffe", init: str = "caffe") -> None:
        super().__init__()
        if init not in INIT_MODES:
            raise ConfigError(f"model.init={init!r} is unknown; choose one of {INIT_MODES}")
        self.trunk = VGG16Trunk()
        self.prep = nn.ModuleList(
            nn.Conv2d(c, PREP_CHANNELS, kernel_size=3, padding=1) for c in SIDE_CHANNELS
        )
        self.score_dsn = nn.ModuleList(nn.Conv2d(PREP_CHANNELS, 1, 1) for _ in STRIDES)
        self.fuse = nn.Conv2d(PREP_CHANNELS * len(STRIDES), 1, 1)
        self.upsample = nn.ModuleList(FixedBilinearUpsample(s, upsample) for s in STRIDES)
        self._init_heads(init)

    def _init_heads(self, init: str) -> None:
        zero_weights = init == "caffe"
        for conv in self.prep:
            nn.init.normal_(conv.weight, std=0.001)
        for conv in (*self.score_dsn, self.fuse):
            if zero_weights:
                nn.init.zeros_(conv.weight)
            else:
                nn.init.normal_(conv.weight, std=0.001)
        for conv in (*self.prep, *self.score_dsn, self.fuse):
            nn.init.zeros_(conv.bias)

    def _prep(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four 16-channel prep maps, at strides 2, 4, 8, 16."""
        return [conv(tap) for conv, tap in zip(self.prep, self.trunk(x))]

    def _fused(self, prep: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``fuse(cat(upsample(prep)))``, computed as ``Σ upsample(fuse_i(prep_i)) + bias``.

        Both the upsampling and the 1x1 fuse conv are linear, so scoring each stride's 16
        channels first and upsampling one channel per stride is the same map with 1/16 of the
        full-resolution work (the concatenated 64-channel map at full size is never built).
        """
        weights = self.fuse.weight.split(prep[0].shape[1], dim=1)
        fused = sum(up(F.conv2d(p, w), size) for up, p, w in zip(self.upsample, prep, weights))
        return fused + self.fuse.bias.view(1, -1, 1, 1).to(fused.dtype)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All five logits ``[side2, side3, side4, side5, fuse]``, each ``(B, 1, H, W)``."""
        size = (x.shape[-2], x.shape[-1])
        prep = self._prep(x)
        sides = [up(score(p), size) for up, score, p in zip(self.upsample, self.score_dsn, prep)]
        return [*sides, self._fused(prep, size)]

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """Only the fused ``(B, 1, H, W)`` logit (online fine-tuning and inference).

        Skips the side-score heads; equal to ``forward(x)[-1]``.
        """
        return self._fused(self._prep(x), (x.shape[-2], x.shape[-1]))

    def trunk_prefix(self, x: torch.Tensor, stages: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The first ``stages`` (0-5) VGG stages of ``(B, 3, H, W)`` images: the side taps they
        produce (none for stage 1) and the activation after the last of them.

        Fine-tuning with those stages frozen computes this once per augmented view and resumes
        with :meth:`forward_fused_from` (docs/method.md#one-shot-fine-tuning).
        """
        return self.trunk_stages([], x, 0, stages)

    def trunk_stages(self, taps: list[torch.Tensor], x: torch.Tensor, start: int, stop: int,
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """VGG stages ``start + 1 .. stop`` resuming from ``(taps, x)`` after stage ``start``:
        ``trunk_stages(*trunk_prefix(x, j), j, k)`` equals ``trunk_prefix(x, k)``. The frozen
        prefix (``osvos_pl.model.prefix``) ends at one stage, a sequence's objects share more
        (``osvos_pl.tasks.segmenter.shared_stages``)."""
        first = STAGE_ENDS[start - 1] if start else 0
        return self._run_trunk(x, first, STAGE_ENDS[stop - 1] if stop else 0, list(taps))

    def forward_fused_from(self, taps: list[torch.Tensor], x: torch.Tensor, stages: int,
                           size: tuple[int, int]) -> torch.Tensor:
        """The fused ``(B, 1, H, W)`` logit for ``size = (H, W)``, resuming after ``stages``
        from :meth:`trunk_prefix`'s output: ``forward_fused_from(*trunk_prefix(x, k), k, size)``
        equals ``forward_fused(x)``."""
        start = STAGE_ENDS[stages - 1] if stages else 0
        taps, _ = self._run_trunk(x, start, len(self.trunk.features), list(taps))
        return self._fused([conv(tap) for conv, tap in zip(self.prep, taps)], size)

    def _run_trunk(self, x: torch.Tensor, start: int, stop: int, taps: list[torch.Tensor],
                   ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``trunk.features[start:stop]`` on ``x``: ``taps`` with the side taps met appended,
        and the last activation."""
        for i in range(start, stop):
            x = self.trunk.features[i](x)
            if i in SIDE_TAPS:
                taps.append(x)
        return taps, x


def freeze_stages(net: nn.Module, stages: int) -> None:
    """Keep VGG stages 1..``stages`` of ``net`` fixed: their parameters leave the optimizer and
    the backward pass stops at stage ``stages + 1`` (``online.frozen_stages``,
    ``parent.frozen_stages``)."""
    if not 0 <= stages <= len(STAGE_ENDS):
        raise ValueError(f"frozen stages must be in 0..{len(STAGE_ENDS)}, got {stages}")
    for layer in net.trunk.features[: STAGE_ENDS[stages - 1] if stages else 0]:
        for param in layer.parameters():
            param.requires_grad_(False)


def native_probabilities(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` logits → ``(B, H, W)`` float32 foreground probability at ``size = (H, W)``.

    The one rule every caller (validation, online segmentation, contour maps) uses: resize the
    *logits* bilinearly to the annotation's native size, then apply the sigmoid, in float32
    whatever precision the network ran in.
    """
    return torch.sigmoid(F.interpolate(logits.float(), size=tuple(size), mode="bilinear"))[:, 0]


#: ``online.joint_head``: what a joint network gives each class of its own
JOINT_HEADS = ("fuse", "prep")


def widen_head(net: OSVOSNet, objects: int, head: str = "fuse") -> OSVOSNet:
    """``net`` (in place) with a fused head of ``objects + 1`` classes, background first, for one
    fine-tuning of all a sequence's objects (``online.objects=joint``): every object's logit
    starts as the binary fused logit (its weights and bias), the background's at 0. Softmax over
    ``[0, x, ..., x]`` gives each object ``σ(x)`` when it is the only one (K = 1: the binary
    network exactly).

    ``head="fuse"``: the classes share the four 16-channel prep maps and differ only in the 1x1
    fuse conv over them. ``head="prep"``: every class also gets its own copy of the prep convs
    (3x3 on each side tap), so fine-tuning can learn features that tell look-alike objects apart
    on the shared trunk; the fuse conv starts block-diagonal (each class reads its own copy). The
    side-score heads (deep supervision, parent training only) are dropped: :meth:`OSVOSNet.forward`
    no longer applies, :meth:`~OSVOSNet.forward_fused` does.
    """
    if objects < 1:
        raise ValueError(f"a joint head needs at least one object, got {objects}")
    if head not in JOINT_HEADS:
        raise ConfigError(f"online.joint_head={head!r} is unknown; choose one of {JOINT_HEADS}")
    old = net.fuse
    if old.out_channels != 1:
        raise ValueError(f"widen_head expects a binary fused head, got {old.out_channels} outputs")
    classes, copies = objects + 1, (objects + 1 if head == "prep" else 1)
    new = nn.Conv2d(old.in_channels * copies, classes, 1).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.bias.zero_()
        new.bias[1:] = old.bias
        for c in range(1, classes):
            for i, w in enumerate(old.weight.split(PREP_CHANNELS, dim=1)):
                at = (i * copies + (c if copies > 1 else 0)) * PREP_CHANNELS
                new.weight[c, at : at + PREP_CHANNELS] = w[0]
        if copies > 1:
            net.prep = nn.ModuleList(_repeat_conv(conv, copies) for conv in net.prep)
            net.score_dsn = nn.ModuleList()
    net.fuse = new
    return net


def _repeat_conv(conv: nn.Conv2d, copies: int) -> nn.Conv2d:
    """``conv`` with its output channels repeated ``copies`` times (same weights and biases)."""
    wide = nn.Conv2d(conv.in_channels, conv.out_channels * copies, conv.kernel_size,
                     padding=conv.padding).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(conv.weight.repeat(copies, 1, 1, 1))
        wide.bias.copy_(conv.bias.repeat(copies))
    return wide


def native_class_probabilities(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, C, h, w)`` class logits → ``(B, C, H, W)`` float32 softmax at ``size = (H, W)``, by
    the rule of :func:`native_probabilities`: logits resized bilinearly, then normalised."""
    return torch.softmax(F.interpolate(logits.float(), size=tuple(size), mode="bilinear"), dim=1)
