"""A job: one unit of work as an executor hands it out (picklable), and what became of it.

`run_job` is the one function every executor calls (in-process, in a worker process, as a Ray task). It never
touches the database: it reports through `emit` and returns an `Outcome`, and the scheduler decides what a
failure means (out of memory: halve the batch and retry; anything else: the unit failed).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rttui.runner import events as ev
from rttui.runner.tasks import TaskOptions, is_oom, run_target, train_source
from rttui.study.plan import EvalPlan, RunPlan, SourcePlan


class Cancelled(BaseException):
    """Raised inside an in-process unit when a cancel request arrives; the unit goes back to pending."""


@dataclass(frozen=True)
class Job:
    kind: str  # "source" | "run"
    unit_id: str
    label: str
    artifacts: str
    source_plan: SourcePlan | None = None
    run_plan: RunPlan | None = None
    source_info: dict[str, Any] | None = None  # the trained source (for a run that must train)
    trained: dict[str, Any] | None = None  # the run's own checkpoint (when only evaluations are missing)
    evals: tuple[EvalPlan, ...] = ()
    # Transfer evaluations: eval id -> the surrogate to craft on (runner.transfer.surrogate_model reads it).
    surrogates: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Stored metric rows of the run's earlier evaluations (attack -> rows) that cross-attack checks compare with.
    stored: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attempt: int = 0
    batch_scale: float = 1.0
    retries: tuple[str, ...] = field(default_factory=tuple)  # reasons of earlier attempts

    @property
    def phase(self) -> str:
        return "eval" if self.kind == "run" and self.trained is not None else "train"

    def retry(self, reason: str, halve_batch: bool = False) -> Job:
        return replace(
            self,
            attempt=self.attempt + 1,
            batch_scale=self.batch_scale / 2 if halve_batch else self.batch_scale,
            retries=(*self.retries, reason),
        )


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    detail: str = ""
    oom: bool = False  # CUDA out of memory: the scheduler may halve the batch and retry
    crashed: bool = False  # the process running it died (SIGKILL, segfault): may be retried


def run_job(
    job: Job,
    emit: Callable[[ev.Event], None],
    device: str | None = None,
    worker: int = 0,
    check: Callable[[], None] | None = None,
) -> Outcome:
    """Run one job to the end, reporting through `emit`; failures come back as an Outcome, never raised.
    `check` runs before every forward pass of the unit's model and may raise `Cancelled` to stop it at once."""
    from rttui.errors import RttuiError, StoreError

    emit(ev.UnitStarted(job.kind, job.unit_id, job.label, job.phase, worker))
    opts = TaskOptions(batch_scale=job.batch_scale, attempt=job.attempt, label=job.label, check=check)
    try:
        if job.kind == "source":
            assert job.source_plan is not None
            train_source(job.source_plan, Path(job.artifacts), emit, device, opts)
        else:
            assert job.run_plan is not None
            run_target(
                job.run_plan,
                job.source_info or {},
                list(job.evals),
                job.trained,
                Path(job.artifacts),
                emit,
                device,
                opts,
                surrogates=job.surrogates,
                stored=job.stored,
            )
    except StoreError:
        raise  # in-process, `emit` writes the database: a full disk there stops the runner, it is not this unit's
    except Exception as exc:
        oom = is_oom(exc)
        msg = str(exc) if isinstance(exc, RttuiError) else f"{type(exc).__name__}: {exc}"
        first = msg.splitlines()[0] if msg.strip() else type(exc).__name__
        if oom:
            _free_cuda()
        return Outcome(False, first, "".join(traceback.format_exception(exc))[-4000:], oom=oom)
    return Outcome(True)


def _free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
