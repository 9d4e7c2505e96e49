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
async def test_build_launch_watch_export(tmp_path: Path) -> None:
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
    study = api.load_study(sdir / "e2e.toml")
    assert study.name == "e2e" and [s.name for s in study.blocks[0].strategies] == ["full"]
    recs = api.export_records(db, "e2e")
    assert {r["attack"] for r in recs} == {"fgsm", "pgd"} and {r["eps"] for r in recs} == {0.03, 0.1}
    assert all(0 <= r["adv_acc"] <= r["clean_acc"] <= 1 for r in recs)
    assert (db.with_suffix(".log")).exists()
