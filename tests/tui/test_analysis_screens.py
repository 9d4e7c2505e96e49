"""Results, T-test and Export driven by keys on the demo database; what they show and write is checked against
the api functions that compute it (the screens lay numbers out, they never compute them)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from textual.widgets import DataTable

from rttui import api
from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


@pytest.fixture
def app_in(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    return app


async def test_results_ttest_and_export(app_in, demo_dir: Path) -> None:
    app = app_in
    db = demo_dir / "demo.db"
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        r = app.screen
        # default: PGD, rows = strategy, columns = eps: one table, the same cells api.compare gives
        want = api.compare(db, "demo", "pgd", None, ["strategy"], ["eps"])
        assert [t["body"] for t in r.tables] == [t.body() for t in want.tables]
        assert r.query(DataTable).first().row_count == 3
        await pilot.press("e")  # first epsilon only
        await wait_for(pilot, lambda: r.tables and not any("0.03" in h for h in r.tables[0]["header"]), tries=400)
        assert any("0.01" in h for h in r.tables[0]["header"])
        await pilot.press("a")  # next attack
        await wait_for(pilot, lambda: r.tables and "fgsm" in r.tables[0]["title"], tries=400)
        shown = r.tables

        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        a, b = app.ttest_query["a"], app.ttest_query["b"]
        rows = api.ttest(db, "strategy", a, b, "adv_acc", None, None, "demo")
        label = api.incomplete(db, "demo")  # the demo study has a failed run: the title says so
        assert label == "INCOMPLETE: 1 run failed"

        def grid(rows: list) -> dict:
            g = api.tests_grid(rows)
            return {**g, "title": f"{g['title']} [{label}]"}

        assert t.grid == grid(rows)
        await pilot.press("s")  # swap A and B: every difference changes sign
        await wait_for(pilot, lambda: app.ttest_query.get("a") == b and t.grid and t.grid != grid(rows))
        swapped = grid(api.ttest(db, "strategy", b, a, "adv_acc", None, None, "demo"))
        assert t.grid == swapped

        await pilot.press("7")
        await wait_for(pilot, lambda: app.current_mode == "export" and app.screen.preview, tries=400)
        x = app.screen
        await type_into(pilot, "#x-path", "out/table.md")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: Path("out/table.md").exists(), tries=400)
        q = app.results_query
        table_md = api.export_table(api.compare(db, "demo", "fgsm", q["eps"], q["rows"], q["cols"], q["where"]), "md")
        assert Path("out/table.md").read_text() == table_md
        assert shown[0]["title"].split(" [")[0] in table_md  # the table Results showed is the one written

        x.query_one("#x-what").focus()
        await pilot.press("ctrl+e")  # paired tests, as set up on the T-test screen
        await type_into(pilot, "#x-path", "out/tests.tex")
        x.query_one("#x-what").focus()
        await pilot.press("ctrl+f")  # md -> latex
        await type_into(pilot, "#x-path", "out/tests.tex")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: Path("out/tests.tex").exists(), tries=400)
        assert Path("out/tests.tex").read_text() == api.export_table(
            api.ttest(db, "strategy", b, a, "adv_acc", None, None, "demo"), "latex"
        )

        x.query_one("#x-what").focus()
        await pilot.press("ctrl+e")  # records, csv
        await type_into(pilot, "#x-path", "out/records.csv")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: Path("out/records.csv").exists(), tries=400)

        x.query_one("#x-what").focus()
        await pilot.press("ctrl+e")  # a figure, as SVG
        await type_into(pilot, "#x-path", "out/fig.svg")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: x.written and x.written[0].endswith(".svg"), tries=600)
        assert all(Path(w).read_text().lstrip().startswith(("<?xml", "<svg")) for w in x.written)
    with open("out/records.csv") as fh:
        rows_csv = list(csv.DictReader(fh))
    recs = api.export_records(db, "demo")
    assert len(rows_csv) == len(recs) == 8 * 2 * 3
    assert [float(x["adv_acc"]) for x in rows_csv] == [r["adv_acc"] for r in recs]


async def test_results_filter_is_applied_on_enter(app_in, demo_dir: Path) -> None:
    """The filter field re-runs the comparison when submitted (pickers do so as soon as they change)."""
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        r = app.screen
        assert r.query(DataTable).first().row_count == 3
        await pilot.press("slash")
        assert app.focused is r.query_one("#r-where")
        await type_into(pilot, "#r-where", "strategy=full")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.results_query.get("where") == ["strategy=full"], tries=400)
        want = api.compare(demo_dir / "demo.db", "demo", "pgd", None, ["strategy"], ["eps"], ["strategy=full"])
        await wait_for(pilot, lambda: [t["body"] for t in r.tables] == [t.body() for t in want.tables], tries=400)
        assert r.query(DataTable).first().row_count == 1


async def test_ttest_fits_a_narrow_terminal_and_says_what_it_left_out(app_in) -> None:
    """On a terminal too narrow for it (the quickstart's two-model table needs 91 columns at 80; the demo's
    one-model table, 76, at 72) the T-test table keeps the columns a reader decides by and its caption stays in
    view, naming the columns it gave up; a wider terminal shows every column again, with the same cells."""
    from textual.widgets import Static

    from rttui.analysis.export import table_width

    app = app_in
    width = 72
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        table = t.query_one("#t-table", DataTable)
        await wait_for(pilot, lambda: table.columns, tries=200)
        labels = [str(c.label) for c in table.columns.values()]
        full = t.grid["header"]
        assert table_width(full, t.grid["rows"]) > width - 2  # this table does not fit as it is
        assert {"Δ pts", "95% CI", "p", "p Holm", "d_z"} <= set(labels) and "t" not in labels
        left_out = [h for h in full if h not in labels and h != "diff (pts)"]
        assert left_out and set(left_out) <= {"t", "n"}
        kept = [full.index("diff (pts)" if h == "Δ pts" else h) for h in labels]
        shown = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert shown == [[r[i] for i in kept] for r in t.grid["rows"]]  # the same cells, fewer columns
        assert table_width(labels, shown) <= width - 2
        caption = t.query_one("#t-caption", Static)
        assert f"{' and '.join(left_out)} left out at this width" in str(caption.render())
        assert caption.region.height > 0 and caption.region.bottom <= 24 - 1  # above the footer, on screen

        await pilot.resize_terminal(130, 36)
        await wait_for(pilot, lambda: "n" in [str(c.label) for c in table.columns.values()], tries=200)
        assert [str(c.label) for c in table.columns.values()] == full
        assert "left out" not in str(t.query_one("#t-caption", Static).render())
