"""Execution that survives the real world: killed workers, a killed runner, NaN, out of memory, two runners,
cancel, bad database files. After each: finished runs' rows intact, nothing duplicated, the next run completes.

Faults are made real at reproducible points with the RTTUI_FAULTS test hook (a real SIGKILL, a real NaN in the
data, torch's own OutOfMemoryError). Runs use one torch thread: results then match bit for bit across processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from rttui import api
from rttui.cli import main
from rttui.runner import events as ev
from tests.studies import tiny_study


def small_study(strategies: tuple[str, ...] = ("full", "feature_extraction"), lr: float = 2e-3) -> str:
    """Two strategies, two epochs each, FGSM only: small enough to kill, resume and compare in seconds."""
    return tiny_study(
        study={"name": "small"},
        source={"train_size": 120},
        target={"test_size": 30, "train_size": 80},
        train={"lr": lr, "epochs": 2, "batch_size": 32},
        eval={"epsilons": [0.0, 0.1]},
        attacks={"pgd": None},
        grid=[{"models": ["test_resnet"], "strategies": list(strategies)}],
    )


SMALL = small_study()


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("RTTUI_FAULTS", raising=False)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    return p


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small study run once, uninterrupted, in-process with one thread."""
    d = tmp_path_factory.mktemp("ref")
    (d / "small.toml").write_text(SMALL)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        api.run_study(api.load_study(d / "small.toml"), d / "ref.db")
    finally:
        torch.set_num_threads(n)
    return d / "ref.db"


def _cli(*args: str, faults: list[dict] | None = None, wait: bool = True, **kw: Any) -> Any:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RTTUI_FAULTS", None)
    if faults:
        env["RTTUI_FAULTS"] = json.dumps(faults)
    cmd = [sys.executable, "-c", "from rttui.cli import main; main()", *args]
    if not wait:  # detached, as the TUI starts it: no terminal, stdin closed, its own session
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, **kw)


def _q(db: Path, sql: str) -> list[tuple]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _has_epoch(db: Path) -> bool:
    try:
        return db.exists() and _q(db, "select count(*) from epochs") != [(0,)]
    except sqlite3.OperationalError:  # the runner is still creating the tables
        return False


def _results(db: Path) -> dict[str, list[tuple]]:
    """Everything a finished run stores, keyed for comparison across databases."""
    return {
        "runs": _q(db, "select id, state, sha256, clean_acc, n_test from runs where state = 'done' order by id"),
        "evals": _q(db, "select id, run_id, attack, n from evaluations order by id"),
        "metrics": _q(db, "select eval_id, eps, n_clean_correct, n_adv_correct from metrics order by 1, 2"),
        "samples": _q(db, "select eval_id, idx, clean_pred, fooled_mask from samples order by 1, 2"),
        "epochs": _q(db, "select unit_id, epoch, loss from epochs order by 1, 2"),
    }


def _check_consistent(db: Path) -> None:
    """Nothing duplicated, nothing half-written, nobody left 'running', no live lock."""
    assert _q(db, "select count(*) from runs where state = 'running'") == [(0,)]
    assert _q(db, "select count(*) from sources where state = 'running'") == [(0,)]
    # One evaluation per (run, attack), and each has exactly its metric and sample rows.
    assert _q(db, "select run_id, attack, count(*) c from evaluations group by 1, 2 having c > 1") == []
    for eid, n in _q(db, "select id, n from evaluations"):
        assert _q(db, f"select count(*) from metrics where eval_id = '{eid}'") == [(2,)]
        assert _q(db, f"select count(*) from samples where eval_id = '{eid}'") == [(n,)]
    for rid, state in _q(db, "select id, state from runs"):
        if state == "done":
            assert _q(db, f"select count(*) from epochs where unit_id = '{rid}'") == [(2,)]
            assert _q(db, f"select count(*) from evaluations where run_id = '{rid}'") == [(1,)]
    assert api.status(db)["runner"] is None


def _assert_kept(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> None:
    """Every row of a finished run before is still there, unchanged."""
    done = {r[0] for r in before["runs"]}
    for key in ("runs", "evals"):
        keep = [r for r in before[key] if (r[0] if key == "runs" else r[1]) in done]
        assert set(keep) <= set(after[key]), key
    evals = {r[0] for r in before["evals"] if r[1] in done}
    for key in ("metrics", "samples"):
        keep = [r for r in before[key] if r[0] in evals]
        assert set(keep) <= set(after[key]), key


def test_runner_killed_with_sigkill_resumes_identically(study_file: Path, tmp_path: Path, reference_db: Path) -> None:
    db = tmp_path / "k.db"
    # The runner itself (in-process) dies by SIGKILL right after the source's epoch 1 is saved.
    r = _cli("run", str(study_file), "--db", str(db), "-q", faults=[{"unit": "source", "kill_after_epoch": 1}])
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert _q(db, "select state from sources") == [("running",)]  # as the dead runner left it
    assert _q(db, "select epoch from epochs") == [(1,)]
    # The next run is not blocked by the dead runner's lock, resumes the source from epoch 1, and completes.
    r = _cli("run", str(study_file), "--db", str(db), "-q", "--json-events")
    assert r.returncode == 0, r.stderr
    evts = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["from_epoch"] for e in evts if e["event"] == "TrainingStarted" and e["kind"] == "source"] == [1]
    _check_consistent(db)
    # Identical to a run that was never interrupted: weights (sha), accuracies, per-sample outcomes, losses.
    assert _results(db) == _results(reference_db)


def test_worker_killed_fails_its_run_and_others_go_on(study_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    seen: list[ev.Event] = []
    killed: list[int] = []
    pids: dict[int, int] = {}

    def listener(e: ev.Event) -> None:
        seen.append(e)
        if isinstance(e, ev.WorkerStarted):
            pids[e.worker] = e.pid
        # Kill the worker training `full` from outside, once it reported epoch 1 (feature extraction trains on
        # cached features and restarts from scratch by design, so the resumable run is the one to kill).
        if isinstance(e, ev.EpochDone) and e.record["epoch"] == 1 and not killed:
            started = [x for x in seen if isinstance(x, ev.UnitStarted) and x.unit_id == e.unit_id]
            if "/full/" in started[-1].label:
                killed.append(pids[started[-1].worker])
                os.kill(killed[0], signal.SIGKILL)

    res = api.run_study(api.load_study(study_file), db, listener, workers=2, max_retries=0)
    assert killed and res["failed"] == 1 and res["done"] == 1
    rows = {r["strategy"]: r for r in api.status(db)["runs"]}
    assert rows["full"]["state"] == "failed"
    assert "SIGKILL" in rows["full"]["error"]
    assert rows["feature_extraction"]["state"] == "done"
    _check_consistent(db)
    before = _results(db)
    # The next run only redoes the failed run, resuming it from its last saved epoch.
    seen.clear()
    res = api.run_study(api.load_study(study_file), db, seen.append)
    assert res == {"done": 1, "failed": 0, "runs": 2, "cancelled": False}
    assert [e.from_epoch for e in seen if isinstance(e, ev.TrainingStarted)] == [1]
    _check_consistent(db)
    _assert_kept(before, _results(db))
    assert {r["state"] for r in api.status(db)["runs"]} == {"done"}


def test_nan_fails_the_run_and_out_of_memory_halves_the_batch(
    study_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "f.db"
    monkeypatch.setenv(
        "RTTUI_FAULTS",
        json.dumps([{"unit": "feature_extraction", "nan": True}, {"unit": "/full/", "oom_above_batch": 8}]),
    )
    res = api.run_study(api.load_study(study_file), db)
    assert res["failed"] == 1 and res["done"] == 1
    rows = {r["strategy"]: r for r in api.status(db)["runs"]}
    assert rows["feature_extraction"]["state"] == "failed"
    assert "NonFiniteLoss" in rows["feature_extraction"]["error"] and "nan" in rows["feature_extraction"]["error"]
    full = rows["full"]
    info = json.loads(full["info"])
    assert full["state"] == "done" and info["batch_size"] == 8  # 32 -> 16 -> 8, each retry recorded
    assert [r["batch_scale"] for r in info["retries"]] == [0.5, 0.25]
    assert all("out of memory" in r["reason"] for r in info["retries"])
    _check_consistent(db)
    before = _results(db)
    monkeypatch.delenv("RTTUI_FAULTS")
    res = api.run_study(api.load_study(study_file), db)
    assert res["failed"] == 0 and res["done"] == 1
    _check_consistent(db)
    _assert_kept(before, _results(db))

    # An edited study: its changed cell is a new run; the old runs and their rows stay stored.
    old = {r["id"] for r in api.status(db)["runs"]}
    before = _results(db)
    study_file.write_text(small_study(strategies=("feature_extraction",), lr=1e-3))
    res = api.run_study(api.load_study(study_file), db, check_data_first=False)
    assert res["done"] == 1 and res["failed"] == 0
    assert old < {r["id"] for r in api.status(db)["runs"]}
    now = {r["id"] for r in api.status(db, "small")["runs"]}
    assert len(now) == 1 and not (now & old)  # the study is what its file says now
    _assert_kept(before, _results(db))
    _check_consistent(db)


def test_second_runner_is_refused_and_cancel_stops_cleanly(study_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    first = _cli(
        "run",
        str(study_file),
        "--db",
        str(db),
        "--workers",
        "2",
        wait=False,
        faults=[{"unit": "source", "sleep_after_epoch": 1, "seconds": 120}],
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _has_epoch(db):
            time.sleep(0.2)
        assert api.status(db)["runner"]["pid"] == first.pid
        t0 = time.monotonic()
        second = _cli("run", str(study_file), "--db", str(db))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "already running" in lines[0], second.stderr
        assert time.monotonic() - t0 < 60  # refused before any data is loaded or anything trained
        c = _cli("cancel", "--db", str(db))
        assert c.returncode == 0 and "cancel requested" in c.stdout
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    _check_consistent(db)  # nothing left running, lock released, every stored row whole
    assert _q(db, "select count(*) from requests where applied is not null") == [(1,)]
    seen: list[ev.Event] = []
    res = api.run_study(api.load_study(study_file), db, seen.append)
    assert res["failed"] == 0 and not res["cancelled"]
    # The source was cancelled after its epoch-1 checkpoint: the next run resumes it there.
    assert next((e.kind, e.from_epoch) for e in seen if isinstance(e, ev.TrainingStarted)) == ("source", 1)
    _check_consistent(db)
    assert {x["state"] for x in api.status(db)["runs"]} == {"done"}


@pytest.mark.parametrize("kind", ["not sqlite", "newer schema"])
def test_bad_database_file_is_one_line_and_untouched(
    study_file: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "bad.db"
    if kind == "not sqlite":
        db.write_bytes(b"my thesis draft " * 500)
    else:
        api.open_store(db, write=True).close()
        c = sqlite3.connect(db)
        c.execute("update meta set value = '99' where key = 'schema_version'")
        c.commit()
        c.close()
    before = db.read_bytes()
    for args in (["run", str(study_file)], ["status"], ["cancel"]):
        monkeypatch.setattr(sys, "argv", ["rttui", *args, "--db", str(db)])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and str(db) in err, err
    assert db.read_bytes() == before
