"""A database created on a full disk is never left half-made: the schema and its version row are one
transaction, so a failed creation leaves an empty file (or none) that the next open completes.

Two ways to fill the disk: a `database or disk is full` raised at each step of the creation (every table, index
and the version row), and a real tmpfs with only a little space left.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from rttui import api
from rttui.errors import StoreError
from rttui.store import SCHEMA_VERSION, Store
from rttui.store.db import INDEXES, TABLES
from tests.entry import run_cli
from tests.mounts import fill, small_disk

# Each write the creation makes, named after the schema it comes from (so a new table is a new case).
STEPS = [
    "journal_mode=wal",
    *(f'CREATE TABLE "{t}"' for t in TABLES),
    *(f'CREATE INDEX IF NOT EXISTS "idx_{t}_{"_".join(cols)}"' for t, cols in INDEXES),
    'INSERT INTO "meta"',
]


def _assert_complete(p: Path, studies: int = 0) -> None:
    """The file now holds every table and the version row, and works for a runner."""
    with Store.open(p, write=True) as s:
        assert set(TABLES) <= set(s.db.table_names())
        assert s.conn.execute("select value from meta where key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        s.acquire_lock("after-a-full-disk")
        s.release_lock()
    with Store.open(p) as r:  # and a reader sees an rttui database
        assert len(r.studies()) == studies


@pytest.mark.parametrize("step", STEPS)
def test_disk_full_at_any_step_of_creation_leaves_a_file_the_next_open_completes(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "new.db"
    fired: list[str] = []
    execute = sqlite_utils.Database.execute

    def full_at_step(self: sqlite_utils.Database, sql: str, parameters: object = None) -> sqlite3.Cursor:
        if step in sql and not fired:
            fired.append(sql)
            raise sqlite3.OperationalError("database or disk is full")
        return execute(self, sql, parameters)

    monkeypatch.setattr(sqlite_utils.Database, "execute", full_at_step)
    with pytest.raises(StoreError) as err:
        Store.open(p, write=True).close()
    assert fired, f"the creation never ran a {step!r} step: update STEPS to the schema"
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg and "disk full" in msg, msg
    # Nothing of the failed creation stays: no table, no version row (the file may exist, empty).
    if p.exists():
        assert sqlite3.connect(p).execute("select count(*) from sqlite_master").fetchone() == (0,)
        with pytest.raises(StoreError, match="empty database; run a study into it first"):
            Store.open(p)
        api.ensure_no_runner(p)  # what `rttui run` checks first: an empty file has no runner (issue #28)
    monkeypatch.setattr(sqlite_utils.Database, "execute", execute)
    _assert_complete(p)


@pytest.mark.parametrize("free_kib", [0, 16, 64, 120, 160])
def test_creation_on_a_real_full_disk_leaves_a_file_the_next_open_completes(tmp_path: Path, free_kib: int) -> None:
    """On a small tmpfs left with `free_kib` free, creating fails or succeeds, but never half-way."""
    with small_disk(tmp_path / "disk", 1024) as disk:
        filler = fill(disk, leave_bytes=free_kib * 1024)
        p = disk / "new.db"
        failed = False
        try:
            Store.open(p, write=True).close()
        except StoreError as exc:
            failed = True
            msg = str(exc)
            assert "\n" not in msg and str(p) in msg and ("disk full" in msg or "disk failed" in msg), msg
        filler.unlink()  # space again (SQLite needs some even to read a WAL database: its -shm file)
        if failed and p.exists():
            c = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
            assert c.execute("select count(*) from sqlite_master").fetchone() == (0,)
            c.close()
        _assert_complete(p)


def _assert_run_completes(
    db: Path, study: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`rttui run` into what a failed creation left (0 bytes, or a WAL header and no table) creates the schema and
    runs the study: the file is not "an empty database" to a runner (issue #28)."""
    code, _, err = run_cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 0, err
    _assert_complete(db, studies=1)
    code, out, err = run_cli(["status", "--db", str(db)], monkeypatch, capsys)
    assert code == 0 and "tiny" in out, err


@pytest.mark.parametrize("step", [STEPS[0], STEPS[-1]])
def test_rttui_run_into_what_a_failed_creation_left_creates_it(
    tmp_path: Path,
    step: str,
    tiny_study_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Failed at its first step (the WAL switch: a 0-byte file) or its last (a WAL header, no table)."""
    p = tmp_path / "new.db"
    execute = sqlite_utils.Database.execute

    def full_at_step(self: sqlite_utils.Database, sql: str, parameters: object = None) -> sqlite3.Cursor:
        if step in sql:
            raise sqlite3.OperationalError("database or disk is full")
        return execute(self, sql, parameters)

    with monkeypatch.context() as m:
        m.setattr(sqlite_utils.Database, "execute", full_at_step)
        code, _, err = run_cli(["run", str(tiny_study_file), "--db", str(p), "-q"], monkeypatch, capsys)
    assert code == 1 and "disk full" in err and len(err.strip().splitlines()) == 1, err
    assert sqlite3.connect(p).execute("select count(*) from sqlite_master").fetchone() == (0,)
    _assert_run_completes(p, tiny_study_file, monkeypatch, capsys)


@pytest.mark.parametrize("free_kib", [0, 128])
def test_rttui_run_on_a_real_full_disk_then_again_with_space_runs_the_study(
    tmp_path: Path,
    free_kib: int,
    tiny_study_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Issue #28's case on a real tmpfs: the first run stops on the full disk in one line, the second (space given
    back) runs the study."""
    with small_disk(tmp_path / "disk", 16 * 1024) as disk:
        filler = fill(disk, leave_bytes=free_kib * 1024)
        db = disk / "d.db"
        code, _, err = run_cli(["run", str(tiny_study_file), "--db", str(db), "-q"], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code in (1, 2) and len(lines) == 1 and ("disk full" in err or "disk failed" in err), err
        filler.unlink()
        _assert_run_completes(db, tiny_study_file, monkeypatch, capsys)
