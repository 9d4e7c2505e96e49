"""End to end by keys: build a tiny study in the Builder, save and launch it (a detached `rttui run`), watch
the Monitor until per-epsilon numbers appear, then read them in Results and export them to a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, SelectionList

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


@pytest.mark.slow
async def test_build_launch_watch_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sdir = tmp_path / "studies"
    sdir.mkdir()
    db = tmp_path / "e2e.db"
    app = make_app(db=db, studies_dir=sdir, poll_interval=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.loaded)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        for field, text in (
            ("#f-name", "e2e"),
            ("#f-seeds", "0"),
            ("#f-src-epochs", "1"),
            ("#f-tgt-test", "40"),
            ("#f-tgt-train", "100"),
            ("#f-train-epochs", "1"),
            ("#f-eps", "0.03, 0.1"),
            ("#p-attacks-pgd-steps", "3"),
            ("#f-path", str(sdir / "e2e.toml")),
        ):
            await type_into(pilot, field, text)
        # keep one strategy: move to feature_extraction in the list and toggle it off with space
        strategies = b.query_one("#f-strategies", SelectionList)
        strategies.focus()
        await pilot.press("home", "down", "space")
        await wait_for(pilot, lambda: strategies.selected == ["full"])
        await wait_for(pilot, lambda: b.info.get("runs") == 1 and not b.errors)
        await pilot.press("ctrl+r")  # save and launch
        await wait_for(pilot, lambda: app.current_mode == "monitor")
        m = app.screen
        # the detached runner trains, attacks and stores; the monitor shows the numbers as they land
        await wait_for(pilot, lambda: m.runs and m.data["metrics"].get(m.runs[0]["id"]), tries=1200, step=0.25)
        nums = m.query_one("#mon-numbers", DataTable)
        await wait_for(pilot, lambda: nums.row_count == 2 and len(nums.columns) >= 2)
        await wait_for(
            pilot, lambda: m.data.get("runner") is None and m.runs[0]["state"] == "done", tries=600, step=0.25
        )
        await pilot.press("4")  # results of the real run
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=600)
        assert app.screen.tables[0]["body"][0][0] == "full"
        await pilot.press("5")  # one strategy and one seed: nothing to pair, and the screen says so
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.loaded, tries=600)
        assert "fewer than two values" in str(app.screen.query_one("#t-title").render())
        await pilot.press("7", "ctrl+s")  # export the compare table as Markdown to the suggested path
        out = tmp_path / "exports" / "e2e-table.md"
        await wait_for(pilot, lambda: out.exists(), tries=600)
    study = api.load_study(sdir / "e2e.toml")
    assert study.name == "e2e" and [s.name for s in study.blocks[0].strategies] == ["full"]
    recs = api.export_records(db, "e2e")
    assert {r["attack"] for r in recs} == {"fgsm", "pgd", "worst-case"} and {r["eps"] for r in recs} == {0.03, 0.1}
    assert all(0 <= r["adv_acc"] <= r["clean_acc"] <= 1 for r in recs)
    assert (db.with_suffix(".log")).exists()
    text = out.read_text()
    pgd = next(r for r in recs if r["attack"] == "pgd" and r["eps"] == 0.03)
    assert "| full |" in text and f"{100 * pgd['adv_acc']:.1f}" in text  # the stored number, in the file
