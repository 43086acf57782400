"""Stop signals as requests: SIGTERM and SIGINT stop a command at the next safe point.

Low in the house so that long loops anywhere (frame loaders, downloads, the online stage) can
offer a safe point (``stop_if_signalled``); the exit codes they end in are the commands'
(``osvos_pl.runner.exits``).
"""

from __future__ import annotations

import logging
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger(__name__)


class Interrupted(BaseException):
    """A stop signal arrived outside training. A BaseException, like ``KeyboardInterrupt``, so that
    no ``except Exception`` on the way turns it into another error."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM and SIGINT, while the command runs, as a request to stop at the next safe point.

    Outside a Lightning run the handler raises :class:`Interrupted` where the program is: every
    file a run writes goes to a temporary name first (``osvos_pl.utils.atomic``), so nothing is
    left half-written, and the online stage skips the sequences it finished when re-run.
    While Lightning trains or validates, its SIGTERM handler is installed over this one and calls
    it: the signal is only noted, and Lightning stops after the batch
    (``CheckpointOnSigterm``: after the optimizer step, with ``last.ckpt``). SIGINT is handed to
    that handler as a SIGTERM, so Ctrl-C stops training the same way; a second Ctrl-C stops at
    once (``KeyboardInterrupt``), a second SIGTERM is ignored.
    """

    def __init__(self):
        self.received: int | None = None
        self.raised = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        global _active
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self) for s in STOP_SIGNALS}
            _active = self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if _active is self:
            _active = None

    def __call__(self, signum: int, frame) -> None:
        first = self.received is None
        if first:
            self.received = signum
            log.warning("received %s: stopping at the next safe point", signal.Signals(signum).name)
        elif signum == signal.SIGINT:
            signal.default_int_handler(signum, frame)
        installed = signal.getsignal(signal.SIGTERM)
        if installed is not self:  # Lightning's handler: it decides where training stops
            if signum == signal.SIGINT and callable(installed):
                installed(signal.SIGTERM, frame)
            return
        self.stop()

    def stop(self) -> None:
        """Raise :class:`Interrupted` for a signal received and not acted on yet."""
        if self.received is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.received)


_active: StopSignals | None = None


def stop_if_signalled() -> None:
    """A safe point: stop here if a stop signal came while Lightning held the handlers and did
    not act on it (it arrived during a trainer's last batch or its teardown)."""
    if _active is not None and signal.getsignal(signal.SIGTERM) is _active:
        _active.stop()
