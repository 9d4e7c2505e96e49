"""The transfer view in the app: `x` on Results opens the surrogate x target matrix (the numbers api.transfer
gives), `e` steps through epsilons, escape goes back; Results and Plots offer the transfer attacks by label."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Select, Static

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import wait_for


async def test_transfer_view_from_results(transfer_run_db: Path, tmp_path: Path) -> None:
    app = make_app(db=transfer_run_db, studies_dir=tmp_path, poll_interval=0.05)
    app.open_study("tr")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=600)
        results = app.screen
        picker = results.query_one("#r-attack", Select)
        picker.value = "transfer[source]"
        await wait_for(pilot, lambda: results.tables and "transfer[source]" in results.tables[0]["caption"], tries=600)
        shown = picker.query_one("SelectCurrent #label", Static).render()
        assert getattr(shown, "plain", str(shown)) == "transfer[source]"  # the label as it is, not read as markup
        await pilot.press("x")
        await wait_for(pilot, lambda: getattr(app.screen, "view", None), tries=600)
        t = app.screen
        want = api.transfer(transfer_run_db, "tr")[0]
        assert t.view["body"] == want.body() and t.view["eps"] == "0.03"
        assert t.query_one("#tr-table", DataTable).row_count == len(want.rows) + 1  # and the clean row
        await pilot.press("e")
        await wait_for(pilot, lambda: t.view and t.view["eps"] != "0.03", tries=600)
        assert t.view["body"] == api.transfer(transfer_run_db, "tr", float(t.view["eps"]))[0].body()
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is results)


async def test_plots_draw_a_transfer_attack(transfer_run_db: Path, tmp_path: Path) -> None:
    app = make_app(db=transfer_run_db, studies_dir=tmp_path, poll_interval=0.05)
    app.open_study("tr")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "plots" and app.screen.drawn, tries=600)
        p = app.screen
        for _ in range(8):
            if p.drawn["attack"] == "transfer[source]":
                break
            await pilot.press("a")
            await pilot.pause(0.1)
        assert p.drawn["attack"] == "transfer[source]"
        assert set(p.drawn["lines"]) == {"full", "layer_freezing"}
