"""The Monitor's layout at the sizes a user meets: at 80x24 source pretraining shows (with its ETA, and the study's
ETA counting it), nothing is pushed below the footer and the detail pane holds all five eps of the paper's grid;
at 200 columns the detail pane grows with the screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from rttui import api
from rttui.store import Store
from rttui.tui import make_app
from rttui.tui.cells import duration
from tests.tui.conftest import DEMO_STUDY, write_demo_db
from tests.tui.helpers import wait_for

# The demo with the paper's five eps and two models: labels such as test_vit2/feature_extraction/s0 make the
# detail pane's title two lines at 80 columns.
FIVE_EPS = DEMO_STUDY.replace("epsilons = [0.01, 0.03, 0.05]", "epsilons = [0.01, 0.03, 0.05, 0.07, 0.09]").replace(
    'models = ["test_resnet"]', 'models = ["test_resnet", "test_vit2"]'
)


def screen_lines(app) -> list[str]:
    """The screen as the user reads it, line by line (what the compositor would draw now)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def fits_on_screen(app) -> None:
    """Every part of the Monitor's body ends above the footer: nothing is pushed off a small screen."""
    bottom = app.screen.size.height - 1  # the footer's line
    for w in app.screen.query("#mon-body > *"):
        if w.display:
            assert w.region.bottom <= bottom, f"#{w.id} ends at {w.region.bottom}, below line {bottom}"


@pytest.fixture
def five_eps_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    f = tmp_path / "studies" / "demo.toml"
    f.write_text(FIVE_EPS)
    write_demo_db(tmp_path / "demo.db", f, fail_one=False)
    return tmp_path


def pretraining_db(folder: Path, now: float, running_seed: int) -> str:
    """The demo registered with nothing done, a runner (this live process) training the source of one seed:
    epoch 1 of 2 done after 30 s. Returns the running source's id."""
    (folder / "studies").mkdir()
    f = folder / "studies" / "demo.toml"
    f.write_text(DEMO_STUDY)
    study = api.load_study(f)
    plan = api.make_plan(study)
    with Store.open(folder / "demo.db", write=True) as s:
        for sp in plan.sources.values():
            s.ensure_source(sp.id, sp.config)
        for rp in plan.runs:
            s.ensure_run(rp.id, rp.config)
        s.register_study(study.name, str(f), study.raw, [r.id for r in plan.runs])
        sid = next(sp.id for sp in plan.sources.values() if sp.config["seed"] == running_seed)
        s.update_unit("source", sid, state="running", started=now - 30)
        s.add_epoch(sid, "source", {"epoch": 1, "loss": 0.7, "train_acc": 0.5, "seconds": 15.0})
        s.acquire_lock("demo")
    return sid


async def test_a_training_source_shows_at_80x24_with_its_eta_and_the_studys(
    tmp_path: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source in training is the last of three (as `rttui run` may pick it): at 80x24 its row shows, with an
    ETA from its measured rate (half its epochs in 30 s: 30 s left), and the study's head says when pretraining
    ends (that one, then two more sources at 60 s each) while no run has been timed yet."""
    monkeypatch.chdir(tmp_path)
    pretraining_db(tmp_path, frozen_clock(), running_seed=2)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls >= 2, tries=400)
        await pilot.pause(0.2)
        fits_on_screen(app)
        lines = screen_lines(app)
        row = next((line for line in lines if "test_resnet/s2" in line), None)
        assert row is not None, "\n".join(lines)
        assert "running" in row and row.split()[-1] == duration(30)  # its ETA column
        head = str(app.screen.query_one("#mon-head", Static).render())
        assert f"ETA ≈ {duration(30 + 2 * 60)}" in head
        # the runs' grid keeps rows of its own
        grid = app.screen.query_one("#mon-runs", DataTable)
        assert grid.region.height >= 4 and any("feature_extraction/s0" in line for line in lines)


async def test_every_eps_row_of_the_detail_pane_shows_at_80x24(five_eps_dir: Path, frozen_clock) -> None:
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs, tries=400)
        m = app.screen
        vit = next(i for i, r in enumerate(m.runs) if r["model"] == "test_vit2" and r["strategy"] != "full")
        m.query_one("#mon-runs", DataTable).move_cursor(row=vit)
        await wait_for(pilot, lambda: m.selected() is m.runs[vit] and m.query_one("#mon-numbers", DataTable).row_count)
        await pilot.pause(0.2)
        fits_on_screen(app)
        nums = m.query_one("#mon-numbers", DataTable)
        assert nums.row_count == 5
        assert m.query_one("#mon-run-title").region.height == 2  # the long label wraps
        # the numbers table is drawn whole, its last row (0.09) inside the detail pane
        assert nums.region.height == nums.row_count + 1
        assert nums.region.bottom <= m.query_one("#mon-detail").region.bottom


async def test_the_detail_pane_grows_with_a_wide_screen(five_eps_dir: Path, frozen_clock) -> None:
    async def side_width(size: tuple[int, int]) -> int:
        app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
        app.open_study("demo", "studies/demo.toml")
        async with app.run_test(size=size) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs, tries=400)
            await pilot.pause(0.2)
            assert app.screen.query_one("#mon-numbers", DataTable).region.height == 6  # header and five eps
            return app.screen.query_one("#mon-side").region.width

    widths = {80: await side_width((80, 24)), 200: await side_width((200, 50))}
    assert widths[80] >= 34  # the title, and an eps column beside each attack's
    assert widths[200] >= 200 * 0.25 > widths[80]


async def test_the_runs_grid_fits_80_columns_with_long_labels(five_eps_dir: Path, frozen_clock) -> None:
    """Labels such as test_resnet/feature_extraction/s0 are cut in the middle (the seed kept), so the grid's last
    column (ETA) is on screen and no horizontal scrollbar takes one of its few rows."""
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs, tries=400)
        await pilot.pause(0.2)
        grid = app.screen.query_one("#mon-runs", DataTable)
        assert grid.virtual_size.width <= grid.scrollable_content_region.width
        labels = [str(grid.get_row_at(i)[0]) for i in range(grid.row_count)]
        assert any("…" in label for label in labels)  # cut: the full label does not fit
        assert len(set(labels)) == len(labels) and all(label.endswith(("/s0", "/s1", "/s2")) for label in labels)
        assert any(line.rstrip().endswith("ETA") for line in screen_lines(app))


async def test_the_charts_y_axis_reads_0_50_100_with_0_on_the_bottom_row(five_eps_dir: Path, frozen_clock) -> None:
    """At 80x24 plotext's own ticks labelled the chart's rows 16.7 / 66.7 / 100.0, with the 0% line on the 16.7
    row: the axis reads 0, 50 and 100, 0 on the row just above the x axis."""
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.runs, tries=400)
        await pilot.pause(0.3)
        plot = app.screen.query_one("#mon-plot").region
        rows = screen_lines(app)[plot.y : plot.bottom]
        ticks = [line[: plot.width].split("┤")[0].strip() for line in rows if "┤" in line[: plot.width]]
        assert ticks == ["100", "50", "0"]
        zero = next(i for i, line in enumerate(rows) if line[: plot.width].split("┤")[0].strip() == "0")
        assert "└" in rows[zero + 1][: plot.width]  # the x axis right below the 0 row


async def test_a_study_never_run_says_so_and_how_to_launch_it(five_eps_dir: Path, frozen_clock) -> None:
    """A study file that the database has never run read 'no runner · 0/0 done' over empty panes."""
    (five_eps_dir / "studies" / "fresh.toml").write_text(FIVE_EPS.replace('name = "demo"', 'name = "fresh"'))
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("fresh", "studies/fresh.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
        head = str(app.screen.query_one("#mon-head", Static).render())
        assert "0/0 done" not in head and "not run on this database yet: l launches it" in head
