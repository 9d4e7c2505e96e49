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
        output.write_text(text)
        err.print(message)
    else:
        sys.stdout.write(text)
