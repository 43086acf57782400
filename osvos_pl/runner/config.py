"""Locating conf/ (checkout or wheel) and the OmegaConf resolvers the configs use."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

_PACKAGE = Path(__file__).resolve().parent.parent


def config_dir() -> str:
    """``conf/`` inside an installed wheel, else the checkout's top-level ``conf/``."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(
        f"cannot find the Hydra configs: neither {_PACKAGE / 'conf'} nor {_PACKAGE.parent / 'conf'} "
        "holds config.yaml — reinstall osvos-pl"
    )


def register_resolvers() -> None:
    """``${osvos.is_set:x}`` → x is not null; ``${osvos.any_set:x,y}`` → any of them is not null;
    ``${osvos.all_set:x,y}`` → none of them is null; ``${osvos.if_none:x,a,b}`` → a if x is null
    else b; ``${osvos.if_true:c,a,b}`` → a if c else b; ``${osvos.if_eq:x,y,a,b}`` → a if
    x == y else b."""
    if not OmegaConf.has_resolver("osvos.is_set"):
        OmegaConf.register_new_resolver("osvos.is_set", lambda x: x is not None)
    if not OmegaConf.has_resolver("osvos.any_set"):
        OmegaConf.register_new_resolver("osvos.any_set", lambda *xs: any(x is not None for x in xs))
    if not OmegaConf.has_resolver("osvos.all_set"):
        OmegaConf.register_new_resolver("osvos.all_set", lambda *xs: all(x is not None for x in xs))
    if not OmegaConf.has_resolver("osvos.if_true"):
        OmegaConf.register_new_resolver("osvos.if_true", lambda c, a, b: a if c else b)
    if not OmegaConf.has_resolver("osvos.if_none"):
        OmegaConf.register_new_resolver("osvos.if_none", lambda x, a, b: a if x is None else b)
    if not OmegaConf.has_resolver("osvos.if_eq"):
        OmegaConf.register_new_resolver("osvos.if_eq", lambda x, y, a, b: a if x == y else b)


register_resolvers()
