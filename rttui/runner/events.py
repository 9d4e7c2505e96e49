"""Events workers send to the coordinator: plain, picklable dataclasses (no tensors).

The coordinator is the single writer; faces (CLI progress, TUI) listen to the same events. `to_json` and
`from_json` carry them as one line of JSON each where they cross a file (the SLURM executor's event files):
reading one back builds only the dataclasses named here from plain values, never arbitrary objects.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any


@dataclass
class UnitStarted:
    kind: str  # "source" | "run"
    unit_id: str
    label: str
    phase: str = "train"  # "train" | "eval" (a trained run that only needs evaluations)
    worker: int = 0  # which worker runs it (0 in-process; the pool's slot; -1 unknown)


@dataclass
class TrainingStarted:
    """Training begins after `from_epoch` (0: fresh; >0: resumed from a checkpoint, `history` restored)."""

    kind: str
    unit_id: str
    from_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    batch_size: int = 0


@dataclass
class UnitRetried:
    """A unit is put back in the queue: its worker died, or it ran out of GPU memory (batch halved)."""

    kind: str
    unit_id: str
    reason: str
    attempt: int
    batch_scale: float = 1.0


@dataclass
class WorkerStarted:
    worker: int
    pid: int
    device: str


@dataclass
class Progress:
    kind: str
    unit_id: str
    phase: str  # "train" | "eval:<attack>"
    done: int
    total: int


@dataclass
class EpochDone:
    kind: str
    unit_id: str
    record: dict[str, Any]


@dataclass(kw_only=True)
class UnitTrained:
    kind: str
    unit_id: str
    checkpoint: str
    sha256: str
    num_classes: int
    clean_acc: float | None  # None: a weights-only source, never evaluated on source data
    n_test: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    peak_gpu_mem: int | None = None  # bytes, the unit so far (training) on a CUDA device (None elsewhere)
    env: dict[str, Any] | None = None  # rttui.runner.provenance.collect() of the process that trained it


@dataclass(kw_only=True)
class EpsDone:
    """One epsilon of an evaluation still running is final: its adversarial accuracy, streamed before the
    evaluation's `EvalDone` (which stores the whole grid). For monitors only: never a stored result."""

    run_id: str
    eval_id: str
    attack: str  # the registry name
    label: str  # the name tables give it (`rttui.engine.attacks.names.variant_label`: transfer[source], ...)
    eps: float
    n_adv_correct: int  # clean-correct and still correct under attack, as the evaluation's metric row counts it
    n: int  # test samples
    epsilons: list[float] = field(default_factory=list)  # the evaluation's whole grid, ascending


@dataclass(kw_only=True)
class EvalDone:
    run_id: str
    eval_id: str
    attack: str
    params: dict[str, Any]
    epsilons: list[float]
    mode: str
    n: int
    seconds: float
    metrics: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    confusion: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    # Extra columns of the evaluation row (a transfer attack's surrogate id and hash, its image keys).
    extra: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] | None = None  # rttui.runner.provenance.collect() of the process that ran it
    audit: dict[str, Any] | None = None  # rttui.engine.attacks.audit.audit_attack's result; None: not audited


@dataclass
class EvalFailed:
    """One evaluation of a run failed: stored as that evaluation's state; the run's training is untouched and its
    other evaluations go on."""

    run_id: str
    eval_id: str
    attack: str
    params: dict[str, Any]
    epsilons: list[float]
    error: str
    detail: str = ""


@dataclass
class RunChecks:
    run_id: str
    checks: list[dict[str, Any]]


@dataclass
class LayersDone:
    """A run's layer analysis: one plain record per depth group (gradient flow, CKA before/after, frozen)."""

    run_id: str
    records: list[dict[str, Any]]


@dataclass
class UnitFinished:
    kind: str
    unit_id: str
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)  # merged into the unit's info
    # bytes the whole job (training and evaluation) peaked at on a CUDA device; None elsewhere
    peak_gpu_mem: int | None = None


@dataclass
class UnitFailed:
    kind: str
    unit_id: str
    error: str
    detail: str = ""
    # A run's job that failed after the run was trained: the evaluations it had not stored, which fail with it
    # (the run stays trained).
    evals: list[str] = field(default_factory=list)


@dataclass
class UnitSkipped:
    kind: str
    unit_id: str
    label: str
    reason: str


@dataclass(kw_only=True)
class StudyStarted:
    study: str
    n_sources: int
    n_runs: int
    n_evals: int
    todo_sources: int
    todo_runs: int
    todo_evals: int


@dataclass
class StudyFinished:
    study: str
    seconds: float
    done: int
    failed: int
    cancelled: bool = False
    retried: int = 0


@dataclass
class TrackerFailed:
    """A push to the study's `[track]` tracker failed (or was refused at the start): the study goes on, its
    results stay in the database, and `rttui export --to` pushes them later."""

    study: str
    message: str  # one line: the problem and the fix


Event = (
    UnitStarted
    | TrainingStarted
    | UnitRetried
    | WorkerStarted
    | Progress
    | EpochDone
    | EpsDone
    | UnitTrained
    | EvalDone
    | EvalFailed
    | RunChecks
    | LayersDone
    | UnitFinished
    | UnitFailed
    | UnitSkipped
    | StudyStarted
    | StudyFinished
    | TrackerFailed
)


EVENT_TYPES: dict[str, type] = {t.__name__: t for t in Event.__args__}  # type: ignore[attr-defined]


def _plain(value: Any) -> Any:
    """JSON's stand-in for a value `json` cannot write (a numpy scalar, a path): its Python number or its text."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def to_json(event: Any) -> str:
    """One event (or another plain dataclass) as one line of JSON, without its newline. NaN stays NaN."""
    if not is_dataclass(event) or isinstance(event, type):
        raise TypeError(f"not an event: {event!r}")
    return json.dumps({"type": type(event).__name__, "data": asdict(event)}, default=_plain)


def from_json(line: str | bytes, extra: dict[str, type] | None = None) -> Any:
    """The event (or a dataclass of `extra`) a `to_json` line holds; ValueError for anything else."""
    try:
        obj = json.loads(line)
        kind, data = obj["type"], obj["data"]
        cls = {**EVENT_TYPES, **(extra or {})}[kind]
        return cls(**data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not an rttui event record ({type(exc).__name__}: {exc})") from None
