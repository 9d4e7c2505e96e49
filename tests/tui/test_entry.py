"""How the app is reached: `rttui` with no command and `rttui tui` open it; importing it never imports torch."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

cli_app = importlib.import_module("rttui.cli.app")  # the module (rttui.cli.app is also the Typer object's name)


def test_no_command_and_tui_command_open_the_app(monkeypatch, tmp_path: Path) -> None:
    opened: list[tuple] = []
    monkeypatch.setattr(
        cli_app, "_open_tui", lambda db, studies, read_only=False: opened.append((db, studies, read_only))
    )
    runner = CliRunner()
    assert runner.invoke(cli_app.app, []).exit_code == 0
    db = tmp_path / "x.db"
    assert runner.invoke(cli_app.app, ["tui", "--db", str(db), "--studies", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli_app.app, ["tui", "--db", str(db), "--read-only"]).exit_code == 0
    assert opened == [(None, Path("studies"), False), (db, tmp_path, False), (db, Path("studies"), True)]
    # a command still runs its command, not the app
    assert runner.invoke(cli_app.app, ["status", "--db", str(db)]).exit_code != 0
    assert len(opened) == 3


def test_importing_the_app_does_not_import_torch() -> None:
    code = (
        "import sys; from rttui.tui import make_app; "
        "from rttui.tui.screens import studies; make_app(db='x.db'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_runs_the_tui_command_in_textual_serve(monkeypatch, tmp_path: Path) -> None:
    from rttui.tui.serve import SafeServer

    seen: dict = {}

    def fake_serve(self: SafeServer) -> None:
        seen.update(command=self.command, host=self.host, port=self.port, public_url=self.given_public_url)

    monkeypatch.setattr(SafeServer, "serve", fake_serve)
    db = tmp_path / "x.db"
    res = CliRunner().invoke(cli_app.app, ["serve", "--db", str(db), "--port", "8123", "--read-only"])
    assert res.exit_code == 0, res.output
    assert seen["port"] == 8123 and seen["host"] == "localhost" and seen["public_url"] is None
    assert "-m rttui tui" in seen["command"] and str(db) in seen["command"] and "--read-only" in seen["command"]
