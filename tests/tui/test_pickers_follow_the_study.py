"""Switching study on an analysis screen: a picker left on a value the new study lacks (an eps of the other
study's grid) falls back to a value the new study holds, and the analysis is run again for it, not left blank."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Select

from rttui.tui import make_app
from tests.tui.conftest import DEMO_STUDY, write_demo_db
from tests.tui.helpers import wait_for

OTHER = DEMO_STUDY.replace('name = "demo"', 'name = "other"').replace(
    "epsilons = [0.01, 0.03, 0.05]", "epsilons = [0.02, 0.04]"
)


@pytest.fixture
def two_grids(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo (eps 0.01, 0.03, 0.05) and a study `other` (eps 0.02, 0.04) in one database."""
    monkeypatch.chdir(demo_dir)
    f = demo_dir / "studies" / "other.toml"
    f.write_text(OTHER)
    write_demo_db(demo_dir / "demo.db", f, fail_one=False)
    return demo_dir


async def switch_to(app, pilot, name: str, mode: str) -> None:
    """Choose a study elsewhere (as the Studies screen does) and come back to the analysis screen."""
    app.action_mode("studies")
    await wait_for(pilot, lambda: app.current_mode == "studies")
    app.open_study(name, f"studies/{name}.toml")
    app.action_mode(mode)
    await wait_for(pilot, lambda: app.current_mode == mode)


async def test_results_eps_of_another_study_falls_back_and_the_tables_show(two_grids: Path, frozen_clock) -> None:
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        app.action_mode("results")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        r = app.screen
        eps = r.query_one("#r-eps", Select)
        await pilot.press("e", "e", "e")  # all -> 0.01 -> 0.03 -> 0.05
        await wait_for(pilot, lambda: eps.value == "0.05" and r.tables and r.asked["eps"] == 0.05, tries=400)
        await switch_to(app, pilot, "other", "results")
        await wait_for(pilot, lambda: r.study == "other" and r.values.get("eps") == ["0.02", "0.04"], tries=400)
        await wait_for(pilot, lambda: r.tables, tries=400)
        assert eps.value in ("all", "0.02", "0.04")
        header = r.tables[0]["header"]
        assert any("0.02" in str(h) for h in header) and not any("0.05" in str(h) for h in header)
        assert all(t["body"] for t in r.tables)
        await pilot.pause(0.5)  # later polls keep the tables and the picker
        assert r.tables and eps.value in ("all", "0.02", "0.04")


async def test_ttest_eps_of_another_study_falls_back_and_the_tests_show(two_grids: Path, frozen_clock) -> None:
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        app.action_mode("ttest")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        eps = t.query_one("#t-eps", Select)
        await pilot.press("e", "e", "e")
        await wait_for(pilot, lambda: eps.value == "0.05" and t.grid and t.asked["eps"] == 0.05, tries=400)
        await switch_to(app, pilot, "other", "ttest")
        await wait_for(pilot, lambda: t.study == "other" and t.values.get("eps") == ["0.02", "0.04"], tries=400)
        await wait_for(pilot, lambda: t.grid and t.grid["rows"], tries=400)
        assert eps.value in ("all", "0.02", "0.04")
        eps_col = t.grid["header"].index("eps")
        shown = {str(row[eps_col]) for row in t.grid["rows"]}
        assert shown and shown <= {"0.02", "0.04"}  # the new study's grid, every row a test
