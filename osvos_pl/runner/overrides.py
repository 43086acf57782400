"""Command-line overrides checked against the real config keys before Hydra composes.

For ``online.iteration=5`` Hydra answers "To append to your config use +online.iteration=5",
and a user who follows that hint gets a run that silently ignores the value. Here a key that is
not in the config but is a near miss of one that is (a sibling with a similar name) is refused
with "did you mean online.iterations?" — whether written ``key=`` or ``+key=``. ``++key=``
forces a new key through; keys far from every real one are left to Hydra's own message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from osvos_pl.runner.config import config_dir
from osvos_pl.utils.errors import ConfigError

_ABSENT = object()
#: How alike (difflib ratio) a key must be to a real sibling to count as its misspelling.
CUTOFF = 0.75


def _key_overrides(args: Iterable[str]):
    """Hydra's parse of the ``key=value`` arguments (flags like ``-m``, ``--cfg job`` skipped)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    return OverridesParser.create().parse_overrides(candidates)


def _is_group(key: str, conf: Path) -> bool:
    """Whether ``key`` selects a config group (``data``, ``hydra/launcher``, ``experiment``)."""
    return "/" in key or (conf / key).is_dir() or key.startswith("hydra/")


def _compose(config_name: str, group_overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name, overrides=group_overrides, return_hydra_config=True)


def _parent_node(cfg: DictConfig, key: str) -> tuple[DictConfig | None, str, str]:
    """``(node holding key's last part, parent path, last part)``; node None if there is none."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=_ABSENT,
                            throw_on_resolution_failure=False) if parent else cfg
    return (node if isinstance(node, DictConfig) else None), parent, leaf


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` (dotted) exists in ``cfg``, with any value (``???`` included)."""
    node, _, leaf = _parent_node(cfg, key)
    return node is not None and leaf in list(node.keys())


def near_miss(cfg: DictConfig, key: str) -> str | None:
    """The real key ``key`` most likely misspells (a sibling with a close name), else None."""
    node, parent, leaf = _parent_node(cfg, key)
    if node is None:
        return None
    match = difflib.get_close_matches(leaf, [str(k) for k in node.keys()], n=1, cutoff=CUTOFF)
    return f"{parent}.{match[0]}" if parent and match else (match[0] if match else None)


def check_overrides(args: Sequence[str], config_name: str = "config") -> None:
    """Raise :class:`ConfigError` for an override whose key is a near miss of a real one.

    Group selections (``data=davis2017``, ``+experiment=online``) are composed first, so the
    keys they bring count as real. Anything Hydra itself would reject for another reason
    (a bad group option, bad syntax) is left for Hydra to report.
    """
    from hydra.core.override_parser.types import OverrideType

    try:
        overrides = _key_overrides(args)
    except Exception:  # noqa: BLE001 — bad syntax: Hydra's own message says where
        return
    conf = Path(config_dir())
    groups = [o.input_line for o in overrides if _is_group(o.key_or_group, conf)]
    keys = [o for o in overrides if not _is_group(o.key_or_group, conf)
            and o.type in (OverrideType.CHANGE, OverrideType.ADD)]
    if not keys:
        return
    try:
        cfg = _compose(config_name, groups)
    except Exception:  # noqa: BLE001 — a bad group option: Hydra's message lists the options
        return
    for override in keys:
        key = override.key_or_group
        suggestion = None if has_key(cfg, key) else near_miss(cfg, key)
        if suggestion is not None:
            raise ConfigError(
                f"{override.input_line}: {key} is not a config key; did you mean {suggestion}? "
                f"(python -m osvos_pl{'.predict' if config_name == 'predict' else ''} ... "
                "--cfg job lists every key)"
            )

