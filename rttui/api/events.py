"""The runner's events, for the faces: the plain dataclasses a listener passed to `api.run_study` receives
(`rttui run`'s progress bars and `--json-events` match on them). Re-exported so a face never imports the
runner; the definitions live in `rttui.runner.events`, next to their sender."""

from __future__ import annotations

from rttui.runner.events import (
    EpochDone,
    EpsDone,
    EvalDone,
    EvalFailed,
    Event,
    LayersDone,
    Progress,
    RunChecks,
    StudyFinished,
    StudyStarted,
    TrackerFailed,
    TrainingStarted,
    UnitFailed,
    UnitFinished,
    UnitRetried,
    UnitSkipped,
    UnitStarted,
    UnitTrained,
    WorkerStarted,
)

__all__ = [
    "EpochDone",
    "EpsDone",
    "EvalDone",
    "EvalFailed",
    "Event",
    "LayersDone",
    "Progress",
    "RunChecks",
    "StudyFinished",
    "StudyStarted",
    "TrackerFailed",
    "TrainingStarted",
    "UnitFailed",
    "UnitFinished",
    "UnitRetried",
    "UnitSkipped",
    "UnitStarted",
    "UnitTrained",
    "WorkerStarted",
]
