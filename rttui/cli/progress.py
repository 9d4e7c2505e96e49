"""Live progress for `rttui run`: rich bars on stderr, fed by the runner's events."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rttui.api import events as ev


class RichListener:
    """Overall bar (units done / to do, with ETA), one bar per worker for the unit it runs (with the running
    evaluation's latest per-epsilon accuracy as each epsilon finishes), and one line per finished evaluation,
    retry or failure."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=quiet,
        )
        self.overall: Any = None
        self.bars: dict[int, Any] = {}  # worker -> its bar
        self.worker_of: dict[str, int] = {}  # unit id -> the worker running it
        self.labels: dict[str, str] = {}
        self.latest: dict[str, str] = {}  # run id -> its running evaluation's latest eps and accuracy
        self.phases: dict[str, str] = {}  # unit id -> the phase its bar shows
        self.started = False

    def __enter__(self) -> RichListener:
        # The display starts with the first event, so a study refused before it runs (bad data, a device) leaves
        # its one-line error alone on stderr, without the blank line an empty display draws when it stops.
        self.started = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.__exit__(None, None, None)

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self.progress.__enter__()

    def log(self, msg: str) -> None:
        if not self.quiet:
            self._start()
            self.progress.console.print(msg, highlight=False)

    def __call__(self, event: ev.Event) -> None:
        self._start()
        p = self.progress
        match event:
            case ev.StudyStarted():
                total = event.todo_sources + event.todo_runs
                self.log(
                    f"[bold]{event.study}[/]: {event.n_runs} runs ({event.n_sources} sources, "
                    f"{event.n_evals} evaluations); to do: {event.todo_sources} sources, {event.todo_runs} runs, "
                    f"{event.todo_evals} evaluations"
                )
                self.overall = p.add_task("[bold]study", total=max(total, 1), completed=0 if total else 1)
            case ev.UnitStarted(kind=kind, unit_id=uid, label=label, phase=phase, worker=w):
                if not self.console.is_terminal:  # no live bars in a log file: a line per unit instead
                    what = label if label.startswith(kind) else f"{kind} {label}"  # a source's label names it
                    self.log(f"  started {escape(what)} ({phase})")
                self.labels[uid] = label
                self.worker_of[uid] = w
                self.latest.pop(uid, None)
                desc = self._desc(w, uid, phase)
                if w in self.bars:
                    p.reset(self.bars[w], total=None, description=desc)
                else:
                    self.bars[w] = p.add_task(desc, total=None)
            case ev.Progress(unit_id=uid, phase=phase, done=done, total=total):
                w = self.worker_of.get(uid)
                if w in self.bars:
                    desc = self._desc(w, uid, phase)
                    p.update(self.bars[w], description=desc, total=total, completed=done)
            case ev.EpsDone(run_id=uid):  # streamed as each eps finishes: the bar shows the latest
                acc = event.n_adv_correct / event.n if event.n else 0.0
                done = sum(e <= event.eps for e in event.epsilons) or 1
                of = len(event.epsilons) or done
                self.latest[uid] = f"{event.label} ε={event.eps:g}: {acc:.2f} ({done}/{of} ε)"
                w = self.worker_of.get(uid)
                if w in self.bars:
                    p.update(self.bars[w], description=self._desc(w, uid, self.phases.get(uid, "eval")))
            case ev.TrainingStarted(kind=kind, unit_id=uid, from_epoch=start) if start:
                self.log(f"  resuming {kind} {self.labels.get(uid, uid)} after epoch {start}")
            case ev.UnitRetried(kind=kind, unit_id=uid, reason=reason, attempt=n):
                self.log(f"  [yellow]retrying[/] {kind} {self.labels.get(uid, uid)} (attempt {n + 1}): {reason}")
            case ev.UnitTrained(kind=kind, unit_id=uid, clean_acc=acc, seconds=s):
                what = f"clean acc {acc:.3f}" if acc is not None else "weights loaded"
                label = self.labels.get(uid, uid)
                name = label if label.startswith(kind) else f"{kind} {label}"  # a source's label names it already
                self.log(f"  trained {escape(name)}: {what} ({s:.1f}s)")
                if kind == "source":
                    self._advance()
            case ev.EvalDone():
                self.latest.pop(event.run_id, None)  # the whole grid is on the line below
                accs = " ".join(f"{m['eps']:g}:{m['adv_acc']:.2f}" for m in event.metrics)
                warn = [c for c in event.checks if c["level"] == "warning"]
                flag = f" [yellow]⚠ {warn[0]['message']}[/]" if warn else ""
                self.log(f"    {event.attack:<6} adv acc by eps  {accs}  ({event.seconds:.1f}s){flag}")
            case ev.EvalFailed(run_id=uid, attack=attack, error=err):
                self.latest.pop(uid, None)
                who = escape(self.labels.get(uid, uid))
                what = f"{escape(attack)} evaluation of {who}"
                self.log(f"    [bold red]failed[/] {what}: {escape(err)} (the run's training stands)")
            case ev.UnitFinished(kind="run", unit_id=uid, seconds=secs):
                if not self.console.is_terminal:
                    self.log(f"  finished run {escape(self.labels.get(uid, uid))} ({secs:.1f}s)")
                self._advance()
            case ev.UnitFailed(kind=kind, unit_id=uid, error=err):
                self.log(f"  [bold red]failed[/] {kind} {self.labels.get(uid, uid)}: {err}")
                self._advance()
            case ev.TrackerFailed(message=msg):  # shown even with -q: results are not where the study says they go
                line = f"[yellow]warning[/] {escape(msg)}"
                self.progress.console.print(line, highlight=False) if self.quiet else self.log(line)
            case ev.StudyFinished():
                for bar in self.bars.values():
                    p.remove_task(bar)
                self.bars.clear()
                state = "cancelled" if event.cancelled else "finished"
                self.log(
                    f"[bold]{event.study}[/] {state} in {event.seconds:.1f}s: {event.done} done, {event.failed} failed"
                )
            case _:
                pass

    def _desc(self, worker: int, uid: str, phase: str) -> str:
        self.phases[uid] = phase
        who = f"[dim]w{worker}[/] " if len(self.bars) > 1 or worker > 0 else ""
        latest = f" · {escape(self.latest[uid])}" if uid in self.latest else ""
        return f"{who}{escape(self.labels.get(uid, uid))} · {phase}{latest}"

    def _advance(self) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)


class JsonListener:
    """`--json-events`: one JSON object per event on stdout (bulky per-sample payloads left out)."""

    def __call__(self, event: ev.Event) -> None:
        d = asdict(event)
        d.pop("samples", None)
        d.pop("confusion", None)
        print(json.dumps({"event": type(event).__name__, **d}, default=str), file=sys.stdout, flush=True)
