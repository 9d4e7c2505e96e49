"""The local executor: runs a study's units in this process, in dependency order (sources first).

One failing unit is recorded and the rest go on; Ctrl-C leaves the database consistent (running units go
back to pending) and re-raises.
"""

from __future__ import annotations

import threading
import time

from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator, Listener
from rttui.runner.tasks import run_target, train_source
from rttui.store import Store
from rttui.study.plan import Plan


def execute(
    plan: Plan,
    store: Store,
    listener: Listener | None = None,
    device: str | None = None,
    stop: threading.Event | None = None,
) -> Coordinator:
    """Run everything the plan still needs; returns the coordinator (its `done`/`failed` sets say what happened)."""
    t0 = time.perf_counter()
    store.acquire_lock(plan.study.name)
    coord = Coordinator(store, plan, listener)
    try:
        todo = coord.register()
        runs_todo = todo.runs(plan)
        coord.emit(
            ev.StudyStarted(
                plan.study.name,
                len(plan.sources),
                len(plan.runs),
                len(plan.evals),
                len(todo.sources),
                len(runs_todo),
                sum(len(v) for v in todo.evaluate.values()),
            )
        )
        for rp in plan.runs:
            if rp not in runs_todo:
                coord.emit(ev.UnitSkipped("run", rp.id, rp.label, "already done"))
        for sid in todo.sources:
            if stop is not None and stop.is_set():
                break
            sp = plan.sources[sid]
            coord.emit(ev.UnitStarted("source", sid, f"source {sp.config['model']['name']} s{sp.config['seed']}"))
            try:
                train_source(sp, store.artifacts, coord.emit, device)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # recorded; dependent runs fail with a pointer to it
                coord.fail("source", sid, exc)
        for rp in runs_todo:
            if stop is not None and stop.is_set():
                break
            trained = coord.trained_info(rp.id)
            source = coord.source_info(rp.source_id)
            if trained is None and source is None:
                err = (store.unit("source", rp.source_id) or {}).get("error") or "not trained"
                coord.emit(ev.UnitFailed("run", rp.id, f"source {rp.source_id} failed: {err}"))
                continue
            coord.emit(ev.UnitStarted("run", rp.id, rp.label, "train" if trained is None else "eval"))
            try:
                run_target(
                    rp,
                    source or {},
                    todo.evaluate.get(rp.id, list(rp.evals)),
                    trained,
                    store.artifacts,
                    coord.emit,
                    device,
                )
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                coord.fail("run", rp.id, exc)
        coord.emit(
            ev.StudyFinished(
                plan.study.name,
                time.perf_counter() - t0,
                len(coord.done),
                len(coord.failed),
                cancelled=bool(stop is not None and stop.is_set()),
            )
        )
    except KeyboardInterrupt:
        coord.cancel_running()
        coord.emit(
            ev.StudyFinished(
                plan.study.name, time.perf_counter() - t0, len(coord.done), len(coord.failed), cancelled=True
            )
        )
        raise
    finally:
        store.release_lock()
    return coord
