"""The SLURM executor (optional extra `rttui[slurm]`): each unit is a SLURM job submitted through submitit.

Units that are ready together go in one submitit batch (one job array on SLURM). A job runs `run_job` on its
node and appends its events to a file of its own in the study's artifacts folder (length-prefixed pickles,
written and flushed one by one, synced at least every second); the driver, where `rttui run` runs, reads every
file's new complete frames each poll and hands them to its coordinator, which stays the only writer of the
database. A job's `Outcome` comes back through submitit's result file; a job that died (killed, out of time,
node failure) comes back as a crash, and the scheduler retries it as with the local pool. Checkpoints are
written by the jobs under the artifacts folder, so it must be on a filesystem every node mounts: `preflight`
submits a probe job that reads a token the driver wrote there and writes one back, and refuses to start (one
line) when either side cannot see the other's file in time. Cancel (Ctrl-C, SIGTERM, `rttui cancel`) cancels
the jobs still queued or running (scancel); their units go back to pending and resume from their last epoch.

`cluster = "local"` uses submitit's local executor: real processes on this machine through the same code path
except sbatch (how the tests run it). Never import torch at module level here; submitit is imported on use.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import struct
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rttui.errors import RttuiError
from rttui.runner.jobs import Job, Outcome, run_job
from rttui.runner.local import Control
from rttui.runner.schedule import Scheduler
from rttui.study.spec import parse_minutes

POLL_S = 0.5
SYNC_S = 1.0
PROBE_FILE_S = 30.0  # how long the driver waits for the probe job's file once the job has finished
HEADER = struct.Struct("<I")
INSTALL = "pip install 'rttui[slurm]'"


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise RttuiError(
            f"--executor slurm needs submitit, which is not installed; {INSTALL} (or use --executor local)"
        ) from None
    return submitit


# ---- events through files on the shared filesystem ---------------------------------------------------------
class EventWriter:
    """The job's side: append each event as a length-prefixed pickle, flushed at once and synced at least every
    SYNC_S seconds, so a driver on another node sees it (NFS shows appended data to others after a sync)."""

    def __init__(self, path: str | Path) -> None:
        self.f = open(path, "ab")  # noqa: SIM115 (closed in close())
        self._synced = time.monotonic()

    def put(self, event: Any) -> None:
        data = pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL)
        self.f.write(HEADER.pack(len(data)) + data)
        self.f.flush()
        if time.monotonic() - self._synced >= SYNC_S:
            os.fsync(self.f.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


class EventReader:
    """The driver's side: the complete frames appended since the last read (a frame torn by a dying job, or
    still being written, stays unread). The file is reopened each time, which revalidates NFS's cache."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def read(self) -> list[Any]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                buf = f.read()
        except FileNotFoundError:
            return []
        out, pos = [], 0
        while pos + HEADER.size <= len(buf):
            (n,) = HEADER.unpack_from(buf, pos)
            if pos + HEADER.size + n > len(buf):
                break
            out.append(pickle.loads(buf[pos + HEADER.size : pos + HEADER.size + n]))
            pos += HEADER.size + n
        self.offset += pos
        return out


# ---- what runs on a node -----------------------------------------------------------------------------------
def slurm_unit(job: Job, events: str, threads: int) -> Outcome:
    """One unit as a SLURM job: its GPU if SLURM gave it one, `threads` torch threads, events to `events`."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(max(1, threads))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = EventWriter(events)
    try:
        worker = int(os.environ.get("SLURM_JOB_ID", "0").split("_")[0] or 0) or os.getpid()
        return run_job(job, out.put, device, worker=worker)
    finally:
        out.close()


def slurm_probe(folder: str, token: str) -> bool:
    """The start-up probe: whether the driver's token file is visible here; leaves one of its own for the driver."""
    d = Path(folder)
    seen = (d / f"{token}.driver").is_file() and (d / f"{token}.driver").read_text() == token
    tmp = d / f".{token}.job.tmp"
    tmp.write_text(f"{token} {os.uname().nodename}")
    tmp.replace(d / f"{token}.job")
    return seen


def probe_target(folder: Path) -> str:
    """The folder the probe job is told to look in: the driver's own (a test points it elsewhere to play a node
    that mounts another filesystem at the same path)."""
    return str(folder)


# ---- the driver --------------------------------------------------------------------------------------------
@dataclass
class _Running:
    job: Job
    handle: Any  # the submitit job
    reader: EventReader
    events: Path


@dataclass
class SlurmExecutor:
    """Runs each unit as a SLURM job (submitit); `options` is a resolved `[run.slurm]` table."""

    options: dict[str, Any]
    artifacts: Path
    running: dict[str, _Running] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.artifacts = Path(self.artifacts).absolute()
        folder = self.options.get("folder")
        self.folder = Path(os.path.expanduser(folder)).absolute() if folder else self.artifacts / "slurm"

    # -- submitit ---------------------------------------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """submitit's parameters for the configured cluster (SLURM: what goes into each #SBATCH line)."""
        o = self.options
        t = o["time"]
        minutes = t if isinstance(t, int) else parse_minutes(t)
        if o["cluster"] == "local":
            return {"timeout_min": minutes, "gpus_per_node": o["gpus_per_task"], "setup": list(o["setup"])}
        p: dict[str, Any] = {
            "time": minutes,
            "cpus_per_task": o["cpus_per_task"],
            "array_parallelism": o["array_parallelism"],
            "job_name": "rttui",
        }
        if o["gpus_per_task"]:
            p["gpus_per_task"] = o["gpus_per_task"]
        if o["partition"]:
            p["partition"] = o["partition"]
        if o["account"]:
            p["account"] = o["account"]
        if o["mem_gb"] is not None:
            p["mem"] = f"{round(o['mem_gb'] * 1024)}M"
        if o["setup"]:
            p["setup"] = list(o["setup"])
        if o["sbatch"]:
            p["additional_parameters"] = {k: v for k, v in o["sbatch"].items()}
        return p

    def _executor(self) -> Any:
        submitit = _submitit()
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.options["cluster"] == "local":
            ex = submitit.LocalExecutor(folder=str(self.folder / "%j"))
        else:
            if shutil.which("sbatch") is None:
                raise RttuiError(
                    "--executor slurm: sbatch is not on this machine's PATH; run `rttui run` on a SLURM login node "
                    '(or set cluster = "local" under [run.slurm] to run the jobs here)'
                )
            ex = submitit.SlurmExecutor(folder=str(self.folder / "%j"), python=sys.executable)
        ex.update_parameters(**self.parameters())
        return ex

    # -- the shared-filesystem check -------------------------------------------------------------------------
    def preflight(self) -> None:
        """Submit a probe job; refuse (one line) unless the job and this driver see each other's files under the
        artifacts folder within `probe_timeout` seconds."""
        ex = self._executor()
        probe = self.artifacts / "slurm" / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        (probe / f"{token}.driver").write_text(token)
        handle = ex.submit(slurm_probe, probe_target(probe), token)
        deadline = time.monotonic() + float(self.options["probe_timeout"])
        try:
            while not handle.done():
                if time.monotonic() > deadline:
                    handle.cancel(check=False)
                    raise RttuiError(
                        f"the SLURM probe job {handle.job_id} did not finish within {self.options['probe_timeout']} s "
                        "(still queued? see `squeue`); raise probe_timeout under [run.slurm] or pick a free partition"
                    )
                time.sleep(POLL_S)
            try:
                seen = handle.result()
            except Exception as exc:  # the job could not start or load its function
                raise RttuiError(
                    f"the SLURM probe job {handle.job_id} failed ({_first_line(exc)}); rttui must be installed for "
                    f"{sys.executable} on the nodes and {self.folder} must be on a filesystem they mount"
                ) from None
            back = _wait_for(probe / f"{token}.job", PROBE_FILE_S)
            if not seen or not back:
                raise RttuiError(
                    f"{self.artifacts} is not shared with the SLURM nodes (a probe job could not "
                    f"{'see the file this machine wrote there' if not seen else 'leave a file this machine can see'}); "
                    "put the database on a filesystem every node mounts (e.g. --db /shared/project/study.db)"
                )
        finally:
            for f in (probe / f"{token}.driver", probe / f"{token}.job"):
                f.unlink(missing_ok=True)

    # -- running units ---------------------------------------------------------------------------------------
    def run(self, sched: Scheduler, control: Control) -> None:
        ex = self._executor()
        events_dir = self.artifacts / "slurm" / "events"
        events_dir.mkdir(parents=True, exist_ok=True)
        coord = control.coord
        threads = int(self.options["cpus_per_task"])
        cap = self.options["max_jobs"]
        try:
            while not control.poll():
                ready: list[Job] = []
                while cap is None or len(self.running) + len(ready) < cap:
                    job = sched.next_job()
                    if job is None:
                        break
                    ready.append(job)
                if ready:
                    self._submit(ex, ready, events_dir, threads)
                if sched.finished() or not self.running:
                    break
                time.sleep(POLL_S)
                for key, r in list(self.running.items()):
                    for e in r.reader.read():
                        coord.emit(e)
                    if r.handle.done():
                        for e in r.reader.read():  # everything the job wrote before it ended
                            coord.emit(e)
                        del self.running[key]
                        sched.report(r.job, _outcome(r.handle))
                        r.events.unlink(missing_ok=True)
        finally:
            self._cancel_all(coord)

    def _submit(self, ex: Any, jobs: list[Job], events_dir: Path, threads: int) -> None:
        """Submit ready units together (one job array on SLURM); each gets its own events file."""
        entries = []
        batch = ex.batch() if len(jobs) > 1 else contextlib.nullcontext()
        with batch:
            for job in jobs:
                path = events_dir / f"{job.unit_id}-{job.attempt}-{uuid.uuid4().hex[:8]}.events"
                path.touch()
                entries.append((job, ex.submit(slurm_unit, job, str(path), threads), path))
        for job, handle, path in entries:
            self.running[f"{job.unit_id}:{job.attempt}"] = _Running(job, handle, EventReader(path), path)

    def _cancel_all(self, coord: Any) -> None:
        """Cancelled or interrupted: apply what the jobs wrote, then cancel them (their units go back to pending
        in the driver; their epoch checkpoints stay for the next run)."""
        for r in self.running.values():
            with contextlib.suppress(Exception):
                for e in r.reader.read():
                    coord.emit(e)
            with contextlib.suppress(Exception):
                r.handle.cancel(check=False)
        deadline = time.monotonic() + 30
        for r in self.running.values():  # local jobs: wait for the processes to go (SLURM: scancel was sent)
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    if r.handle.done():
                        break
                time.sleep(0.2)
            r.events.unlink(missing_ok=True)
        self.running.clear()


def _outcome(handle: Any) -> Outcome:
    """The job's own Outcome, or a crash the scheduler may retry (killed, out of time, node failure)."""
    try:
        out = handle.result()
    except Exception as exc:
        return Outcome(False, f"SLURM job {handle.job_id} died: {_first_line(exc)}"[:300], crashed=True)
    if isinstance(out, Outcome):
        return out
    return Outcome(False, f"SLURM job {handle.job_id} returned {type(out).__name__}, not an Outcome", crashed=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _wait_for(path: Path, timeout: float) -> bool:
    """Whether `path` shows up within `timeout` seconds (a file another node wrote can take a moment on NFS)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if path.is_file():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
