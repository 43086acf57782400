"""Every config composes, every experiment file applies, and the CLI's --help/--cfg work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from osvos_pl.runner.config import config_dir
from osvos_pl.runner.run import STAGES
from osvos_pl.runner.validation import validate_config
from osvos_pl.utils.errors import ConfigError
from tests.helpers import compose_cfg

EXPERIMENTS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))


def test_experiment_files_exist():
    assert {"parent", "online", "contour", "online_bs", "online_pn", "online_os"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    cfg = compose_cfg([f"+experiment={experiment}", "logger=none"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.stage in ("parent", "online", "contour")
    assert cfg.experiment == experiment
    validate_config(cfg, STAGES)
    dm = instantiate(cfg.data, normalization="imagenet")
    assert dm.year in (2016, 2017)


def test_ablation_configs_mean_what_they_say(tmp_path):
    os_cfg = compose_cfg(["+experiment=online_os"], tmp_path)
    assert os_cfg.online.iterations == 0
    bs_cfg = compose_cfg(["+experiment=online_bs", "contour_ckpt=c.ckpt"], tmp_path)
    assert bs_cfg.snapping is False
    full = compose_cfg(["+experiment=online", "contour_ckpt=c.ckpt"], tmp_path)
    assert full.snapping is True
    assert compose_cfg(["+experiment=online"], tmp_path).snapping is False


def test_generated_default_uses_short_schedule_and_real_data_the_paper_one(tmp_path):
    quick = compose_cfg(["+experiment=parent"], tmp_path).parent
    assert (quick.updates, quick.accumulate) == (300, 1)  # the quick start's budget (README)
    paper = compose_cfg(["+experiment=parent", "data.root=/d"], tmp_path).parent
    assert (paper.updates, paper.accumulate) == (50000, 10)


@pytest.mark.parametrize("override,key", [
    ("online.iterations=abc", "online.iterations"),
    ("data.scale=0", "data.scale"),
    ("online.threshold=2", "online.threshold"),
])
def test_bad_config_values_name_the_key(override, key, tmp_path):
    cfg = compose_cfg(["+experiment=online", override], tmp_path)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg, STAGES)


def test_cli_help_and_cfg_job():
    out = subprocess.run([sys.executable, "-m", "osvos_pl", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "experiment" in out and "online" in out
    out = subprocess.run([sys.executable, "-m", "osvos_pl", "+experiment=online_os", "--cfg", "job"],
                         capture_output=True, text=True, check=True).stdout
    cfg = OmegaConf.create(out)
    assert cfg.stage == "online" and cfg.online.iterations == 0
