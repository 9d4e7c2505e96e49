"""The files the app writes or deletes (issue #20): the Builder asks before replacing a file it did not open and
names the full path; the Studies screen deletes a study's file only inside the studies folder it was given, and
its confirmation names the full path."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from rttui import api
from rttui.store import Store
from rttui.tui import make_app
from tests.tui.conftest import DEMO_STUDY, write_demo_db
from tests.tui.helpers import type_into, wait_for


def _confirm_question(app) -> str | None:
    return app.screen.question if type(app.screen).__name__ == "Confirm" else None


async def test_builder_asks_before_overwriting_a_file_it_did_not_open(demo_dir: Path, frozen_clock) -> None:
    sdir = demo_dir / "studies"
    other = sdir / "other.toml"
    other.write_text("# someone's notes, not a study the builder opened\n")
    before = other.read_text()
    app = make_app(db=demo_dir / "demo.db", studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        await pilot.press("n")  # a new study
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        await type_into(pilot, "#f-name", "mine")
        await type_into(pilot, "#f-path", str(other))
        await wait_for(pilot, lambda: b.info.get("runs") and not b.errors)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _confirm_question(app))
        question = _confirm_question(app)
        assert str(other.resolve()) in question and "already exists" in question
        await pilot.press("n")  # no: the file stays as it was
        await wait_for(pilot, lambda: app.current_mode == "builder" and _confirm_question(app) is None)
        assert other.read_text() == before
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _confirm_question(app))
        await pilot.press("y")  # yes: replaced by the study in the form
        await wait_for(pilot, lambda: other.read_text() != before)
        assert api.load_study(other).name == "mine"
        # The file the form now holds saves again without a question...
        await type_into(pilot, "#f-seeds", "0, 1")
        await wait_for(pilot, lambda: b.info.get("runs") == 4)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: api.load_study(other).seeds == (0, 1))
        assert _confirm_question(app) is None
        # ...unless it changed on disk since: then the question says so.
        other.write_text(other.read_text() + "# edited in another editor\n")
        await type_into(pilot, "#f-seeds", "0, 1, 2")
        await wait_for(pilot, lambda: b.info.get("runs") == 6)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _confirm_question(app))
        assert "changed on disk" in _confirm_question(app) and str(other.resolve()) in _confirm_question(app)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert other.read_text().endswith("# edited in another editor\n")


async def test_studies_delete_keeps_a_file_outside_the_studies_folder(tmp_path: Path, frozen_clock) -> None:
    """The database names a study file outside the studies folder: delete forgets the study, leaves the file."""
    sdir = tmp_path / "studies"
    sdir.mkdir()
    outside = tmp_path / "elsewhere" / "demo.toml"
    outside.parent.mkdir()
    outside.write_text(DEMO_STUDY)
    db = tmp_path / "demo.db"
    write_demo_db(db, outside)
    outside.write_text(DEMO_STUDY + "# written there after the study ran\n")
    kept = outside.read_text()
    app = make_app(db=db, studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.rows)
        assert [(r.name, r.path) for r in screen.rows] == [("demo", str(outside))]
        # The preview is the study the database stored, not the file outside the studies folder.
        await wait_for(pilot, lambda: "[study]" in screen.preview_text)
        assert "written there after" not in screen.preview_text
        await pilot.press("x")
        await wait_for(pilot, lambda: _confirm_question(app))
        question = _confirm_question(app)
        assert f"The file {outside.resolve()} lies outside the studies folder {sdir.resolve()}" in question
        assert "is left" in question
        await pilot.press("y")
        await wait_for(pilot, lambda: not screen.rows)
    assert outside.read_text() == kept  # the file is where it was, untouched
    with Store.open(db) as s:
        assert [r["name"] for r in s.studies()] == []  # the study is forgotten in the database


async def test_studies_delete_names_the_full_path_of_a_file_inside(demo_dir: Path, frozen_clock) -> None:
    sdir = demo_dir / "studies"
    (sdir / "spare.toml").write_text(DEMO_STUDY.replace('name = "demo"', 'name = "spare"'))
    app = make_app(db=demo_dir / "demo.db", studies_dir=sdir, clock=frozen_clock, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 2)
        screen.query_one(DataTable).move_cursor(row=[r.name for r in screen.rows].index("spare"))
        await pilot.press("x")
        await wait_for(pilot, lambda: _confirm_question(app))
        question = _confirm_question(app)
        assert f"the file {(sdir / 'spare.toml').resolve()}" in question and "left" not in question
        await pilot.press("y")
        await wait_for(pilot, lambda: not (sdir / "spare.toml").exists())
    assert (sdir / "demo.toml").exists()
