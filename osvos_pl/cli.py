"""One exit convention for every command: 0 done, 2 input error, 143 stopped by SIGTERM.

Input errors (bad data, bad config values, unreadable files) are the user's to fix, not bugs:
they end the command with their message printed once on stderr (and in the run's log file),
without a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from osvos_pl.errors import OSVOSError

EXIT_INPUT_ERROR = 2
EXIT_SIGTERM = 128 + signal.SIGTERM


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


@contextmanager
def exit_codes(on_sigterm: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn input errors into exit 2 and Lightning's SIGTERM stop into exit 143.

    Lightning turns SIGTERM into a ``SIGTERMException``, which would otherwise end with a
    traceback (or, as ``SystemExit`` without a code, report success); ``on_sigterm`` says how
    to resume.
    """
    try:
        yield
    except OSVOSError as exc:
        fail(str(exc), EXIT_INPUT_ERROR)
    except Exception as exc:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if not isinstance(exc, SIGTERMException):
            raise
        fail(on_sigterm() if on_sigterm else "interrupted by SIGTERM", EXIT_SIGTERM)
