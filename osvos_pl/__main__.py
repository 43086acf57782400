"""``python -m osvos_pl +experiment=parent|online|contour [key=value ...]`` — the Hydra app."""

from __future__ import annotations

import logging
import signal
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
    without a traceback: they are the user's to fix, not bugs. A run stopped by SIGTERM exits
    with 143 (128 + SIGTERM) and says how to resume: Lightning turns SIGTERM into a
    ``SystemExit`` without a code, which would otherwise report success.
    """
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from osvos_pl.run import run  # heavy imports after Hydra has handled --help / --cfg

    try:
        record = run(cfg)
    except OSVOSError as exc:
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:
        msg = _interrupted_message()
        log.error("%s", msg)
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    return (record.get("global") or {}).get("J&F-Mean")


def _interrupted_message() -> str:
    from hydra.core.hydra_config import HydraConfig

    out = HydraConfig.get().runtime.output_dir
    return (
        f"interrupted by SIGTERM; no metrics.json was written to {out}. To resume, run the same "
        f"command into the same output dir (hydra.run.dir={out}; a sweep job: the same "
        "hydra.sweep.dir): training continues from checkpoints/last.ckpt (ckpt_path=auto), the "
        "online stage skips the sequences it finished"
    )


if __name__ == "__main__":
    main()
