"""Scale-out on existing engines, surviving interruption, numerical faults, reproducibility.

- DDP: the parent trained by two CPU processes (gloo) through the CLI leaves one record and one
  W&B run, and its synced J/F equal a single-process validation of the same checkpoint.
- Launchers: plain DDP inside a multirun is refused; SLURM-started ranks pass; the SLURM launcher
  config becomes the sbatch script we mean; a submitit (local) online sweep completes.
- Interruption: a parent run killed (SIGTERM, SIGKILL) and re-run into the same dir resumes from
  ``checkpoints/last.ckpt`` and ends with ``parent.updates`` optimizer steps; the training
  stream picks up at the checkpoint's batch. (Group signals: tests/test_signals.py; random
  kills compared with uninterrupted runs: tests/test_soak.py.)
- NaN loss: the run stops, names the step and the fix, writes no record.
- Untrusted input and failing disks: a checkpoint that would run code when unpickled is refused
  (exit 2) and runs nothing, as ``parent_ckpt`` and as ``ckpt_path``; a refused run starts no W&B
  run; a full disk or a read-only folder while writing a checkpoint, a mask or a record gives
  our error naming the file (exit 2) and leaves no partial file.
- Reproducibility: one seed, one thread, two runs, the same numbers; the parent's weights do not
  depend on the number of data-loader workers.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from osvos_pl.stages.records import read_record
from tests.helpers import run_cli

TINY = ["data.scale=0.5", "data.num_workers=0", "data.generated.frames=6",
        "data.generated.train_sequences=2", "data.generated.val_sequences=2",
        "model.weights=null", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp*") if p.is_file()]


# --- 1. DDP -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ddp_parent_writes_one_record_one_wandb_run_and_the_single_process_jf(cache, tmp_path):
    # 5 frames x 3 val sequences = 15 frames: odd, so the DistributedSampler pads a duplicate
    data = ["data.scale=0.5", "data.num_workers=0", "data.generated.frames=5",
            "data.generated.train_sequences=1", "data.generated.val_sequences=3",
            "model.weights=null", "trainer.enable_progress_bar=false", "optim.optimizer.lr=1e-4",
            "parent.updates=2", "parent.accumulate=2", f"paths.cache_dir={cache}"]
    cwd = tmp_path / "ddp"
    cwd.mkdir()
    # no hydra.run.dir: Lightning relaunches rank 1 with the run dir rank 0 resolved (timestamp)
    run_cli(["+experiment=parent", *data, "trainer=ddp", "trainer.accelerator=cpu",
             "trainer.devices=2"], cwd=cwd, env={"WANDB_MODE": "offline"})
    records = list(cwd.rglob("metrics.json"))
    assert len(records) == 1, records
    run_dir = records[0].parent
    assert list((cwd / "outputs" / "parent" / "runs").iterdir()) == [run_dir]
    assert (run_dir / "train_ddp_process_1.log").is_file(), "rank 1 used another output dir"
    assert len(list(cwd.rglob("offline-run-*"))) == 1
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    ddp = read_record(records[0])
    assert ddp["timing"]["optimizer_steps"] == 2
    assert ddp["global"]["J-Mean"] > 0, "all-empty predictions would make the comparison moot"

    # the same checkpoint, one process: resuming at max_steps trains nothing, then validates
    run_cli(["+experiment=parent", *data, "trainer.accelerator=cpu", "logger=none",
             f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
             f"hydra.run.dir={tmp_path / 'single'}"], cwd=tmp_path)
    single = read_record(tmp_path / "single" / "metrics.json")
    assert single["timing"]["optimizer_steps"] == 2
    assert set(single["sequences"]) == set(ddp["sequences"]) == {
        "gen-val-00", "gen-val-01", "gen-val-02"}
    for name, row in single["sequences"].items():
        assert ddp["sequences"][name] == pytest.approx(row, abs=1e-9), name
    assert ddp["global"] == pytest.approx(single["global"], abs=1e-9)


@pytest.mark.slow
def test_plain_ddp_inside_a_multirun_is_refused(cache, tmp_path):
    proc = run_cli(["-m", "+experiment=parent", *TINY, "parent.updates=1", "logger=none",
                    "trainer=ddp", "trainer.accelerator=cpu", f"paths.cache_dir={cache}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "multirun" in proc.stderr and "hydra/launcher=slurm" in proc.stderr
    assert not list(tmp_path.rglob("metrics.json"))
    assert not list(tmp_path.rglob("train_ddp_process_*.log")), "a rank was relaunched"


@pytest.fixture
def multirun_hydra_config(tmp_path):
    """HydraConfig as inside a ``-m`` job (set directly; reset afterwards)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from osvos_pl.runner.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=parent", "hydra.mode=MULTIRUN"],
                      return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    yield
    HydraConfig.instance().cfg = None


def test_relaunch_guard_refuses_subprocess_ddp_and_passes_slurm_ranks(multirun_hydra_config,
                                                                      monkeypatch):
    from osvos_pl.stages.engine import refuse_relaunch_in_multirun
    from osvos_pl.utils.errors import ConfigError

    def trainer(devices: int) -> pl.Trainer:
        return pl.Trainer(accelerator="cpu", devices=devices, strategy="ddp", logger=False,
                          enable_progress_bar=False)

    with pytest.raises(ConfigError, match=r"trainer.devices=2 inside a Hydra multirun"):
        refuse_relaunch_in_multirun(trainer(2))
    refuse_relaunch_in_multirun(trainer(1))  # one process: nothing is relaunched
    for key, value in {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NAME": "osvos",
                       "SLURM_JOB_ID": "7", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                       "SLURM_NODEID": "0", "SLURM_NODELIST": "node1"}.items():
        monkeypatch.setenv(key, value)
    slurm = trainer(2)
    assert slurm.strategy.cluster_environment.creates_processes_externally
    refuse_relaunch_in_multirun(slurm)  # SLURM started the ranks (submitit): allowed


# --- 2. Cluster launch --------------------------------------------------------------------------

def _sbatch(overrides: list[str], tmp_path: Path, monkeypatch) -> str:
    """The sbatch script submitit would submit for a 2-job sweep with ``hydra/launcher=slurm``:
    the launcher's own ``launch()`` runs up to the submission, which is captured."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    from osvos_pl.runner.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm",
                                           f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides],
                      return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    captured = {}

    class Submitted(Exception):
        pass

    def map_array(executor, fn, *args):
        captured.update(executor._executor.parameters)
        raise Submitted

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    with pytest.raises(Submitted):
        launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    return _make_sbatch_string(command="python -m osvos_pl", folder=tmp_path, map_count=2,
                               **captured)


def test_slurm_launcher_asks_one_task_per_gpu_for_ddp(tmp_path, monkeypatch):
    script = _sbatch(["+experiment=parent", "trainer=ddp", "trainer.devices=4",
                      "trainer.num_nodes=2", "hydra.launcher.partition=gpu"], tmp_path, monkeypatch)
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu",
                 "--time=720", "--mem=64GB", "--cpus-per-task=8", "--signal=USR2@120",
                 "--array=0-1%2"):
        assert f"#SBATCH {line}\n" in script, (line, script)


def test_slurm_launcher_gives_online_jobs_one_gpu_each(tmp_path, monkeypatch):
    script = _sbatch(["+experiment=online", "hydra.launcher.timeout_min=30",
                      "hydra.launcher.array_parallelism=1"], tmp_path, monkeypatch)
    for line in ("--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--time=30",
                 "--array=0-1%1"):
        assert f"#SBATCH {line}\n" in script, (line, script)
    assert "--partition" not in script


@pytest.mark.slow
def test_submitit_local_online_sweep_gives_two_complete_records(cache, tmp_path):
    sweep = tmp_path / "sweep"
    run_cli(["-m", "+experiment=online", "hydra/launcher=submitit_local", "online.iterations=0,1",
             "data.scale=0.5", "data.num_workers=0", "data.generated.frames=4",
             "data.generated.train_sequences=1", "data.generated.val_sequences=1",
             "model.weights=null", "parent_ckpt=null", "logger=none",
             "trainer.enable_progress_bar=false", f"paths.cache_dir={cache}",
             f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    records = sorted((read_record(p) for p in sweep.glob("*/metrics.json")),
                     key=lambda r: r["config"]["online"]["iterations"])
    assert [r["config"]["online"]["iterations"] for r in records] == [0, 1]
    for r in records:
        assert set(r["sequences"]) == {"gen-val-00"}
        assert set(r["global"]) >= {"J&F-Mean", "J-Mean", "F-Mean"}
        assert all(math.isfinite(v) for v in r["global"].values())
    for job in ("0", "1"):
        assert len(list((sweep / job / "predictions" / "gen-val-00").glob("*.png"))) == 4
        assert list((sweep / ".submitit").rglob("*_result.pkl")), "not run through submitit"


# --- 3. Interruption ----------------------------------------------------------------------------

class _SigtermAt(pl.Callback):
    """Sends this process a real SIGTERM after batch ``batch_idx`` (Lightning's handler is in)."""

    def __init__(self, batch_idx: int):
        self.batch_idx = batch_idx

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch_idx:
            os.kill(os.getpid(), signal.SIGTERM)


class _Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_sigterm_checkpoint_holds_the_step_training_stopped_at(tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from osvos_pl.tasks.callbacks import CheckpointOnSigterm

    last = tmp_path / "checkpoints" / "last.ckpt"
    trainer = pl.Trainer(accelerator="cpu", max_steps=10, logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path,
                         callbacks=[_SigtermAt(batch_idx=2), CheckpointOnSigterm(last)])
    with pytest.raises(SIGTERMException):
        trainer.fit(_Tiny(), train_dataloaders=torch.utils.data.DataLoader(torch.randn(20, 2)))
    assert torch.load(last, weights_only=True)["global_step"] == 3  # batches 0, 1, 2 stepped


def test_training_draws_resume_the_stream_where_a_checkpoint_was_taken():
    from osvos_pl.data.datasets import TrainingDraws

    items, batch = list(range(7)), 2  # 4 batches an epoch, the last one short
    uninterrupted = TrainingDraws(items, batch, seed=5)
    stream = [key for _ in range(3) for key in uninterrupted]
    batches = [stream[i:min(i + batch, 7 * e + 7)] for e in range(3)
               for i in range(7 * e, 7 * e + 7, batch)]
    assert sorted(k for k, _ in stream[:7]) == items and stream[:7] != stream[7:14]
    assert [d for _, d in stream] == list(range(21))  # every draw numbered: seeds its augmentation
    for start in range(12):  # a resumed run: its loader starts at the checkpoint's batch
        resumed = TrainingDraws(items, batch, seed=5, start_batch=start)
        keys = [key for _ in range(3 - start // 4) for key in resumed]
        assert keys == [key for b in batches[start:] for key in b], start
    ranks = [list(TrainingDraws(items, 1, seed=5, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(d for _, d in ranks[0] + ranks[1]) == list(range(8))  # padded to 8, as DDP pads


def test_stale_temporaries_are_removed_and_final_files_kept(tmp_path):
    from osvos_pl.utils.atomic import atomic_write_json, remove_stale_temporaries

    atomic_write_json(tmp_path / "metrics.json", {"ok": 1})
    stale = [tmp_path / "checkpoints" / ".last.ckpt.k2j4x9_a.tmp.ckpt",
             tmp_path / "predictions" / "s" / ".00001.png.abcdefgh.tmp.png"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
        os.utime(path, (1e9, 1e9))  # left by a run before this one
    keep = [tmp_path / "notes.tmp.txt", tmp_path / "checkpoints" / "last.ckpt"]
    for path in keep:
        path.write_text("keep")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.is_file() for p in [*keep, tmp_path / "metrics.json"])
    assert not any(p.exists() for p in stale)


def test_resume_path_takes_the_newest_of_last_and_slurm_hpc_checkpoints(tmp_path):
    from osvos_pl.stages.train import resume_path

    cfg = "auto"
    assert resume_path(cfg, tmp_path) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_text("x")
    assert resume_path(cfg, tmp_path) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # what Lightning writes on SLURM's SIGUSR1
    hpc.write_text("y")
    os.utime(last, (time.time() - 60, time.time() - 60))
    assert resume_path(cfg, tmp_path) == str(hpc)
    os.utime(last, None)
    os.utime(hpc, (time.time() - 60, time.time() - 60))
    assert resume_path(cfg, tmp_path) == str(last)
    assert resume_path("none", tmp_path) is None


def test_an_explicit_ckpt_path_that_is_not_there_is_refused_naming_it(tmp_path):
    from osvos_pl.stages.train import resume_path
    from osvos_pl.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="ckpt_path=.*nope.ckpt: no such checkpoint"):
        resume_path(str(tmp_path / "nope.ckpt"), tmp_path)
    (tmp_path / "there.ckpt").write_bytes(b"x")
    assert resume_path(str(tmp_path / "there.ckpt"), tmp_path) == str(tmp_path / "there.ckpt")


UPDATES = 5


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_parent_run_resumes_to_the_same_number_of_steps(sig, cache, tmp_path):
    run_dir = tmp_path / "run"
    args = ["+experiment=parent", *TINY, "data.generated.frames=4",
            "data.generated.train_sequences=1", "data.generated.val_sequences=1",
            f"parent.updates={UPDATES}", "parent.accumulate=1", "parent.checkpoint_every=1",
            "logger=none", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "osvos_pl", *args], cwd=tmp_path, env=env,
                                stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while not last.is_file():
                assert proc.poll() is None, (tmp_path / "err.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.05)
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "err.txt").read_text()
    assert not (run_dir / "metrics.json").exists()
    stopped_at = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 1 <= stopped_at < UPDATES, "the kill came after training: nothing was interrupted"
    if sig == signal.SIGTERM:
        # Lightning turns SIGTERM into SystemExit(None), i.e. exit 0; the runner makes it 143
        assert code == 128 + signal.SIGTERM, stderr[-3000:]
        assert "interrupted by SIGTERM" in stderr and f"hydra.run.dir={run_dir}" in stderr
        assert _temporaries(run_dir) == []
    else:
        assert code == -signal.SIGKILL
        # a SIGKILL during a checkpoint save leaves its temporary: plant one, the re-run removes it
        (run_dir / "checkpoints" / ".last.ckpt.zz9y8x7w.tmp.ckpt").write_bytes(b"half written")

    proc = run_cli(args, cwd=tmp_path)
    assert f"Restoring states from the checkpoint path at {last}" in proc.stdout + proc.stderr
    record = read_record(run_dir / "metrics.json")
    assert record["timing"]["optimizer_steps"] == UPDATES
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == UPDATES
    assert _temporaries(run_dir) == []


# --- 4. Numerical faults ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_finite_loss_guard_names_step_and_fix(value):
    from osvos_pl.tasks.callbacks import FiniteLossGuard, NonFiniteLossError

    trainer = SimpleNamespace(global_step=7)
    guard = FiniteLossGuard()
    guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.3)}, None, 6)  # finite: fine
    with pytest.raises(NonFiniteLossError, match=r"at optimizer step 7 \(batch 6\).*optim\.optimizer\.lr"):
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(value)}, None, 6)


@pytest.mark.slow
def test_nan_loss_stops_the_run_naming_step_and_fix(cache, tmp_path):
    proc = run_cli(["+experiment=parent", *TINY, "parent.updates=4", "parent.accumulate=1",
                    "optim.optimizer.lr=1e30", "logger=none", f"paths.cache_dir={cache}",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert re.search(r"error: loss is (nan|inf|-inf) at optimizer step \d+", proc.stderr), proc.stderr
    assert "lower the learning rate (optim.optimizer.lr" in proc.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "parent.ckpt").exists()


# --- 5. Untrusted checkpoints, failing disks, refused runs -----------------------------------

class _Payload:
    """Unpickling this runs code: here it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _booby_trapped_checkpoint(path: Path, marker: Path) -> Path:
    """An OSVOS-shaped checkpoint whose hyper-parameters would run code when unpickled."""
    from osvos_pl.model.factory import build_network

    net = build_network(weights=None)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"normalization": "imagenet", "note": _Payload(marker)}}, path)
    return path


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    from osvos_pl.model.checkpoint import UnsafeCheckpointError, safe_load

    evil = _booby_trapped_checkpoint(tmp_path / "shared.ckpt", tmp_path / "proof")
    torch.load(evil, weights_only=False)  # the trap is real: trusting it creates the file
    assert (tmp_path / "proof").exists()
    marker = tmp_path / "pwned"
    evil = _booby_trapped_checkpoint(tmp_path / "shared.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError, match=r"cannot load .*shared\.ckpt safely"):
        safe_load(evil)
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["parent_ckpt", "ckpt_path"])
def test_booby_trapped_checkpoint_through_the_cli_exits_2_and_runs_nothing(how, cache, tmp_path):
    marker = tmp_path / "pwned"
    evil = _booby_trapped_checkpoint(tmp_path / "shared.ckpt", marker)
    stage = "online" if how == "parent_ckpt" else "parent"  # ckpt_path: a resume
    proc = run_cli([f"+experiment={stage}", *TINY, "online.iterations=1", "parent.updates=2",
                    f"{how}={evil}", "logger=none", f"paths.cache_dir={cache}",
                    f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"cannot load {evil} safely" in proc.stderr  # says why ...
    assert "arbitrary unpickling" in proc.stderr and "weights_only=False" in proc.stderr  # ... and how
    assert not marker.exists(), "unpickling the checkpoint ran its code"
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["online.iterations=-1", "data.root=/nonexistent/DAVIS"],
                         ids=["iterations", "data-root"])
def test_a_refused_run_starts_no_wandb_run(bad, cache, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(["+experiment=online", *TINY, bad, f"paths.cache_dir={cache}",
                    f"hydra.run.dir={run_dir}"], cwd=tmp_path, check=False,
                   env={"WANDB_MODE": "offline"})  # logger=wandb, as by default
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert bad.split("=")[0] in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("wandb")), "W&B started before the run was refused"
    leftovers = {p.relative_to(run_dir).parts[0] for p in run_dir.rglob("*")} - {".hydra"}
    assert leftovers <= {"__main__.log"}, leftovers


def test_full_disk_or_read_only_folder_gives_our_error_and_no_partial_file(tmp_path, monkeypatch):
    import errno
    import shutil

    from osvos_pl.data.io import write_mask
    from osvos_pl.stages.records import write_record
    from osvos_pl.utils import atomic
    from osvos_pl.utils.errors import OutputError

    masks = tmp_path / "predictions" / "seq"
    write_mask(masks / "00000.png", np.zeros((8, 8), np.uint8), palette=False)

    def refuse(code):
        def replace(src, dst):
            raise OSError(code, os.strerror(code), str(dst))
        return replace

    monkeypatch.setattr(os, "replace", refuse(errno.ENOSPC))
    with pytest.raises(OutputError, match=r"cannot write .*00001\.png: the disk is full.*"
                                          r"hydra\.run\.dir=DIR"):
        write_mask(masks / "00001.png", np.zeros((8, 8), np.uint8), palette=False)
    monkeypatch.setattr(os, "replace", refuse(errno.EROFS))
    with pytest.raises(OutputError, match=r"metrics\.json: .* is not writable \(Read-only file "
                                          r"system\) — make it writable"):
        write_record(tmp_path / "metrics.json", {"global": {}})
    monkeypatch.undo()
    # torch.save on a full disk: a RuntimeError ("unexpected pos ..."), not ENOSPC
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(OutputError, match=r"last\.ckpt: the disk is full"):
        with atomic.atomic_path(tmp_path / "checkpoints" / "last.ckpt") as tmp:
            tmp.write_bytes(b"half a checkpoint")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="a bug"):  # other failures stay what they are
        with atomic.atomic_path(tmp_path / "other.json"):
            raise ValueError("a bug")
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["predictions/seq/00000.png"], "a partial or temporary file was left"


# A launcher that makes the rename of one output fail, as a full disk would.
_FAIL_WRITE = """
import errno, os, runpy, sys
real, target = os.replace, os.environ["FAIL_WRITE"]
def replace(src, dst, *args, **kwargs):
    if os.fspath(dst).endswith(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(dst))
    return real(src, dst, *args, **kwargs)
os.replace = replace
runpy.run_module("osvos_pl", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage, target", [
    ("parent", "checkpoints/last.ckpt"),
    ("online", "predictions/gen-val-00/00003.png"),
    ("online", "sequences/gen-val-00.json"),
], ids=["checkpoint", "mask", "record"])
def test_full_disk_during_a_run_exits_2_naming_the_file(stage, target, cache, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", _FAIL_WRITE, f"+experiment={stage}", *TINY, "parent.updates=2",
         "parent.checkpoint_every=1", "online.iterations=1", "logger=none",
         f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "FAIL_WRITE": target, "HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"error: cannot write {run_dir / target}: the disk is full" in proc.stderr
    assert not (run_dir / target).exists() and not (run_dir / "metrics.json").exists()
    assert _temporaries(run_dir) == []


# --- 6. Reproducibility -------------------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_on_cpu_gives_the_same_record_twice(cache, tmp_path):
    records, masks = [], []
    for name in ("a", "b"):
        run_cli(["+experiment=online", *TINY, "online.iterations=3", "num_threads=1", "seed=7",
                 "logger=none", f"paths.cache_dir={cache}", f"hydra.run.dir={tmp_path / name}"],
                cwd=tmp_path)
        records.append(read_record(tmp_path / name / "metrics.json"))
        pngs = sorted((tmp_path / name / "predictions").rglob("*.png"))
        masks.append({p.relative_to(tmp_path / name): p.read_bytes() for p in pngs})
    first, second = records
    assert first["global"]["J-Mean"] > 0, "empty predictions would make the comparison moot"
    assert first["global"] == second["global"]
    assert first["sequences"] == second["sequences"]
    assert len(masks[0]) == 12 and masks[0] == masks[1]


@pytest.mark.slow
def test_parent_weights_depend_on_the_seed_only_not_on_the_workers(cache, tmp_path):
    weights = []
    for workers in (0, 2):  # augmentation draws are seeded by the draw, not by the worker
        run_dir = tmp_path / f"w{workers}"
        run_cli(["+experiment=parent", *TINY, f"data.num_workers={workers}", "parent.updates=3",
                 "parent.accumulate=2", "num_threads=1", "seed=7", "logger=none",
                 f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        weights.append(torch.load(run_dir / "parent.ckpt", weights_only=True)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
