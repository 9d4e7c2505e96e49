"""How the CLI writes: results on stdout, progress and messages on stderr, JSON alone on stdout, a file when
`--output` names one, and the one-line refusal of a --format a command does not offer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from rttui.errors import RttuiError

# Piped output (logs, CI) gets a wide console so tables are not truncated at 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        raise RttuiError(f"--format {fmt!r} is not supported here; use one of {', '.join(allowed)}")


def emit(text: str, output: Path | None, message: str) -> None:
    """Write `text` to `output` (and say so on stderr), else to stdout."""
    if output:
        check_output_file(output, "--output")
        try:
            output.write_text(text)
        except OSError as exc:
            raise RttuiError(f"--output {output}: cannot be written ({exc.strerror}); choose another path") from None
        err.print(message)
    else:
        sys.stdout.write(text)


FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def check_output_file(path: Path | None, flag: str, *, creates_folder: bool = False) -> None:
    """Refuse, before any work, a file option that cannot be written: a folder, or a file whose folder is
    missing (unless the command creates it) or is itself a file. Overwriting a file is allowed, as with `>`."""
    if path is None:
        return
    if path.is_dir():
        raise RttuiError(f"{flag} {path}: is a folder; give the path of a file (one inside it, for example)")
    _check_folders_above(path, flag)
    if not creates_folder and not path.parent.exists():
        raise RttuiError(f"{flag} {path}: folder {path.parent} does not exist; create it first or choose another path")


def check_output_folder(path: Path, flag: str) -> None:
    """Refuse, before any work, a folder option (created with its parents) that names an existing file or lies
    below one."""
    if path.exists() and not path.is_dir():
        raise RttuiError(f"{flag} {path}: is an existing file, not a folder; give a folder name (it is created)")
    _check_folders_above(path, flag)


def _check_folders_above(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RttuiError(f"{flag} {path}: {parent} is a file, not a folder; choose another path")
            return
