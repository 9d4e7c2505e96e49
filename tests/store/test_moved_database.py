"""A database and its `<stem>.artifacts` folder moved, renamed or copied together keep every result usable
(issue #28 item 4): checkpoint paths are stored relative to the artifacts folder, and rows written before v4
(relative to the database's folder, or absolute) are migrated when a runner opens the file.

Each case copies the tiny study's finished pair to a new stem and runs a study that adds an epsilon: its new
evaluations load the finished runs' checkpoints from the copy, and no run is retrained or marked failed.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from rttui.store import SCHEMA_VERSION
from tests.entry import run_cli
from tests.studies import tiny_study

MORE_EPS = tiny_study(eval={"epsilons": [0.0, 0.03, 0.05, 0.1]})  # same runs, new evaluations


def _as_v3(db: Path, form: str) -> None:
    """Rewrite the copy's checkpoint rows as v1-v3 stored them: `tiny.artifacts/...` relative to the database's
    folder, or absolute under the folder it was written in."""
    c = sqlite3.connect(db)
    src = "tiny.artifacts/" if form == "relative" else "/results/2026/tiny.artifacts/"
    for table in ("sources", "runs"):
        c.execute(f"update {table} set checkpoint = ? || checkpoint where coalesce(checkpoint, '') != ''", (src,))
    c.execute("update meta set value = '3' where key = 'schema_version'")
    c.commit()
    c.close()


@pytest.mark.parametrize("form", ["v4", "relative", "absolute"])
def test_a_copied_and_renamed_database_keeps_its_checkpoints(
    form: str,
    tmp_path: Path,
    tiny_run_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    db = moved / "qta.db"
    src = sqlite3.connect(tiny_run_db)  # a backup, not a file copy: a reader may hold the session's file open
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copytree(tiny_run_db.parent / "tiny.artifacts", moved / "qta.artifacts")
    if form != "v4":
        _as_v3(db, form)
    before = sqlite3.connect(db).execute("select id, state, started, sha256 from runs order by id").fetchall()
    assert before and all(state == "done" for _, state, _, _ in before)
    study = tmp_path / "more.toml"
    study.write_text(MORE_EPS)
    code, _, err = run_cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 0, err
    assert "missing" not in err and "checkpoint" not in err, err
    c = sqlite3.connect(db)
    after = c.execute("select id, state, started, sha256 from runs order by id").fetchall()
    assert after == before  # still done, never retrained
    stored = [r[0] for r in c.execute("select checkpoint from runs union all select checkpoint from sources")]
    assert stored and all(not Path(p).is_absolute() and ".artifacts" not in p for p in stored), stored
    assert all((moved / "qta.artifacts" / p).is_file() for p in stored)
    meta = dict(c.execute("select key, value from meta").fetchall())
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    if form != "v4":
        assert "<stem>.artifacts" in meta["migration_4"]
    # The new epsilon was evaluated on every run from the copy's checkpoints.
    n_eps = c.execute("select count(distinct eps) from metrics where eps = 0.05").fetchone()[0]
    assert n_eps == 1
    assert c.execute("select count(distinct run_id) from metrics where eps = 0.05").fetchone()[0] == len(before)
    c.close()
