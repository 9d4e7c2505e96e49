"""The Builder, driven by keys: a new study from the template, inline errors, save; load, edit, save round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


async def test_build_save_and_errors(demo_dir: Path, frozen_clock) -> None:
    sdir = demo_dir / "studies"
    app = make_app(db=demo_dir / "demo.db", studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("n")  # new study from the Studies screen
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        assert b.info["runs"] == 6  # 1 model x 2 strategies x 3 seeds
        await type_into(pilot, "#f-name", "mine")
        await type_into(pilot, "#f-seeds", "0, 1")
        await wait_for(pilot, lambda: b.info.get("runs") == 4)
        # an epsilon outside [0, 1] is an inline error, and the study is not saved
        await type_into(pilot, "#f-eps", "0.01, 8")
        await wait_for(pilot, lambda: any("outside [0, 1]" in e for e in b.errors))
        await type_into(pilot, "#f-path", str(sdir / "mine.toml"))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not (sdir / "mine.toml").exists()
        await type_into(pilot, "#f-eps", "0.02, 0.04")
        await wait_for(pilot, lambda: not b.errors and b.info.get("runs") == 4)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: (sdir / "mine.toml").exists())
    study = api.load_study(sdir / "mine.toml")
    assert study.name == "mine" and study.seeds == (0, 1)
    assert study.blocks[0].eval["epsilons"] == [0.02, 0.04]
    assert [s.name for s in study.blocks[0].strategies] == ["full", "feature_extraction"]


async def test_load_edit_save_round_trip(demo_dir: Path, frozen_clock) -> None:
    f = demo_dir / "studies" / "demo.toml"
    f.write_text("# notes the builder must keep\n" + f.read_text())
    before_text = f.read_text()
    before = tomllib.loads(before_text)
    app = make_app(db=demo_dir / "demo.db", studies_dir=demo_dir / "studies", clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("e")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        assert b.info["runs"] == 9
        await type_into(pilot, "#p-attacks-pgd-steps", "7")
        await wait_for(pilot, lambda: "steps = 7" in str(b.query_one("#b-toml").render()))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "steps = 7" in f.read_text())
    after_text = f.read_text()
    assert after_text.startswith("# notes the builder must keep\n")
    changed = [(a, b) for a, b in zip(before_text.splitlines(), after_text.splitlines(), strict=True) if a != b]
    assert changed == [("steps = 5", "steps = 7")]  # one line changed, the layout of the rest kept
    after = tomllib.loads(after_text)
    assert after["attacks"]["pgd"]["steps"] == 7
    after["attacks"]["pgd"]["steps"] = before["attacks"]["pgd"]["steps"]
    assert after == before  # nothing else moved


async def test_a_new_studys_file_follows_its_name_and_an_opened_file_stays(demo_dir: Path, frozen_clock) -> None:
    """Renamed in the Builder, a new study kept the file new-study.toml (a second new study overwrote it); its
    file now follows its name. A file that was opened, or one the user typed, is left as it is."""
    from textual.widgets import Input

    sdir = demo_dir / "studies"
    app = make_app(db=demo_dir / "demo.db", studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        path = b.query_one("#f-path", Input)
        assert Path(path.value).name == "new-study.toml"
        await type_into(pilot, "#f-name", "mine")
        await wait_for(pilot, lambda: Path(path.value).name == "mine.toml")
        assert Path(path.value).parent == sdir
        await type_into(pilot, "#f-path", str(sdir / "elsewhere.toml"))
        await type_into(pilot, "#f-name", "other")
        await pilot.pause(0.2)
        assert Path(path.value).name == "elsewhere.toml"  # typed by the user: kept
        await pilot.press("escape", "1")
        await wait_for(pilot, lambda: app.current_mode == "studies" and app.screen.rows)
        await pilot.press("e")  # the demo, opened from its file
        await wait_for(pilot, lambda: app.current_mode == "builder" and b.opened is not None and b.checked)
        await wait_for(pilot, lambda: Path(path.value).name == "demo.toml")
        await type_into(pilot, "#f-name", "renamed")
        await pilot.pause(0.2)
        assert Path(path.value).name == "demo.toml"  # an opened file is saved back to itself
