"""Values in the database that rttui did not write (damage, a hand edit) end in one line naming the file and
the row, exit 2, the file untouched: a schema version that is not a number, a run config that is not JSON."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from rttui import api
from rttui.errors import StoreError
from tests.entry import run_cli as _cli

TTEST = ["ttest", "--axis", "strategy", "--a", "layer_freezing", "--b", "full", "--attack", "pgd", "--mcnemar"]


def _edited(tmp_path: Path, tiny_run_db: Path, sql: str) -> Path:
    db = tmp_path / "edited.db"
    shutil.copy(tiny_run_db, db)
    shutil.copy(tiny_run_db.parent / "tiny.toml", tmp_path / "tiny.toml")
    c = sqlite3.connect(db)
    c.execute(sql)
    c.commit()
    c.close()
    return db


def test_a_schema_version_that_is_not_a_number(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = _edited(tmp_path, tiny_run_db, "update meta set value = 'abc' where key = 'schema_version'")
    before = db.read_bytes()
    for args in (["status"], ["export"], ["check-db"], ["run", str(tmp_path / "tiny.toml"), "-q"], ["cancel"]):
        code, _, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, err)
        assert str(db) in lines[0] and "'abc'" in lines[0] and "not a number" in lines[0], err
    assert db.read_bytes() == before


def test_a_run_config_that_is_not_json(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = _edited(tmp_path, tiny_run_db, "update runs set config = '{\"model\": ' where strategy = 'full'")
    run_id = sqlite3.connect(db).execute("select id from runs where strategy = 'full'").fetchone()[0]
    before, results = db.read_bytes(), _results(db)
    for args in (["export"], ["export", "-f", "csv"], ["compare"], TTEST):
        code, _, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, err)
        assert str(db) in lines[0] and f"config of run {run_id} is not valid JSON" in lines[0], err
        assert "backup" in lines[0], err
    code, out, _ = _cli(["status", "--db", str(db)], monkeypatch, capsys)  # lists runs, reads no config
    assert code == 0 and run_id in out
    with pytest.raises(StoreError, match=f"config of run {run_id} is not valid JSON"):
        api.load_run_model(db, run_id)
    assert db.read_bytes() == before
    # A runner has nothing to do (every run is done), then its summary reads the config: the same one line.
    # It wrote its lock and the study's registration on the way; no result changed.
    code, _, err = _cli(["run", str(tmp_path / "tiny.toml"), "-q", "--db", str(db)], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is not valid JSON" in err, err
    assert _results(db) == results


def _results(db: Path) -> list[list[tuple[object, ...]]]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            c.execute(f"select * from {t} order by 1, 2").fetchall()
            for t in ("runs", "sources", "evaluations", "metrics", "samples", "epochs", "study_runs", "locks")
        ]
    finally:
        c.close()
