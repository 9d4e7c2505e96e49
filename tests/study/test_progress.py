"""Study state, run progress and plan size are pure functions of plain rows: no database needed."""

from __future__ import annotations

from rttui.study import make_plan, parse_study
from rttui.study.progress import metrics_by_run, plan_totals, run_progress, study_row
from tests.studies import tiny_study

RUNNER_OF = {"pid": 1, "host": "h", "started": 0.0, "study": "a"}


def test_study_state_from_its_runs_and_the_runner() -> None:
    ids = ["r1", "r2"]
    assert study_row("a", "a.toml", False, ids, {}, None).state == "new"
    assert study_row("a", "", True, ids, {"r1": "trained"}, None).state == "partial"
    assert study_row("a", "", True, ids, {"r1": "done", "r2": "failed"}, None).state == "failed"
    row = study_row("a", "", True, ids, {"r1": "done", "r2": "done"}, None)
    assert row.state == "done" and (row.runs, row.done, row.failed, row.running) == (2, 2, 0, 0)
    # The runner's study is running whatever its runs say; another study's runner changes nothing.
    assert study_row("a", "", True, ids, {"r1": "done", "r2": "done"}, RUNNER_OF).state == "running"
    assert study_row("b", "", True, ids, {"r1": "running"}, RUNNER_OF).state == "partial"
    assert study_row("a", "", True, [], {}, None).state == "new"  # no runs: never done


def _run(rid: str, state: str) -> dict:
    return {
        "id": rid,
        "dataset": "digits",
        "model": "m",
        "strategy": "full",
        "technique": "none",
        "seed": 0,
        "state": state,
        "error": None,
        "clean_acc": None,
        "started": None,
        "finished": None,
        "seconds": None,
    }


def test_run_progress_counts_epochs_and_evaluations() -> None:
    totals = {"a": (4, 2), "b": (4, 2), "c": (4, 2)}
    runs = [_run("a", "running"), _run("b", "trained"), _run("c", "done"), _run("old", "done"), _run("x", "pending")]
    out = {r["id"]: r for r in run_progress(runs, totals, {"b": 1, "c": 2}, {"a": {"epoch": 2, "loss": 0.5}})}
    assert out["a"]["progress"] == 2 / 6 and out["a"]["epoch"] == 2 and out["a"]["loss"] == 0.5
    assert out["b"]["progress"] == 5 / 6 and out["b"]["evals_done"] == 1  # trained: every epoch counts
    assert out["c"]["progress"] == 1.0
    # A run the plan does not know (an old spec): done counts as finished, anything else as not started.
    assert out["old"]["progress"] == 1.0 and out["x"]["progress"] == 0.0


def test_metrics_by_run_and_plan_numbers() -> None:
    recs = [
        {"run_id": "a", "attack": "pgd", "eps": e, "clean_acc": 0.9, "adv_acc": 0.5, "n": 10, "steps": 3, "x": 1}
        for e in (0.01, 0.03)
    ]
    assert [m["eps"] for m in metrics_by_run(recs)["a"]] == [0.01, 0.03] and "x" not in metrics_by_run(recs)["a"][0]
    plan = make_plan(parse_study(tiny_study()))
    # The tiny study: one source, two runs of one epoch, FGSM (1 step) and PGD (3 steps) over 3 epsilons each.
    assert plan_totals(plan) == {rp.id: (1, 2) for rp in plan.runs}
    size = plan.size()
    assert size["sources"] == 1 and size["runs"] == 2 and size["evaluations"] == 4
    assert size["train_epochs"] == 2 + 2 * 1 and size["attack_steps_per_image"] == 2 * (1 * 3 + 3 * 3)
    assert size["models"] == ["test_resnet"]
