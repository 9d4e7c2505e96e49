"""Every study shipped in studies/ opens in the Builder, comes back unchanged from an untouched form, saves to
the same text, and is a study `rttui run` accepts (the form never breaks a valid study it does not fully show,
such as a grid that sweeps `freeze_depths` instead of naming strategies)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rttui import api
from rttui.tui.study_form import form_from_study, study_from_form, unshown

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml"))
CATALOG = api.catalog()


def test_studies_are_found() -> None:
    assert len(STUDIES) >= 2


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_a_shipped_study_round_trips_through_an_untouched_form(path: Path) -> None:
    text = path.read_text()
    raw = tomllib.loads(text)
    back = study_from_form(raw, form_from_study(raw, CATALOG), CATALOG)
    assert back == raw
    saved = api.study_toml(back, text)
    assert saved == text  # saved unchanged, comments included
    study = api.parse_study(saved, path.stem)  # what the Builder checks before it saves or launches
    assert api.study_size(study) == api.study_size(api.load_study(path))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
async def test_a_shipped_study_opens_in_the_builder_valid_and_saves_unchanged(path: Path, tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from rttui.tui import make_app
    from tests.tui.helpers import wait_for

    sdir = tmp_path / "studies"
    sdir.mkdir()
    f = sdir / path.name
    f.write_text(path.read_text())
    before = f.read_text()
    app = make_app(db=tmp_path / "s.db", studies_dir=sdir, poll_interval=0.1)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.screen.rows)
        name = tomllib.loads(before)["study"]["name"]
        app.screen.query_one(DataTable).move_cursor(row=[r.name for r in app.screen.rows].index(name))
        await pilot.press("e")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked)
        b = app.screen
        assert b.errors == [], b.errors
        # What the form does not show is named, not silently dropped or hidden (freeze_depths, more blocks).
        note = b.query_one("#f-unshown")
        assert note.display == bool(unshown(tomllib.loads(before)))
        if "freeze_depths" in before:
            assert "freeze_depths" in str(note.render())
        assert b.info["runs"] == api.study_size(api.load_study(path))["runs"]
        mtime = f.stat().st_mtime_ns
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: f.stat().st_mtime_ns != mtime or b.base_text != before)
    assert f.read_text() == before
    assert api.study_size(api.load_study(f)) == api.study_size(api.load_study(path))  # what a launch would run
