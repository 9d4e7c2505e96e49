"""The scheduler: which unit may run next, and what a failed attempt means.

Sources come first (each trained once); a run becomes ready when its source is done (or when it is already
trained and only evaluations are missing); a run whose source failed fails with a pointer to it. Out of
memory halves that unit's batch and retries it; a worker that died is retried up to `max_retries` times.
Every retry is an event (stored in the unit's info), so nothing is silently different. Executors ask for jobs
and report outcomes; they never decide any of this.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator, Todo
from rttui.runner.jobs import Job, Outcome
from rttui.study.plan import Plan, RunPlan

MIN_BATCH_SCALE = 1 / 64  # after six halvings an out-of-memory is a failure, not a retry


class Scheduler:
    def __init__(self, coord: Coordinator, plan: Plan, todo: Todo, max_retries: int = 1) -> None:
        self.coord = coord
        self.plan = plan
        self.todo = todo
        self.max_retries = max_retries
        self.queue: deque[Job] = deque()  # ready-made jobs (sources, retries)
        self.runs: deque[RunPlan] = deque(todo.runs(plan))
        self.running: dict[str, Job] = {}
        self.pending_sources: set[str] = set(todo.sources)
        self.retried = 0
        for sid in todo.sources:
            sp = plan.sources[sid]
            label = f"source {sp.config['model']['name']} s{sp.config['seed']}"
            self.queue.append(Job("source", sid, label, str(coord.store.artifacts), source_plan=sp))

    def finished(self) -> bool:
        return not self.queue and not self.runs and not self.running

    def next_job(self) -> Job | None:
        """A job that may start now, or None (nothing ready until something running finishes)."""
        if self.queue:
            job = self.queue.popleft()
            self.running[job.unit_id] = job
            return job
        for rp in list(self.runs):
            trained = self.coord.trained_info(rp.id)
            source = self.coord.source_info(rp.source_id)  # a trained run is rebuilt from it too
            if trained is None:
                if rp.source_id in self.pending_sources:
                    continue  # its source is still queued or training
                source = self.coord.source_info(rp.source_id)
                if source is None:
                    self.runs.remove(rp)
                    err = (self.coord.store.unit("source", rp.source_id) or {}).get("error") or "not trained"
                    self.coord.emit(ev.UnitFailed("run", rp.id, f"source {rp.source_id} failed: {err}"))
                    continue
            self.runs.remove(rp)
            job = Job(
                "run",
                rp.id,
                rp.label,
                str(self.coord.store.artifacts),
                run_plan=rp,
                source_info=source,
                trained=trained,
                evals=tuple(ep for ep in rp.evals if ep.id not in self.coord.store.done_evals(rp.id)),
            )
            self.running[job.unit_id] = job
            return job
        return None

    def report(self, job: Job, outcome: Outcome) -> None:
        """Apply a finished attempt: success, a retry (out of memory, dead worker) or a recorded failure."""
        self.running.pop(job.unit_id, None)
        if job.kind == "source":
            self.pending_sources.discard(job.unit_id)
        if outcome.ok:
            return
        retry: Job | None = None
        if outcome.oom and job.batch_scale / 2 >= MIN_BATCH_SCALE:
            retry = job.retry(f"out of memory ({outcome.error}); batch halved", halve_batch=True)
        elif outcome.crashed and job.attempt < self.max_retries:
            retry = job.retry(outcome.error)
        if retry is not None and job.kind == "run" and job.run_plan is not None:
            # What the failed attempt finished stays done: a run trained before the crash only evaluates.
            rp = job.run_plan
            done = self.coord.store.done_evals(rp.id)
            retry = replace(
                retry,
                trained=self.coord.trained_info(rp.id) or retry.trained,
                evals=tuple(ep for ep in rp.evals if ep.id not in done),
            )
        if retry is not None:
            self.retried += 1
            self.coord.emit(ev.UnitRetried(job.kind, job.unit_id, retry.retries[-1], retry.attempt, retry.batch_scale))
            if job.kind == "source":
                self.pending_sources.add(job.unit_id)
            self.queue.append(retry)
            return
        self.coord.emit(ev.UnitFailed(job.kind, job.unit_id, outcome.error, outcome.detail))

    def requeue(self, run_id: str) -> bool:
        """A `retry` request: put a failed run of this plan back in the queue (False if unknown or busy)."""
        rp = next((r for r in self.plan.runs if r.id == run_id), None)
        row = self.coord.store.unit("run", run_id) or {}
        if rp is None or run_id in self.running or rp in self.runs or row.get("state") != "failed":
            return False
        if rp.source_id not in self.pending_sources and self.coord.source_info(rp.source_id) is None:
            sp = self.plan.sources[rp.source_id]
            label = f"source {sp.config['model']['name']} s{sp.config['seed']}"
            self.queue.append(Job("source", sp.id, label, str(self.coord.store.artifacts), source_plan=sp))
            self.pending_sources.add(sp.id)
        self.coord.failed.discard(run_id)
        self.runs.append(rp)
        return True
