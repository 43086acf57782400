"""A command's arguments checked before Hydra starts it: before any output folder, log file,
W&B run or download exists, a refused command leaves nothing behind.

Hydra makes the run's folder (``.hydra/``, the log) before the task function runs, and its
own errors (a missing ``???`` value, an unknown group option, bad syntax) end in a traceback or
exit code 1. Here the config is composed once as Hydra will compose it; what cannot work is
refused in one line on stderr with exit code 2 (``osvos_pl.runner.exits``), as every input error is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from osvos_pl.utils.errors import ConfigError

#: What a command's composed config must satisfy before it starts.
Check = Callable[[DictConfig], None]


def compose(config_name: str, args: Sequence[str]) -> DictConfig:
    """The config as ``@hydra.main`` will see it (hydra keys included), or a ConfigError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    from osvos_pl.runner.config import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(args), return_hydra_config=True)
    except HydraException as exc:
        message = " ".join(str(exc).split()).split(" Config search path")[0]
        raise ConfigError(message) from None


def missing_keys(cfg: DictConfig) -> list[str]:
    """Keys left ``???`` outside ``hydra.*``: values the command cannot run without (read
    unresolved: ``${hydra:...}`` means nothing before Hydra runs)."""
    def walk(node, prefix: str):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{prefix}{key}.")
        elif node == "???":
            yield prefix.rstrip(".")

    plain = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    return sorted(walk({k: v for k, v in plain.items() if k != "hydra"}, ""))


def preflight(config_name: str, usage: str, check: Check | None = None,
              args: Sequence[str] | None = None,
              required: Callable[[DictConfig], list[str]] = missing_keys) -> None:
    """Check this process's command line for ``config_name``; exit 2 with one line if it cannot
    work: no arguments where some are required (the usage line), a misspelt key, a value
    ``required`` names as not given (default: the ``???`` ones), a Hydra composition error, or
    whatever ``check`` refuses."""
    from osvos_pl.runner.exits import EXIT_INPUT_ERROR, exit_codes
    from osvos_pl.runner.overrides import check_overrides

    args = list(sys.argv[1:] if args is None else args)
    with exit_codes():
        check_overrides(args, config_name)
        if any(a.startswith("-") for a in args):  # --help, --cfg, -m: Hydra's to handle
            return
        cfg = compose(config_name, args)
        missing = required(cfg)
        if missing and not args:
            print(f"usage: {usage}", file=sys.stderr)
            raise SystemExit(EXIT_INPUT_ERROR)
        if missing:
            given = " and ".join(f"{k}=" for k in missing)
            raise ConfigError(f"{given} {'is' if len(missing) == 1 else 'are'} required — usage: "
                              f"{usage}")
        if check is not None:
            check(cfg)


def check_run(cfg: DictConfig) -> None:
    """The config checks of ``osvos_pl.runner.validation`` (types, ranges, names), as the runner does."""
    from osvos_pl.runner.run import STAGES
    from osvos_pl.runner.validation import validate_config

    validate_config(cfg, STAGES)


def check_predict(cfg: DictConfig) -> None:
    """predict's inputs: the config, the clip (frames readable, one size), its masks (readable,
    the frames' size, not empty) — or, without ``mask=``, its GrabCut prompt (``box=``, ``fg=``,
    ``bg=``: well-formed, inside the frame) — and the checkpoint files it names (readable as
    checkpoints)."""
    from hydra.utils import instantiate

    from osvos_pl.model.checkpoint import check_checkpoint_file
    from osvos_pl.model.releases import PARENT, fetch_parent

    check_run(cfg)
    if cfg.get("mask") is None:
        check_prompt(cfg)
    else:
        dm = instantiate(cfg.data, normalization="imagenet")
        dm.check(dm.eval_names())
    for key in ("parent_ckpt", "contour_ckpt"):
        if cfg.get(key) and str(cfg[key]) == PARENT.name:
            fetch_parent(cfg.paths.cache_dir)  # downloaded now: offline, no folder is left
        elif cfg.get(key):
            check_checkpoint_file(cfg[key], key)  # a shipped parent's name: its SHA-256 too


def predict_missing(cfg: DictConfig) -> list[str]:
    """predict's values not given: the ``???`` ones, and ``mask`` unless ``box`` / ``fg`` (a
    GrabCut prompt) stands in for it."""
    prompt = cfg.get("box") is not None or bool(cfg.get("fg"))
    return sorted(missing_keys(cfg) + ([] if cfg.get("mask") is not None or prompt else ["mask"]))


def check_prompt(cfg: DictConfig) -> None:
    """A first mask to come from GrabCut: ``box=`` and/or ``fg=`` given, the box and points
    inside the clip's first frame (whose frames are checked on the way)."""
    from osvos_pl.data.frames import FrameSource
    from osvos_pl.tasks.first_mask import parse_box, parse_points

    if cfg.get("box") is None and not cfg.get("fg"):
        raise ConfigError("mask= is required, or box=x0,y0,x1,y1 (and/or fg=[[x,y],...]) to make "
                          "the first mask with GrabCut")
    size = FrameSource(cfg.input).size
    if cfg.box is not None:
        parse_box(cfg.box, size)
    for key in ("fg", "bg"):
        parse_points(cfg.get(key) or [], key, size)
