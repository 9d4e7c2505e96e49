"""How the app is reached: `rttui` with no command and `rttui tui` open it; importing it never imports torch."""

from __future__ import annotations

import importlib
import json
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


def test_an_app_that_crashes_exits_non_zero(tmp_path: Path) -> None:
    """`rttui tui` whose app dies of an exception exits 1, not 0 (a crash must not look like a clean quit)."""
    code = (
        "import sys, rttui.tui\n"
        "from textual.app import App\n"
        "class Crashing(App):\n"
        "    def on_mount(self):\n"
        "        raise RuntimeError('boom')\n"
        "    def run(self, **kw):\n"
        "        return super().run(headless=True)\n"
        "rttui.tui.make_app = lambda **kw: Crashing()\n"
        "from rttui.cli.app import app\n"
        "app(['tui', '--db', sys.argv[1]])\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.db")], capture_output=True, text=True)
    assert "boom" in out.stdout + out.stderr
    assert out.returncode == 1


def test_the_bare_command_takes_the_apps_options(monkeypatch, tmp_path: Path, tiny_run_db: Path) -> None:
    """`rttui --db q.db --studies studies` opens the app on them (as `rttui tui` does); given before a command,
    they are its defaults (`rttui --db q.db status`), and the command's own option still wins."""
    opened: list[tuple] = []
    monkeypatch.setattr(
        cli_app, "_open_tui", lambda db, studies, read_only=False: opened.append((db, studies, read_only))
    )
    runner = CliRunner()
    db = tmp_path / "x.db"
    r = runner.invoke(cli_app.app, ["--db", str(db), "--studies", str(tmp_path), "--read-only"])
    assert r.exit_code == 0, r.output
    assert opened == [(db, tmp_path, True)]
    r = runner.invoke(cli_app.app, ["--db", str(tiny_run_db), "status", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in json.loads(r.output)["studies"]] == ["tiny"]
    r = runner.invoke(cli_app.app, ["--db", str(db), "status", "--db", str(tiny_run_db), "--format", "json"])
    assert r.exit_code == 0, r.output
