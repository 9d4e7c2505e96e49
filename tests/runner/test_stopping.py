"""How a runner stops, as its user sees it.

- SIGKILL of the runner (the OOM killer, `kill -9`): its worker processes notice at once and exit quietly; no
  worker is left training for nobody and printing `BrokenPipeError` tracebacks.
- Ctrl-C and SIGTERM, with and without `-q`: one line saying the work is stored and how to resume, exit 130.

Real processes, real signals; the runner is kept busy at a known point with the RTTUI_FAULTS sleep hook.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.studies import tiny_study

STUDY = tiny_study(study={"name": "stop"}, source={"epochs": 2, "train_size": 100})
# The source sleeps after its first epoch (that is when the signal comes); a sleep longer than any wait below.
BUSY = [{"unit": "source", "sleep_after_epoch": 1, "seconds": 60}]


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    study = tmp_path / "stop.toml"
    study.write_text(STUDY)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RTTUI_FAULTS": json.dumps(BUSY)}
    return subprocess.Popen(
        [sys.executable, "-m", "rttui", "run", str(study), "--db", str(tmp_path / "stop.db"), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signals below reach the runner (and its workers), never pytest
    )


def _alive(pid: int) -> bool:
    """Running or stopped, not gone and not a zombie waiting for its (dead) parent's reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_exit_at_once_and_quietly_when_the_runner_is_killed(tmp_path: Path) -> None:
    runner = _start(tmp_path, "--workers", "2", "--json-events")
    watchdog = threading.Timer(600, lambda: os.killpg(runner.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert runner.stdout is not None
        workers: set[int] = set()
        for line in runner.stdout:  # the runner's events: worker pids, then the source's first epoch
            e = json.loads(line)
            if e["event"] == "WorkerStarted":
                workers.add(e["pid"])
            if e["event"] == "EpochDone" and e["record"]["epoch"] == 1 and len(workers) == 2:
                break
        assert len(workers) == 2, "the runner stopped before both workers were ready"
        assert all(_alive(w) for w in workers)
        os.kill(runner.pid, signal.SIGKILL)  # the runner only: its workers must notice by themselves
        t0 = time.monotonic()
        runner.wait(timeout=30)
        while any(_alive(w) for w in workers) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        gone_after = time.monotonic() - t0
        err = runner.stderr.read() if runner.stderr else ""  # EOF: every worker holding it has exited
    finally:
        watchdog.cancel()
        for w in workers if "workers" in locals() else ():
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    assert gone_after < 2, f"workers still alive {gone_after:.1f} s after the runner died"
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize(
    ("sig", "quiet"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["ctrl-c -q", "sigterm -q", "ctrl-c"],
)
def test_ctrl_c_and_sigterm_say_the_work_is_stored_with_or_without_quiet(
    tmp_path: Path, sig: signal.Signals, quiet: bool
) -> None:
    runner = _start(tmp_path, *(["-q"] if quiet else []))
    db = tmp_path / "stop.db"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and runner.poll() is None and not _has_epoch(db):
            time.sleep(0.2)
        assert runner.poll() is None, runner.communicate()
        runner.send_signal(sig)
        _out, err = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("rttui:")]
    assert lines == ["rttui: cancelled; finished work is stored, run the same command again to resume"], err
    assert "Traceback" not in err
    if quiet:
        assert err.strip() == lines[0], err  # -q: that line and nothing else


def _has_epoch(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return c.execute("select count(*) from epochs").fetchone()[0] > 0
        finally:
            c.close()
    except sqlite3.OperationalError:  # the runner is still creating the tables
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_without_prctl_the_parent_watch_thread_ends_the_worker(tmp_path: Path) -> None:
    """Where the kernel's parent-death signal is not available (not Linux), the watch thread does the job."""
    grandchild = (
        "import sys, time; sys.platform = 'darwin'; "  # as on a system without prctl
        "from rttui.runner.pool import die_with_parent; die_with_parent(int(sys.argv[1])); "
        "print('watching', flush=True); time.sleep(60)"
    )
    parent = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}, str(__import__('os').getpid())]); "
        "print(p.pid, flush=True); p.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "watching"  # the thread runs, and the parent is still alive
        assert _alive(child)
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        while _alive(child) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        assert not _alive(child), "the worker outlived its parent by 10 s"
        assert time.monotonic() - t0 < 2
    finally:
        if proc.poll() is None:
            proc.kill()
