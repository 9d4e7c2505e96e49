"""The headless face: `rttui` typer commands over `rttui.api`.

Importing this module imports typer and rich but never torch, so `rttui --help` stays fast.
"""

from __future__ import annotations

import sqlite3
import sys

from rttui.cli.app import app
from rttui.errors import RttuiError


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit, no traceback."""
    try:
        app()
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
        print(
            "rttui: interrupted; finished work is stored, run the same command again to resume",
            file=sys.stderr,
        )
        sys.exit(130)


__all__ = ["app", "main"]
