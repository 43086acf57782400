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


@pytest.mark.parametrize("overrides,expected", [
    # (iterations, threshold, near_previous, parent_weight, l2sp, test_flip): the one-shot defaults
    # chosen on the DAVIS 2016 train dev split apply with a parent on real data only
    ([], (100, 0.5, None, 0.0, 0.0, False)),
    (["parent_ckpt=p.ckpt"], (100, 0.5, None, 0.0, 0.0, False)),  # the generated default
    (["data.root=/d"], (100, 0.5, None, 0.0, 0.0, False)),  # -PN
    (["data.root=/d", "parent_ckpt=p.ckpt"], (200, 0.65, 0.25, 0.3, 1e-3, True)),
    (["data.root=/d", "parent_ckpt=p.ckpt", "online.with_parent=false"],
     (100, 0.5, None, 0.0, 0.0, False)),
    (["data.root=/d", "parent_ckpt=p.ckpt", "+preset=paper"], (500, 0.5, None, 0.0, 0.0, False)),
    (["data.root=/d", "parent_ckpt=p.ckpt", "+preset=reference"],
     (300, 0.5, None, 0.0, 0.0, False)),
])
def test_one_shot_defaults_follow_the_parent_and_the_data(overrides, expected, tmp_path):
    o = compose_cfg(["+experiment=online", *overrides], tmp_path).online
    assert (o.iterations, o.threshold, o.near_previous, o.parent_weight, o.l2sp,
            o.test_flip) == expected
    if not any(o.startswith("+preset") for o in overrides):  # a preset after it sets iterations
        os_row = compose_cfg(["+experiment=online_os", *overrides], tmp_path).online
        assert (os_row.iterations, os_row.threshold, os_row.near_previous,
                os_row.test_flip) == (0, 0.5, None, False)


def test_predict_keeps_100_updates_and_the_real_data_defaults_with_a_parent(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        with_parent = compose("predict", overrides=["input=x", "mask=y.png", "parent_ckpt=p.ckpt"])
        pn = compose("predict", overrides=["input=x", "mask=y.png", "parent_ckpt=null"])
    o = with_parent.online
    assert (o.iterations, o.threshold, o.near_previous, o.parent_weight, o.l2sp, o.test_flip) == (
        100, 0.65, 0.25, 0.3, 1e-3, False)
    o = pn.online
    assert (o.iterations, o.threshold, o.near_previous, o.parent_weight, o.l2sp, o.test_flip) == (
        100, 0.5, None, 0.0, 0.0, False)


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
