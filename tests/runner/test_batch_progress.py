"""Progress per batch: the runner writes where a unit is inside its phase at most once a second (and at the
phase's end), and a monitor's progress counts it, so progress moves between epochs and inside an attack."""

from __future__ import annotations

from pathlib import Path

from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator
from rttui.store import Store
from rttui.study.progress import run_progress


def test_progress_is_written_at_a_bounded_rate(tmp_path: Path) -> None:
    with Store.open(tmp_path / "x.db", write=True) as s:
        s.ensure_source("src", {"seed": 0, "model": {"name": "m"}, "data": {"dataset": "digits"}})
        c = Coordinator(s, None)  # type: ignore[arg-type]  # emit needs no plan
        c.emit(ev.Progress("source", "src", "train", 1, 100))
        assert s.unit("source", "src")["phase_done"] == 1
        for i in range(2, 50):  # a burst within a second: none of these is written
            c.emit(ev.Progress("source", "src", "train", i, 100))
        assert s.unit("source", "src")["phase_done"] == 1
        c.emit(ev.Progress("source", "src", "train", 100, 100))  # a phase's end is always written
        row = s.unit("source", "src")
        assert (row["phase"], row["phase_done"], row["phase_total"]) == ("train", 100, 100)


def _run(**kw):
    base = {
        "id": "r",
        "dataset": "d",
        "model": "m",
        "strategy": "full",
        "technique": "none",
        "seed": 0,
        "state": "running",
        "error": None,
        "clean_acc": None,
        "started": 0.0,
        "finished": None,
        "seconds": None,
    }
    return {**base, **kw}


def test_progress_counts_batches_inside_training_and_attacks() -> None:
    totals = {"r": (4, 2)}  # 4 epochs and 2 evaluations: 6 units of work
    # epoch 1 of 4 stored, 60% of all training steps done: 0.6 * 4 = 2.4 epochs' worth, not 1
    (p,) = run_progress([_run(phase="train", phase_done=60, phase_total=100)], totals, {}, {"r": {"epoch": 1}})
    assert abs(p["progress"] - 2.4 / 6) < 1e-9
    # trained, one evaluation stored, the second half-way through its batches
    (p,) = run_progress(
        [_run(state="running", phase="eval:pgd", phase_done=5, phase_total=10)], totals, {"r": 1}, {"r": {"epoch": 4}}
    )
    assert abs(p["progress"] - (4 + 1 + 0.5) / 6) < 1e-9
    # without phase fields (an older runner): epochs and evaluations only, as before
    (p,) = run_progress([_run()], totals, {"r": 1}, {"r": {"epoch": 2}})
    assert abs(p["progress"] - 3 / 6) < 1e-9


def test_a_trained_run_its_worker_evaluates_counts_as_running() -> None:
    """The store keeps a run 'trained' while the same job evaluates it; the worker table says it is at work, so
    progress counts its attack's batches and the state shown (which the ETA model reads) is 'running'."""
    totals = {"r": (4, 2)}
    row = _run(state="trained", phase="eval:pgd", phase_done=5, phase_total=10)
    (idle,) = run_progress([row], totals, {"r": 1}, {"r": {"epoch": 4}})
    assert idle["state"] == "trained" and abs(idle["progress"] - (4 + 1) / 6) < 1e-9
    (busy,) = run_progress([row], totals, {"r": 1}, {"r": {"epoch": 4}}, busy={"r"})
    assert busy["state"] == "running" and abs(busy["progress"] - (4 + 1 + 0.5) / 6) < 1e-9
    # epochs count as all trained even where the epochs table has none (a run whose features were cached)
    (cached,) = run_progress([row], totals, {"r": 1}, {}, busy={"r"})
    assert abs(cached["progress"] - (4 + 1 + 0.5) / 6) < 1e-9
