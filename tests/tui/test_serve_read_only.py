"""`rttui serve --read-only` (and `rttui tui --read-only`): the app shows the analysis screens only and refuses
every action that writes, by key, palette or call; the same keys on a writable app do write."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import wait_for

WRITES = ("launch_study", "delete_study", "duplicate_study", "save_study", "cancel", "retry", "plot")


@pytest.mark.parametrize("read_only", [True, False])
async def test_serve_read_only_app_refuses_writes(demo_dir: Path, frozen_clock, monkeypatch, read_only: bool) -> None:
    called: list[str] = []

    def fake(name: str):
        def write(*args, **kwargs) -> dict:
            called.append(name)
            return {"study": "demo", "pid": 0, "log": "demo.log"}  # what launch_study answers

        return write

    for name in WRITES:
        monkeypatch.setattr(api, name, fake(name))
    app = make_app(
        db=demo_dir / "demo.db",
        studies_dir=demo_dir / "studies",
        clock=frozen_clock,
        poll_interval=0.1,
        read_only=read_only,
    )
    told: list[str] = []
    notify = app.notify
    monkeypatch.setattr(app, "notify", lambda message, *a, **k: (told.append(str(message)), notify(message, *a, **k)))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        await pilot.press("x", "y")  # Studies: delete, yes
        await pilot.press("enter")  # open the study: its Monitor
        await wait_for(pilot, lambda: app.current_mode == "monitor")
        await pilot.press("l")  # Monitor: launch
        await pilot.pause(0.3)
        if not read_only:  # the same keys on a writable app do write: the test can fail
            assert called == ["delete_study", "launch_study"]
            assert {"Delete (x)", "Go to Builder (2)"} <= titles
            return
        assert called == []
        assert not titles & {"Delete (x)", "Launch (l)", "Duplicate (d)", "Go to Builder (2)", "Go to Export (7)"}
        assert {"Go to Results (4)", "Open (enter)"} <= titles
        await pilot.press("r", "c", "y")  # retry, cancel (+ yes)
        for key in ("2", "7"):  # the Builder and Export screens are gone, and the app says so
            await pilot.press(key)
            await pilot.pause(0.1)
            assert app.current_mode == "monitor"
        assert told.count("the builder screen is off: this app is read-only") == 1
        assert told.count("the export screen is off: this app is read-only") == 1
        await pilot.press("1", "l", "d", "n", "e")  # launch, duplicate; new and edit lead to the Builder
        await pilot.pause(0.3)
        assert app.current_mode == "studies" and called == []
        assert "read-only" in app.title
    assert (demo_dir / "studies" / "demo.toml").exists()
