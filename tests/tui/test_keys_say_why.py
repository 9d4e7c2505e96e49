"""Keys never do nothing silently: `q` says how to quit, and a key read-only took away says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.tui import make_app
from tests.tui.helpers import wait_for


def _told(app, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    told: list[str] = []
    notify = app.notify
    monkeypatch.setattr(app, "notify", lambda message, *a, **k: (told.append(str(message)), notify(message, *a, **k)))
    return told


async def test_q_says_how_to_quit(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    told = _told(app, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("q")
        await pilot.pause(0.1)
        assert app.is_running
    assert any("ctrl+q" in t for t in told), told


async def test_a_key_read_only_took_away_says_read_only(
    demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(
        db=demo_dir / "demo.db",
        studies_dir=demo_dir / "studies",
        clock=frozen_clock,
        poll_interval=0.1,
        read_only=True,
    )
    told = _told(app, monkeypatch)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("l")  # Studies: launch
        await pilot.pause(0.1)
    assert any("read-only" in t and "Launch" in t for t in told), told


def test_exports_keys_are_none_a_browser_keeps_for_itself() -> None:
    """In web mode (`rttui serve`) the browser takes ctrl+w (close the tab), ctrl+t and ctrl+n before the page
    sees them: Export's key for what to export closed the tab instead."""
    from rttui.tui.screens.export import ExportScreen

    keys = {k for b in ExportScreen.BINDINGS for k in b.key.split(",")}
    assert "ctrl+e" in keys
    assert not keys & {"ctrl+w", "ctrl+t", "ctrl+n", "ctrl+tab", "ctrl+shift+w", "ctrl+shift+t"}


async def test_a_focused_picker_stands_out_from_the_others(demo_dir: Path, frozen_clock, monkeypatch) -> None:
    """The compact pickers showed focus as a 5% tint (background 234 vs 235): which one the keys move was
    invisible. A focused picker's background differs from an unfocused one's by a visible step."""
    from textual.widgets import Select

    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        eps, rows = app.screen.query_one("#r-eps", Select), app.screen.query_one("#r-rows", Select)
        eps.focus()
        await pilot.pause(0.2)
        focused = eps.query_one("SelectCurrent").background_colors[1]
        plain = rows.query_one("SelectCurrent").background_colors[1]
        step = sum(abs(a - b) for a, b in zip(focused.rgb, plain.rgb, strict=True))
        assert step >= 60, (focused, plain)
