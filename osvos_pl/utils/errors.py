"""Errors users see: each names what was wrong, where, and how to fix it."""


class OSVOSError(Exception):
    """Base class for errors caused by user input (data, config, files), not by bugs."""


class DataError(OSVOSError, ValueError):
    """Bad or missing data on disk (frames, masks, splits)."""


class ConfigError(OSVOSError, ValueError):
    """A config value that cannot work."""


class OutputError(OSVOSError, OSError):
    """An output (checkpoint, mask, record) could not be written: a full disk, a read-only or
    unwritable folder."""
