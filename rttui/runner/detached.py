"""Detached runs: `rttui run STUDY --db DB --quiet` started as a process that outlives its caller (and its SSH
session), which is how the app launches a study without owning it. Its output goes to `<db stem>.log` next to
the database; the caller watches the database. Never import a face here.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
