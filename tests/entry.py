"""The real entry point (`rttui.cli.main`) run in-process, as a user's command line would run it.

Plain module so every test that checks what a command prints and exits with uses the same one.
"""

from __future__ import annotations

import sys

import pytest

from rttui.cli import main


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`rttui ARGS` through `main()`: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["rttui", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
