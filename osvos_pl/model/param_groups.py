"""Optimizer parameter groups with the reference learning-rate multipliers (docs/method.md#optimiser).

The authors scale the base lr per layer kind: trunk and prep convs ×1 (biases ×2), side
score convs ×0.1 (×0.2), fuse conv ×0.01 (×0.02), and apply weight decay to weights only.
The fixed upsampling kernels are buffers, so they never reach an optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from osvos_pl.utils.errors import ConfigError

#: Group name → (key of its multiplier in ``lr_mult``, module-name prefix or None for
#: everything else, whether it holds biases).
_GROUPS: dict[str, tuple[str, str | None, bool]] = {
    "backbone_weight": ("weight", None, False),
    "backbone_bias": ("bias", None, True),
    "dsn_weight": ("dsn_weight", "score_dsn.", False),
    "dsn_bias": ("dsn_bias", "score_dsn.", True),
    "fuse_weight": ("fuse_weight", "fuse.", False),
    "fuse_bias": ("fuse_bias", "fuse.", True),
}
_PREFIXES = tuple(prefix for _, prefix, _ in _GROUPS.values() if prefix)


def build_param_groups(
    net: nn.Module,
    lr: float,
    weight_decay: float,
    lr_mult: Mapping[str, float],
    include_side: bool = True,
) -> list[dict]:
    """Param groups for ``torch.optim`` from an ``OSVOSNet``'s trainable parameters.

    Each group is ``{"name", "params", "lr": lr * multiplier, "weight_decay"}``, with
    ``weight_decay`` on weight groups only (0 on biases). ``lr_mult`` needs the keys
    ``weight, bias, dsn_weight, dsn_bias, fuse_weight, fuse_bias``. ``include_side=False``
    leaves the side ``score_dsn`` convs out (online fine-tuning trains the fused loss only,
    which does not reach them). Parameters with ``requires_grad=False`` are left out; empty
    groups are dropped.
    """
    needed = {key for key, _, _ in _GROUPS.values()}
    if missing := sorted(needed - set(lr_mult)):
        raise ConfigError(
            f"lr_mult lacks {missing}; it needs all of {sorted(needed)} (see conf/optim/*.yaml)"
        )
    groups = []
    for name, (mult_key, prefix, is_bias) in _GROUPS.items():
        if prefix == "score_dsn." and not include_side:
            continue
        params = [
            p
            for pname, p in net.named_parameters()
            if p.requires_grad
            and _owner(pname) == prefix
            and pname.endswith(".bias") == is_bias
        ]
        if params:
            groups.append({
                "name": name,
                "params": params,
                "lr": lr * float(lr_mult[mult_key]),
                "weight_decay": 0.0 if is_bias else weight_decay,
            })
    return groups


def _owner(param_name: str) -> str | None:
    """The group prefix a parameter belongs to; None for the trunk and prep convs."""
    return next((p for p in _PREFIXES if param_name.startswith(p)), None)


class ParamGroups:
    """Per-layer lr multipliers and weight decay, turned into an optimizer for a network.

    Built from config (``task.param_groups``) and handed to the tasks; the base lr belongs to
    the optimizer factory alone, and each group's lr is that lr times its multiplier.
    """

    def __init__(self, lr_mult: Mapping[str, float], weight_decay: float = 0.0):
        self.lr_mult = {k: float(v) for k, v in lr_mult.items()}
        self.weight_decay = float(weight_decay)

    def optimizer(
        self, net: nn.Module, factory: Callable[..., torch.optim.Optimizer], include_side: bool = True,
    ) -> torch.optim.Optimizer:
        """``factory(groups)`` (a ``torch.optim`` class with its settings bound, e.g. the
        ``_partial_`` optimizer from config), with each group's lr scaled by its multiplier."""
        groups = build_param_groups(net, 1.0, self.weight_decay, self.lr_mult, include_side)
        for group in groups:
            group["lr_mult"] = group.pop("lr")
        optimizer = factory(groups)
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group["lr_mult"]
        return optimizer
