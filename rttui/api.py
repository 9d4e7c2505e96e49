"""The facade: everything the CLI and the TUI do goes through these functions (plain data in and out).

Nothing here imports torch at module level; functions that need the engine import it when called.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rttui.errors import StoreError
from rttui.store import Store, default_db_path
from rttui.study import Plan, Study, check_models, load_study, make_plan, parse_study

__all__ = [
    "PlanRow",
    "Study",
    "check_data",
    "export_records",
    "load_run_model",
    "load_study",
    "make_plan",
    "open_store",
    "parse_study",
    "plan_status",
    "run_study",
    "status",
    "summary",
    "validate_study",
]


def db_path(db: str | Path | None) -> Path:
    """--db, else $RTTUI_DB, else ./rttui.db."""
    return Path(db) if db else default_db_path()


def open_store(db: str | Path | None = None, write: bool = False) -> Store:
    return Store.open(db_path(db), write=write)


def validate_study(path: str | Path, check_models_: bool = True, data: bool = False) -> Study:
    """Parse and check a study; `data=True` also loads every dataset it names (slow, needs the files)."""
    study = load_study(path)
    if check_models_:
        check_models(study)
    if data:
        check_data(study)
    return study


def check_data(study: Study) -> None:
    """Load each distinct dataset once, so a missing folder fails before any run starts."""
    from rttui.engine.data import load_task

    seen: set[str] = set()
    for b in study.blocks:
        for cfg in (b.source, b.target):
            key = json.dumps(cfg, sort_keys=True, default=str)
            if key not in seen and not (cfg is b.source and b.source.get("pretrained")):
                seen.add(key)
                load_task(cfg, b.target["image_size"])


@dataclass(frozen=True)
class PlanRow:
    id: str
    label: str
    state: str  # pending | trained | done | failed | running | ...
    evals_total: int
    evals_done: int


def plan_status(study: Study, db: str | Path | None = None) -> list[PlanRow]:
    """The runs a study implies and, where a database exists, how far each one is."""
    plan = make_plan(study)
    p = db_path(db)
    store = Store.open(p) if p.exists() else None
    rows = []
    try:
        for r in plan.runs:
            state, done = "new", 0
            if store is not None:
                row = store.unit("run", r.id)
                if row:
                    state = row["state"]
                    done = len(store.done_evals(r.id) & {e.id for e in r.evals})
            rows.append(PlanRow(r.id, r.label, state, len(r.evals), done))
    finally:
        if store is not None:
            store.close()
    return rows


def run_study(
    study: Study,
    db: str | Path | None = None,
    listener: Any = None,
    device: str | None = None,
    stop: threading.Event | None = None,
    check_data_first: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a study into the database; returns counts of what happened."""
    check_models(study)
    plan: Plan = make_plan(study)
    if check_data_first:
        check_data(study)
    _set_threads()
    store = Store.open(db_path(db), write=True)
    try:
        from rttui.runner.local import execute

        coord = execute(plan, store, listener, device, stop)
        return {"done": len(coord.done), "failed": len(coord.failed), "runs": len(plan.runs)}
    finally:
        store.close()


def _set_threads() -> None:
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))


def status(db: str | Path | None = None, study: str | None = None) -> dict[str, Any]:
    """Studies and runs with their states (read-only)."""
    with open_store(db) as s:
        return {"studies": s.studies(), "runs": s.runs(study), "runner": s.runner_lock()}


def export_records(db: str | Path | None = None, study: str | None = None) -> list[dict[str, Any]]:
    """One flat record per (study, run, attack, eps), accuracies as fractions in [0, 1]."""
    with open_store(db) as s:
        if study and study not in {r["name"] for r in s.studies()}:
            raise StoreError(f"study {study!r} is not in {s.path}; run `rttui status` to list its studies")
        return s.records(study)


def checks(db: str | Path | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
    with open_store(db) as s:
        return s.checks(run_id)


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std over seeds per (dataset, model, strategy, technique, attack, eps)."""
    from rttui.analysis.aggregate import summarize

    return summarize(records)


def load_run_model(db: str | Path | None, run_id: str) -> Any:
    """The trained model of a run, in eval mode, taking [0, 1] images (checkpoint hash verified)."""
    from rttui.engine import models

    with open_store(db) as s:
        row = s.unit("run", run_id)
        if row is None:
            raise StoreError(f"run {run_id!r} is not in {s.path}; run `rttui status` to list run ids")
        if not row["checkpoint"]:
            raise StoreError(f"run {run_id} has no trained model yet (state {row['state']}); run its study first")
        cfg = json.loads(row["config"])
        path = s.abs(row["checkpoint"])
    model = models.create_model(cfg["model"], row["num_classes"], cfg["target"]["image_size"])
    models.load_checkpoint(model, path, row["sha256"])
    return model.eval()
