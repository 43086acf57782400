"""Stop signals as clusters and terminals send them: to the whole process group, workers included.

- Data-loader workers leave SIGTERM (unless their parent sends it), SIGINT and SIGUSR1/2 to the
  main process, and are seeded exactly as Lightning seeds them.
- Outside training a stop signal ends the command at once with 143 (SIGTERM) or 130 (SIGINT)
  and the resume hint; in training, after the optimizer step in progress, with ``last.ckpt``.
- Through the CLI: SIGTERM to the process group of a parent run with two workers, SIGINT to an
  online run, SIGUSR1 under SLURM (Lightning's requeue checkpoint, training goes on).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, Dataset

from osvos_pl.data.workers import loader_options, quiet_worker_init
from osvos_pl.runner.exits import EXIT_SIGINT, EXIT_SIGTERM, exit_codes
from osvos_pl.stages.records import read_record
from osvos_pl.tasks.callbacks import CheckpointOnSigterm
from osvos_pl.utils.signals import stop_if_signalled
from tests.helpers import run_cli

TINY = ["data.scale=0.5", "data.num_workers=2", "data.generated.frames=6",
        "data.generated.train_sequences=2", "data.generated.val_sequences=2",
        "model.weights=null", "num_threads=1", "logger=none", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


# --- Workers ------------------------------------------------------------------------------------

class _Draws(Dataset):
    """What a worker's random generators give: torch, numpy and Python's."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple:
        return torch.rand(1).item(), float(np.random.rand()), random.random()


def _draws(worker_init_fn) -> list:
    torch.manual_seed(3)  # the workers' base seed comes from the main process's generator
    loader = DataLoader(_Draws(), batch_size=None, num_workers=2, worker_init_fn=worker_init_fn)
    return list(loader)


def test_worker_init_seeds_workers_as_lightning_does(monkeypatch):
    monkeypatch.setenv("PL_SEED_WORKERS", "1")  # what seed_everything(workers=True) sets
    lightnings = _draws(partial(pl_worker_init_function, rank=0))
    assert _draws(partial(quiet_worker_init, rank=0)) == lightnings
    # a loader no trainer runs was never seeded by Lightning, and is not now
    assert _draws(partial(quiet_worker_init, rank=None)) == _draws(None) != lightnings


def test_workers_ignore_group_signals_but_exit_when_their_parent_terminates_them():
    loader = DataLoader(_Draws(), batch_size=None, num_workers=2, **loader_options(2))
    batches = iter(loader)
    workers = batches._workers
    pids = [str(w.pid) for w in workers]
    for name in ("TERM", "INT", "USR1", "USR2"):  # from another process, as timeout / scancel
        subprocess.run(["kill", f"-{name}", *pids], check=True)  # even while the workers start
    time.sleep(0.5)
    assert all(w.is_alive() for w in workers)
    assert len(list(batches)) == 8  # the loader goes on
    for w in workers:  # the parent's SIGTERM (DataLoader shutdown, multiprocessing at exit)
        if w.is_alive():
            os.kill(w.pid, signal.SIGTERM)
    for w in workers:
        w.join(timeout=10)
        assert w.exitcode == 0


# --- In process ---------------------------------------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, EXIT_SIGTERM), (signal.SIGINT, EXIT_SIGINT)],
                         ids=["SIGTERM", "SIGINT"])
def test_stop_signal_outside_training_exits_at_once_with_the_hint(sig, code, capsys):
    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as stopped, exit_codes(
            on_sigterm=lambda: "interrupted by SIGTERM; run it again into the same dir"):
        os.kill(os.getpid(), sig)
        time.sleep(30)  # never reached: the handler raises
    assert stopped.value.code == code
    name = signal.Signals(sig).name
    assert f"error: interrupted by {name}; run it again" in capsys.readouterr().err
    assert signal.getsignal(sig) is before


class _SignalAt(pl.Callback):
    """Sends this process ``sig`` after batch ``batch_idx`` (the handlers are in by then)."""

    def __init__(self, batch_idx: int, sig: int = signal.SIGTERM):
        self.batch_idx, self.sig = batch_idx, sig

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch_idx:
            os.kill(os.getpid(), self.sig)


class _Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, callback: pl.Callback, accumulate: int) -> None:
    last = tmp_path / "checkpoints" / "last.ckpt"
    trainer = pl.Trainer(accelerator="cpu", max_steps=10, accumulate_grad_batches=accumulate,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[callback, CheckpointOnSigterm(last)])
    trainer.fit(_Tiny(), train_dataloaders=DataLoader(torch.randn(40, 2)))


def test_sigterm_mid_accumulation_stops_after_the_optimizer_step(tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    with pytest.raises(SIGTERMException):
        _fit(tmp_path, _SignalAt(batch_idx=3), accumulate=3)  # batch 3 opens window 2
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2  # window 2 (batches 3, 4, 5) finished and stepped
    assert ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"] == 6


def test_sigint_in_training_checkpoints_and_exits_130(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped, exit_codes():
        _fit(tmp_path, _SignalAt(batch_idx=0, sig=signal.SIGINT), accumulate=2)
    assert stopped.value.code == EXIT_SIGINT
    assert "interrupted by SIGINT" in capsys.readouterr().err
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 1


class _Validated(_Tiny):
    """Records the step of every validation (before any callback's ``on_validation_end``)."""

    def __init__(self):
        super().__init__()
        self.validated_at = []

    def validation_step(self, batch, batch_idx) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        self.validated_at.append(self.trainer.global_step)


def _fit_validating(root: Path, module: _Validated, callbacks=(), ckpt_path=None) -> None:
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, val_check_interval=2,
                         check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=root,
                         callbacks=[*callbacks, CheckpointOnSigterm(root / "last.ckpt")])
    data = DataLoader(torch.randn(20, 2))
    trainer.fit(module, train_dataloaders=data, val_dataloaders=data, ckpt_path=ckpt_path)


def test_a_stop_where_validation_is_due_validates_first_and_the_resume_goes_on(tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    uninterrupted = _Validated()
    _fit_validating(tmp_path / "a", uninterrupted)
    assert uninterrupted.validated_at == [2, 4, 6]
    stopped, resumed = _Validated(), _Validated()
    with pytest.raises(SIGTERMException):  # batch 1 ends step 2, after which validation is due
        _fit_validating(tmp_path / "b", stopped, [_SignalAt(batch_idx=1)])
    _fit_validating(tmp_path / "b", resumed, ckpt_path=tmp_path / "b" / "last.ckpt")
    assert stopped.validated_at + resumed.validated_at == [2, 4, 6]


class _SignalAtTrainEnd(pl.Callback):
    def on_train_end(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_after_the_last_step_still_stops_the_run(tmp_path):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    with pytest.raises(SIGTERMException):  # not: the run goes on to its final validation
        _fit(tmp_path, _SignalAtTrainEnd(), accumulate=1)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10


def test_a_signal_a_trainer_noted_but_did_not_act_on_stops_at_the_next_safe_point():
    with pytest.raises(SystemExit) as stopped, exit_codes():
        ours = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda s, f: ours(s, f))  # a trainer's, calling ours
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. during the trainer's last batch: noted only
        signal.signal(signal.SIGTERM, ours)  # the trainer's teardown gives ours back
        stop_if_signalled()
    assert stopped.value.code == EXIT_SIGTERM


# --- Through the CLI, to the process group ------------------------------------------------------

def _start(args: list[str], cwd: Path, module: str = "osvos_pl", env: dict | None = None):
    """``python -m module args`` as the leader of its own process group, output to files."""
    out, err = open(cwd / "out.txt", "w"), open(cwd / "err.txt", "w")
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                            stdout=out, stderr=err, start_new_session=True)
    out.close(), err.close()
    return proc


def _wait_for(path: Path, proc, cwd: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, (cwd / "err.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {path} within {timeout} s"
        time.sleep(0.05)


def _stop_group(proc, sig: int) -> int:
    try:
        os.killpg(proc.pid, sig)
        return proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp*") if p.is_file()]


def _no_crash(stderr: str) -> None:
    assert "Traceback" not in stderr and "DataLoader worker" not in stderr, stderr[-3000:]


@pytest.mark.slow
def test_group_sigterm_to_parent_with_workers_checkpoints_and_resumes(cache, tmp_path):
    run_dir = tmp_path / "run"
    args = ["+experiment=parent", *TINY, "parent.updates=5", "parent.accumulate=2",
            "parent.checkpoint_every=1", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = _start(args, tmp_path)
    _wait_for(last, proc, tmp_path)  # the periodic checkpoint of step 1: training is under way
    code = _stop_group(proc, signal.SIGTERM)  # as `timeout` or `scancel` deliver it
    stderr = (tmp_path / "err.txt").read_text()
    assert code == EXIT_SIGTERM, stderr[-3000:]
    assert "interrupted by SIGTERM" in stderr and f"hydra.run.dir={run_dir}" in stderr
    _no_crash(stderr)
    stopped_at = torch.load(last, weights_only=True)
    assert 1 <= stopped_at["global_step"] < 5
    assert stopped_at["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"] == \
        2 * stopped_at["global_step"], "stopped inside an accumulation window"
    assert not (run_dir / "metrics.json").exists() and _temporaries(run_dir) == []

    proc = run_cli(args, cwd=tmp_path)
    assert "Restoring states from the checkpoint path" in proc.stdout + proc.stderr
    assert read_record(run_dir / "metrics.json")["timing"]["optimizer_steps"] == 5
    assert _temporaries(run_dir) == []


@pytest.mark.slow
def test_group_sigint_to_online_stage_stops_and_the_rerun_finishes(cache, tmp_path):
    run_dir = tmp_path / "run"
    args = ["+experiment=online", *TINY, "data.generated.val_sequences=3", "online.iterations=2",
            f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    proc = _start(args, tmp_path)
    _wait_for(run_dir / "sequences" / "gen-val-00.json", proc, tmp_path)
    code = _stop_group(proc, signal.SIGINT)  # Ctrl-C in a terminal
    stderr = (tmp_path / "err.txt").read_text()
    assert code == EXIT_SIGINT, stderr[-3000:]
    assert "interrupted by SIGINT" in stderr and "skips the sequences it finished" in stderr
    _no_crash(stderr)
    assert not (run_dir / "metrics.json").exists() and _temporaries(run_dir) == []

    proc = run_cli(args, cwd=tmp_path)
    assert "gen-val-00: already done" in proc.stdout + proc.stderr
    record = read_record(run_dir / "metrics.json")
    assert set(record["sequences"]) == {"gen-val-00", "gen-val-01", "gen-val-02"}
    assert len(list((run_dir / "predictions").rglob("*.png"))) == 18
    assert _temporaries(run_dir) == []


SLURM = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "osvos",
         "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
         "SLURM_NODELIST": "node1"}


@pytest.mark.slow
def test_sigusr1_under_slurm_saves_lightnings_requeue_checkpoint_and_training_goes_on(cache,
                                                                                     tmp_path):
    run_dir = tmp_path / "run"
    args = ["+experiment=parent", *TINY, "parent.updates=6", "parent.accumulate=1",
            "parent.checkpoint_every=1", f"paths.cache_dir={cache}", f"hydra.run.dir={run_dir}"]
    proc = _start(args, tmp_path, env=SLURM)
    _wait_for(run_dir / "checkpoints" / "last.ckpt", proc, tmp_path)
    os.killpg(proc.pid, signal.SIGUSR1)  # SLURM's --signal=SIGUSR1@90, workers included
    try:
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = (tmp_path / "err.txt").read_text()
    assert code == 0, stderr[-3000:]
    _no_crash(stderr)
    assert "Handling auto-requeue signal" in (tmp_path / "out.txt").read_text() + stderr
    hpc = torch.load(run_dir / "hpc_ckpt_1.ckpt", weights_only=True)  # Lightning's, on SIGUSR1
    assert 1 <= hpc["global_step"] <= 6
    assert read_record(run_dir / "metrics.json")["timing"]["optimizer_steps"] == 6


def _clip(folder: Path, frames: int = 60) -> tuple[Path, Path]:
    """A frame folder (a square drifting over noise) and the mask of its first frame."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "frames").mkdir(parents=True)
    for i in range(frames):
        image = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
        image[80:160, 40 + 2 * i:120 + 2 * i] = (230, 60, 40)
        Image.fromarray(image).save(folder / "frames" / f"{i:05d}.jpg")
    mask = np.zeros((240, 320), np.uint8)
    mask[80:160, 40:120] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "frames", folder / "mask.png"


@pytest.mark.slow
def test_group_sigterm_to_predict_keeps_complete_masks_only(tmp_path):
    frames, mask = _clip(tmp_path / "clip")
    out = tmp_path / "out"
    args = [f"input={frames}", f"mask={mask}", "model.weights=null", "online.iterations=2",
            "logger=none", "num_threads=1", "trainer.enable_progress_bar=false", f"output={out}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    proc = _start(args, tmp_path, module="osvos_pl.predict")
    _wait_for(out / "masks" / "frames" / "00001.png", proc, tmp_path)
    code = _stop_group(proc, signal.SIGTERM)
    stderr = (tmp_path / "err.txt").read_text()
    assert code == EXIT_SIGTERM, stderr[-3000:]
    assert "interrupted by SIGTERM" in stderr and f"output={out}" in stderr
    _no_crash(stderr)
    written = sorted((out / "masks" / "frames").glob("*.png"))
    assert 2 <= len(written) < 60, "the stop came after the clip was done"
    assert not (out / "overlay.mp4").exists() and _temporaries(out) == []

    run_cli(args, cwd=tmp_path, module="osvos_pl.predict")
    assert len(list((out / "masks" / "frames").glob("*.png"))) == 60
    assert (out / "overlay.mp4").is_file() and _temporaries(out) == []
