"""User-facing errors: one line that names the thing, the problem and the fix.

Every layer raises `RttuiError` (or a subclass) for mistakes a user can fix; the faces print its message
without a traceback and exit non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RttuiError(Exception):
    """A mistake the user can fix; `str(err)` is the whole message (possibly several one-line problems)."""

    exit_code = 2


class StudyError(RttuiError):
    """A study file is malformed or names something unknown."""


class DataError(RttuiError):
    """A dataset folder or file is missing or malformed."""


class StoreError(RttuiError):
    """The database is missing, corrupt, locked or from another schema version."""


class CheckpointError(RttuiError):
    """A checkpoint is missing, untrusted, tampered with or does not fit the model."""


class DatabaseDamaged(StoreError):
    """SQLite found the database file corrupt: restore a backup, or `.recover` what is readable."""


class EmptyDatabase(StoreError):
    """The file holds no tables at all (a creation a full disk cut short, or `touch`): nothing to read yet, and a
    runner creates the schema in it."""


class DiskFull(StoreError):
    """The disk refused a write of the database mid-work: what was committed stays, the run stops (exit 1)."""

    exit_code = 1


class StoreNote(UserWarning):
    """Something a reader should know about what it read (one line), not an error: the command goes on. The CLI
    prints it as `rttui: note: ...`."""
