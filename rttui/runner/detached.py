"""Detached runs: `rttui run STUDY --db DB --quiet` started as a process that outlives its caller (and its SSH
session), which is how the app launches a study without owning it. Its output goes to `<db stem>.log` next to
the database; the caller watches the database. Never import a face here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def spawn_run(study_path: str | Path, db: Path) -> dict[str, Any]:
    """Start the detached `rttui run`; returns its pid and log file."""
    log = db.with_suffix(".log")
    cmd = [sys.executable, "-m", "rttui", "run", str(Path(study_path).resolve()), "--db", str(db), "--quiet"]
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True, env=dict(os.environ)
        )
    return {"pid": proc.pid, "log": str(log)}


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def last_line(log: str | Path) -> str:
    """The last non-empty line of a log (what a runner said before it stopped), "" when there is none."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def watch_launched(pid: int, log: str | Path, seconds: float = 5.0, step: float = 0.1) -> dict[str, Any] | None:
    """Watch a runner this process launched for its first `seconds`: None while it still runs (it is then
    reaped by a daemon thread when it ends, so it never stays a zombie of the caller), else how it ended:
    {"code": exit code, "last_line": the log's last line}. A refused start ("already running") or an
    early crash ends within these seconds; the caller shows it as an error."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere (subprocess's own clean-up): no exit code to tell
            return None
        if done:
            return {"code": _exit_code(status), "last_line": last_line(log)}
        if time.monotonic() >= deadline:
            break
        time.sleep(step)
    threading.Thread(target=_reap, args=(pid,), daemon=True, name=f"reap-{pid}").start()
    return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # already reaped elsewhere
        os.waitpid(pid, 0)
