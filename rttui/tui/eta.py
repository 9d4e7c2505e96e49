"""One ETA model for the Monitor's units (source pretraining and runs) and its study, from measured throughput:
a unit's remaining time is what its progress rate said at its last step forward, counted down since (so it
never grows while progress waits for the next step), and the study's is the sources and runs left shared over
the units working in parallel. Pure: no widgets, no database, so tests pin it with a hand-made clock."""

from __future__ import annotations

from typing import Any


class EtaModel:
    """Feed it each poll's units, runs and sources alike (`update`), then ask `run_eta` / `study_eta`."""

    def __init__(self) -> None:
        # run id -> (progress, time it was first seen at that progress, seconds left estimated then)
        self._seen: dict[str, tuple[float, float, float | None]] = {}
        # run id -> (progress, time) of the first step forward seen while watching: the rate since then is this
        # run's own, where a resumed run's progress since its (re)start also counts the epochs done before it
        self._anchor: dict[str, tuple[float, float]] = {}

    def update(self, runs: list[dict[str, Any]], now: float) -> None:
        for r in runs:
            if r["state"] != "running":
                self._seen.pop(r["id"], None)
                self._anchor.pop(r["id"], None)
                continue
            p = float(r["progress"] or 0.0)
            old = self._seen.get(r["id"])
            if old is not None and old[0] == p:
                continue  # no step forward: keep the estimate made at the last one, it counts down
            rate = self._rate(r["id"], p, now)
            if old is not None and r["id"] not in self._anchor:
                self._anchor[r["id"]] = (p, now)
            if rate:
                left: float | None = (1 - p) / rate
            else:  # until two steps are seen: the rate since it started (a resumed run's is too fast)
                elapsed = now - r["started"] if r.get("started") is not None else None
                left = elapsed * (1 - p) / p if elapsed is not None and p > 0 else None
            self._seen[r["id"]] = (p, now, left)

    def _rate(self, run_id: str, p: float, now: float) -> float | None:
        """Progress per second between the first step seen and this one; None before a second step."""
        anchor = self._anchor.get(run_id)
        if anchor is None or p <= anchor[0] or now <= anchor[1]:
            return None
        return (p - anchor[0]) / (now - anchor[1])

    def run_eta(self, run_id: str, now: float) -> float | None:
        """Seconds left for a running unit (a run or a source), or None before its first measured step."""
        seen = self._seen.get(run_id)
        if seen is None or seen[2] is None:
            return None
        return max(0.0, seen[2] - (now - seen[1]))

    def run_total(self, r: dict[str, Any], now: float) -> float | None:
        """How long a whole run takes, from this one's measured rate (for runs not started yet)."""
        seen = self._seen.get(r["id"])
        if seen is None or not seen[0] or r.get("started") is None:
            return None
        rate = self._rate(r["id"], seen[0], seen[1])
        return 1 / rate if rate else (seen[1] - r["started"]) / seen[0]

    def _left(self, units: list[dict[str, Any]], now: float) -> tuple[list[float | None], int, float | None]:
        """Of units of one kind: the running ones' ETAs, how many wait, and the measured time per unit (finished
        ones, else the running ones' whole-unit estimate; None while nothing was measured). A unit that has just
        started (no step measured yet) is counted as a whole unit at that time, so the study's ETA does not
        vanish each time a run starts."""
        running = [u for u in units if u["state"] == "running"]
        waiting = sum(u["state"] not in ("running", "done", "failed") for u in units)
        per = [u["seconds"] for u in units if u["state"] == "done" and u.get("seconds")]
        if not per:
            per = [t for t in (self.run_total(u, now) for u in running) if t is not None]
        mean = sum(per) / len(per) if per else None
        etas = [self.run_eta(u["id"], now) for u in running]
        if mean is not None:
            etas = [mean if e is None else e for e in etas]
        return etas, waiting, mean

    def study_eta(
        self, runs: list[dict[str, Any]], now: float, sources: list[dict[str, Any]] | None = None
    ) -> float | None:
        """Seconds until every source and run not yet done or failed is done: the running units' own ETAs, then
        the waiting ones at the measured time per unit of their kind, shared over the units that work in
        parallel. None while something left has not been measured (runs waiting on their sources, before the
        first run: `sources_eta` says when pretraining ends)."""
        etas: list[float | None] = []
        work = 0.0
        for units in (sources or [], runs):
            running, waiting, per = self._left(units, now)
            if (running and None in running) or (waiting and per is None):
                return None
            etas += running
            work += waiting * (per or 0.0)
        parallel = max(1, len(etas))
        first = max((e for e in etas if e is not None), default=0.0)
        return first + work / parallel

    def sources_eta(self, sources: list[dict[str, Any]], now: float) -> float | None:
        """Seconds until source pretraining ends (the runs that wait on it can start); None before a measurement."""
        return self.study_eta([], now, sources)
