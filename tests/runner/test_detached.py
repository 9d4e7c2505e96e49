"""A runner the app launched is watched for its first seconds (an early death is reported with its log's last
line) and reaped when it ends, so the app never keeps zombies."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rttui.runner.detached import last_line, watch_launched


def _spawn(code: str) -> int:
    """A child of this process, not wrapped in subprocess.Popen (whose own clean-up would reap it for us)."""
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))


def _zombie_or_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_an_early_death_is_told_with_the_logs_last_line(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    pid = _spawn(f"open({str(log)!r}, 'a').write('starting\\nrttui: a runner is already running\\n\\n'); exit(2)")
    ended = watch_launched(pid, log, seconds=30)
    assert ended == {"code": 2, "last_line": "rttui: a runner is already running"}
    assert not _zombie_or_alive(pid)


def test_a_runner_that_runs_on_is_reaped_when_it_ends(tmp_path: Path) -> None:
    pid = _spawn("import time; time.sleep(1.0)")
    assert watch_launched(pid, tmp_path / "none.log", seconds=0.2) is None  # still running after the window
    for _ in range(200):
        if not _zombie_or_alive(pid):
            break
        time.sleep(0.05)
    assert not _zombie_or_alive(pid)  # gone, not a zombie (a zombie keeps its /proc entry)


def test_last_line_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert last_line(tmp_path / "no.log") == ""
