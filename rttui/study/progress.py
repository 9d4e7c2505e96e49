"""How far a study is: its state and each run's progress, derived from plain rows (no database, no I/O).

The facade reads the rows from the store (`Store.runs`, `eval_counts`, `last_epochs`, `records`, the runner
lock) and hands them here, so the rules are unit-tested without a database. Never import the store or a face.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from rttui.study.plan import Plan

RUN_FIELDS = ("id", "dataset", "model", "strategy", "technique", "seed", "state", "error")


@dataclass(frozen=True, kw_only=True)
class StudyRow:
    """One line of the studies list: a study file, a study in the database, or both."""

    name: str
    path: str  # the study file ("" when only the database knows it)
    in_db: bool
    runs: int  # runs the study implies (or holds in the database)
    done: int
    failed: int
    running: int
    state: str  # new | partial | running | done | failed | invalid
    error: str = ""


def study_row(
    name: str, path: str, in_db: bool, ids: list[str], states: dict[str, str], runner: dict[str, Any] | None
) -> StudyRow:
    """A study's counts and state from the states of its runs (`states`: run id -> state; unknown ids are new)
    and the runner lock: running while the runner holds this study, done when every run is, failed when one
    failed, partial when some started, else new."""
    got = [states.get(i, "new") for i in ids]
    done, failed, running = got.count("done"), got.count("failed"), got.count("running")
    if runner and runner["study"] == name:
        state = "running"
    elif ids and done == len(ids):
        state = "done"
    elif failed:
        state = "failed"
    elif any(s != "new" for s in got):
        state = "partial"
    else:
        state = "new"
    return StudyRow(
        name=name, path=path, in_db=in_db, runs=len(ids), done=done, failed=failed, running=running, state=state
    )


def plan_totals(plan: Plan) -> dict[str, tuple[int, int]]:
    """Run id -> (training epochs, evaluations) the plan asks of it: the denominators of its progress."""
    return {rp.id: (int(rp.config["train"]["epochs"]), len(rp.evals)) for rp in plan.runs}


def run_progress(
    runs: Iterable[dict[str, Any]],
    totals: dict[str, tuple[int, int]],
    eval_counts: dict[str, int],
    last_epochs: dict[str, dict[str, Any]],
    busy: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Per run: its row's fields, the last epoch and loss, evaluations done, and progress in [0, 1] counted in
    work (epochs trained plus evaluations done, over epochs plus evaluations planned). A run the plan does not
    know (an old spec) counts as all done once done, else nothing done.

    `busy`: the units a worker is on now. A 'trained' run among them is evaluating (the store keeps it 'trained'
    until its evaluations are done, which transfer scheduling reads), so it shows as 'running': its attack's
    batches count, and an ETA model sees it work."""
    out = []
    for r in runs:
        trained = r["state"] in ("trained", "done")
        if r["state"] == "trained" and r["id"] in busy:
            r = {**r, "state": "running"}
        epochs_total, evals_total = totals.get(r["id"], (0, 0))
        ep = last_epochs.get(r["id"]) or {}
        evals_done = eval_counts.get(r["id"], 0)
        work_total = epochs_total + evals_total
        work_done = (epochs_total if trained else (ep.get("epoch") or 0)) + evals_done
        # Inside the current phase, per batch (the runner writes it at a bounded rate): training steps count
        # towards the epochs, an attack's batches towards its evaluation.
        phase, pdone, ptotal = r.get("phase") or "", r.get("phase_done") or 0, r.get("phase_total") or 0
        if r["state"] == "running" and ptotal:
            if phase == "train":
                work_done = max(work_done, epochs_total * pdone / ptotal + evals_done)
            elif phase.startswith("eval:") and pdone < ptotal:
                work_done += pdone / ptotal
        out.append(
            {
                **{k: r[k] for k in RUN_FIELDS},
                "clean_acc": r["clean_acc"],
                "started": r["started"],
                "finished": r["finished"],
                "seconds": r["seconds"],
                "epoch": ep.get("epoch"),
                "epochs_total": epochs_total,
                "loss": ep.get("loss"),
                "epoch_seconds": ep.get("seconds"),
                "evals_done": evals_done,
                "evals_total": evals_total,
                "progress": (work_done / work_total) if work_total else (1.0 if r["state"] == "done" else 0.0),
                "env_line": r.get("env_line"),  # the environment it trained in; None: not recorded
                "peak_gpu_mem": r.get("peak_gpu_mem"),  # bytes on a GPU (training and evaluation); None: a CPU
            }
        )
    return out


def metrics_by_run(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Run id -> its accuracy per attack and epsilon (for a monitor's chart)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["run_id"], []).append(
            {k: r[k] for k in ("attack", "eps", "clean_acc", "adv_acc", "n", "steps")}
        )
    return out
