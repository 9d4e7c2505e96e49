"""Journeys a new user hit within minutes (issue 16), each driven by keys on the demo database: a filter that
matches nothing, screen keys pressed with an input focused, what PARTIAL says, help, stale panes."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


@pytest.fixture
def app_in(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    return app


def shown(app, selector: str) -> str:
    """The text a Static shows (what the user reads), from the screen in front."""
    return str(app.screen.query_one(selector, Static).render())


@pytest.mark.parametrize("where", ["model=resnet50", "strategy=fulla"])
async def test_a_filter_that_matches_nothing_is_a_one_line_message_not_a_crash(app_in, where: str) -> None:
    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        await pilot.press("slash")
        await type_into(pilot, "#r-where", where)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "matches no results" in shown(app, "#r-note"), tries=400)
        await pilot.pause(0.2)
        assert app.is_running and app.return_code is None
        assert where in shown(app, "#r-note")

