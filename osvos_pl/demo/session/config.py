"""predict's config as its command line composes it: the page runs predict's own run, so both
segment a clip the same way, and the launcher checks the demo's ``predict=[...]`` with it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from osvos_pl.utils.errors import ConfigError


def predict_config(overrides: Sequence[str], output: Path):
    """predict's config as its command line would compose it, output pinned to ``output``."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from osvos_pl.runner.config import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("predict", overrides=[*overrides, f"output={output}",
                                                 f"paths.output_dir={output}"])
    except HydraException as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
