"""The SLURM executor (optional extra `rttui[slurm]`): each unit is a SLURM job submitted through submitit.

Units that are ready together go in one submitit batch (one job array on SLURM). A job runs `run_job` on its
node and appends its events to a file of its own in the study's artifacts folder (one JSON object per line,
written and flushed one by one, synced at least every second), ending with the unit's `Outcome`; the driver,
where `rttui run` runs, reads every file's new complete lines each poll and hands them to its coordinator, which
stays the only writer of the database. The driver never unpickles anything a job wrote: it never asks submitit
for a job's result (submitit's `*_result.pkl`), and a job that ended without an outcome line (killed, out of
time, node failure) comes back as a crash, named by its SLURM state and its log's last line, which the scheduler
retries as with the local pool. (submitit does hand each job its function and arguments as a pickle the driver
wrote, `<job folder>/<job id>_submitted.pkl`, which the job's Python loads on the node: see docs/how-to/slurm.md.)

Checkpoints are written by the jobs under the artifacts folder, so it must be on a filesystem every node
mounts: `preflight` submits a probe job that reads a token the driver wrote there and writes one back, and
refuses to start (one line) when either side cannot see the other's file in time. `check` runs first and costs
seconds: submitit importable, `sbatch` and `srun` on the PATH, and the job script (`script`, what `rttui run
--dry-run` prints) accepted by `sbatch --test-only`. Cancel (Ctrl-C, SIGTERM, `rttui cancel`) cancels the jobs
still queued or running (scancel); their units go back to pending and resume from their last epoch.

`cluster = "local"` uses submitit's local executor: real processes on this machine through the same code path
except sbatch (how the tests run it). Never import torch at module level here; submitit is imported on use.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rttui.errors import RttuiError
from rttui.runner import events as ev
from rttui.runner.jobs import Job, Outcome, run_job
from rttui.runner.local import Control
from rttui.runner.schedule import Scheduler
from rttui.study.spec import parse_minutes

POLL_S = 0.5
SYNC_S = 1.0
PROBE_FILE_S = 30.0  # how long the driver waits for the probe job's file once the job has finished
END_GRACE_S = 10.0  # how long an ended job's outcome line may take to show (NFS) before the job counts as dead
TEST_ONLY_S = 60.0  # the most `sbatch --test-only` may take
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
    """The job's side: append each event as one JSON line, flushed at once and synced at least every SYNC_S
    seconds, so a driver on another node sees it (NFS shows appended data to others after a sync)."""

    def __init__(self, path: str | Path) -> None:
        self.f = open(path, "ab")  # noqa: SIM115 (closed in close())
        self._synced = time.monotonic()

    def put(self, event: Any) -> None:
        self.f.write(ev.to_json(event).encode() + b"\n")
        self.f.flush()
        if time.monotonic() - self._synced >= SYNC_S:
            os.fsync(self.f.fileno())
            self._synced = time.monotonic()

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


class EventReader:
    """The driver's side: the complete lines appended since the last read (a line torn by a dying job, or still
    being written, stays unread), as events; the job's closing `Outcome` line is kept in `outcome`, not returned.
    The file is reopened each time, which revalidates NFS's cache. A line that is not an rttui event (a file
    something else wrote into) stops the reading with one line naming the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.outcome: Outcome | None = None

    def read(self) -> list[Any]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                buf = f.read()
        except FileNotFoundError:
            return []
        out, pos = [], 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            line = buf[pos:nl]
            pos = nl + 1
            try:
                e = ev.from_json(line, {"Outcome": Outcome})
            except ValueError as exc:
                raise RttuiError(
                    f"{self.path}: a SLURM job's event file holds a line rttui did not write ({exc}); "
                    "nothing but the jobs may write under the artifacts folder: remove the file and run again"
                ) from None
            if isinstance(e, Outcome):
                self.outcome = e
            else:
                out.append(e)
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
        outcome = run_job(job, out.put, device, worker=worker)
        out.put(outcome)  # the last line: what the driver reads instead of submitit's result pickle
        return outcome
    finally:
        out.close()


def slurm_probe(folder: str, token: str) -> bool:
    """The start-up probe: whether the driver's token file is visible here; leaves one of its own for the driver
    (`<token> seen|unseen <node>`), which is all the driver reads of the probe."""
    d = Path(folder)
    seen = (d / f"{token}.driver").is_file() and (d / f"{token}.driver").read_text() == token
    tmp = d / f".{token}.job.tmp"
    tmp.write_text(f"{token} {'seen' if seen else 'unseen'} {os.uname().nodename}")
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
    ended: float | None = None  # when the driver first saw the job ended without its outcome line


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

    def script(self, units: int = 1) -> str:
        """The sbatch script submitit submits for `units` jobs at once (more than one: a job array), made by
        submitit's own `_make_sbatch_string` from the same parameters and the same command line its
        `SlurmExecutor` uses; no sbatch needed. Every job's script is this one: which unit a job runs is in the
        pickle submitit writes beside it, not in the script."""
        _submitit()
        from submitit.slurm.slurm import _make_sbatch_string

        folder = self.folder / "%j"
        command = " ".join([sys.executable, "-u -m submitit.core._submit", shlex.quote(str(folder))])
        params = self.parameters()
        if units > 1:
            params["map_count"] = units
        try:
            return str(_make_sbatch_string(command=command, folder=folder, **params))
        except (TypeError, ValueError) as exc:
            raise RttuiError(
                f"[run.slurm]: submitit cannot write a job script from these options ({_first_line(exc)}); "
                "fix them under [run.slurm] or in --slurm"
            ) from None

    def check(self) -> str:
        """Refuse in one line, in seconds and before anything is written: no submitit, no `sbatch`/`srun` here,
        or options sbatch rejects (`sbatch --test-only` on the job script: an unknown option, partition or
        account). Returns the job script."""
        _submitit()
        if self.options["cluster"] == "local":
            return ""
        for tool in ("sbatch", "srun"):
            if shutil.which(tool) is None:
                raise RttuiError(
                    f"--executor slurm: {tool} is not on this machine's PATH; run `rttui run` on a SLURM login node "
                    '(or set cluster = "local" under [run.slurm] to run the jobs here)'
                )
        text = self.script()
        with tempfile.TemporaryDirectory(prefix="rttui-sbatch-") as d:
            f = Path(d) / "job.sh"
            f.write_text(text)
            try:
                r = subprocess.run(
                    ["sbatch", "--test-only", str(f)], capture_output=True, text=True, timeout=TEST_ONLY_S
                )
            except subprocess.TimeoutExpired:
                raise RttuiError(
                    f"`sbatch --test-only` gave no answer in {TEST_ONLY_S:.0f} s; is SLURM's controller up (`sinfo`)?"
                ) from None
        if r.returncode != 0:
            said = [ln.strip() for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
            why = next((ln for ln in said if "error" in ln.lower()), said[0] if said else f"exit {r.returncode}")
            raise RttuiError(
                f"sbatch refuses the job script ({why}); fix the option under [run.slurm] or in --slurm "
                "(`rttui run STUDY --executor slurm --dry-run` prints the script)"
            )
        return text

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
        artifacts folder within `probe_timeout` seconds. Folders it had to create are removed when it refuses,
        so a refused run leaves nothing behind."""
        made = [d for d in (self.artifacts, self.artifacts / "slurm", self.folder) if not d.exists()]
        try:
            self._probe()
        except BaseException:
            for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
                shutil.rmtree(d, ignore_errors=True)
            raise

    def _probe(self) -> None:
        ex = self._executor()
        probe = self.artifacts / "slurm" / "probe"
        probe.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        (probe / f"{token}.driver").write_text(token)
        handle = ex.submit(slurm_probe, probe_target(probe), token)
        deadline = time.monotonic() + float(self.options["probe_timeout"])
        back = probe / f"{token}.job"
        try:
            while not handle.done() and not back.is_file():
                if time.monotonic() > deadline:
                    handle.cancel(check=False)
                    raise RttuiError(
                        f"the SLURM probe job {handle.job_id} did not finish within {self.options['probe_timeout']} s "
                        "(still queued? see `squeue`); raise probe_timeout under [run.slurm] or pick a free partition"
                    )
                time.sleep(POLL_S)
            # A job that failed wrote nothing: no point waiting for its file.
            said = (
                _read_probe(back, token)
                if back.is_file() or (not _failed(handle) and _wait_for(back, PROBE_FILE_S))
                else None
            )
            if said is None and _failed(handle):
                raise RttuiError(
                    f"the SLURM probe job {handle.job_id} failed ({_died(handle)}); rttui must be installed for "
                    f"{sys.executable} on the nodes and {self.folder} must be on a filesystem they mount"
                )
            if said != "seen":
                raise RttuiError(
                    f"{self.artifacts} is not shared with the SLURM nodes (a probe job could not "
                    f"{'see the file this machine wrote there' if said else 'leave a file this machine can see'}); "
                    "put the database on a filesystem every node mounts (e.g. --db /shared/project/study.db)"
                )
        finally:
            for f in (probe / f"{token}.driver", back):
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
                    outcome = self._ended(r)
                    if outcome is not None:
                        del self.running[key]
                        sched.report(r.job, outcome)
                        r.events.unlink(missing_ok=True)
        finally:
            self._cancel_all(coord)

    def _ended(self, r: _Running) -> Outcome | None:
        """The job's outcome once it is over: its own outcome line, or a crash once it has ended without one for
        a poll more (local) or END_GRACE_S (SLURM: the line may take a moment to show on NFS); None while it
        runs. The caller reads the job's events before every call, so nothing it wrote is left unapplied."""
        if r.reader.outcome is not None:
            return r.reader.outcome
        if not r.handle.done():
            return None
        now = time.monotonic()
        if r.ended is None:
            r.ended = now
            return None
        if now - r.ended < (0.0 if self.options["cluster"] == "local" else END_GRACE_S):
            return None
        return Outcome(False, f"SLURM job {r.handle.job_id} died ({_died(r.handle)})"[:300], crashed=True)

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


def _died(handle: Any) -> str:
    """How an ended job ended, from what SLURM and its log say (never from submitit's result pickle): its state
    and the last line of its stderr (a traceback's last line names the error)."""
    state, last = "state unknown", ""
    with contextlib.suppress(Exception):
        state = str(handle.state)
    with contextlib.suppress(Exception):
        lines = [ln.strip() for ln in (handle.stderr() or "").splitlines() if ln.strip()]
        last = lines[-1][:200] if lines else ""
    return f"{state}: {last}" if last else state


def _failed(handle: Any) -> bool:
    """Whether the job's own code raised (submitit logs that line before it re-raises) or SLURM says it failed."""
    with contextlib.suppress(Exception):
        if "triggered an exception" in (handle.stderr() or ""):
            return True
    with contextlib.suppress(Exception):
        return str(handle.state) not in ("COMPLETED", "FINISHED")
    return True


def _read_probe(path: Path, token: str) -> str | None:
    """'seen' or 'unseen' from the probe job's file (`<token> seen|unseen <node>`), None if it is not that."""
    with contextlib.suppress(OSError):
        parts = path.read_text().split()
        if len(parts) >= 2 and parts[0] == token and parts[1] in ("seen", "unseen"):
            return parts[1]
    return None


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
