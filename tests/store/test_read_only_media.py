"""A results archive on a read-only mount reads like any other: readers open the file read-only, and
`immutable` where SQLite could not create the WAL's shared-memory file (no WAL file, folder not writable).

The real case is a read-only bind mount (even root cannot write there); where mounting is not allowed those
tests skip and the rule that picks `immutable` is still tested on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from rttui.errors import StoreNote
from rttui.store import Store
from rttui.store import connection as conn_mod
from tests.entry import run_cli as _cli
from tests.mounts import read_only_view
from tests.studies import tiny_study

COMMANDS = [
    ["status"],
    ["export"],
    ["compare"],
    ["ttest", "--axis", "strategy", "--a", "layer_freezing", "--b", "full", "--attack", "pgd", "--mcnemar"],
    ["check-db"],
]


def _untimed(out: str) -> str:
    """check-db's verdict without its seconds (which vary with the machine's load)."""
    return re.sub(r"in \d+\.\d+ s\)", "in N s)", out)


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
        expected[args[0] + str(len(args))] = _untimed(out)
    for f in archive.glob("results.db-*"):  # what those readers left in the writable folder
        f.unlink()
    with read_only_view(archive, tmp_path / "ro") as ro:
        db = ro / "results.db"
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")  # really read-only, root included
        for args in COMMANDS:
            code, out, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
            assert code == 0, (args, err)
            assert _untimed(out.replace(str(db), str(archive / "results.db"))) == expected[args[0] + str(len(args))]
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
    """The rule on its own (no mount needed): immutable needs a folder we cannot write (then no live writer can
    exist: it would have made the -shm SQLite failed to create)."""
    db = tmp_path / "x.db"
    sqlite3.connect(db).close()
    assert not conn_mod._immutable_is_safe(db)  # writable folder: SQLite makes its -shm, no need
    monkeypatch.setattr(os, "access", lambda p, mode: mode != os.W_OK)
    assert conn_mod._immutable_is_safe(db)  # read-only folder
    assert not conn_mod._wal_has_content(db)
    Path(f"{db}-wal").write_bytes(b"")
    assert not conn_mod._wal_has_content(db)  # an empty -wal (left by a reader) carries nothing: no note
    Path(f"{db}-wal").write_bytes(b"\0" * 32)
    assert conn_mod._wal_has_content(db)  # committed rows may be in there: read, with a note


def _archive_with_wal(tmp_path: Path, tiny_run_db: Path) -> tuple[Path, Path]:
    """(folder, database): the tiny study's database with one committed row left in its -wal (a runner's lock, as
    a killed runner leaves it), copied with that -wal but without the -shm (how archives get copied)."""
    src = tmp_path / "src"
    src.mkdir()
    a, b = sqlite3.connect(tiny_run_db), sqlite3.connect(src / "live.db")
    a.backup(b)
    a.close()
    b.close()
    archive = tmp_path / "archive"
    archive.mkdir()
    with Store.open(src / "live.db", write=True) as s:
        s.acquire_lock("killed")
        for suffix in ("", "-wal"):
            shutil.copy(f"{src / 'live.db'}{suffix}", f"{archive / 'k.db'}{suffix}")
        s.release_lock()
    assert (archive / "k.db-wal").stat().st_size > 0 and not (archive / "k.db-shm").exists()
    return archive, archive / "k.db"


def _reads_with_one_note(
    db: Path, expected: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for args in COMMANDS:
        code, out, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        assert code == 0, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rttui: note: "), (args, err)
        assert str(db) in lines[0] and "k.db-wal" in lines[0] and "may be missing" in lines[0], err
        assert "copy" in lines[0] and "writable" in lines[0], err
        if args[0] in expected:
            assert out.replace(str(db), "DB") == expected[args[0]], args


def _expected(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> dict[str, str]:
    """What the commands print for the main file alone (the WAL's row is a lock, which no result shows)."""
    out = {}
    for args in (["export"], ["compare"]):
        code, text, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        assert code == 0, err
        out[args[0]] = text.replace(str(db), "DB")
    return out


def test_an_archive_with_a_wal_but_no_shm_on_a_read_only_mount_reads_with_a_note(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Issue #28 item 3: every read command answered "cannot open the database ... permissions"."""
    archive, _ = _archive_with_wal(tmp_path, tiny_run_db)
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(archive / "k.db", plain / "k.db")
    expected = _expected(plain / "k.db", monkeypatch, capsys)
    with read_only_view(archive, tmp_path / "ro") as ro:
        db = ro / "k.db"
        _reads_with_one_note(db, expected, monkeypatch, capsys)
        assert sorted(p.name for p in ro.iterdir()) == ["k.db", "k.db-wal"]  # nothing created
        for args in (["run", str(tmp_path / "tiny.toml"), "-q"], ["cancel"]):  # a refusal is its one line only
            (tmp_path / "tiny.toml").write_text(tiny_study())
            code, _, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
            lines = err.strip().splitlines()
            assert code == 2 and len(lines) == 1 and "read-only file system" in lines[0], err
        with pytest.warns(StoreNote), Store.open(db) as r:
            assert r.rows("select study from locks") == []  # the WAL's row is the one not read: as the note says


def test_an_archive_with_a_wal_but_no_shm_reads_with_a_note_injected(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The same without a mount: the folder reads as not writable and SQLite's first read fails as it does where
    it cannot create the -shm."""
    archive, db = _archive_with_wal(tmp_path, tiny_run_db)
    expected = _expected(db, monkeypatch, capsys)
    for f in archive.glob("k.db-shm"):  # what those readers left in the writable folder
        f.unlink()

    def cannot_make_shm(conn: sqlite3.Connection) -> None:  # only the plain open probes; the immutable one reads
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(conn_mod, "_first_read", cannot_make_shm)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: mode != os.W_OK and real_access(p, mode, **kw))
    _reads_with_one_note(db, expected, monkeypatch, capsys)
