"""Scheduling transfer evaluations (no torch: jobs are handed out and reported by hand): a sibling surrogate is
trained before the evaluations that craft on it, surrogates that point at each other never deadlock, and a
failed surrogate fails the run waiting for it with a pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator
from rttui.runner.jobs import Outcome
from rttui.runner.schedule import Scheduler
from rttui.store import Store
from rttui.study import make_plan, parse_study
from tests.studies import SIB_OTHER, tiny_study


@pytest.fixture
def sched(tmp_path: Path):
    text = tiny_study(
        study={"seeds": [0, 1]},
        grid=[{"models": ["test_resnet"], "strategies": ["full"], "attacks": ["pgd", SIB_OTHER]}],
    )
    plan = make_plan(parse_study(text))
    store = Store.open(tmp_path / "s.db", write=True)
    coord = Coordinator(store, plan)
    s = Scheduler(coord, plan, coord.register())
    yield s, coord, plan
    store.close()


def _trained(coord: Coordinator, kind: str, uid: str) -> None:
    coord.emit(
        ev.UnitTrained(
            kind=kind,
            unit_id=uid,
            checkpoint=f"/ckpt/{uid}.safetensors",
            sha256=f"sha-{uid}",
            num_classes=5,
            clean_acc=0.9,
            n_test=10,
            seconds=0.0,
        )
    )
    if kind == "run":
        coord.emit(ev.UnitFinished("run", uid, 0.0))


def _sources(s: Scheduler, coord: Coordinator) -> None:
    for _ in range(2):
        job = s.next_job()
        assert job is not None and job.kind == "source"
        _trained(coord, "source", job.unit_id)
        s.report(job, Outcome(True))


def test_a_transfer_evaluation_waits_for_its_sibling_surrogate(sched) -> None:
    s, coord, plan = sched
    r0, r1 = plan.runs
    _sources(s, coord)
    first = s.next_job()
    assert first.unit_id == r0.id and [e.attack for e in first.evals] == ["pgd"]  # its surrogate (seed 1) waits
    assert [e.attack for e in s.waiting[r0.id]] == ["transfer"]
    _trained(coord, "run", r0.id)
    s.report(first, Outcome(True))
    second = s.next_job()  # seed 1 crafts on seed 0, trained now: nothing waits
    assert second.unit_id == r1.id and [e.attack for e in second.evals] == ["pgd", "transfer"]
    spec = second.surrogates[second.evals[1].id]
    assert spec["kind"] == "sibling" and spec["id"] == r0.id and spec["sha256"] == f"sha-{r0.id}"
    _trained(coord, "run", r1.id)
    s.report(second, Outcome(True))
    third = s.next_job()  # seed 0's transfer evaluation, evaluation-only, on the run's own checkpoint
    assert third.unit_id == r0.id and third.trained is not None and [e.attack for e in third.evals] == ["transfer"]
    assert third.surrogates[third.evals[0].id]["id"] == r1.id
    s.report(third, Outcome(True))
    assert s.next_job() is None and s.finished()


def test_a_failed_surrogate_fails_the_run_waiting_for_it(sched) -> None:
    s, coord, plan = sched
    r0, r1 = plan.runs
    _sources(s, coord)
    first = s.next_job()
    _trained(coord, "run", r0.id)
    s.report(first, Outcome(True))
    second = s.next_job()
    s.report(second, Outcome(False, "boom"))  # the surrogate of seed 0's transfer evaluation fails
    assert s.next_job() is None and s.finished()
    # Its training stands (trained); its transfer evaluation failed, so the study reads the run failed.
    assert coord.store.unit("run", r0.id)["state"] == "trained"
    (mine,) = [r for r in coord.store.runs(plan.study.name) if r["id"] == r0.id]
    assert mine["state"] == "failed" and f"transfer surrogate run {r1.id} failed (boom)" in mine["error"]
