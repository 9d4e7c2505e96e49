"""A results archive on a read-only mount reads like any other: readers open the file read-only, and
`immutable` where SQLite could not create the WAL's shared-memory file (no WAL file, folder not writable).

The real case is a read-only bind mount (even root cannot write there); where mounting is not allowed those
tests skip and the rule that picks `immutable` is still tested on its own.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from rttui.store import Store
from rttui.store import connection as conn_mod
from tests.entry import run_cli as _cli
from tests.mounts import read_only_view

COMMANDS = [
    ["status"],
    ["export"],
    ["compare"],
    ["ttest", "--axis", "strategy", "--a", "layer_freezing", "--b", "full", "--attack", "pgd", "--mcnemar"],
    ["check-db"],
]


def test_a_database_on_a_read_only_mount_reads_like_a_writable_one(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    shutil.copy(tiny_run_db, archive / "results.db")  # a closed database: no -wal, no -shm
    shutil.copy(tiny_run_db.parent / "tiny.toml", archive / "tiny.toml")
    expected = {}
    for args in COMMANDS:
        code, out, err = _cli([*args, "--db", str(archive / "results.db")], monkeypatch, capsys)
        assert code == 0, err
        expected[args[0] + str(len(args))] = out
    for f in archive.glob("results.db-*"):  # what those readers left in the writable folder
        f.unlink()
    with read_only_view(archive, tmp_path / "ro") as ro:
        db = ro / "results.db"
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")  # really read-only, root included
        for args in COMMANDS:
            code, out, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
            assert code == 0, (args, err)
            assert out.replace(str(db), str(archive / "results.db")) == expected[args[0] + str(len(args))], args
        assert sorted(p.name for p in ro.iterdir()) == ["results.db", "tiny.toml"]  # nothing created
        # Writing is refused in one line that says why.
        for args in (["run", str(ro / "tiny.toml"), "-q"], ["cancel"]):
            code, _, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and "read-only file system" in lines[0], err


def test_a_killed_runners_wal_on_a_read_only_mount_is_read_not_skipped(tmp_path: Path) -> None:
    """With a -wal holding committed rows (a runner killed, then archived), `immutable` would hide those rows:
    the plain read-only open reads them (SQLite does when the -shm is there too)."""
    src = tmp_path / "src"
    src.mkdir()
    with Store.open(src / "live.db", write=True) as s:
        s.acquire_lock("killed")
        # Copy while the writer is open: db, -wal and -shm as a SIGKILL would leave them.
        for suffix in ("", "-wal", "-shm"):
            shutil.copy(f"{src / 'live.db'}{suffix}", f"{src / 'k.db'}{suffix}")
        s.release_lock()
    assert (src / "k.db-wal").stat().st_size > 0
    with read_only_view(src, tmp_path / "ro") as ro, Store.open(ro / "k.db") as r:
        assert r.rows("select study from locks") == [{"study": "killed"}]  # the row lives only in the WAL


def test_immutable_only_where_no_writer_can_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule on its own (no mount needed): immutable needs a folder we cannot write and no WAL content."""
    db = tmp_path / "x.db"
    sqlite3.connect(db).close()
    assert not conn_mod._immutable_is_safe(db)  # writable folder: SQLite makes its -shm, no need
    monkeypatch.setattr(os, "access", lambda p, mode: mode != os.W_OK)
    assert conn_mod._immutable_is_safe(db)  # read-only folder, no -wal
    Path(f"{db}-wal").write_bytes(b"")
    assert conn_mod._immutable_is_safe(db)  # an empty -wal (left by a reader) carries nothing
    Path(f"{db}-wal").write_bytes(b"\0" * 32)
    assert not conn_mod._immutable_is_safe(db)  # committed rows may be in there: never skip them
