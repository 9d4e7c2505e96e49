"""Per-epsilon accuracy streamed while an evaluation runs: each finished eps reaches the runs table's `live`
column (one write per eps) for monitors, never the metrics table; the stored evaluation clears it; the stored
results and the export are what they are without streaming."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from rttui import api
from rttui.runner import events as ev
from rttui.store import Store
from tests.studies import tiny_study

GRID = [0.0, 0.03, 0.1]


def _run(tmp_path: Path, name: str) -> tuple[Path, list[tuple[ev.Event, Any]]]:
    """The tiny study with one run, into its own database; every EpsDone/EvalDone with what a reader of the
    database saw right after the coordinator applied it."""
    d = tmp_path / name
    d.mkdir()
    f = d / "tiny.toml"
    f.write_text(tiny_study(grid=[{"models": ["test_resnet"], "strategies": ["full"]}]))
    db = d / "tiny.db"
    seen: list[tuple[ev.Event, Any]] = []

    def listener(event: ev.Event) -> None:
        if isinstance(event, ev.EpsDone | ev.EvalDone):
            rid = event.run_id
            with Store.open(db) as ro:  # a second reader, as the Monitor is
                row = ro.unit("run", rid)
                stored = ro.rows("select eps, n_adv_correct from metrics where eval_id = ?", (event.eval_id,))
                seen.append((event, {"live": ro.live("tiny").get(rid), "raw": row["live"], "stored": stored}))

    api.run_study(api.load_study(f), db, listener)
    return db, seen


def _records(db: Path) -> list[dict[str, Any]]:
    """The exported records less what two runs of one study never share: when the environment was collected
    and how long the audit took."""
    recs = api.export_records(db)
    for r in recs:
        if r.get("env"):
            r["env"] = {k: v for k, v in r["env"].items() if k != "collected_at"}
        if r.get("audit"):
            r["audit"] = {k: v for k, v in r["audit"].items() if k != "seconds"}
    return recs


def test_live_holds_the_eps_done_so_far_and_is_cleared_when_the_evaluation_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, seen = _run(tmp_path, "streamed")
    streamed = [(e, s) for e, s in seen if isinstance(e, ev.EpsDone)]
    assert {e.attack for e, _ in streamed} == {"fgsm", "pgd"}
    assert len(streamed) == 2 * len(GRID)  # one event (one write) per eps, never per batch
    for e, s in streamed:
        live = s["live"]
        # mid-evaluation: the eps done so far, in ascending order, and nothing of it in the metrics table
        assert live["eval_id"] == e.eval_id and live["label"] == e.attack and live["n"] == e.n == 60
        eps_so_far = [p["eps"] for p in live["points"]]
        assert eps_so_far == GRID[: GRID.index(e.eps) + 1]
        assert live["epsilons"] == GRID
        assert s["stored"] == []
    for e, s in seen:
        if isinstance(e, ev.EvalDone):
            assert s["raw"] is None and s["live"] is None  # superseded by the stored grid, in one transaction
            final = {m["eps"]: m["n_adv_correct"] for m in e.metrics}
            assert {r["eps"]: r["n_adv_correct"] for r in s["stored"]} == final
            last = [st["live"] for ev_, st in streamed if ev_.eval_id == e.eval_id][-1]
            # what was streamed is exactly what is stored
            assert {p["eps"]: p["n_adv_correct"] for p in last["points"]} == final
            assert all(abs(p["adv_acc"] - p["n_adv_correct"] / 60) < 1e-12 for p in last["points"])
    with Store.open(db) as ro:
        assert ro.live("tiny") == {}
        assert ro.rows("select count(*) as n from runs where live is not null")[0]["n"] == 0

    # the same study without streaming: identical metrics and an identical export
    import rttui.runner.tasks as tasks

    monkeypatch.setattr(tasks, "_eps_stream", lambda *a: None)
    plain_db, plain_seen = _run(tmp_path, "plain")
    assert not any(isinstance(e, ev.EpsDone) for e, _ in plain_seen)
    q = "select eval_id, eps, run_id, attack, n, n_clean_correct, n_adv_correct, adv_acc, path from metrics "
    q += "order by eval_id, eps"
    assert sqlite3.connect(db).execute(q).fetchall() == sqlite3.connect(plain_db).execute(q).fetchall()
    a, b = _records(db), _records(plain_db)
    assert a == b and len([r for r in a if r["attack"] != "worst-case"]) == 2 * len(GRID)
    assert api.records_text(api.export_records(db), "csv") == api.records_text(api.export_records(plain_db), "csv")
    assert not any("live" in json.dumps(r, default=str) for r in a)


def test_a_failed_or_reset_run_drops_what_it_streamed(tmp_path: Path) -> None:
    from rttui.runner.coordinator import Coordinator

    with Store.open(tmp_path / "x.db", write=True) as s:
        cfg = {"source_id": "src", "target": {"dataset": "d"}, "model": {"name": "m"}, "seed": 0}
        s.ensure_run("r", {**cfg, "strategy": {"name": "full"}, "technique": {"name": "none"}})
        s.register_study("st", None, {}, ["r"])
        c = Coordinator(s, None)  # type: ignore[arg-type]  # emit needs no plan
        c.emit(ev.UnitStarted("run", "r", "r"))
        kw = {"run_id": "r", "eval_id": "e", "attack": "pgd", "label": "pgd", "n": 10, "epsilons": [0.0, 0.1]}
        c.emit(ev.EpsDone(eps=0.0, n_adv_correct=9, **kw))
        assert s.live("st")["r"]["points"] == [{"eps": 0.0, "n_adv_correct": 9, "adv_acc": 0.9}]
        c.emit(ev.UnitFailed("run", "r", "boom"))
        assert s.unit("run", "r")["live"] is None
        c.emit(ev.UnitStarted("run", "r", "r"))  # a retry starts from nothing
        c.emit(ev.EpsDone(eps=0.0, n_adv_correct=8, **kw))
        assert [p["n_adv_correct"] for p in s.live("st")["r"]["points"]] == [8]
        s.reset_running_units()  # a cancel: its partial work is not trusted
        assert s.unit("run", "r")["live"] is None and s.live("st") == {}


def test_a_database_from_before_the_live_column_reads_as_nothing_streamed(tmp_path: Path) -> None:
    p = tmp_path / "old.db"
    with Store.open(p, write=True) as s:
        s.register_study("st", None, {}, [])
    conn = sqlite3.connect(p)
    conn.execute("alter table runs drop column live")
    conn.commit()
    conn.close()
    with Store.open(p) as ro:  # read-only: the column is not added
        assert not ro.has_column("runs", "live") and ro.live("st") == {}
    assert api.study_progress(p, "st")["live"] == {}
