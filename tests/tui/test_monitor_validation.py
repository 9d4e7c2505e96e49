"""The Monitor while a run with a validation split trains: its clean and robust validation accuracy per epoch,
growing as each epoch ends (issue #31). A made-up store, written as the runner writes it: nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable

from rttui import api
from rttui.store.db import Store
from rttui.tui import make_app
from tests.studies import tiny_study
from tests.tui.helpers import wait_for

FROZEN = 1_800_000_000.0


def _epoch(e: int) -> dict:
    probe = json.dumps({"attack": "pgd", "eps": [0.03], "n": 16, "steps": 3})
    return {
        "epoch": e,
        "loss": 1.0 / e,
        "train_acc": 0.5 + 0.1 * e,
        "seconds": 2.0,
        "val_clean_acc": 0.6 + 0.1 * e,
        "val_adv_acc": 0.05 * e,
        "val_n": 20,
        "val_seconds": 0.1,
        "probe": probe,
    }


async def test_monitor_shows_validation_curves_as_epochs_end(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    f = studies / "val.toml"
    f.write_text(
        tiny_study(
            study={"name": "val"}, target={"val_size": 20}, grid=[{"models": ["test_resnet"], "strategies": ["full"]}]
        )
    )
    db = tmp_path / "val.db"
    plan = api.make_plan(api.load_study(f))
    (rp,) = plan.runs
    with Store.open(db, write=True) as s:
        for sp in plan.sources.values():
            s.ensure_source(sp.id, sp.config)
            s.update_unit("source", sp.id, state="done", checkpoint="", clean_acc=0.99, n_test=60, seconds=4.0)
        s.ensure_run(rp.id, rp.config)
        s.register_study("val", str(f), api.load_study(f).raw, [rp.id])
        s.update_unit("run", rp.id, state="running", started=FROZEN - 10)
        for e in (1, 2):
            s.add_epoch(rp.id, "run", _epoch(e))
    app = make_app(db=db, studies_dir=studies, clock=lambda: FROZEN, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs)
        m = app.screen
        nums = m.query_one("#mon-numbers", DataTable)
        await wait_for(pilot, lambda: nums.row_count == 2)
        assert [str(c.label) for c in nums.columns.values()] == ["epoch", "val clean", "val robust"]
        assert nums.get_row_at(1) == ["2", "80.0", "10.0"]
        assert "val 80.0/10.0% (epoch 2)" in str(m.query_one("#mon-run-title").render())
        # The next epoch ends: the curve grows on the next poll.
        with Store.open(db, write=True) as s:
            s.add_epoch(rp.id, "run", _epoch(3))
        await wait_for(pilot, lambda: nums.row_count == 3)
        assert nums.get_row_at(2) == ["3", "90.0", "15.0"]
