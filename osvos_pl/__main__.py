"""``python -m osvos_pl +experiment=parent|online|contour [key=value ...]`` — the Hydra app."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from osvos_pl.config import config_dir
from osvos_pl.errors import OSVOSError

log = logging.getLogger("osvos_pl")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one stage; return the optimised metric (J&F-Mean) for Hydra sweepers.

    Input errors (bad data, bad config values) end the run with their message and exit code 2,
    without a traceback: they are the user's to fix, not bugs.
    """
    from osvos_pl.run import run  # heavy imports after Hydra has handled --help / --cfg

    try:
        record = run(cfg)
    except OSVOSError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return (record.get("global") or {}).get("J&F-Mean")


if __name__ == "__main__":
    main()
