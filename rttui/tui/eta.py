"""One ETA model for the Monitor's runs and its study, from measured throughput: a run's remaining time is
what its progress rate said at its last step forward, counted down since (so it never grows while progress
waits for the next step), and the study's is the runs left shared over the runs working in parallel. Pure:
no widgets, no database, so tests pin it with a hand-made clock."""

from __future__ import annotations

from typing import Any


class EtaModel:
    """Feed it each poll's runs (`update`), then ask `run_eta` / `study_eta`."""

    def __init__(self) -> None:
        # run id -> (progress, time it was first seen at that progress, seconds left estimated then)
        self._seen: dict[str, tuple[float, float, float | None]] = {}

    def update(self, runs: list[dict[str, Any]], now: float) -> None:
        for r in runs:
            if r["state"] != "running":
                self._seen.pop(r["id"], None)
                continue
            p = float(r["progress"] or 0.0)
            old = self._seen.get(r["id"])
            if old is not None and old[0] == p:
                continue  # no step forward: keep the estimate made at the last one, it counts down
            elapsed = now - r["started"] if r.get("started") is not None else None
            left = elapsed * (1 - p) / p if elapsed is not None and p > 0 else None
            self._seen[r["id"]] = (p, now, left)

    def run_eta(self, run_id: str, now: float) -> float | None:
        """Seconds left for a running run, or None before its first measured step."""
        seen = self._seen.get(run_id)
        if seen is None or seen[2] is None:
            return None
        return max(0.0, seen[2] - (now - seen[1]))

    def run_total(self, r: dict[str, Any], now: float) -> float | None:
        """How long a whole run takes, from this one's measured rate (for runs not started yet)."""
        seen = self._seen.get(r["id"])
        if seen is None or not seen[0] or r.get("started") is None:
            return None
        return (seen[1] - r["started"]) / seen[0]

    def study_eta(self, runs: list[dict[str, Any]], now: float) -> float | None:
        """Seconds until every run not yet done or failed is done: the running runs' own ETAs, then the waiting
        runs at the measured time per run (finished runs, else running ones), shared over the runs that work
        in parallel. None while nothing has been measured."""
        running = [r for r in runs if r["state"] == "running"]
        waiting = [r for r in runs if r["state"] not in ("running", "done", "failed")]
        etas = [self.run_eta(r["id"], now) for r in running]
        per_run = [r["seconds"] for r in runs if r["state"] == "done" and r.get("seconds")]
        if not per_run:
            per_run = [t for t in (self.run_total(r, now) for r in running) if t is not None]
        if (running and None in etas) or (waiting and not per_run):
            return None
        if not running and not waiting:
            return 0.0
        parallel = max(1, len(running))
        first = max((e for e in etas if e is not None), default=0.0)
        return first + len(waiting) * (sum(per_run) / len(per_run)) / parallel
