"""A cancel, wherever it lands, as the user sees it afterwards.

Whatever the executor (in this process, a pool of workers) and whichever unit it interrupts (the last one or one
in the middle, in training or in an attack), the interrupted unit goes back to pending (a trained run to
trained), nothing stays 'running' in the database, the study reads as cancelled and `rttui run` exits 130.
A cancel is a request in the database (`api.cancel`, what `rttui cancel` and the Monitor's `c` leave).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rttui import api
from rttui.runner import events as ev
from rttui.runner import local
from rttui.store import Store
from rttui.study import make_plan
from tests.studies import tiny_study

ONE_RUN = tiny_study(
    study={"name": "cancel"},
    source={"epochs": 1, "train_size": 100},
    train={"epochs": 2},
    grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
)
TWO_RUNS = tiny_study(study={"name": "cancel"}, source={"epochs": 1, "train_size": 100}, train={"epochs": 2})


def _states(db: Path) -> dict[str, list[str]]:
    s = Store.open(db)
    try:
        return {
            "sources": [r["state"] for r in s.rows("select state from sources")],
            "runs": [r["state"] for r in s.rows("select state from runs order by id")],
        }
    finally:
        s.close()


def _run_cancelling(tmp_path: Path, text: str, at: Any, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    """Run the study; the first event for which `at(event)` holds leaves a cancel request. Returns the result
    and the ids of the runs that had started when the cancel came."""
    f = tmp_path / "cancel.toml"
    f.write_text(text)
    db = tmp_path / "cancel.db"
    started: list[str] = []
    sent = []

    def listener(e: Any) -> None:
        if isinstance(e, ev.UnitStarted) and e.kind == "run":
            started.append(e.unit_id)
        if not sent and at(e):
            sent.append(api.cancel(db))

    res = api.run_study(api.load_study(f), db, listener=listener, **kw)
    assert sent and sent[0] is not None, "the cancel was never sent (or found no runner)"
    return res, started


def _run_epoch(epoch: int) -> Any:
    return lambda e: isinstance(e, ev.EpochDone) and e.kind == "run" and e.record["epoch"] == epoch


def _assert_cancelled(res: dict[str, Any], db: Path) -> dict[str, list[str]]:
    assert res["cancelled"], res
    states = _states(db)
    assert "running" not in states["sources"] + states["runs"], states
    return states


def test_a_cancel_in_the_last_units_training_leaves_it_pending_and_the_study_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "REQUEST_POLL_S", 0.0)  # the request is seen at the very next event
    res, started = _run_cancelling(tmp_path, ONE_RUN, _run_epoch(1))
    assert len(started) == 1
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert states == {"sources": ["done"], "runs": ["pending"]}
    assert res["done"] == 0


def test_a_cancel_in_a_middle_units_training_leaves_every_run_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "REQUEST_POLL_S", 0.0)
    res, started = _run_cancelling(tmp_path, TWO_RUNS, _run_epoch(1))
    assert len(started) == 1  # the second run never started
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert states["runs"] == ["pending", "pending"]


def test_a_cancel_that_comes_as_the_last_unit_finishes_leaves_the_study_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was interrupted, so nothing reads as cancelled: the run is done and `rttui run` would exit 0."""
    monkeypatch.setattr(local, "REQUEST_POLL_S", 0.0)
    at = lambda e: isinstance(e, ev.UnitFinished) and e.kind == "run"  # noqa: E731
    res, _ = _run_cancelling(tmp_path, ONE_RUN, at)
    assert not res["cancelled"] and res["done"] == 1, res
    assert _states(tmp_path / "cancel.db")["runs"] == ["done"]


def test_a_cancel_in_a_sources_training_leaves_it_and_its_runs_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "REQUEST_POLL_S", 0.0)
    text = tiny_study(study={"name": "cancel"}, source={"epochs": 2, "train_size": 100})
    at = lambda e: isinstance(e, ev.EpochDone) and e.kind == "source"  # noqa: E731
    res, started = _run_cancelling(tmp_path, text, at)
    assert started == []
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert states == {"sources": ["pending"], "runs": ["pending", "pending"]}


def test_a_cancel_in_the_last_units_evaluation_leaves_it_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "REQUEST_POLL_S", 0.0)
    at = lambda e: isinstance(e, ev.EvalDone) and e.attack == "fgsm"  # noqa: E731  (PGD still to come)
    res, _ = _run_cancelling(tmp_path, ONE_RUN, at)
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert states["runs"] == ["trained"]


@pytest.mark.parametrize("unit", ["last", "middle"])
def test_a_cancel_with_two_workers_leaves_the_interrupted_runs_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unit: str
) -> None:
    # Each run's worker pauses after its first epoch, so the cancel finds it busy.
    monkeypatch.setenv("RTTUI_FAULTS", json.dumps([{"unit": "run", "sleep_after_epoch": 1, "seconds": 60}]))
    res, _ = _run_cancelling(tmp_path, ONE_RUN if unit == "last" else TWO_RUNS, _run_epoch(1), workers=2)
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert set(states["runs"]) == {"pending"}, states


def test_a_cancel_with_ray_leaves_the_interrupted_last_run_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RTTUI_FAULTS", json.dumps([{"unit": "run", "sleep_after_epoch": 1, "seconds": 60}]))
    res, _ = _run_cancelling(tmp_path, ONE_RUN, _run_epoch(1), executor="ray", workers=1)
    states = _assert_cancelled(res, tmp_path / "cancel.db")
    assert states == {"sources": ["done"], "runs": ["pending"]}


def test_a_cancel_during_a_torchattacks_attack_stops_within_seconds(tmp_path: Path) -> None:
    """One batch of a long ta:CW (thousands of steps) is interrupted, not waited out: the check runs before every
    forward pass of the model, not only between batches or epsilons."""
    pytest.importorskip("torchattacks")
    text = tiny_study(
        study={"name": "cancel"},
        source={"epochs": 1, "train_size": 100},
        grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
        attacks={"pgd": None, "ta:CW": {"steps": 5000, "lr": 0.01}},
    )
    f = tmp_path / "cancel.toml"
    f.write_text(text)
    db = tmp_path / "cancel.db"
    sent: list[float] = []
    phases: list[str] = []

    def cancel() -> None:
        sent.append(time.monotonic())
        api.cancel(db)

    def listener(e: Any) -> None:
        if isinstance(e, ev.EvalDone) and e.attack == "fgsm":  # ta:CW starts next
            threading.Timer(0.5, cancel).start()
        if isinstance(e, ev.Progress):
            phases.append(e.phase)

    res = api.run_study(api.load_study(f), db, listener=listener)
    stopped_after = time.monotonic() - sent[0]
    states = _assert_cancelled(res, db)
    assert states["runs"] == ["trained"]
    assert "eval:ta:CW" not in phases  # not one batch of it finished
    assert stopped_after < 5, f"the runner stopped {stopped_after:.1f} s after the cancel"
    s = Store.open(db)
    try:
        assert [r["attack"] for r in s.rows("select attack from evaluations")] == ["fgsm"]
    finally:
        s.close()


def test_rttui_run_exits_130_when_its_last_unit_is_cancelled(tmp_path: Path) -> None:
    f = tmp_path / "cancel.toml"
    f.write_text(ONE_RUN)
    db = tmp_path / "cancel.db"
    # In this process the run pauses after its first epoch; the cancel arrives meanwhile.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "RTTUI_FAULTS": json.dumps([{"unit": "run", "sleep_after_epoch": 1, "seconds": 3}]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rttui", "run", str(f), "--db", str(db), "-q"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not _run_has_epoch(db):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert api.cancel(db) is not None
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "rttui: cancelled; finished work is stored, run the same command again to resume"
    assert _states(db)["runs"] == ["pending"]
    status = api.status(db)
    assert status["runner"] is None
    assert [r["state"] for r in status["runs"]] == ["pending"]


def _run_has_epoch(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        s = Store.open(db)
    except Exception:  # the runner is still creating the tables
        return False
    try:
        return bool(s.rows("select 1 from epochs e join runs r on r.id = e.unit_id"))
    except Exception:
        return False
    finally:
        s.close()


def test_status_calls_a_run_left_running_by_a_killed_runner_stopped(tmp_path: Path) -> None:
    """A runner killed before it could reset its unit (SIGKILL) leaves it 'running' in the database: with no
    runner holding the database, `rttui status` says stopped and how to resume, never running."""
    from typer.testing import CliRunner

    from rttui.cli.app import app

    db = tmp_path / "cancel.db"
    f = tmp_path / "cancel.toml"
    f.write_text(ONE_RUN)
    s = Store.open(db, write=True)
    try:
        plan = make_plan(api.load_study(f))
        rp = plan.runs[0]
        s.ensure_run(rp.id, rp.config)
        s.register_study("cancel", str(f), {}, [rp.id])
        s.update_unit("run", rp.id, state="running")
    finally:
        s.close()
    r = CliRunner().invoke(app, ["status", "--db", str(db)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "stopped" in r.output and "rttui run` resumes them" in r.output
    assert " running " not in r.output.split("runs")[-1]
