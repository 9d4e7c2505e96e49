"""The Monitor's ETA model on a hand-made clock: it counts down while progress waits, the study's ETA is the
runs' ETAs plus the waiting runs at the measured pace, and the two never contradict each other."""

from __future__ import annotations

import pytest

from rttui.tui.eta import EtaModel


def run(rid: str, state: str, progress: float = 0.0, started: float | None = None, seconds: float | None = None):
    return {"id": rid, "state": state, "progress": progress, "started": started, "seconds": seconds}


def test_run_eta_counts_down_while_progress_waits_and_study_eta_agrees() -> None:
    m = EtaModel()
    runs = [run("a", "running", 0.5, started=0.0), run("b", "pending")]
    m.update(runs, now=100.0)
    assert m.run_eta("a", 100.0) == pytest.approx(100.0)  # 100 s for half: 100 s to go
    # ten seconds later, no step forward: the estimate counts down instead of growing (110 * 0.5 / 0.5)
    m.update(runs, now=110.0)
    assert m.run_eta("a", 110.0) == pytest.approx(90.0)
    # b waits: it takes what a takes in all (200 s), after a
    assert m.study_eta(runs, 110.0) == pytest.approx(90.0 + 200.0)
    assert m.study_eta(runs, 110.0) >= m.run_eta("a", 110.0)
    # a step forward re-measures the rate
    runs[0]["progress"] = 0.6
    m.update(runs, now=120.0)
    assert m.run_eta("a", 120.0) == pytest.approx(120.0 * 0.4 / 0.6)


def test_finished_runs_set_the_pace_and_parallel_runs_share_the_rest() -> None:
    m = EtaModel()
    runs = [
        run("d", "done", 1.0, seconds=60.0),
        run("a", "running", 0.5, started=0.0),
        run("b", "running", 0.25, started=0.0),
        run("w1", "pending"),
        run("w2", "pending"),
    ]
    m.update(runs, now=30.0)
    assert m.run_eta("a", 30.0) == pytest.approx(30.0) and m.run_eta("b", 30.0) == pytest.approx(90.0)
    assert m.study_eta(runs, 30.0) == pytest.approx(90.0 + 2 * 60.0 / 2)
    assert m.study_eta([run("d", "done", 1.0, seconds=1.0)], 30.0) == 0.0
    assert EtaModel().study_eta([run("x", "pending")], 0.0) is None  # nothing measured yet


def test_source_pretraining_has_an_eta_and_the_studys_counts_it() -> None:
    """A source half trained in 60 s, another waiting, no run timed yet: the source's ETA is 60 s, pretraining
    ends in 60 + 120 s, and the study's ETA waits for a run's measurement; once a run has one, the study's ETA
    is the sources left plus the runs left."""
    m = EtaModel()
    sources = [run("s0", "running", 0.5, started=0.0), run("s1", "pending")]
    runs = [run("a", "pending"), run("b", "pending")]
    m.update([*sources, *runs], now=60.0)
    assert m.run_eta("s0", 60.0) == pytest.approx(60.0)
    assert m.sources_eta(sources, 60.0) == pytest.approx(60.0 + 120.0)
    assert m.study_eta(runs, 60.0, sources) is None  # the runs have no pace yet
    assert m.study_eta(runs, 60.0) is None
    runs[0] = run("a", "done", 1.0, seconds=30.0)
    assert m.study_eta(runs, 60.0, sources) == pytest.approx(60.0 + 120.0 + 30.0)
    assert m.study_eta(runs, 60.0) == pytest.approx(30.0)  # without the sources: the runs alone


def test_a_resumed_runs_eta_comes_from_its_own_pace_not_the_epochs_done_before_it() -> None:
    """Resumed at 70% (epochs restored from its checkpoint), 74% ten seconds after its restart: the rate since its
    start says 3.5 s left, far too soon. Once two steps have been seen, the ETA is the pace between them: 4% per
    10 s, so 18% left is 45 s, and a waiting run takes a whole run at that pace (250 s)."""
    m = EtaModel()
    r = run("a", "running", 0.74, started=0.0)
    runs = [r, run("w", "pending")]
    m.update(runs, now=10.0)
    assert m.run_eta("a", 10.0) == pytest.approx(10 * 0.26 / 0.74)  # nothing better known yet
    r["progress"] = 0.78
    m.update(runs, now=20.0)
    r["progress"] = 0.82
    m.update(runs, now=30.0)
    assert m.run_eta("a", 30.0) == pytest.approx(0.18 / (0.04 / 10))
    assert m.study_eta(runs, 30.0) == pytest.approx(45.0 + 250.0)


def test_a_run_that_has_just_started_counts_as_a_whole_run_so_the_studys_eta_stays() -> None:
    """Eight runs done (60 s each), one started a second ago with no step measured yet, one waiting: the study's
    ETA is two runs' time, not nothing (the head's ETA vanished each time a run started)."""
    m = EtaModel()
    runs = [run(f"d{i}", "done", 1.0, seconds=60.0) for i in range(8)]
    runs += [run("a", "running", 0.0, started=99.0), run("w", "pending")]
    m.update(runs, now=100.0)
    assert m.run_eta("a", 100.0) is None  # its own ETA waits for its first step
    assert m.study_eta(runs, 100.0) == pytest.approx(60.0 + 60.0)
