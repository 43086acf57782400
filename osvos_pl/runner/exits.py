"""One exit convention for every command: 0 done, 2 input error, 128 + N stopped by signal N
(143 for SIGTERM, 130 for SIGINT / Ctrl-C).

Input errors (bad data, bad config values, unreadable files) are the user's to fix, not bugs:
they end the command with their message printed once on stderr (and in the run's log file),
without a traceback. A stop signal is a request, not a crash: the command stops at the next
safe point, says how to resume, and exits 128 + N.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from osvos_pl.utils.errors import OSVOSError
from osvos_pl.utils.signals import Interrupted, StopSignals

EXIT_INPUT_ERROR = 2
EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_SIGINT = 128 + signal.SIGINT

log = logging.getLogger(__name__)


def _to_log_files(message: str) -> None:
    """Record ``message`` in the run's log file(s) only: the console gets it once, on stderr."""
    record = logging.LogRecord("osvos_pl", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def input_error(exc: OSVOSError) -> int:
    """Say what went wrong once (stderr, and the log file if there is one); the exit code."""
    _to_log_files(str(exc))
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_INPUT_ERROR


def fail(message: str, code: int) -> None:
    _to_log_files(message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _lightning_stop(exc: SystemExit) -> bool:
    """Whether ``exc`` is Lightning's stop on SIGTERM (a ``SystemExit`` without a code)."""
    if "pytorch_lightning" not in sys.modules:
        return False
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    return isinstance(exc, SIGTERMException)


def _missing_value(exc: BaseException) -> bool:
    """A ``???`` in the config nobody filled in (omegaconf imported only by the commands that
    compose a config: ``evaluate`` stays free of it)."""
    errors = sys.modules.get("omegaconf.errors")
    return errors is not None and isinstance(exc, errors.MissingMandatoryValue)


@contextmanager
def exit_codes(on_sigterm: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn input errors (ours, and a ``???`` config value left unset) into exit 2 and a stop
    signal into exit 128 + N, with ``on_sigterm()`` (how to resume) as the message.

    Lightning turns SIGTERM into a ``SIGTERMException``, a ``SystemExit`` without a code, which
    would otherwise report success; outside Lightning the signal raises :class:`Interrupted`
    (see :class:`StopSignals`).
    """
    with StopSignals() as stops:
        try:
            yield
            if stops.received is not None and not stops.raised:  # during a trainer's last batch
                log.warning("%s came as the run was finishing its work; it finished",
                            signal.Signals(stops.received).name)
        except OSVOSError as exc:
            fail(str(exc), EXIT_INPUT_ERROR)
        except (Interrupted, SystemExit) as exc:
            if isinstance(exc, SystemExit) and not _lightning_stop(exc):
                raise
            signum = getattr(exc, "signum", None) or stops.received or signal.SIGTERM
            message = on_sigterm() if on_sigterm else "interrupted by SIGTERM"
            fail(message.replace("SIGTERM", signal.Signals(signum).name, 1), 128 + signum)
        except Exception as exc:  # a ``???`` in the config nobody filled in
            if not _missing_value(exc):
                raise
            key = exc.full_key or "a config value"
            fail(f"{key}= is required (it is ??? in the config): pass {key}=... on the command "
                 "line", EXIT_INPUT_ERROR)
