"""The Studies screen keeps its cursor on a study (not on a row number) when the list changes order, and a
launch whose plan is large asks y/n first while a small one starts at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from rttui import api
from rttui.api.studies import LARGE_LAUNCH_RUNS
from rttui.tui import make_app
from rttui.tui.messages import StudiesListed
from rttui.tui.screens.confirm import Confirm
from tests.studies import tiny_study
from tests.tui.helpers import wait_for


def _studies(tmp_path: Path, **names_seeds: int) -> Path:
    sdir = tmp_path / "studies"
    sdir.mkdir()
    for name, n_seeds in names_seeds.items():
        (sdir / f"{name}.toml").write_text(tiny_study(study={"name": name, "seeds": list(range(n_seeds))}))
    return sdir


def _fake_launch(monkeypatch: pytest.MonkeyPatch, launched: list[str]) -> None:
    """No process is started: the launch is recorded (and not watched)."""

    def launch(path: str, db: Path) -> dict:
        launched.append(str(path))
        return {"study": Path(path).stem, "pid": 0, "log": "x.log"}

    monkeypatch.setattr(api, "launch_study", launch)
    monkeypatch.setattr("rttui.tui.screens.base.RttuiScreen.launched", lambda self, info: None)


async def test_the_cursor_stays_on_the_same_study_when_the_list_reorders(tmp_path: Path) -> None:
    sdir = _studies(tmp_path, alpha=1, beta=1, gamma=1)
    app = make_app(db=tmp_path / "s.db", studies_dir=sdir, poll_interval=60)  # no re-read during the test
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 3)
        rows = list(screen.rows)
        names = [r.name for r in rows]
        screen.query_one(DataTable).move_cursor(row=1)
        await pilot.pause()
        chosen = screen.selected().name
        rotated = rows[1:] + rows[:1]  # a save moved the chosen study to the top
        assert [r.name for r in rotated].index(chosen) != names.index(chosen)
        screen.post_message(StudiesListed(rotated))
        await wait_for(pilot, lambda: screen.rows == rotated)
        await pilot.pause()
        assert screen.selected().name == chosen


@pytest.mark.parametrize("answer", ["n", "y"])
async def test_launching_a_large_plan_asks_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    big = LARGE_LAUNCH_RUNS // 2 + 1  # seeds: the tiny study has two runs per seed
    sdir = _studies(tmp_path, big=big)
    launched: list[str] = []
    _fake_launch(monkeypatch, launched)
    app = make_app(db=tmp_path / "s.db", studies_dir=sdir, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert f"{big * 2} runs" in app.screen.question
        assert launched == []
        await pilot.press(answer)
        await pilot.pause(0.2)
    assert launched == ([str(sdir / "big.toml")] if answer == "y" else [])


async def test_launching_a_small_plan_starts_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdir = _studies(tmp_path, small=1)
    launched: list[str] = []
    _fake_launch(monkeypatch, launched)
    app = make_app(db=tmp_path / "s.db", studies_dir=sdir, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("l")
        await wait_for(pilot, lambda: launched)
        assert not isinstance(app.screen, Confirm)
