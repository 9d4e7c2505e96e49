"""A damaged database is named, never a traceback: 8 KiB garbled inside the `samples` table.

Commands that read the damaged pages stop with one line naming the file and the way out (a backup, or
`sqlite3 DB .recover`), exit 2; a runner checks the file (quick_check) before it writes anything, so it refuses
too; `rttui check-db` finds the damage. Commands that never read those pages (status, export, compare read the
runs and metrics tables) answer as they did before the damage: their output is compared with the intact copy's.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
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


def _one_damage_line(err: str, db: Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(db) in lines[0] and "damaged" in lines[0] and ".recover" in lines[0] and "backup" in lines[0], err


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
    # Commands that never read the samples pages answer exactly as on the intact copy.
    for args in (["status"],):
        code_good, out_good, _ = _cli([*args, "--db", str(good)], monkeypatch, capsys)
        code_bad, out_bad, err = _cli([*args, "--db", str(bad)], monkeypatch, capsys)
        assert (code_bad, out_bad.replace(str(bad), str(good))) == (code_good, out_good), (args, err)
        assert code_good == 0
    # The intact copy passes both checks.
    for full in ([], ["--full"]):
        code, out, err = _cli(["check-db", *full, "--db", str(good)], monkeypatch, capsys)
        assert code == 0 and "no damage found" in out and str(good) in out, err


def test_an_unexpected_database_error_is_one_line_naming_the_file(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An SQLite error that is neither damage nor a full disk (here a table dropped by hand) is still one line
    with the file, pointing to check-db, instead of a traceback."""
    db = tmp_path / "edited.db"
    shutil.copy(tiny_run_db, db)
    c = sqlite3.connect(db)
    c.execute("drop table study_runs")
    c.commit()
    c.close()
    code, _, err = _cli(["status", "--db", str(db)], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0] and "no such table" in lines[0] and "check-db" in lines[0], err
