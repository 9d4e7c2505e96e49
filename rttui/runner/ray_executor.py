"""The Ray executor (optional extra `rttui[ray]`): each unit is a Ray task with its CPU/GPU request.

It runs on an existing cluster (`address`) or starts a local one for the duration of the study. Tasks send
their events through a `ray.util.queue.Queue` to this driver, whose coordinator is still the only writer of
the database on the head. Checkpoints are written by the tasks to the study's artifacts folder, so on a
multi-node cluster that folder (next to the database) must be on a filesystem every node mounts.

Ray retries nothing by itself here (`max_retries=0`): a task whose worker died comes back as a crash and the
scheduler decides, exactly as with the local pool.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rttui.errors import RttuiError
from rttui.runner.jobs import Job, Outcome, run_job
from rttui.runner.local import Control
from rttui.runner.schedule import Scheduler

WAIT_S = 0.2


def _task(job: Job, queue: Any, threads: int) -> Outcome:
    """Runs on a Ray worker: the GPU Ray assigned (if any), `threads` torch threads, events to the queue."""
    import ray
    import torch

    torch.set_num_threads(max(1, threads))
    device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    return run_job(job, queue.put, device, worker=os.getpid())


class RayExecutor:
    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float | None = None,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task

    def _init(self) -> tuple[Any, bool]:
        try:
            import ray
        except ImportError:
            raise RttuiError(
                "--executor ray needs Ray, which is not installed; pip install 'rttui[ray]' (or use --executor local)"
            ) from None
        self._temp: str | None = None
        if ray.is_initialized():
            return ray, False
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written under the home directory
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            # A short private temp dir (Ray's socket paths must stay short), not Ray's shared default.
            self._temp = tempfile.mkdtemp(prefix="rttui-ray-", dir="/tmp" if Path("/tmp").is_dir() else None)
            kwargs["_temp_dir"] = self._temp
            # Workers must import this very rttui, even when it is not installed (a checkout on PYTHONPATH).
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(_import_roots())}}
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray instance"
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RttuiError(f"cannot start Ray on {where} ({first}); check --address or run `ray status`") from None
        return ray, True

    def run(self, sched: Scheduler, control: Control) -> None:
        ray, owned = self._init()
        from ray.util.queue import Queue

        coord = control.coord
        try:
            gpus = self.gpus_per_task
            if gpus is None:
                gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
            threads = max(1, int(self.cpus_per_task))
            queue = Queue()
            remote = ray.remote(max_retries=0)(_task).options(num_cpus=self.cpus_per_task, num_gpus=gpus)
            pending: dict[Any, Job] = {}
            while not control.poll():
                while True:
                    job = sched.next_job()
                    if job is None:
                        break
                    pending[remote.remote(job, queue, threads)] = job
                if sched.finished() or not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
                # Events first: a task's events are all queued before its result is ready (put is synchronous).
                self._drain(queue, coord)
                for ref in done:
                    job = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        outcome = Outcome(False, f"Ray task died: {type(exc).__name__}: {first}"[:300], crashed=True)
                    sched.report(job, outcome)
            self._drain(queue, coord)
            for ref in pending:  # cancelled: stop what still runs; those units go back to pending
                ray.cancel(ref, force=True)
        finally:
            if owned:
                ray.shutdown()
                if self._temp:
                    shutil.rmtree(self._temp, ignore_errors=True)

    @staticmethod
    def _drain(queue: Any, coord: Any) -> None:
        n = queue.qsize()
        if n:
            for event in queue.get_nowait_batch(n):
                coord.emit(event)


def _import_roots() -> list[str]:
    """The folder this rttui is imported from, plus the current PYTHONPATH."""
    import rttui

    root = str(Path(rttui.__file__).resolve().parent.parent)
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [root, *[p for p in extra if p != root]]
