from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rttui.errors import StoreError
from rttui.store import SCHEMA_VERSION, Store
from rttui.store.db import TABLES


def test_schema_has_every_table_and_version(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", write=True) as s:
        names = set(s.db.table_names())
        assert set(TABLES) <= names
        assert s.conn.execute("select value from meta where key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert s.conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        cols = {c.name for c in s.db["metrics"].columns}
        # Every metric row carries the parameters that produced it.
        assert {
            "attack",
            "eps",
            "norm",
            "steps",
            "step_size",
            "restarts",
            "n",
            "clean_acc",
            "adv_acc",
            "mode",
        } <= cols
        assert {"fooled_mask", "first_fooled_eps", "clean_correct"} <= {c.name for c in s.db["samples"].columns}


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    p = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="no such database"):
        Store.open(p)
    assert not p.exists()


def test_not_a_database_is_refused_and_untouched(tmp_path: Path) -> None:
    p = tmp_path / "notes.db"
    p.write_bytes(b"this is not sqlite" * 100)
    before = p.read_bytes()
    for write in (False, True):
        with pytest.raises(StoreError, match="not a usable rttui database"):
            Store.open(p, write=write)
    assert p.read_bytes() == before


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    c = sqlite3.connect(p)
    c.execute("create table t (x)")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="not an rttui database"):
        Store.open(p, write=True)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "new.db"
    Store.open(p, write=True).close()
    c = sqlite3.connect(p)
    c.execute("update meta set value = ? where key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer than this rttui"):
        Store.open(p)


def test_second_runner_is_refused_and_stale_lock_taken_over(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    s = Store.open(p, write=True)
    s.acquire_lock("a")
    # A lock held by a live foreign process (pid 1 always exists) refuses the runner.
    s.conn.execute("update locks set pid = 1")
    s.conn.commit()
    with pytest.raises(StoreError, match="already running"):
        s.acquire_lock("b")
    # A lock left by a dead process is taken over.
    s.conn.execute("update locks set pid = 999999999")
    s.conn.commit()
    s.acquire_lock("b")
    assert s.runner_lock()["study"] == "b"
    s.release_lock()
    assert s.runner_lock() is None
    s.close()


def test_checkpoint_paths_are_relative_to_the_artifacts_folder(tmp_path: Path) -> None:
    with Store.open(tmp_path / "x.db", write=True) as s:
        ck = s.artifacts / "runs" / "r1" / "model.safetensors"
        assert s.rel(ck) == "runs/r1/model.safetensors"
        assert s.abs(s.rel(ck)) == ck
        # Rows written before v4 (relative to the database's folder, or absolute) read from this database's own
        # artifacts folder, wherever and under whatever stem they were written.
        assert s.abs("old.artifacts/runs/r1/model.safetensors") == ck
        assert s.abs("/elsewhere/q.artifacts/runs/r1/model.safetensors") == ck
        outside = tmp_path / "mine.safetensors"
        assert s.rel(outside) == str(outside) and s.abs(s.rel(outside)) == outside


def test_database_without_the_metrics_path_column_still_opens(tmp_path: Path) -> None:
    """A database written before `metrics.path` existed reads (NULL path) and gains the column on a write open."""
    p = tmp_path / "old.db"
    Store.open(p, write=True).close()
    conn = sqlite3.connect(p)
    conn.execute("alter table metrics drop column path")
    conn.commit()
    conn.close()
    with Store.open(p) as ro:
        assert "path" not in ro.db["metrics"].columns_dict
        assert ro.records() == []
    with Store.open(p, write=True) as rw:
        assert "path" in rw.db["metrics"].columns_dict
