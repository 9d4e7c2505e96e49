"""The headless face: `rttui` typer commands over `rttui.api`.

Importing this module imports typer and rich but never torch, so `rttui --help` stays fast.
"""

from __future__ import annotations

import sqlite3
import sys
import warnings

from rttui import api
from rttui.cli.app import app
from rttui.errors import RttuiError, StoreNote

CANCELLED = "rttui: cancelled; finished work is stored, run the same command again to resume"


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit, no traceback."""
    api.check_reads(True)  # a one-shot command reports damage anywhere in the file (the app turns it off)
    with warnings.catch_warnings():
        warnings.simplefilter("always", StoreNote)  # every command says it (once), not only the first
        shown = warnings.showwarning
        notes: list[str] = []

        def note(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
            if issubclass(category, StoreNote):
                if str(message) not in notes:
                    notes.append(str(message))
            else:
                shown(message, category, *args, **kwargs)  # type: ignore[arg-type]

        warnings.showwarning = note
        try:
            _main()
        except SystemExit as exc:
            if exc.code in (None, 0):  # a refused command says only why: its one line
                _say(notes)
            raise
        _say(notes)


def _say(notes: list[str]) -> None:
    """What the store noted about what a command read (a read-only archive's WAL), after its answer."""
    for text in notes:
        print(f"rttui: note: {text}", file=sys.stderr)


def _main() -> None:
    try:
        app()
    except SystemExit as exc:
        # typer turns Ctrl-C (and SIGTERM, which `run` maps to it) into a silent exit 130; say what it means,
        # with or without --quiet. An explicit exit 130 (a cancel request) has printed this line already.
        if _interrupted(exc):
            print(CANCELLED, file=sys.stderr)
        raise
    except RttuiError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"rttui: error: {line}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except sqlite3.DatabaseError as exc:  # the store names damage and full disks itself; this is what is left
        db = getattr(exc, "db_path", "the database")
        print(
            f"rttui: error: {db}: database error ({exc}); run `rttui check-db --db {db} --full`: if it finds no "
            "damage, this is a bug in rttui, please report it with the command you ran",
            file=sys.stderr,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        print(CANCELLED, file=sys.stderr)
        sys.exit(130)
    finally:
        api.check_reads(False)


def _interrupted(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions this one was raised from."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__]
    return False


__all__ = ["app", "main"]
