"""SQLite connections that name their file when SQLite fails: a damaged file, a full disk or an unreadable one
becomes one `StoreError` line saying what to do, wherever in a command the query ran.

Every query of a `Store` (its own SQL and sqlite-utils') goes through the connection opened here, so this is the
one place such errors are turned into messages; the commands need no try/except of their own. Errors that mean
a bug in a query (no such column, a syntax error) are left as they are: they keep their type (sqlite-utils
catches some of them on purpose) and gain a `db_path` attribute so the entry point can still name the file.

Readers open the file read-only and never create one. A database on read-only media (an archive on a read-only
mount) is opened `immutable` when SQLite cannot make the shared-memory file (`-shm`) a WAL reader needs: the
folder is not writable, so nothing can be writing the file. If a `-wal` with content was archived without its
`-shm` (a copy of a killed runner's files), immutable reads the main file only: the open warns (`StoreNote`, one
line) that the WAL's rows may be missing and how to read them (copy the files somewhere writable).

Never retries, never deletes or repairs a file: it only opens and explains.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rttui.errors import DatabaseDamaged, DiskFull, StoreError, StoreNote

TIMEOUT_S = 30

# sqlite3_errstr() texts, for errors raised without a code (older Pythons, errors raised by hand in tests).
_CODES_BY_TEXT = {
    "database disk image is malformed": sqlite3.SQLITE_CORRUPT,
    "malformed database schema": sqlite3.SQLITE_CORRUPT,
    "file is not a database": sqlite3.SQLITE_NOTADB,
    "database or disk is full": sqlite3.SQLITE_FULL,
    "disk i/o error": sqlite3.SQLITE_IOERR,
    "attempt to write a readonly database": sqlite3.SQLITE_READONLY,
    "unable to open database file": sqlite3.SQLITE_CANTOPEN,
    "database is locked": sqlite3.SQLITE_BUSY,
    # Python's own error for TEXT that is not UTF-8 (rttui writes only UTF-8): damage, or an edit by hand.
    "could not decode to utf-8": sqlite3.SQLITE_CORRUPT,
}


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF  # extended codes (SQLITE_IOERR_WRITE, SQLITE_CORRUPT_INDEX, ...) keep the primary low
    text = str(exc).lower()
    return next((c for t, c in _CODES_BY_TEXT.items() if text.startswith(t)), None)


def damaged(path: Path, detail: str, checked: bool = False) -> str:
    """The message for a damaged file: what SQLite found, how to see all of it (unless `checked`: the message of
    `rttui check-db` itself), and the two ways out."""
    check = "" if checked else f"`rttui check-db --db {path} --full` lists the damage; "
    return (
        f"{path}: database is damaged ({detail}); {check}restore it from a backup, or save what is readable with "
        f"`sqlite3 {path} .recover > fixed.sql` and load that into a new file (`sqlite3 new.db < fixed.sql`)"
    )


def store_error(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """The one-line error a failed query means for the user, or None when it is a bug (a malformed query)."""
    code = _primary_code(exc)
    if code == sqlite3.SQLITE_CORRUPT:
        return DatabaseDamaged(damaged(path, str(exc)))
    if code == sqlite3.SQLITE_FULL:
        return DiskFull(f"{path}: disk full writing the database: free space and run again; finished work is stored")
    if code == sqlite3.SQLITE_IOERR:
        return DiskFull(
            f"{path}: the disk failed reading or writing the database ({exc}): check that it has free space and "
            "is mounted read-write, then run again; finished work is stored"
        )
    if code == sqlite3.SQLITE_NOTADB:
        return StoreError(f"{path}: not a usable rttui database ({exc}); pass the right --db or move the file away")
    if code == sqlite3.SQLITE_READONLY:
        return StoreError(f"{path}: database is read-only ({exc}); fix its permissions or pass another --db")
    if code == sqlite3.SQLITE_CANTOPEN:
        return StoreError(f"{path}: cannot open the database ({exc}); check the file and its folder's permissions")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"{path}: database stayed locked by another process for {TIMEOUT_S} s ({exc}); "
            "try again when that process is done"
        )
    return None


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is broken (as opposed to the disk, a lock, or a query)."""
    return _primary_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _raise(exc: sqlite3.Error, path: Path) -> NoReturn:
    err = store_error(exc, path)
    if err is not None:
        raise err from exc
    exc.db_path = str(path)  # a bug's traceback still names the file
    raise exc


class StoreCursor(sqlite3.Cursor):
    """A cursor whose errors are translated, at execution and while rows are fetched (SQLite reads a damaged
    page only when a row on it is stepped to)."""

    def _guarded(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except sqlite3.Error as exc:
            _raise(exc, self.connection.path)

    def execute(self, sql: str, parameters: Any = (), /) -> StoreCursor:
        return self._guarded(super().execute, sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> StoreCursor:
        return self._guarded(super().executemany, sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> StoreCursor:
        return self._guarded(super().executescript, sql_script)

    def fetchone(self) -> Any:
        return self._guarded(super().fetchone)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._guarded(super().fetchmany, self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        return self._guarded(super().fetchall)

    def __next__(self) -> Any:
        return self._guarded(super().__next__)


class StoreConnection(sqlite3.Connection):
    """A connection that knows its file and hands out `StoreCursor`s (the C `execute` shortcut would not)."""

    path: Path

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or StoreCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> StoreCursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> StoreCursor:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> StoreCursor:
        return self.cursor().executescript(sql_script)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            _raise(exc, self.path)

    def __exit__(self, *exc: Any) -> Any:
        # `with conn:` commits in C without calling commit() above; a full disk often shows only at this commit.
        try:
            return super().__exit__(*exc)
        except sqlite3.Error as err:
            _raise(err, self.path)


def connect(path: Path, write: bool) -> StoreConnection:
    """Open `path` for the store: read-write (creating it), or read-only (immutable on read-only media)."""
    if write:
        conn = sqlite3.connect(path, timeout=TIMEOUT_S, check_same_thread=False, factory=StoreConnection)
        conn.path = path
        return conn
    uri = path.resolve().as_uri()
    conn = _connect_uri(f"{uri}?mode=ro", path)
    try:
        # The first read is where SQLite opens (or fails to create) the WAL's shared-memory file; the base
        # class's execute keeps the raw error, so the fallback below can tell what it is.
        _first_read(conn)
    except sqlite3.OperationalError as exc:
        conn.close()
        if _primary_code(exc) != sqlite3.SQLITE_CANTOPEN or not _immutable_is_safe(path):
            _raise(exc, path)
        if _wal_has_content(path):
            warnings.warn(StoreNote(_unmerged_wal_note(path)), stacklevel=2)
        conn = _connect_uri(f"{uri}?mode=ro&immutable=1", path)
    except sqlite3.Error as exc:
        conn.close()
        _raise(exc, path)
    return conn


def _first_read(conn: sqlite3.Connection) -> None:
    sqlite3.Connection.execute(conn, "select count(*) from sqlite_master").fetchall()


def _connect_uri(uri: str, path: Path) -> StoreConnection:
    conn = sqlite3.connect(uri, uri=True, timeout=TIMEOUT_S, check_same_thread=False, factory=StoreConnection)
    conn.path = path
    return conn


def _wal_has_content(path: Path) -> bool:
    wal = Path(f"{path}-wal")
    return wal.exists() and wal.stat().st_size > 0


def _unmerged_wal_note(path: Path) -> str:
    return (
        f"{path}: read without its {path.name}-wal (the folder is read-only and SQLite needs to create "
        f"{path.name}-shm to read it): rows written last by the runner that left that file may be missing; to see "
        "them, copy the database and its -wal to a writable folder and read that copy"
    )


def _immutable_is_safe(path: Path) -> bool:
    """True when no process can be writing the file: its folder is read-only for us, so no writer could have made
    the `-shm` that SQLite failed to create (a live WAL writer always has one). A `-wal` with content then holds
    rows an immutable reader skips; the caller warns about them."""
    return not os.access(path.resolve().parent, os.W_OK)
