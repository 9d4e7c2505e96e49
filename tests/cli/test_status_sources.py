"""`rttui status` lists the sources a study's runs start from, with their state and epoch: minutes of source
pretraining are visible from the CLI too, not only in the app (#27 item 7)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from rttui.cli.app import app

runner = CliRunner()


def test_status_lists_the_studys_sources(tiny_run_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    shutil.copy(tiny_run_db, db)
    data = json.loads(runner.invoke(app, ["status", "--db", str(db), "--format", "json"]).stdout)
    (src,) = data["sources"]
    assert src["state"] == "done" and src["epoch"] == 2 and src["model"] == "test_resnet"
    text = runner.invoke(app, ["status", "--db", str(db)], terminal_width=200).stdout
    assert "sources (pretrained by rttui" in text and src["id"] in text
    # A source interrupted while it trained (no runner holds the database) reads stopped, as a run does.
    con = sqlite3.connect(db)
    con.execute("update sources set state = 'running' where id = ?", (src["id"],))
    con.commit()
    con.close()
    text = runner.invoke(app, ["status", "--db", str(db)], terminal_width=200).stdout
    line = next(ln for ln in text.splitlines() if src["id"] in ln)
    assert "stopped" in line
