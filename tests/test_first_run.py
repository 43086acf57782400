"""A new user's first runs: the quick start learns, runs say what happened and what to run next,
library noise stays out of the output, a misspelt key gets a suggestion."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from osvos_pl.model.checkpoint import load_checkpoint_weights, safe_load
from osvos_pl.model.osvos import OSVOSNet
from osvos_pl.runner.config import config_dir
from osvos_pl.runner.overrides import check_overrides
from osvos_pl.stages.records import read_record
from osvos_pl.utils.errors import ConfigError
from tests.helpers import compose_cfg, run_cli

#: No network for the weights download (an unreachable proxy), nothing cached: the quick start
#: as it runs on a fresh offline machine.
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "WANDB_MODE": "offline"}
TINY = ["data.generated.frames=4", "data.generated.train_sequences=1",
        "data.generated.val_sequences=1", "data.num_workers=0", "parent.updates=2",
        "parent.val_every=2"]
#: Library output a run must not show (issue 16), each by a phrase of its own.
NOISE = {
    "W&B anonymous setting": "anonymous setting",
    "Lightning's litlogger tip": "litlogger",
    "torch pytree LeafSpec deprecation": "LeafSpec",
    "validation_step without val_dataloader": "val_dataloader",
    "Lightning's weights_only note": "weights_only",
}


#: Lines Lightning prints by itself (issue 26): device and precision lines, its stop line, its
#: epoch-counting progress bars, and any warning raised from its own files.
LIGHTNING = ("GPU available", "TPU available", "HPU available", "Using bfloat16", "Using 16bit",
             "`Trainer.fit` stopped", "LOCAL_RANK", "Epoch 0", "Validation DataLoader",
             "pytorch_lightning/", "lightning_fabric/", "lightning/pytorch/")


def _lightning_lines(text: str) -> list[str]:
    return [line for line in text.replace("\r", "\n").splitlines()
            if any(phrase in line for phrase in LIGHTNING)]


def _offline_env(tmp: Path) -> dict:
    return {**OFFLINE, "TORCH_HOME": str(tmp / "torch"), "OSVOS_CACHE": str(tmp / "cache")}


def _output(proc) -> str:
    return proc.stdout + proc.stderr


def _summary(text: str) -> dict[str, str]:
    """``{"next": ..., "checkpoint": ..., ...}`` from the run's closing lines."""
    found = {}
    for key in ("next", "checkpoint", "record", "W&B run", "global J/F over"):
        match = re.search(rf"\] {re.escape(key)}:? (.*)$", text, re.MULTILINE)
        if match:
            found[key] = match.group(1)
    return found


def _assert_quiet(text: str) -> None:
    for what, phrase in NOISE.items():
        assert phrase not in text, f"{what} is printed:\n{text[-3000:]}"
    assert _lightning_lines(text) == [], "Lightning speaks for itself"


@pytest.fixture(scope="module")
def tiny_parent(tmp_path_factory) -> tuple[Path, str]:
    """A two-update parent run on a tiny generated dataset, offline, W&B offline."""
    tmp = tmp_path_factory.mktemp("first")
    proc = run_cli(["+experiment=parent", *TINY, "hydra.run.dir=run"], cwd=tmp,
                   env=_offline_env(tmp))
    return tmp, _output(proc)


@pytest.mark.slow
def test_parent_run_ends_with_paths_that_exist_and_a_next_command_that_composes(tiny_parent):
    tmp, text = tiny_parent
    summary = _summary(text)
    assert {"next", "checkpoint", "record", "W&B run", "global J/F over"} <= set(summary), text
    assert "J&F-Mean" in summary["global J/F over"] and "J-Mean" in summary["global J/F over"]
    checkpoint, resumable = re.match(r"(\S+) .*resumable: (\S+)", summary["checkpoint"]).groups()
    assert (tmp / checkpoint).is_file() and (tmp / resumable).is_file()
    assert (tmp / summary["record"]).is_file()
    wandb_run = summary["W&B run"].split()[0]
    assert (tmp / wandb_run).is_dir() and wandb_run in read_record(tmp / summary["record"])[
        "artifacts"]["wandb_run"]
    args = shlex.split(summary["next"])
    assert args[:3] == ["python", "-m", "osvos_pl"], summary["next"]
    experiment = next(a.split("=", 1)[1] for a in args if a.startswith("+experiment="))
    assert (Path(config_dir()) / "experiment" / f"{experiment}.yaml").is_file()
    parent_ckpt = next(a.split("=", 1)[1] for a in args if a.startswith("parent_ckpt="))
    assert (tmp / parent_ckpt).resolve() == (tmp / checkpoint).resolve()
    assert "data.generated.frames=4" in args, "the next stage keeps the data overrides"
    cfg = compose_cfg(args[3:], tmp)  # a command Hydra accepts as it stands
    assert cfg.stage == "online"


@pytest.mark.slow
def test_parent_run_says_where_data_and_weights_come_from_and_an_eta(tiny_parent):
    _, text = tiny_parent
    assert re.search(r"data: the generated default dataset .* at \S+generated-davis2016", text)
    assert "weights: a RANDOM VGG16 backbone" in text
    assert text.count("could not be downloaded") == 1, "the offline fallback is explained once"
    assert "model.weights=/path/to/vgg16-397923af.pth" in text
    assert re.search(r"plan: 2 updates \(parent.updates\) of 1 frame", text)


@pytest.mark.slow
def test_parent_run_shows_none_of_the_library_noise(tiny_parent):
    _assert_quiet(tiny_parent[1])


@pytest.mark.slow
def test_parent_export_is_weights_only_and_loads_as_parent_ckpt(tiny_parent):
    run = tiny_parent[0] / "run"
    export, resumable = run / "parent.ckpt", run / "checkpoints" / "last.ckpt"
    content = safe_load(export)
    assert set(content) == {"state_dict", "hyper_parameters", "trained_on"}
    trained_on = content["trained_on"]
    assert trained_on["data"] == "generated" and trained_on["random_backbone"] is True
    assert len(trained_on["sequences"]) == 1 and trained_on["updates"] == 2
    assert safe_load(resumable)["trained_on"] == trained_on, "Lightning's checkpoints say it too"
    assert export.stat().st_size < 0.4 * resumable.stat().st_size  # ~60 MB against ~180 MB
    net = OSVOSNet()
    assert load_checkpoint_weights(net, export) == "imagenet"
    assert torch.equal(net.fuse.weight, content["state_dict"]["net.fuse.weight"])


@pytest.mark.slow
def test_online_from_a_parent_checkpoint_neither_downloads_nor_warns(tiny_parent):
    tmp, _ = tiny_parent
    proc = run_cli(["+experiment=online", *TINY, "online.iterations=3",
                    "parent_ckpt=run/parent.ckpt", "hydra.run.dir=online"], cwd=tmp,
                   env=_offline_env(tmp))
    text = _output(proc)
    for absent in ("Downloading", "weights: a RANDOM", "could not be downloaded",
                   "ImageNet backbone", "stand-in data: on real frames"):
        assert absent not in text, text[-3000:]
    assert "weights: parent checkpoint run/parent.ckpt" in text
    assert re.search(r"next: python -m osvos_pl.report online", text)
    _assert_quiet(text)


@pytest.mark.slow
def test_predict_on_real_frames_with_the_quick_start_parent_warns_and_lightning_stays_quiet(
        tiny_parent, davis_sample):
    """The README's predict path with the quick-start parent (generated data, random backbone)
    on real frames: one warning with what to use instead; a fresh output folder has no
    temporaries to sweep; no Lightning line."""
    tmp, _ = tiny_parent
    frames = davis_sample / "JPEGImages" / "480p" / "blackswan"
    clip = tmp / "blackswan"
    clip.mkdir(exist_ok=True)
    for f in sorted(frames.glob("*.jpg"))[:3]:
        (clip / f.name).write_bytes(f.read_bytes())
    proc = run_cli([f"input={clip}", f"mask={davis_sample}/Annotations/480p/blackswan/00000.png",
                    "parent_ckpt=run/parent.ckpt", "online.iterations=2", "data.scale=0.25",
                    "data.num_workers=0", "output=predicted"], cwd=tmp,
                   module="osvos_pl.predict", env=_offline_env(tmp))
    text = _output(proc)
    assert text.count("was trained on the generated stand-in data") == 1, text[-3000:]
    assert "parent_ckpt=osvos-pytorch" in text
    assert "interrupted run" not in text, "a fresh output folder had temporaries swept"
    assert (tmp / "predicted" / "predict.log").is_file(), "the log goes into output="
    assert (tmp / "predicted" / ".hydra" / "config.yaml").is_file()
    assert not (tmp / "outputs").exists()
    assert len(list((tmp / "predicted" / "overlays" / "blackswan").glob("*.png"))) == 3
    _assert_quiet(text)


def test_misspelt_key_gets_did_you_mean_and_no_plus_hint(tmp_path):
    proc = run_cli(["+experiment=online", "online.iteration=5"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "did you mean online.iterations?" in proc.stderr
    assert "+online.iteration" not in proc.stderr
    assert proc.stderr.count("did you mean") == 1, "printed once"


@pytest.mark.parametrize("args,suggestion", [
    (["+experiment=online", "online.iteration=5"], "online.iterations"),
    (["+experiment=online", "+online.iteration=5"], "online.iterations"),
    (["data.scael=0.5"], "data.scale"),
    (["data=davis2017", "data.yaer=2017"], "data.year"),
    (["dat=davis2017"], "data"),
])
def test_near_misses_are_refused_with_the_real_key(args, suggestion):
    with pytest.raises(ConfigError, match=rf"did you mean {re.escape(suggestion)}\?"):
        check_overrides(args)


@pytest.mark.parametrize("args", [
    ["+experiment=online", "online.iterations=5"],
    ["+experiment=parent", "+trainer.limit_val_batches=2"],
    ["++online.iteration=5"],
    ["-m", "+experiment=online", "online.iterations=0,50", "hydra/launcher=joblib",
     "hydra.launcher.n_jobs=2"],
    ["foo.bar=1"],  # far from every key: Hydra's own message
])
def test_real_keys_legitimate_appends_and_far_keys_pass(args):
    check_overrides(args)


def test_predict_keys_are_checked_against_the_predict_config():
    check_overrides(["input=a.mp4", "mask=m.png", "resize_mask=true"], "predict")
    with pytest.raises(ConfigError, match=r"did you mean resize_mask\?"):
        check_overrides(["input=a.mp4", "resize_msk=true"], "predict")


@pytest.mark.slow
def test_quick_start_parent_reaches_val_j_of_half_and_the_online_stage_improves_on_it(tmp_path):
    """The README's quick start as it stands (default config, generated data, offline): the
    parent from a random backbone, then the online stage its run names as the next command."""
    proc = run_cli(["+experiment=parent", "hydra.run.dir=run"], cwd=tmp_path,
                   env=_offline_env(tmp_path))
    record = read_record(tmp_path / "run" / "metrics.json")
    print(f"quick start: val J-Mean {record['global']['J-Mean']:.3f}, J&F-Mean "
          f"{record['global']['J&F-Mean']:.3f}, {record['timing']['train_seconds']:.0f} s "
          f"training, {record['timing']['seconds_per_step']:.2f} s per update")
    assert record["config"]["model"]["weights"] == "imagenet"  # the default, unavailable here
    assert "weights: a RANDOM VGG16 backbone" in proc.stdout
    assert record["global"]["J-Mean"] >= 0.5
    _assert_quiet(_output(proc))
    nxt = shlex.split(_summary(proc.stdout + proc.stderr)["next"])
    assert nxt[:4] == ["python", "-m", "osvos_pl", "+experiment=online"]
    online = run_cli([*nxt[3:], "hydra.run.dir=online"], cwd=tmp_path, env=_offline_env(tmp_path))
    after = read_record(tmp_path / "online" / "metrics.json")["global"]
    print(f"quick start online: J-Mean {after['J-Mean']:.3f}, J&F-Mean {after['J&F-Mean']:.3f}")
    assert after["J&F-Mean"] > record["global"]["J&F-Mean"] + 0.05
    _assert_quiet(_output(online))
