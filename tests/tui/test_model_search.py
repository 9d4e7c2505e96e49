"""The Builder's model search widget: typing lists timm names (loaded once, off the UI thread), enter adds the
best match to the models field, and a search is not an edit of the study."""

from __future__ import annotations

from pathlib import Path

from rttui.tui import make_app
from rttui.tui.widgets.model_search import ModelSearch
from tests.tui.helpers import type_into, wait_for


async def test_search_then_enter_adds_the_model(demo_dir: Path, frozen_clock) -> None:
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        search = b.query_one(ModelSearch)
        checked = b.checked
        await type_into(pilot, "#f-model-search", "resnet1")
        await wait_for(pilot, lambda: search.names, tries=1200)  # timm's list, loaded in a worker
        matches = b.query_one("#f-model-matches")
        await wait_for(pilot, lambda: matches.option_count and "resnet1" in str(matches.get_option_at_index(0).prompt))
        first = str(matches.get_option_at_index(0).prompt)
        assert first.startswith("resnet1") and b.checked == checked  # searching did not re-check the study
        b.query_one("#f-model-search").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: first in b.query_one("#f-models").value)
        assert b.query_one("#f-models").value == f"test_resnet, {first}"
