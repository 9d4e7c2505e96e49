"""Executing a study: the driver every executor shares, and the in-process executor.

The driver takes the runner lock (before any other write), registers the plan, and loops: hand ready jobs to
the executor, apply their events through the coordinator (the only writer), apply requests other processes left
(cancel, retry). In-process is the fastest for small studies (no worker start-up); `rttui.runner.pool` runs one
worker process per GPU or N CPU workers, `rttui.runner.ray_executor` runs each unit as a Ray task.

One failing unit is recorded and the rest go on. Ctrl-C or a cancel request leaves the database consistent:
units left running go back to pending (their per-epoch checkpoint remains, so the next run resumes them).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from rttui.errors import StoreError
from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator, Listener
from rttui.runner.jobs import Cancelled, run_job
from rttui.runner.schedule import Scheduler
from rttui.store import Store
from rttui.study.plan import Plan

REQUEST_POLL_S = 0.5


class Executor(Protocol):
    def run(self, sched: Scheduler, control: Control) -> None: ...


class Control:
    """The driver's side of a running study: stop flag (Ctrl-C, a cancel request, an API caller) and requests."""

    def __init__(self, coord: Coordinator, sched: Scheduler, stop: threading.Event | None) -> None:
        self.coord = coord
        self.sched = sched
        self.stop = stop or threading.Event()
        self._last = 0.0

    def poll(self, force: bool = False) -> bool:
        """Apply pending requests (at most every REQUEST_POLL_S); True when the study should stop."""
        now = time.monotonic()
        if force or now - self._last >= REQUEST_POLL_S:
            self._last = now
            for r in self.coord.take_requests():
                if r["kind"] == "cancel":
                    self.stop.set()
                elif r["kind"] == "retry":
                    self.sched.requeue(r["target"])
        return self.stop.is_set()


def execute(
    plan: Plan,
    store: Store,
    listener: Listener | None = None,
    device: str | None = None,
    stop: threading.Event | None = None,
    executor: Executor | None = None,
    max_retries: int = 1,
) -> Coordinator:
    """Run everything the plan still needs; returns the coordinator (its `done`/`failed` sets say what happened)."""
    t0 = time.perf_counter()
    store.acquire_lock(plan.study.name)
    coord = Coordinator(store, plan, listener)
    sched: Scheduler | None = None
    try:
        todo = coord.register()
        runs_todo = todo.runs(plan)
        coord.emit(
            ev.StudyStarted(
                study=plan.study.name,
                n_sources=len(plan.sources),
                n_runs=len(plan.runs),
                n_evals=len(plan.evals),
                todo_sources=len(todo.sources),
                todo_runs=len(runs_todo),
                todo_evals=sum(len(v) for v in todo.evaluate.values()),
            )
        )
        for rp in plan.runs:
            if rp not in runs_todo:
                coord.emit(ev.UnitSkipped("run", rp.id, rp.label, "already done"))
        sched = Scheduler(coord, plan, todo, max_retries)
        control = Control(coord, sched, stop)
        control.poll(force=True)  # a cancel left before we started still counts
        (executor or InProcess(device)).run(sched, control)
        # A unit a cancel interrupted stays in `sched.running` (every executor leaves it there), so a cancel that
        # stopped the last unit still reads as cancelled; one that came after everything finished does not.
        cancelled = control.stop.is_set() and not sched.finished()
        # No executor runs anything now: whatever the database still calls running (an interrupted unit) goes
        # back to pending (a run with its checkpoint to trained), however the executor stopped.
        coord.cancel_running()
        coord.cancelled = cancelled
        coord.emit(
            ev.StudyFinished(
                plan.study.name,
                time.perf_counter() - t0,
                len(coord.done),
                len(coord.failed),
                cancelled=cancelled,
                retried=sched.retried,
            )
        )
    except BaseException:  # Ctrl-C, SIGTERM, a full disk, or a bug: nothing may stay 'running' in the database
        with contextlib.suppress(StoreError):  # unless the disk is full: then the next run resumes them anyway
            coord.cancel_running()
        coord.emit(
            ev.StudyFinished(
                plan.study.name,
                time.perf_counter() - t0,
                len(coord.done),
                len(coord.failed),
                cancelled=True,
                retried=sched.retried if sched else 0,
            )
        )
        raise
    finally:
        store.release_lock()
    return coord


class InProcess:
    """Units one after another in this process: no start-up cost, so the default for small CPU studies."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def run(self, sched: Scheduler, control: Control) -> None:
        import os

        from rttui.engine.train import pick_device

        emit = self._checked(control)

        def check() -> None:  # before every forward pass of the unit's model: a cancel stops even a long batch
            if control.poll():
                raise Cancelled

        # This process is the one worker (slot 0): monitors match its device and pid to the GPU it uses.
        control.coord.emit(ev.WorkerStarted(0, os.getpid(), str(pick_device(self.device))))
        while not sched.finished() and not control.poll():
            job = sched.next_job()
            if job is None:  # cannot happen in-process (nothing runs concurrently); guard against a loop
                break
            try:
                outcome = run_job(job, emit, self.device, check=check)
            except Cancelled:
                return  # the job stays in sched.running: interrupted, not finished (execute resets its state)
            sched.report(job, outcome)

    @staticmethod
    def _checked(control: Control) -> Callable[[ev.Event], None]:
        """Forward events to the coordinator, stopping the unit at the next event once a cancel arrives."""

        def emit(event: Any) -> None:
            control.coord.emit(event)
            # A unit that has just started or finished is not interrupted: the loop applies that cancel.
            if not isinstance(event, ev.UnitStarted | ev.UnitFinished) and control.poll():
                raise Cancelled

        return emit
