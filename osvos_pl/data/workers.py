"""Data-loader workers that leave stop signals to the main process.

``timeout``, ``scancel`` and Ctrl-C signal the whole process group (SLURM: every process of
the job), data-loader workers included. PyTorch lets a SIGTERM that its parent did not send
kill a worker, and the main process then fails with "DataLoader worker (pid ...) is killed by
signal" instead of stopping at a safe point (``osvos_pl.runner.exits.StopSignals``); SIGINT and
SIGUSR1/2 (SLURM's and submitit's requeue warnings) would run the main process's handlers in
every worker. A loader built with :func:`loader_options` has workers that ignore SIGINT and
SIGUSR1/2 and end on SIGTERM only when their parent sends it (as it does to shut them down); a
worker whose parent is gone exits by itself (PyTorch's watchdog).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal
import threading
from functools import partial

from lightning_fabric.utilities.seed import pl_worker_init_function

#: Signals a worker leaves to the main process (SIGTERM: unless the main process sends it).
IGNORED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGUSR1", "SIGUSR2")
                if hasattr(signal, name))
#: Where the process can wait for a SIGTERM and learn who sent it.
_SIGWAITINFO = hasattr(signal, "sigwaitinfo") and hasattr(signal, "pthread_sigmask")


def _exit_on_sigterm_from(parent: int) -> None:
    """Take the worker's SIGTERMs (blocked in its threads): exit at the parent's, drop others."""
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)


def quiet_worker_init(worker_id: int, rank: int | None = None) -> None:
    """Leave stop signals to the main process, then seed the worker as Lightning would.

    ``seed_everything(workers=True)`` makes Lightning add its own ``worker_init_fn`` to the
    loaders a trainer runs (``rank``: the trainer's global rank), but only to loaders without
    one, so this one calls it for them: workers draw the same numbers as before. Loaders used
    outside a trainer (``rank=None``) were never seeded by Lightning and are not.
    """
    for signum in IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    if _SIGWAITINFO:  # a new thread inherits the mask: keep SIGTERM blocked first
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_exit_on_sigterm_from, args=(os.getppid(),), daemon=True,
                         name="sigterm-from-parent").start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(IGNORED))
    if rank is not None and int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id, rank=rank)


class _QuietForkProcess(multiprocessing.context.ForkProcess):
    """Forked with the stop signals blocked: one that reaches the group while the worker starts
    waits (pending) until ``quiet_worker_init`` has decided what it means."""

    def start(self) -> None:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, *IGNORED})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class QuietForkContext(multiprocessing.context.ForkContext):
    Process = _QuietForkProcess


def loader_options(num_workers: int, rank: int | None = None) -> dict:
    """``DataLoader`` keyword arguments for workers that leave stop signals to the main process
    (the start method stays the platform's; fork, where it is the default, forks them with the
    signals blocked)."""
    if num_workers <= 0:
        return {}
    options = {"worker_init_fn": partial(quiet_worker_init, rank=rank)}
    method = multiprocessing.get_start_method(allow_none=True)
    if _SIGWAITINFO and (method or multiprocessing.get_all_start_methods()[0]) == "fork":
        options["multiprocessing_context"] = QuietForkContext()
    return options
