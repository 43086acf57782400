"""Checking config values up front, so a bad value is an error naming its key, not a traceback."""

from __future__ import annotations

from collections.abc import Container

from omegaconf import DictConfig

from osvos_pl.data.cache import MODES as DECODE_CACHES
from osvos_pl.model.loss import BALANCES, CALIBRATIONS
from osvos_pl.model.osvos import JOINT_HEADS
from osvos_pl.tasks.joint import OBJECT_MODES
from osvos_pl.tasks.schedules import SIDE_SCHEDULES
from osvos_pl.utils.errors import ConfigError

AUGMENTATIONS = ("paper", "pytorch", "strong", "shift", "none")
DEVICE_AUGMENTATIONS = ("pytorch", "strong", "shift", "none")  # osvos_pl.data.batch_augment


def _number(cfg: DictConfig, key: str, kind, low=None, high=None):
    value = cfg
    for part in key.split("."):
        value = value[part]
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{key}={value!r} is not {'an integer' if kind is int else 'a number'} — "
            f"fix it in conf/ or on the command line ({key}=...)"
        ) from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"{key}={value!r} is out of range [{low}, {high}]")
    return number


CONTOUR_SOURCES = {
    "masks": "the boundaries of the training sequences' object masks",
    "bsds": "a BSDS500-style root: images/<split>/*.jpg + boundaries/ or groundTruth/",
    "maps": "contour maps in DAVIS layout, <sequence>/NNNNN.png, e.g. DAVIS/Contours/480p",
}


def _check_training_data(cfg: DictConfig) -> None:
    """``data.decode_cache`` and ``data.augment_on`` (parent / contour training only)."""
    cache, where = cfg.data.get("decode_cache", "none"), cfg.data.get("augment_on", "workers")
    if cache not in DECODE_CACHES:
        raise ConfigError(f"data.decode_cache={cache!r}; choose {', '.join(DECODE_CACHES)}")
    if where not in ("workers", "device"):
        raise ConfigError(f"data.augment_on={where!r}; choose workers or device")
    if where == "device" and cfg.stage in ("parent", "contour") and \
            cfg.data.augment not in DEVICE_AUGMENTATIONS:
        raise ConfigError(f"data.augment_on=device runs data.augment="
                          f"{'|'.join(DEVICE_AUGMENTATIONS)}, not {cfg.data.augment!r} (paper "
                          "scales each frame to another size: keep data.augment_on=workers)")


def validate_config(cfg: DictConfig, stages: Container[str]) -> None:
    """Type and range checks of the knobs users override most: the one place they are checked."""
    if cfg.stage not in stages:
        raise ConfigError(f"stage={cfg.stage!r} is unknown; use +experiment=parent|online|contour")
    _number(cfg, "seed", int)
    _number(cfg, "data.scale", float, 1e-3, 4.0)
    _number(cfg, "data.year", int, 2016, 2017)
    _number(cfg, "data.batch_size", int, 1)
    _number(cfg, "data.num_workers", int, 0)
    _number(cfg, "online.iterations", int, 0)
    _number(cfg, "online.accumulate", int, 1)
    _number(cfg, "online.threshold", float, 0.0, 1.0)
    _number(cfg, "optim.optimizer.lr", float, 0.0)
    _number(cfg, "online.min_superpixels", int, 1)
    _number(cfg, "online.frozen_stages", int, 0, 5)
    _number(cfg, "online.finetune_scale", float, 1e-3, 4.0)
    if cfg.online.get("contour_scale") is not None:
        _number(cfg, "online.contour_scale", float, 1e-3, 4.0)
    if cfg.optim.get("finetune_lr") is not None:
        _number(cfg, "optim.finetune_lr", float, 0.0)
    for stage in ("parent", "contour"):
        _number(cfg, f"{stage}.updates", int, 1)
        _number(cfg, f"{stage}.accumulate", int, 1)
        _number(cfg, f"{stage}.frozen_stages", int, 0, 5)
        if cfg[stage].side_schedule not in SIDE_SCHEDULES:
            raise ConfigError(f"{stage}.side_schedule={cfg[stage].side_schedule!r} is unknown; "
                              f"choose one of {', '.join(SIDE_SCHEDULES)}")
    if cfg.data.augment not in AUGMENTATIONS:
        raise ConfigError(f"data.augment={cfg.data.augment!r}; choose {', '.join(AUGMENTATIONS)}")
    _check_training_data(cfg)
    online_augment = cfg.online.get("augment")
    if online_augment is not None and online_augment not in (*AUGMENTATIONS, "zoom"):
        raise ConfigError(f"online.augment={online_augment!r}; choose "
                          f"{', '.join(AUGMENTATIONS)} or zoom")
    _number(cfg, "online.views", int, 0)
    for key, choices in (("calibration", CALIBRATIONS), ("objects", OBJECT_MODES),
                         ("joint_balance", BALANCES), ("joint_head", JOINT_HEADS)):
        if key in cfg.online and cfg.online[key] not in choices:
            raise ConfigError(f"online.{key}={cfg.online[key]!r}; choose {', '.join(choices)}")
    _number(cfg, "online.l2sp", float, 0.0)
    source = cfg.contour.source
    if source not in CONTOUR_SOURCES:
        raise ConfigError(f"contour.source={source!r}; choose {', '.join(CONTOUR_SOURCES)}")
    if cfg.stage == "contour" and source != "masks" and not cfg.contour.get(f"{source}_root"):
        raise ConfigError(f"contour.source={source} needs contour.{source}_root=DIR "
                          f"({CONTOUR_SOURCES[source]})")
