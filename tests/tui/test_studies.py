"""The Studies screen, driven by keys: list, preview, duplicate, delete with confirmation."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from rttui import api
from rttui.tui import make_app


async def wait_for(pilot, cond, tries: int = 100) -> None:
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


async def test_lists_studies_with_progress(demo_dir: Path, frozen_clock) -> None:
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded and screen.rows)
        t = screen.query_one(DataTable)
        assert t.row_count == 1
        row = t.get_row_at(0)
        assert row[0] == "demo" and row[1] == "failed" and row[2].endswith("8/9")
        # the preview shows the study file
        await wait_for(pilot, lambda: "[study]" in screen.preview_text)


async def test_duplicate_then_delete_by_keys(demo_dir: Path, frozen_clock) -> None:
    sdir = demo_dir / "studies"
    app = make_app(db=demo_dir / "demo.db", studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.rows)
        await pilot.press("d")
        await pilot.press("ctrl+a", "ctrl+k", *"demo2", "enter")  # clear the suggested name, type a new one
        await wait_for(pilot, lambda: (sdir / "demo2.toml").exists())
        assert api.load_study(sdir / "demo2.toml").name == "demo2"
        await wait_for(pilot, lambda: len(screen.rows) == 2)
        names = [r.name for r in screen.rows]
        screen.query_one(DataTable).move_cursor(row=names.index("demo2"))
        await pilot.press("x")
        await pilot.press("n")  # said no: nothing happens
        assert (sdir / "demo2.toml").exists()
        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not (sdir / "demo2.toml").exists())
        await wait_for(pilot, lambda: [r.name for r in screen.rows] == ["demo"])
        # the original's results are untouched
        assert len(api.export_records(demo_dir / "demo.db", "demo")) > 0


async def test_command_palette_has_every_screen_and_key(demo_dir: Path, frozen_clock) -> None:
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Go to Results (4)", "Go to T-test (5)", "Duplicate (d)", "Delete (x)", "Help (?)"):
            assert title in commands
        commands["Go to Plots (6)"].callback()
        await wait_for(pilot, lambda: app.current_mode == "plots")
        app.action_mode("studies")
        await wait_for(pilot, lambda: app.current_mode == "studies")
        commands["Delete (x)"].callback()  # a screen key through the palette: the same confirmation
        await wait_for(pilot, lambda: type(app.screen).__name__ == "Confirm")
        await pilot.press("n")
        theme = app.theme
        commands["Toggle dark/light theme (ctrl+t)"].callback()
        assert app.theme != theme
