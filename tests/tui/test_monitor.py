"""The Monitor on a stored study: the grid of runs, the failure and its reason, per-eps numbers of a run."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, RichLog

from rttui.tui import make_app
from rttui.tui.cells import duration
from tests.tui.helpers import wait_for


def _log_text(screen) -> str:
    return "\n".join(line.text for line in screen.query_one("#mon-log", RichLog).lines)


async def test_monitor_shows_runs_failures_and_numbers(demo_dir: Path, frozen_clock) -> None:
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("enter")  # open: the study is in the database, so its monitor
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs)
        m = app.screen
        grid = m.query_one("#mon-runs", DataTable)
        assert grid.row_count == 9
        states = [r["state"] for r in m.runs]
        assert states.count("done") == 8 and states.count("failed") == 1
        assert "NonFiniteLoss" in _log_text(m)
        # the first run's per-eps numbers: one row per eps, one column per attack
        nums = m.query_one("#mon-numbers", DataTable)
        assert nums.row_count == 3 and len(nums.columns) == 3
        first = m.runs[0]
        pgd = [x for x in m.data["metrics"][first["id"]] if x["attack"] == "pgd"]
        assert nums.get_row_at(0)[2] == f"{100 * pgd[0]['adv_acc']:.1f}"
        # moving to the failed run shows its reason
        failed = states.index("failed")
        await pilot.press(*["down"] * failed)
        await wait_for(pilot, lambda: m.selected() is m.runs[failed])
        assert "NonFiniteLoss" in str(m.query_one("#mon-run-title").render())


async def test_a_run_left_running_with_no_runner_reads_stopped_without_a_clock(demo_dir: Path, frozen_clock) -> None:
    """A runner killed before it could reset its unit leaves it 'running' in the database: with no runner holding
    the database, the Monitor says it is stopped (and shows no ticking time), not running."""
    import sqlite3

    c = sqlite3.connect(demo_dir / "demo.db")
    with c:
        rid = c.execute("select id from runs where state = 'done' limit 1").fetchone()[0]
        c.execute("update runs set state = 'running', started = ? where id = ?", (frozen_clock() - 100, rid))
    c.close()
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs)
        m = app.screen
        assert m.data["runner"] is None
        row = m.query_one("#mon-runs", DataTable).get_row(rid)
        assert "stopped" in str(row[1]) and "running" not in str(row[1])
        assert str(row[5]) != duration(100)  # no clock counting from its start
