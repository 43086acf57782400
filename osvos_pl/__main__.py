"""``python -m osvos_pl +experiment=parent|online|contour [key=value ...]`` — the Hydra app."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from osvos_pl.config import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one stage; return the optimised metric (J&F-Mean) for Hydra sweepers."""
    from osvos_pl.run import run  # heavy imports after Hydra has parsed --help / --cfg

    record = run(cfg)
    return (record.get("global") or {}).get("J&F-Mean")


if __name__ == "__main__":
    main()
