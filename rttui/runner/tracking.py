"""Stored runs, read for an experiment tracker: `collect` builds a study's `TrackedRun`s from the database (for
`rttui export --to` and for a running study), and `LiveTracker` pushes each run of a study with a `[track]` table
as the coordinator stores it.

A tracker is a copy, never the record: a live push that fails is one warning (a `TrackerFailed` event) and the
study goes on; nothing here writes the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rttui.analysis.tracking import TrackedRun, TrackerTarget, check_target, push, tracked_runs
from rttui.errors import RttuiError
from rttui.store import Store


def study_records(s: Store, study: str) -> list[dict[str, Any]]:
    """A study's records as `rttui export` reads them: the stored ones and the per-sample worst case."""
    from rttui.analysis.worst_case import worst_case_records

    recs = s.records(study)
    if not recs:
        return recs
    return recs + worst_case_records(recs, s.sample_masks, s.eval_grids({r["eval_id"] for r in recs}))


def collect(s: Store, study: str, run_ids: Iterable[str] | None = None) -> list[TrackedRun]:
    """The study's runs (or those of `run_ids`) that have something stored, as `TrackedRun`s."""
    wanted = set(run_ids) if run_ids is not None else None
    runs = [r for r in s.runs(study) if wanted is None or r["id"] in wanted]
    runs = [r for r in runs if r.get("state") in ("trained", "done") or r.get("epoch") is not None]
    recs = [r for r in study_records(s, study) if wanted is None or r["run_id"] in wanted]
    epochs = s.epoch_records(study)
    return tracked_runs(study, runs, recs, epochs)


class LiveTracker:
    """A study's `[track]` table at work: checked once when the study starts, then one push per finished run."""

    def __init__(self, table: dict[str, Any], study: str, warn: Callable[[str], None]) -> None:
        self.target = TrackerTarget.from_table(table)
        self.study = study
        self.warn = warn
        self.on = True

    def start(self) -> None:
        try:
            check_target(self.target, "[track] to")
        except RttuiError as exc:
            self.on = False
            self.warn(f"[track] {exc}; the study runs without it (push its results later with rttui export --to)")

    def run_stored(self, s: Store, run_id: str) -> None:
        """Push one run whose evaluations are stored; any failure is one warning, never the study's."""
        if not self.on:
            return
        try:
            push(self.target, collect(s, self.study, [run_id]), self.study)
        except Exception as exc:  # a tracker's failure must never stop or corrupt the study
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.warn(
                f"[track] pushing run {run_id} to {self.target.to} failed ({type(exc).__name__}: {msg}); the study "
                f"goes on, push it later with rttui export --to {self.target.to}"
            )
