"""``python -m osvos_pl +experiment=parent|online|contour [key=value ...]`` — the Hydra app."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from osvos_pl.runner.config import config_dir
from osvos_pl.runner.exits import exit_codes
from osvos_pl.runner.preflight import check_run, preflight

USAGE = "python -m osvos_pl +experiment=parent|online|contour [key=value ...] (--help lists every key)"


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one stage; return the optimised metric (J&F-Mean) for Hydra sweepers."""
    from osvos_pl.runner.run import run  # heavy imports after Hydra has handled --help / --cfg

    with exit_codes(on_sigterm=interrupted_message):
        record = run(cfg)
    return (record.get("global") or {}).get("J&F-Mean")


def interrupted_message() -> str:
    from hydra.core.hydra_config import HydraConfig

    out = HydraConfig.get().runtime.output_dir
    return (
        f"interrupted by SIGTERM; no metrics.json was written to {out}. To resume, run the same "
        f"command into the same output dir (hydra.run.dir={out}; a sweep job: the same "
        "hydra.sweep.dir): training continues from checkpoints/last.ckpt (ckpt_path=auto), the "
        "online stage skips the sequences it finished"
    )


if __name__ == "__main__":
    preflight("config", USAGE, check_run)  # a misspelt key or bad value: one line, before any folder
    main()
