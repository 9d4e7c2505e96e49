"""A disk that fills up during a run: one line, exit 1, every stored result whole, and the next run (with space
again) completes the study without redoing what was stored.

The disk fills right after the first evaluation is stored, so the next write of the runner's coordinator (the
second evaluation) is the one that fails. Three ways: that one write fails as SQLite's `database or disk is
full` does and the next ones find space again (another process freed some); every write from then on fails;
a real tmpfs filled to the last byte (the checkpoints next to the database then cannot be written either).
In-process and with a pool of two worker processes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from rttui import api
from rttui.cli import main
from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator
from rttui.store.connection import StoreCursor, store_error
from tests.mounts import fill, small_disk
from tests.studies import tiny_study

# Two runs with two evaluations each (FGSM, PGD), as small as that can be: the disk fills between the two.
STUDY = tiny_study(
    study={"name": "full"},
    source={"epochs": 1, "train_size": 100},
    target={"train_size": 80, "test_size": 30},
    attacks={"pgd": {"steps": 2}},
)


def _q(db: Path, sql: str) -> list[tuple[Any, ...]]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _stored(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "evals": _q(db, "select id, run_id, attack, n from evaluations order by id"),
        "metrics": _q(db, "select eval_id, eps, n_clean_correct, n_adv_correct from metrics order by 1, 2"),
        "samples": _q(db, "select eval_id, idx, clean_pred, fooled_mask from samples order by 1, 2"),
    }


def _assert_whole(db: Path) -> None:
    """Each stored evaluation has all its metric and sample rows (nothing half-written)."""
    for eid, n, grid in _q(db, "select id, n, epsilons from evaluations"):
        assert _q(db, f"select count(*) from metrics where eval_id = '{eid}'") == [(len(json.loads(grid)),)]
        assert _q(db, f"select count(*) from samples where eval_id = '{eid}'") == [(n,)]


@pytest.mark.parametrize(("how", "workers"), [("one write", 1), ("one write", 2), ("every write", 2), ("tmpfs", 1)])
def test_disk_full_mid_run_is_one_line_and_the_next_run_completes(
    tmp_path: Path, how: str, workers: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", 64 * 1024) if how == "tmpfs" else _nullcontext(tmp_path) as where:
        study, db = where / "full.toml", where / "full.db"
        study.write_text(STUDY)
        fillers: list[Path] = []
        emit = Coordinator.emit

        def emit_then_fill(self: Coordinator, e: ev.Event) -> None:
            emit(self, e)
            if isinstance(e, ev.EvalDone) and not fillers:
                fillers.append(fill(where) if how == "tmpfs" else db)

        execute, executemany = StoreCursor.execute, StoreCursor.executemany

        refusals: list[str] = []

        def refused(self: StoreCursor, sql: str) -> None:
            """What the store's connection raises for a write SQLite answered with SQLITE_FULL."""
            if not fillers or not sql.lstrip().lower().startswith(("insert", "update", "delete", "replace")):
                return
            if how == "every write" or not refusals:
                refusals.append(sql)
                raise store_error(sqlite3.OperationalError("database or disk is full"), self.connection.path)

        def execute_on_full_disk(self: StoreCursor, sql: str, parameters: Any = (), /) -> StoreCursor:
            refused(self, sql)
            return execute(self, sql, parameters)

        def executemany_on_full_disk(self: StoreCursor, sql: str, parameters: Any, /) -> StoreCursor:
            refused(self, sql)
            return executemany(self, sql, parameters)

        if how != "tmpfs":
            monkeypatch.setattr(StoreCursor, "execute", execute_on_full_disk)
            monkeypatch.setattr(StoreCursor, "executemany", executemany_on_full_disk)
        monkeypatch.setattr(Coordinator, "emit", emit_then_fill)
        argv = ["rttui", "run", str(study), "--db", str(db), "-q", "--workers", str(workers)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert fillers, "the disk never filled: the study stored no evaluation"
        assert exit_.value.code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(db) in lines[0] and "disk full" in lines[0] and "finished work is stored" in lines[0], err

        if how == "tmpfs":
            fillers[0].unlink()  # space again
        monkeypatch.undo()
        before = _stored(db)
        assert len(before["evals"]) == 1  # the first evaluation, stored before the disk filled
        _assert_whole(db)
        # The runner's failure is not blamed on a unit (a 'failed' run would carry the disk's error as its own).
        assert _q(db, "select count(*) from runs where state = 'failed'") == [(0,)]
        if how == "one write":  # space again: the runner put its units back and gave its lock up
            assert _q(db, "select count(*) from runs where state = 'running'") == [(0,)]
            assert _q(db, "select count(*) from locks") == [(0,)]
        # Otherwise a unit in flight may stay 'running', as after a killed runner: putting it back is a write too.
        res = api.run_study(api.load_study(study), db)
        assert res["failed"] == 0 and res["done"] == 2 and not res["cancelled"]
        after = _stored(db)
        for key in before:
            assert set(before[key]) <= set(after[key]), key  # finished work kept, not redone
        assert len(after["evals"]) == 4
        _assert_whole(db)
        assert _q(db, "select count(*) from runs where state != 'done'") == [(0,)]
        assert api.status(db)["runner"] is None


class _nullcontext:
    def __init__(self, value: Path) -> None:
        self.value = value

    def __enter__(self) -> Path:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None
