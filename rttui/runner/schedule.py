"""The scheduler: which unit may run next, and what a failed attempt means.

Sources come first (each trained once); a run becomes ready when its source is done (or when it is already
trained and only evaluations are missing); a run whose source failed fails with a pointer to it. A transfer
evaluation whose surrogate is another run of the study (`EvalPlan.surrogate == ("run", id)`) waits until that
run is trained: the run trains and runs its other evaluations meanwhile, and the waiting ones become an
evaluation-only job later (so surrogates that point at each other, as `seed = "other"` does, never deadlock);
if the surrogate run fails, the waiting run fails with a pointer to it. Out of
memory halves that unit's batch and retries it; a worker that died is retried up to `max_retries` times.
Every retry is an event (stored in the unit's info), so nothing is silently different. Executors ask for jobs
and report outcomes; they never decide any of this.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any

from rttui.runner import events as ev
from rttui.runner.coordinator import Coordinator, Todo
from rttui.runner.jobs import Job, Outcome
from rttui.study.plan import EvalPlan, Plan, RunPlan

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
        self.waiting: dict[str, list[EvalPlan]] = {}  # run id -> transfer evaluations waiting for a surrogate run
        self.by_id: dict[str, RunPlan] = {r.id: r for r in plan.runs}
        self.retried = 0
        for sid in todo.sources:
            sp = plan.sources[sid]
            label = f"source {sp.config['model']['name']} s{sp.config['seed']}"
            self.queue.append(Job("source", sid, label, str(coord.store.artifacts), source_plan=sp))

    def finished(self) -> bool:
        return not self.queue and not self.runs and not self.running and not self.waiting

    def next_job(self) -> Job | None:
        """A job that may start now, or None (nothing ready until something running finishes)."""
        if self.queue:
            job = self.queue.popleft()
            self.running[job.unit_id] = job
            return job
        job = self._waiting_job()
        if job is not None:
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
            evals = self._ready(rp, [ep for ep in rp.evals if ep.id not in self.coord.store.done_evals(rp.id)])
            if trained is not None and not evals:
                continue  # only evaluations waiting for a surrogate run are left
            job = self._job(rp, source, trained, evals)
            self.running[job.unit_id] = job
            return job
        return None

    # ---- transfer evaluations: surrogates and waiting --------------------------------------------------
    def _ready(self, rp: RunPlan, evals: list[EvalPlan]) -> list[EvalPlan]:
        """The evaluations that may run now; transfer evaluations whose surrogate run is not trained yet wait."""
        ready = []
        for e in evals:
            sur = e.surrogate
            if sur is not None and sur[0] == "run" and sur[1] != rp.id and self.coord.trained_info(sur[1]) is None:
                have = self.waiting.setdefault(rp.id, [])
                if e.id not in {w.id for w in have}:
                    have.append(e)
            else:
                ready.append(e)
        return ready

    def _job(
        self, rp: RunPlan, source: dict[str, Any] | None, trained: dict[str, Any] | None, evals: list[EvalPlan]
    ) -> Job:
        """A run's job, with what its transfer evaluations craft on and its stored FGSM/PGD rows."""
        surrogates = {e.id: self._surrogate(rp, e, source) for e in evals if e.surrogate is not None}
        stored = self.coord.store.attack_metrics(rp.id, ("fgsm", "pgd")) if trained is not None else {}
        return Job(
            "run",
            rp.id,
            rp.label,
            str(self.coord.store.artifacts),
            run_plan=rp,
            source_info=source,
            trained=trained,
            evals=tuple(evals),
            surrogates=surrogates,
            stored=stored,
        )

    def _surrogate(self, rp: RunPlan, e: EvalPlan, source: dict[str, Any] | None) -> dict[str, Any]:
        """What `runner.transfer.surrogate_model` needs: the source model of the run, or a trained sibling run
        (its config, checkpoint and source); no checkpoint for the run itself (its job fills it in)."""
        assert e.surrogate is not None
        kind, uid = e.surrogate
        if kind == "source":
            src = source or {}
            return {
                "kind": "source",
                "id": uid,
                "checkpoint": src.get("checkpoint"),
                "sha256": src.get("sha256"),
                "num_classes": src.get("num_classes") or 0,
                "model": rp.config["model"],
                "seed": self.plan.sources[uid].config["seed"] or 0,
            }
        sib = self.by_id[uid]
        trained = self.coord.trained_info(uid) if uid != rp.id else None
        return {
            "kind": "sibling",
            "id": uid,
            "checkpoint": trained["checkpoint"] if trained else None,
            "sha256": trained["sha256"] if trained else None,
            "num_classes": trained["num_classes"] if trained else None,
            "config": sib.config,
            "source": self.coord.source_info(sib.source_id) or {},
            "seed": sib.config["seed"],
        }

    def _queued(self, run_id: str) -> bool:
        return (
            run_id in self.running
            or any(r.id == run_id for r in self.runs)
            or any(j.unit_id == run_id for j in self.queue)
        )

    def _waiting_job(self) -> Job | None:
        """An evaluation-only job for a run whose waiting transfer evaluations can run now; fails a run whose
        surrogate run failed (it cannot be evaluated until that one is fixed)."""
        for rid, evals in list(self.waiting.items()):
            if self._queued(rid):
                continue  # the run itself is still to train (or training): its job comes first
            ready = [e for e in evals if self.coord.trained_info(e.surrogate[1]) is not None]  # type: ignore[index]
            stuck = [e for e in evals if e not in ready and not self._queued(e.surrogate[1])]  # type: ignore[index]
            if stuck:
                del self.waiting[rid]
                sur = stuck[0].surrogate[1]  # type: ignore[index]
                err = (self.coord.store.unit("run", sur) or {}).get("error") or "not trained"
                self.coord.emit(
                    ev.UnitFailed(
                        "run",
                        rid,
                        f"transfer surrogate run {sur} failed ({err}); fix it and run the study again",
                        evals=[e.id for e in evals],
                    )
                )
                continue
            if not ready:
                continue
            trained = self.coord.trained_info(rid)
            if trained is None:  # the run itself failed: its failure is recorded already
                del self.waiting[rid]
                continue
            left = [e for e in evals if e not in ready]
            if left:
                self.waiting[rid] = left
            else:
                del self.waiting[rid]
            rp = self.by_id[rid]
            job = self._job(rp, self.coord.source_info(rp.source_id), trained, ready)
            self.running[rid] = job
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
            trained = self.coord.trained_info(rp.id) or retry.trained
            redo = self._ready(rp, [ep for ep in job.evals if ep.id not in done])
            fresh = self._job(rp, job.source_info, trained, redo)
            retry = replace(retry, trained=trained, evals=fresh.evals, surrogates=fresh.surrogates, stored=fresh.stored)
        if retry is not None:
            self.retried += 1
            self.coord.emit(ev.UnitRetried(job.kind, job.unit_id, retry.retries[-1], retry.attempt, retry.batch_scale))
            if job.kind == "source":
                self.pending_sources.add(job.unit_id)
            self.queue.append(retry)
            return
        self.coord.emit(
            ev.UnitFailed(job.kind, job.unit_id, outcome.error, outcome.detail, evals=[e.id for e in job.evals])
        )

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
