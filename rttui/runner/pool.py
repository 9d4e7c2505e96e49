"""The worker-pool executor: one process per GPU (pinned to it) or N CPU processes, spawn start method.

Each worker has its own duplex pipe: jobs go down, events and the job's outcome come back. The driver waits on
every pipe and every process sentinel together (`multiprocessing.connection.wait`), so a worker killed with
SIGKILL is seen at once and cannot hang the others (a queue shared by workers can: the dead one may hold its
lock). Workers never touch the database; the driver's coordinator applies their events.

Workers ignore SIGINT: Ctrl-C reaches the driver, which stops them and leaves the database consistent.
Workers die with the driver: if it is killed (SIGKILL, the OOM killer) they exit at once and quietly, through
the kernel's parent-death signal on Linux, else a thread that watches the parent pid; and a worker that finds
its pipe closed when it reports exits without a traceback. Nobody is left to use their work, and each epoch's
checkpoint is already on disk for the next run to resume from.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from rttui.errors import RttuiError
from rttui.runner import events as ev
from rttui.runner.jobs import Job, Outcome, run_job
from rttui.runner.local import Control
from rttui.runner.schedule import Scheduler

WAIT_S = 0.25
MAX_FAILED_STARTS = 3  # workers that die before they are ready: a broken device or install, not bad luck


def worker_main(wid: int, device: str, threads: int, conn: Connection, parent: int) -> None:
    """A worker's life: pin to its device, then run jobs until told to stop (None) or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    dev = pin_device(device)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    if dev.startswith("cuda"):
        torch.cuda.set_device(torch.device(dev))

    def send(message: tuple[str, Any]) -> None:
        try:
            conn.send(message)
        except OSError:  # BrokenPipeError, ConnectionResetError: the driver is gone, nobody to report to
            os._exit(0)

    send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        outcome = run_job(job, lambda event: send(("event", event)), dev, wid)
        send(("end", outcome))


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 0.5


def die_with_parent(parent: int) -> None:
    """Exit this process at once, quietly, when the process `parent` dies.

    Linux: prctl(PR_SET_PDEATHSIG, SIGKILL) has the kernel kill us the moment the parent goes (strictly: the
    parent's thread that started us; the pool starts and stops its workers from one thread). Everywhere, also a
    daemon thread that polls getppid(), which changes when the parent dies (we are re-parented). A parent that
    died before this ran is caught by the first check.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the thread below does the job
            arg = ctypes.c_ulong  # prctl is variadic and reads unsigned longs
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, arg(signal.SIGKILL), arg(0), arg(0), arg(0))
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="rttui-parent-watch", daemon=True).start()


def pin_device(device: str) -> str:
    """Make `cuda:K` this process's only visible GPU (before CUDA starts) and return the device to use.

    CUDA_VISIBLE_DEVICES is read when CUDA initialises, so setting it first in a fresh (spawned) process pins
    the worker; K indexes the GPUs the parent saw (its own CUDA_VISIBLE_DEVICES, if set, is respected). If CUDA
    is somehow already initialised here, fall back to the explicit device index.
    """
    if not device.startswith("cuda"):
        return device
    idx = int(device.split(":", 1)[1]) if ":" in device else 0
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and torch_mod.cuda.is_initialized():
        return f"cuda:{idx}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else None
    os.environ["CUDA_VISIBLE_DEVICES"] = ids[idx] if ids and idx < len(ids) else str(idx)
    return "cuda:0"


def plan_workers(workers: int | None, devices: list[str] | None) -> list[str]:
    """The device of each worker: --devices gives one worker per device (or --workers spread over them);
    otherwise one per visible GPU, else `workers` CPU workers."""
    if devices:
        n = workers or len(devices)
        return [devices[i % len(devices)] for i in range(n)]
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        n = workers or gpus
        return [f"cuda:{i % gpus}" for i in range(n)]
    return ["cpu"] * max(1, workers or 1)


@dataclass
class _Slot:
    wid: int
    device: str
    proc: Any
    conn: Connection
    pid: int = 0
    ready: bool = False
    job: Job | None = None
    dead: bool = False


class Pool:
    def __init__(self, devices: list[str], threads: int | None = None) -> None:
        self.devices = devices
        n_cpu = sum(d == "cpu" for d in devices)
        self.threads = threads or max(1, (os.cpu_count() or 1) // max(1, n_cpu))
        self.ctx = mp.get_context("spawn")
        self.slots: list[_Slot] = []
        self.failed_starts = 0

    def _start(self, wid: int) -> _Slot:
        here, there = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=worker_main,
            args=(wid, self.devices[wid], self.threads, there, os.getpid()),
            name=f"rttui-worker-{wid}",
        )
        proc.daemon = True
        proc.start()
        there.close()
        return _Slot(wid, self.devices[wid], proc, here)

    def run(self, sched: Scheduler, control: Control) -> None:
        coord = control.coord
        n = len(self.devices)
        self.slots = [self._start(i) for i in range(n)]
        try:
            while not control.poll():
                for s in self.slots:
                    if s.ready and s.job is None and not s.dead:
                        job = sched.next_job()
                        if job is None:
                            break
                        s.job = job
                        try:
                            s.conn.send(job)
                        except (BrokenPipeError, OSError):
                            s.dead = True  # handled below with the sentinel
                if sched.finished():
                    break
                if not any(s.job is not None or not s.ready for s in self.slots) and not sched.running:
                    break  # every worker idle and nothing ready: nothing can run any more (a guard, not a path)
                live = [s for s in self.slots if not s.dead]
                ready = wait([s.conn for s in live] + [s.proc.sentinel for s in live], timeout=WAIT_S)
                for s in live:
                    if s.conn in ready:
                        self._drain(s, sched, coord)
                for s in live:
                    if s.proc.sentinel in ready or s.dead:
                        self._drain(s, sched, coord)
                        self._died(s, sched)
        finally:
            self._stop()

    def _drain(self, s: _Slot, sched: Scheduler, coord: Any) -> None:
        """Apply every message a worker has sent so far. Only reading the pipe can mean the worker died; an
        error applying a message (the database's disk is full) is the runner's and stops it."""
        while True:
            try:
                if not s.conn.poll():
                    return
                kind, payload = s.conn.recv()
            except Exception:  # closed pipe, or a message torn by the worker's death that cannot be decoded
                s.dead = True
                return
            if kind == "ready":
                s.ready, s.pid = True, payload
                coord.emit(ev.WorkerStarted(s.wid, payload, s.device))
            elif kind == "event":
                coord.emit(payload)
            elif kind == "end":
                job, s.job = s.job, None
                if job is not None:
                    sched.report(job, payload)

    def _died(self, s: _Slot, sched: Scheduler) -> None:
        s.proc.join(timeout=5)
        code = s.proc.exitcode
        if code is None:
            return  # alive after all (a spurious wake-up)
        s.dead = True
        s.conn.close()
        if not s.ready:
            self.failed_starts += 1
            if self.failed_starts >= MAX_FAILED_STARTS:
                raise RttuiError(
                    f"worker {s.wid} on {s.device} died before it was ready (exit code {code}); "
                    "check --devices, or run with --workers 1 to see the error"
                )
        if s.job is not None:
            job, s.job = s.job, None
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            sched.report(job, Outcome(False, f"worker {s.wid} (pid {s.pid}) died ({how})", crashed=True))
        if not sched.finished():
            fresh = self._start(s.wid)
            self.slots[s.wid] = fresh

    def _stop(self) -> None:
        for s in self.slots:
            if not s.dead:
                if s.job is not None:
                    s.proc.terminate()  # cancelled or interrupted mid-unit: its epoch checkpoint stays for resume
                    continue
                with contextlib.suppress(BrokenPipeError, OSError):
                    s.conn.send(None)
        for s in self.slots:
            s.proc.join(timeout=10)
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join(timeout=5)
            s.conn.close()
