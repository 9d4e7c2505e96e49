"""The coordinator: the only writer of a study's database while it runs.

It turns worker events into rows (each evaluation stored atomically as it finishes) and forwards every event
to the face's listener. It also decides what is left to do, so a re-run skips finished work.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rttui.runner import events as ev
from rttui.store import Store
from rttui.study.plan import EvalPlan, Plan, RunPlan

Listener = Callable[[ev.Event], None]


@dataclass
class Todo:
    """What a study still needs: sources to train, runs to train, and evaluations per run."""

    sources: list[str] = field(default_factory=list)
    train: list[RunPlan] = field(default_factory=list)
    evaluate: dict[str, list[EvalPlan]] = field(default_factory=dict)

    def runs(self, plan: Plan) -> list[RunPlan]:
        return [r for r in plan.runs if r.id in self.evaluate or r in self.train]


PROGRESS_EVERY = 1.0  # seconds between two progress writes of one unit


class Coordinator:
    def __init__(self, store: Store, plan: Plan, listener: Listener | None = None) -> None:
        self.store = store
        self.plan = plan
        self.listener = listener
        self.failed: set[str] = set()
        self.done: set[str] = set()
        self.cancelled = False
        self._progress_at: dict[str, float] = {}  # unit -> when its progress was last written
        self._live: dict[str, dict[str, Any]] = {}  # run -> the evaluation it streams (what runs.live holds)
        self._evals = {ep.id: ep for ep in plan.evals} if plan is not None else {}
        self.tracker: Any = None  # the study's `[track]` tracker (rttui.runner.tracking.LiveTracker), if any
        track = getattr(plan.study, "track", None) if plan is not None else None
        if track:
            from rttui.runner.tracking import LiveTracker

            name = plan.study.name
            self.tracker = LiveTracker(track, name, lambda msg: self.emit(ev.TrackerFailed(name, msg)))

    def register(self) -> Todo:
        """Record the study and its units; return what is left to do."""
        study = self.plan.study
        self.store.clear_workers()  # an earlier runner's workers are gone
        for sp in self.plan.sources.values():
            self.store.ensure_source(sp.id, sp.config)
        for rp in self.plan.runs:
            self.store.ensure_run(rp.id, rp.config)
        self.store.register_study(
            study.name,
            str(study.path) if study.path else None,
            study.raw,
            [r.id for r in self.plan.runs],
            [(ep.id, ep.run_id) for ep in self.plan.evals],
        )
        if self.tracker is not None:
            self.tracker.start()
        return self.todo()

    def todo(self) -> Todo:
        t = Todo()
        need_sources: set[str] = set()
        for rp in self.plan.runs:
            row = self.store.unit("run", rp.id) or {}
            trained = row.get("state") in ("trained", "done") and row.get("checkpoint")
            missing = [ep for ep in rp.evals if ep.id not in self.store.done_evals(rp.id)]
            if trained and not missing:
                continue
            if not trained:
                t.train.append(rp)
                need_sources.add(rp.source_id)
            t.evaluate[rp.id] = missing
        for sid in sorted(need_sources):
            row = self.store.unit("source", sid) or {}
            if row.get("state") != "done" or not row.get("checkpoint"):
                t.sources.append(sid)
        return t

    def source_info(self, sid: str) -> dict[str, Any] | None:
        row = self.store.unit("source", sid)
        if not row or row["state"] != "done":
            return None
        return {**row, "checkpoint": str(self.store.abs(row["checkpoint"]))}

    def trained_info(self, rid: str) -> dict[str, Any] | None:
        row = self.store.unit("run", rid)
        if not row or row["state"] not in ("trained", "done") or not row["checkpoint"]:
            return None
        return {**row, "checkpoint": str(self.store.abs(row["checkpoint"]))}

    def emit(self, event: ev.Event) -> None:
        """Apply one event to the store, then hand it to the listener."""
        s = self.store
        match event:
            case ev.WorkerStarted(worker=slot, pid=pid, device=device):
                s.set_worker(slot, pid, device)
            case ev.UnitStarted(kind=kind, unit_id=uid, phase=phase):
                s.worker_unit(event.worker, kind, uid)  # the GPU panel names the run on each worker's device
                fields: dict[str, Any] = {"state": "running", "error": None}
                if kind == "run":
                    self._live.pop(uid, None)
                    fields["live"] = None  # what an earlier attempt streamed is not this attempt's
                if phase == "train":
                    fields["started"] = time.time()
                s.update_unit(kind, uid, **fields)
            case ev.TrainingStarted(kind=kind, unit_id=uid, from_epoch=start, history=history):
                s.restart_epochs(uid, kind, start, history)
                if start:
                    s.merge_info(kind, uid, {"resumed_from_epoch": start})
            case ev.UnitRetried(kind=kind, unit_id=uid):
                s.unit_ended(uid)
                row = s.unit(kind, uid) or {}
                retries = json.loads(row.get("info") or "{}").get("retries", [])
                retries.append({"reason": event.reason, "attempt": event.attempt, "batch_scale": event.batch_scale})
                s.update_unit(kind, uid, state="pending")
                s.merge_info(kind, uid, {"retries": retries})
            case ev.Progress(kind=kind, unit_id=uid, phase=phase, done=done, total=total):
                # Per batch, written at most once a second per unit (and at a phase's end): monitors see
                # progress move between epochs without the database taking a write per batch.
                now = time.monotonic()
                if done >= total or now - self._progress_at.get(uid, -1e9) >= PROGRESS_EVERY:
                    self._progress_at[uid] = now
                    s.update_unit(kind, uid, phase=phase, phase_done=done, phase_total=total)
            case ev.EpsDone(run_id=rid, eval_id=eid):
                # One write per finished epsilon: monitors show the grid filling in. Kept beside the run, never in
                # the metrics table: a half-done evaluation is not a result (EvalDone stores it and clears this).
                live = self._live.get(rid)
                if live is None or live["eval_id"] != eid:
                    live = {
                        "eval_id": eid,
                        "attack": event.attack,
                        "label": event.label,
                        "n": event.n,
                        "epsilons": event.epsilons,
                        "points": [],
                    }
                    self._live[rid] = live
                acc = event.n_adv_correct / event.n if event.n else 0.0
                live["points"].append({"eps": event.eps, "n_adv_correct": event.n_adv_correct, "adv_acc": acc})
                s.set_live(rid, live)
            case ev.EpochDone(kind=kind, unit_id=uid, record=rec):
                s.add_epoch(uid, kind, rec)
            case ev.StudyFinished():
                s.clear_workers()
            case ev.UnitTrained():
                if event.kind == "source":  # a source's work ends here (a run goes on to its evaluations)
                    s.unit_ended(event.unit_id)
                # Keep what the runner recorded about earlier attempts (retries, resume) next to the task's info.
                old_info = json.loads((s.unit(event.kind, event.unit_id) or {}).get("info") or "{}")
                kept = {k: old_info[k] for k in ("retries", "resumed_from_epoch") if k in old_info}
                s.update_unit(
                    event.kind,
                    event.unit_id,
                    state="done" if event.kind == "source" else "trained",
                    checkpoint=s.rel(event.checkpoint),
                    sha256=event.sha256,
                    num_classes=event.num_classes,
                    clean_acc=event.clean_acc,
                    n_test=event.n_test,
                    seconds=event.seconds,
                    peak_gpu_mem=event.peak_gpu_mem,
                    info={**event.info, **kept},
                    finished=time.time() if event.kind == "source" else None,
                    env_id=s.add_environment(event.env),
                    # the epoch whose weights were saved ([train] select); runs only
                    **({"selected_epoch": event.info.get("selected_epoch")} if event.kind == "run" else {}),
                )
            case ev.EvalDone():
                self._live.pop(event.run_id, None)  # add_evaluation clears runs.live in its transaction
                s.add_evaluation(
                    {
                        "id": event.eval_id,
                        "run_id": event.run_id,
                        "attack": event.attack,
                        "params": event.params,
                        "epsilons": event.epsilons,
                        "mode": event.mode,
                        "n": event.n,
                        "seconds": event.seconds,
                        **event.extra,
                        "env_id": s.add_environment(event.env),
                    },
                    event.metrics,
                    event.samples,
                    event.confusion,
                    event.checks,
                    audit=event.audit,
                )
            case ev.EvalFailed():
                self.failed.add(event.run_id)  # the run's job ends "done" otherwise: counted once, as failed
                s.fail_evaluation(event.run_id, event.eval_id, event.attack, event.params, event.epsilons, event.error)
            case ev.RunChecks():
                s.add_checks(event.run_id, event.checks)
            case ev.LayersDone():
                s.set_layers(event.run_id, event.records)
            case ev.UnitFinished(kind=kind, unit_id=uid):
                s.unit_ended(uid)
                row = s.unit(kind, uid) or {}
                ended: dict[str, Any] = {"live": None} if kind == "run" else {}
                self._live.pop(uid, None)
                if event.peak_gpu_mem is not None:  # the unit's peak over every job that worked on it
                    ended["peak_gpu_mem"] = max(event.peak_gpu_mem, row.get("peak_gpu_mem") or 0)
                s.update_unit(
                    kind,
                    uid,
                    state="done",
                    finished=time.time(),
                    seconds=(time.time() - row["started"]) if row.get("started") else event.seconds,
                    **ended,
                )
                if event.info:
                    s.merge_info(kind, uid, event.info)
                if uid not in self.failed:
                    self.done.add(uid)
                    if kind == "run" and self.tracker is not None:
                        self.tracker.run_stored(s, uid)
            case ev.UnitFailed(kind=kind, unit_id=uid, error=err):
                s.unit_ended(uid)
                self.failed.add(uid)
                row = s.unit(kind, uid) or {}
                self._live.pop(uid, None)
                if kind == "run" and row.get("checkpoint") and row.get("state") in ("trained", "done", "running"):
                    # Its training stands: the evaluations the job had not stored failed, the run stays trained (a
                    # study that planned none of them still reads it done).
                    done = s.done_evals(uid)
                    for eid in event.evals:
                        if eid not in done:
                            plan = self._evals.get(eid)
                            s.fail_evaluation(
                                uid,
                                eid,
                                plan.attack if plan else "",
                                plan.params if plan else {},
                                list(plan.epsilons) if plan else [],
                                err,
                            )
                    s.update_unit(kind, uid, state="trained", error=err, live=None)
                    return self._forward(event)
                s.update_unit(
                    kind,
                    uid,
                    state="failed",
                    error=err,
                    finished=time.time(),
                    info=json.dumps({**json.loads(row.get("info") or "{}"), "traceback": event.detail[-4000:]}),
                    **({"live": None} if kind == "run" else {}),
                )
            case _:
                pass
        self._forward(event)

    def _forward(self, event: ev.Event) -> None:
        if self.listener is not None:
            self.listener(event)

    def take_requests(self) -> list[dict[str, Any]]:
        """Requests (cancel, retry) other processes left since the last look; each is applied once."""
        reqs = self.store.pending_requests()
        for r in reqs:
            self.store.mark_request_applied(r["id"])
        return reqs

    def fail(self, kind: str, uid: str, exc: BaseException) -> None:
        from rttui.errors import RttuiError

        msg = str(exc) if isinstance(exc, RttuiError) else f"{type(exc).__name__}: {exc}"
        self.emit(
            ev.UnitFailed(
                kind,
                uid,
                msg.splitlines()[0] if msg else type(exc).__name__,
                "".join(traceback.format_exception(exc)),
            )
        )

    def cancel_running(self) -> None:
        """After Ctrl-C: units left 'running' go back to 'pending' (their partial work is not trusted)."""
        self.store.reset_running_units()
