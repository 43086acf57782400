"""The OSVOS network, its VGG16 weights, loss and optimizer groups. Pure torch."""

from osvos_pl.model.loss import class_balanced_bce
from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.model.param_groups import build_param_groups
from osvos_pl.model.releases import WeightsUnavailableError
from osvos_pl.model.weights import load_backbone

__all__ = [
    "OSVOSNet",
    "WeightsUnavailableError",
    "build_param_groups",
    "class_balanced_bce",
    "load_backbone",
]
