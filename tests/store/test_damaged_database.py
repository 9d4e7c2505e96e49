"""A damaged database is named, never a traceback.

Every command that reads results runs SQLite's quick_check when it opens the file, so damage anywhere in it
(8 KiB garbled inside `samples`, garbled `metrics` or `runs` pages, a flipped page header) stops it with one line
naming the file, `rttui check-db --full` and the way out (a backup, or `sqlite3 DB .recover`), exit 2. A runner
runs the full check (integrity_check, and rttui's own checks of the values: UTF-8 text, per-sample outcomes that
agree with themselves) before it writes anything, so a byte flipped inside a row stops it too. A table missing
from a file whose schema version has it is damage, never recreated empty; text that is not UTF-8 is damage,
never "a bug in rttui" (issue #28).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.entry import run_cli as _cli

TTEST = ["ttest", "--axis", "strategy", "--a", "layer_freezing", "--b", "full", "--attack", "pgd", "--eps", "0.03"]


def _garble_samples(db: Path, nbytes: int = 8192) -> list[int]:
    """Overwrite `nbytes` of the samples table's leaf pages with random bytes; returns the pages hit."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        page_size = c.execute("pragma page_size").fetchone()[0]
        try:
            pages = [
                r[0]
                for r in c.execute("select pageno from dbstat where name = 'samples' and pagetype = 'leaf' order by 1")
            ]
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no dbstat table to find the samples pages with")
    finally:
        c.close()
    hit = pages[: nbytes // page_size]
    assert len(hit) * page_size == nbytes, f"the samples table has only {len(pages)} leaf pages"
    rng = random.Random(0)
    with open(db, "r+b") as f:
        for page in hit:
            f.seek((page - 1) * page_size)
            f.write(bytes(rng.randrange(256) for _ in range(page_size)))
    return hit


@pytest.fixture
def damaged(tmp_path: Path, tiny_run_db: Path) -> tuple[Path, Path, Path]:
    """(intact copy, damaged copy, study file) of the tiny study's database."""
    assert not Path(f"{tiny_run_db}-wal").exists() or Path(f"{tiny_run_db}-wal").stat().st_size == 0
    good, bad = tmp_path / "good.db", tmp_path / "bad.db"
    shutil.copy(tiny_run_db, good)
    shutil.copy(tiny_run_db, bad)
    _garble_samples(bad)
    study = tmp_path / "tiny.toml"
    shutil.copy(tiny_run_db.parent / "tiny.toml", study)
    return good, bad, study


def _one_damage_line(err: str, db: Path, check_db: bool = False) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(db) in lines[0] and "damaged" in lines[0] and ".recover" in lines[0] and "backup" in lines[0], err
    if check_db:  # a reader's message says how to see all of the damage
        assert f"rttui check-db --db {db} --full" in lines[0], err


def test_commands_on_a_damaged_database(
    damaged: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    good, bad, study = damaged
    # Commands that read the damaged pages: one line, exit 2.
    # export, compare and ttest read the per-sample outcomes too (the worst case is derived from them).
    for args in ([*TTEST, "--mcnemar"], ["check-db"], ["check-db", "--full"], ["export"], ["compare"], [*TTEST]):
        code, _, err = _cli([*args, "--db", str(bad)], monkeypatch, capsys)
        assert code == 2, (args, err)
        _one_damage_line(err, bad)
    # The runner checks the file before its first write: refused, and the file is left exactly as it was.
    before = bad.read_bytes()
    code, _, err = _cli(["run", str(study), "--db", str(bad), "-q"], monkeypatch, capsys)
    assert code == 2, err
    _one_damage_line(err, bad)
    assert "quick_check" in err
    assert bad.read_bytes() == before
    # A command that never reads the samples pages finds the damage too: readers check the file when they open it.
    code, out, err = _cli(["status", "--db", str(bad)], monkeypatch, capsys)
    assert code == 2 and out == "", err
    _one_damage_line(err, bad, check_db=True)
    code, out, err = _cli(["status", "--db", str(good)], monkeypatch, capsys)
    assert code == 0 and "tiny" in out, err
    # The intact copy passes both checks.
    for full in ([], ["--full"]):
        code, out, err = _cli(["check-db", *full, "--db", str(good)], monkeypatch, capsys)
        assert code == 0 and "no damage found" in out and str(good) in out, err


def test_an_unexpected_database_error_is_one_line_naming_the_file(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An SQLite error that is neither damage nor a full disk (here a column renamed by hand) is still one line
    with the file, pointing to check-db, instead of a traceback."""
    db = _copy(tiny_run_db, tmp_path / "edited.db")
    c = sqlite3.connect(db)
    c.execute("alter table runs rename column strategy to strat")
    c.commit()
    c.close()
    code, _, err = _cli(["status", "--db", str(db)], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0] and "no such column" in lines[0] and "check-db" in lines[0], err


def _copy(src: Path, dst: Path) -> Path:
    """A copy of a closed database (a backup: the session's file may be open in another test)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()
    return dst


def _pages(db: Path, table: str) -> tuple[list[int], int]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages = [r[0] for r in c.execute("select pageno from dbstat where name = ? order by 1", (table,))]
        return pages, c.execute("pragma page_size").fetchone()[0]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table to find a table's pages with")
    finally:
        c.close()


def _garble_table(db: Path, table: str) -> None:
    """Random bytes over the first page of `table`."""
    pages, size = _pages(db, table)
    rng = random.Random(1)
    with open(db, "r+b") as f:
        f.seek((pages[0] - 1) * size)
        f.write(bytes(rng.randrange(256) for _ in range(size)))


def _flip_header(db: Path, table: str) -> None:
    """The page-type byte of `table`'s first page inverted (a b-tree page header flipped)."""
    pages, size = _pages(db, table)
    with open(db, "r+b") as f:
        f.seek((pages[0] - 1) * size)
        b = f.read(1)[0]
        f.seek((pages[0] - 1) * size)
        f.write(bytes([b ^ 0xFF]))


READERS = [["status"], ["export"], ["compare"], [*TTEST], ["checks"], ["confusions"]]


@pytest.mark.parametrize(
    "damage",
    [
        ("garbled metrics", lambda db: _garble_table(db, "metrics")),
        ("garbled runs", lambda db: _garble_table(db, "runs")),
        ("flipped metrics header", lambda db: _flip_header(db, "metrics")),
        ("flipped samples header", lambda db: _flip_header(db, "samples")),
    ],
    ids=lambda d: d[0],
)
def test_every_reading_command_finds_damage_anywhere_in_the_file(
    damage: tuple[str, Callable[[Path], None]],
    tmp_path: Path,
    tiny_run_db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    db = _copy(tiny_run_db, tmp_path / "bad.db")
    for args in READERS:  # the intact copy answers every one of them
        code, _, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        assert code == 0, (args, err)
    damage[1](db)
    for args in READERS:
        code, out, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        assert code == 2 and out == "", (args, out, err)
        _one_damage_line(err, db, check_db=True)


def _flip_in_samples_row(db: Path) -> None:
    """One byte flipped inside a stored samples row (a hex digit of its eval_id turned into a 'g'): every page
    still parses, so quick_check passes; the row no longer matches its index entries."""
    (eval_id,) = sqlite3.connect(db).execute("select eval_id from samples order by rowid").fetchone()
    pages, size = _pages(db, "samples")
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * size)
            data = f.read(size)
            at = data.find(eval_id.encode())
            if at >= 0:
                f.seek((page - 1) * size + at)
                f.write(bytes([ord("g")]))  # not a hex digit: an eval_id rttui never wrote
                return
    raise AssertionError("the samples pages do not hold the first row's eval_id")


def test_a_byte_flipped_inside_a_samples_row_stops_the_runner(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = _copy(tiny_run_db, tmp_path / "flip.db")
    study = tmp_path / "tiny.toml"
    shutil.copy(tiny_run_db.parent / "tiny.toml", study)
    _flip_in_samples_row(db)
    code, out, _ = _cli(["check-db", "--db", str(db)], monkeypatch, capsys)
    assert code == 0 and "quick_check" in out  # the quick check cannot see it: the case this test is about
    code, _, err = _cli(["check-db", "--full", "--db", str(db)], monkeypatch, capsys)
    assert code == 2
    _one_damage_line(err, db)
    before = db.read_bytes()
    code, _, err = _cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 2 and "integrity_check" in err, err
    _one_damage_line(err, db)
    assert db.read_bytes() == before  # nothing written into the damaged file


def test_a_changed_outcome_value_stops_the_runner(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A flipped byte in a value no index holds (a sample's label, as SQL sets it here) passes every SQLite check;
    the outcome then disagrees with itself (clean_correct against label and prediction), which the full check
    and the runner find."""
    db = _copy(tiny_run_db, tmp_path / "label.db")
    study = tmp_path / "tiny.toml"
    shutil.copy(tiny_run_db.parent / "tiny.toml", study)
    c = sqlite3.connect(db)
    c.execute("update samples set label = label + 1 where rowid = (select min(rowid) from samples where clean_correct)")
    c.commit()
    assert c.execute("pragma integrity_check").fetchall() == [("ok",)]
    c.close()
    code, _, err = _cli(["check-db", "--full", "--db", str(db)], monkeypatch, capsys)
    assert code == 2 and "clean_correct disagrees" in err, err
    before = db.read_bytes()
    code, _, err = _cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 2 and "clean_correct disagrees" in err, err
    _one_damage_line(err, db)
    assert db.read_bytes() == before


def test_a_dropped_table_is_damage_not_a_fresh_start(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = _copy(tiny_run_db, tmp_path / "dropped.db")
    study = tmp_path / "tiny.toml"
    shutil.copy(tiny_run_db.parent / "tiny.toml", study)
    c = sqlite3.connect(db)
    c.execute("drop table samples")
    c.commit()
    c.close()
    before = db.read_bytes()
    for args in [*READERS, ["check-db"], ["run", str(study), "-q"]]:
        code, out, err = _cli([*args, "--db", str(db)], monkeypatch, capsys)
        assert code == 2 and out == "", (args, err)
        _one_damage_line(err, db)
        assert "no such table: samples" in err, err
    assert db.read_bytes() == before  # never recreated empty
    assert "samples" not in {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}


@pytest.mark.parametrize("column", ["runs.info", "metrics.mode"])
def test_text_that_is_not_utf8_is_damage_not_a_bug(
    column: str, tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = _copy(tiny_run_db, tmp_path / "utf.db")
    table, col = column.split(".")
    c = sqlite3.connect(db)
    c.execute(f"update {table} set {col} = cast(x'fffe41' as text) where rowid = (select min(rowid) from {table})")
    c.commit()
    c.close()
    readers = ["export", "compare"] if table == "metrics" else ["status", "compare"]
    for args in readers:
        code, out, err = _cli([args, "--db", str(db)], monkeypatch, capsys)
        assert code == 2 and out == "", (args, err)
        _one_damage_line(err, db, check_db=True)
        assert "bug" not in err and col in err, err
    code, _, err = _cli(["check-db", "--full", "--db", str(db)], monkeypatch, capsys)
    assert code == 2 and f"{table}.{col} of row" in err and "not UTF-8" in err, err
