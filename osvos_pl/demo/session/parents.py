"""Which parent network a run starts from, and what the page says about it: a network without
object features (a random backbone, a parent of generated stripes) gives masks of real video
that cannot be trusted, and the page says so before the run rather than after."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The parent dropdown's value for "no parent" (predict's ``parent_ckpt=null``: -PN).
NO_PARENT = "none"
#: Measured on real video with an unsuitable network (issue 33's trial, predict on DAVIS dog).
UNTRUSTED_J = "J 0.17-0.38 on a real DAVIS clip where the shipped parent gets far more"


@dataclass(frozen=True)
class ParentChoice:
    """One entry of the parent dropdown: the ``value`` predict gets as ``parent_ckpt`` (or
    NO_PARENT), a ``label`` that says what the choice really is, and ``warning``: why masks
    of real video from it cannot be trusted, or None."""

    value: str
    label: str
    warning: str | None = None


def imagenet_cached() -> bool:
    """Whether ``model.weights=imagenet`` finds torchvision's VGG16 in the torch hub cache
    (offline, without it, the backbone is random)."""
    import torch

    from osvos_pl.model.weights import IMAGENET_URL

    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name).is_file()


def parent_choice(value: str | None, backbone: str | None) -> ParentChoice:
    """What running with the parent ``value`` really means, with predict's ``model.weights``
    ``backbone`` for the no-parent case (a file is read only for its ``trained_on``)."""
    from osvos_pl.model.checkpoint import read_trained_on, unsuited_for_real_frames
    from osvos_pl.model.releases import PARENT
    from osvos_pl.model.shipped import SHIPPED
    from osvos_pl.utils.errors import OSVOSError

    value = NO_PARENT if value in (None, "", "null", NO_PARENT) else str(value)
    if value == NO_PARENT:
        return _no_parent(backbone)
    if value in SHIPPED:
        return ParentChoice(value, f"{value}: {SHIPPED[value].about}")
    if value == PARENT.name:
        return ParentChoice(value, "osvos-pytorch: the authors' parent (downloaded on first use)")
    try:
        why = unsuited_for_real_frames(read_trained_on(value))
    except OSVOSError as exc:
        return ParentChoice(value, f"{value} (cannot be used: {exc})", f"{exc}")
    if why is None:
        return ParentChoice(value, f"{value}: a parent trained on real frames")
    return ParentChoice(value, f"{value}: trained {why} — not for real video",
                        f"this parent was trained {why}: on real video its masks cannot be "
                        f"trusted ({UNTRUSTED_J}); it suits the generated sequences only. For "
                        f"real video choose {next(iter(SHIPPED))}, the shipped parent.")


def _no_parent(backbone: str | None) -> ParentChoice:
    from osvos_pl.model.shipped import SHIPPED

    random = ("there is no parent and the backbone is RANDOM (no ImageNet features): masks of "
              f"real video from it cannot be trusted ({UNTRUSTED_J}). Choose "
              f"{next(iter(SHIPPED))}, the shipped parent.")
    if backbone is None or str(backbone) in ("null", "None"):
        return ParentChoice(NO_PARENT, "none: fine-tune a RANDOM backbone (no parent, "
                                       "model.weights=null)", random)
    if str(backbone) == "imagenet" and not imagenet_cached():
        return ParentChoice(NO_PARENT, "none: fine-tune a RANDOM backbone (no parent; the "
                                       "ImageNet weights are not on this machine: downloaded "
                                       "if there is network)",
                            "offline, " + random)
    source = "ImageNet VGG16" if str(backbone) == "imagenet" else f"the VGG16 weights {backbone}"
    return ParentChoice(NO_PARENT, f"none: fine-tune {source} without a parent (-PN, lower "
                                   "quality)")


def trust_line(choice: ParentChoice) -> str:
    """The line under the parent dropdown: which network runs, and a warning where its masks
    of real video cannot be trusted."""
    if choice.warning:
        return f"**warning: {choice.warning}**"
    return f"runs: {choice.label}"
