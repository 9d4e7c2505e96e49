"""Plots by keys: the eps curves of each configuration and the trade-off at one eps, from the stored numbers."""

from __future__ import annotations

from pathlib import Path

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import wait_for


async def test_curves_and_tradeoff(demo_dir: Path, frozen_clock) -> None:
    db = demo_dir / "demo.db"
    app = make_app(db=db, studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        app.open_study("demo", str(demo_dir / "studies" / "demo.toml"))
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "plots" and app.screen.drawn)
        p = app.screen
        assert p.drawn["kind"] == "curves" and p.drawn["attack"] == "pgd"
        want = {
            r["strategy"]: [
                (r2["eps"], 100 * r2["adv"].mean)
                for r2 in api.summary(api.export_records(db, "demo"))
                if r2["attack"] == "pgd" and r2["strategy"] == r["strategy"]
            ]
            for r in api.summary(api.export_records(db, "demo"))
        }
        assert p.drawn["lines"] == want  # one line per strategy, the mean over seeds at each eps
        await pilot.press("k")  # trade-off
        await wait_for(pilot, lambda: p.drawn["kind"] == "tradeoff")
        assert p.drawn["eps"] == "0.03" and set(p.drawn["lines"]) == set(want)
        await pilot.press("a")
        await wait_for(pilot, lambda: p.drawn["attack"] == "fgsm")
