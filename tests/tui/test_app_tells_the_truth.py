"""What the app says about a study after a cancel and in a test on clean accuracy, driven by keys on the demo
database: `c` `y` in the Monitor leaves a cancel request for the runner, and once the runner has applied it the
interrupted run reads pending with no clock and no runner; the T-test screen tests clean accuracy once per
configuration and its caption names the Holm family it corrected over."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Select, Static

from rttui.store import Store
from rttui.tui import make_app
from rttui.tui.cells import duration
from tests.tui.helpers import wait_for


@pytest.fixture
def app_in(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    return app


async def test_cancel_in_the_monitor_asks_the_runner_and_the_run_reads_pending_after(
    app_in, demo_dir: Path, frozen_clock
) -> None:
    db = demo_dir / "demo.db"
    with Store.open(db, write=True) as s:
        rid = next(r["id"] for r in s.runs("demo") if r["state"] == "done")
        s.update_unit("run", rid, state="running", started=frozen_clock() - 100)
        s.acquire_lock("demo")  # a runner (this live process) works on the study
    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.data.get("runner"), tries=400)
        m = app.screen
        grid = m.query_one("#mon-runs", DataTable)
        assert "running" in str(grid.get_row(rid)[1]) and str(grid.get_row(rid)[5]) == duration(100)
        await pilot.press("c")
        await pilot.press("y")
        await pilot.pause(0.2)
        with Store.open(db) as s:
            requests = s.rows("select * from requests")
        assert [r["kind"] for r in requests] == ["cancel"]  # what `rttui cancel` leaves; the runner applies it
        with Store.open(db, write=True) as s:  # what the runner does with it: reset, then let go of the database
            s.reset_running_units()
            s.release_lock()
        await wait_for(pilot, lambda: not m.data.get("runner") and m.runs and "pending" in str(grid.get_row(rid)[1]))
        row = [str(c) for c in grid.get_row(rid)]
        assert "running" not in row[1] and "stopped" not in row[1]
        assert row[5] != duration(100) and row[6] == "-"  # no clock from its start, no ETA
        head = str(m.query_one("#mon-head", Static).render())
        assert "no runner" in head and "ETA" not in head


async def test_ttest_on_clean_accuracy_tests_each_configuration_once_and_names_the_holm_family(app_in) -> None:
    """The demo has one model, so strategy A vs B on clean accuracy is one comparison, whatever the attacks (2)
    and eps (3): Holm over 1, not over 6 copies of it."""
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        p = t.grid["header"].index("p")
        tested = sum(row[p] != "n/a" for row in t.grid["rows"])  # Holm counts the comparisons with a p-value
        assert len(t.grid["rows"]) == 2 * 3  # adversarial accuracy: one test per attack and eps
        caption = str(t.query_one("#t-caption", Static).render())
        assert f"Holm over {tested} comparison(s) (one per attack × eps)" in caption
        t.query_one("#t-metric", Select).value = "clean_acc"
        await wait_for(pilot, lambda: t.grid and t.asked and t.asked["metric"] == "clean_acc", tries=400)
        assert len(t.grid["rows"]) == 1  # not one copy per attack and eps
        caption = str(t.query_one("#t-caption", Static).render())
        tested = sum(row[p] != "n/a" for row in t.grid["rows"])
        assert f"Holm over {tested} comparison(s)" in caption and "each configuration is tested once" in caption


async def test_a_picker_with_nothing_to_pick_reads_a_dash_not_select(app_in) -> None:
    """The demo has one model: the T-test on axis model has no pair, and its A picker read 'Select' (Textual's
    prompt) beside 'vs B test_resnet'; it reads '-' and the note says why there is no test."""
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        t.query_one("#t-axis", Select).value = "model"
        await wait_for(pilot, lambda: "fewer than two values" in str(t.query_one("#t-title", Static).render()))
        await pilot.pause(0.2)
        lines = [strip.text for strip in app.screen._compositor.render_strips()]
        pickers = next(line for line in lines if "vs B" in line)
        assert "Select" not in pickers, pickers
        assert all("Select" not in line for line in lines)


@pytest.mark.parametrize("where", ["model", "colour=red", "model=resnet50"])
async def test_a_bad_filter_is_explained_in_the_apps_words_not_the_clis(app_in, where: str) -> None:
    """The analysis's errors serve `rttui compare --where`: in the app they name the filter, not `--where`."""
    from tests.tui.helpers import type_into

    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        await pilot.press("slash")
        await type_into(pilot, "#r-where", where)
        await pilot.press("enter")
        note = app.screen.query_one("#r-note", Static)
        await wait_for(pilot, lambda: where in str(note.render()) and "computing" not in str(note.render()), tries=400)
        text = str(note.render())
        assert text.startswith("filter ") and "--" not in text and "rttui export" not in text, text
