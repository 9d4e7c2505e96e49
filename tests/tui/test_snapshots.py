"""Snapshots of every screen at 80x24 and 120x36 (pytest-textual-snapshot), on the fixed demo database and a
frozen clock, so the SVGs only change when the app's look changes. Update with `pytest --snapshot-update`."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.tui import make_app
from tests.tui.helpers import wait_for

SIZES = [(80, 24), (120, 36)]

# name -> (mode, condition that says its data is on screen, keys pressed afterwards)
SCREENS = {
    "studies": ("studies", lambda s: s.loaded and s.preview_text, []),
    "help": ("studies", lambda s: s.loaded and s.preview_text, ["question_mark"]),
    "builder": ("builder", lambda s: s.checked, []),
    "monitor": ("monitor", lambda s: s.runs and s.polls, []),
    "plots": ("plots", lambda s: s.drawn, []),
    "results": ("results", lambda s: s.tables, []),
    "ttest": ("ttest", lambda s: s.grid, []),
    "export": ("export", lambda s: s.preview, []),
}


@pytest.fixture
def demo_app(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch):
    """The app on the demo database, with paths relative to the demo folder (so they read the same anywhere)."""
    monkeypatch.chdir(demo_dir)
    from rttui.runner import gpus

    def no_gpu():  # the same line on every machine, with or without NVIDIA GPUs
        raise RuntimeError("no NVIDIA GPU (NVML Shared Library Not Found)")

    monkeypatch.setattr(gpus, "load_nvml", no_gpu)

    def make(name: str):
        app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
        app.open_study("demo", "studies/demo.toml")
        mode, ready, keys = SCREENS[name]

        async def run_before(pilot) -> None:
            app.action_mode(mode)
            await wait_for(pilot, lambda: app.current_mode == mode and ready(app.screen))
            if keys:
                await pilot.press(*keys)
            await pilot.pause(0.2)

        return app, run_before

    return make


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCREENS))
def test_screen(snap_compare, demo_app, name: str, size: tuple[int, int]) -> None:
    app, run_before = demo_app(name)
    assert snap_compare(app, run_before=run_before, terminal_size=size)
