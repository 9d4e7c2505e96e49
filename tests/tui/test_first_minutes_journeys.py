"""Journeys a new user hit within their first minutes, each driven by keys on the demo database: a filter that
matches nothing, screen keys pressed with an input focused, what PARTIAL says, help, stale panes."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from rttui.tui import make_app
from tests.tui.helpers import type_into, wait_for


@pytest.fixture
def app_in(demo_dir: Path, frozen_clock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", "studies/demo.toml")
    return app


def shown(app, selector: str) -> str:
    """The text a Static shows (what the user reads), from the screen in front."""
    return str(app.screen.query_one(selector, Static).render())


@pytest.mark.parametrize("where", ["model=resnet50", "strategy=fulla"])
async def test_a_filter_that_matches_nothing_is_a_one_line_message_not_a_crash(app_in, where: str) -> None:
    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        await pilot.press("slash")
        await type_into(pilot, "#r-where", where)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "matches no results" in shown(app, "#r-note"), tries=400)
        await pilot.pause(0.2)
        assert app.is_running and app.return_code is None
        assert where in shown(app, "#r-note")


async def test_screen_keys_never_type_into_the_builder(app_in) -> None:
    """Builder, edit the epsilons, go away and come back, press 5: the T-test screen, epsilons unchanged."""
    from textual.widgets import Input

    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked, tries=400)
        assert not isinstance(app.focused, Input)  # entering a screen never lands in a text input
        builder = app.screen
        await type_into(pilot, "#f-eps", "0.01, 0.02, 0.04")
        eps = builder.query_one("#f-eps", Input)
        assert app.focused is eps
        await pilot.press("escape")  # escape leaves the input
        assert not isinstance(app.focused, Input)
        await pilot.press("1")
        await wait_for(pilot, lambda: app.current_mode == "studies")
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "builder")
        assert not isinstance(app.focused, Input)  # coming back does not put focus back in the input
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest")
        assert eps.value == "0.01, 0.02, 0.04"
        # the screen keys' other form works from inside an input too
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "builder")
        eps.focus()
        await pilot.pause()
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.current_mode == "plots")
        assert eps.value == "0.01, 0.02, 0.04"


async def test_results_show_warnings_and_missing_runs_and_say_incomplete_not_running(app_in, demo_dir: Path) -> None:
    """The demo study has a failed run and no runner: not "still running"; the warning's text is shown."""
    from rttui.store import Store

    with Store.open(demo_dir / "demo.db", write=True) as s:
        run = next(r for r in s.runs("demo") if r["state"] == "done" and r["strategy"] == "full")
        s.add_checks(run["id"], [{"check": "masking", "level": "warning", "message": "adversarial = standard = 58.0"}])
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        t = app.screen.tables[0]
        assert "INCOMPLETE: 1 run failed" in t["title"] and "still running" not in t["title"]
        notes = str(app.screen.query_one(".r-notes", Static).render())
        assert "adversarial = standard = 58.0" in notes
        assert "missing:" in notes and "layer_freezing" in notes and "seed 2 (failed)" in notes


def test_cli_compare_says_incomplete_when_no_runner(demo_dir: Path) -> None:
    from typer.testing import CliRunner

    from rttui.cli import app as cli

    res = CliRunner().invoke(
        cli, ["compare", "--study", "demo", "--db", str(demo_dir / "demo.db")], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "INCOMPLETE: 1 run failed" in res.output and "still running" not in res.output
    args = ["ttest", "--study", "demo", "--db", str(demo_dir / "demo.db"), "--a", "feature_extraction"]
    res = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "INCOMPLETE: 1 run failed" in res.output


async def test_help_shows_the_screen_in_fronts_keys_and_the_studies_folder(demo_dir: Path, frozen_clock) -> None:
    from textual.widgets import Markdown

    folder = demo_dir / "studies"
    app = make_app(db=demo_dir / "demo.db", studies_dir=folder, clock=frozen_clock, poll_interval=0.05)
    app.open_study("demo", str(folder / "demo.toml"))
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results")
        assert "1-7/F1-F7 screens" in app.screen.sub_title and "^q quit" in app.screen.sub_title
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.query(Markdown))
        text = app.screen.query_one(Markdown).source
        assert "| Results |" in text and "next attack" in text and "transfer attacks" in text
        assert str(folder) in text
        assert "`f1` .. `f7`" in text and "ctrl+q" in text


def test_pick_pair_never_compares_a_value_with_itself() -> None:
    from rttui.tui.screens.ttest import pick_pair

    choices = ["full", "feature_extraction", "layer_freezing"]
    assert pick_pair(choices, "full", "full") == ("feature_extraction", "full")
    assert pick_pair(choices, "gone", "full") == ("feature_extraction", "full")
    assert pick_pair(choices, "layer_freezing", "gone") == ("layer_freezing", "full")
    assert pick_pair(["full"], "full", "full") == (None, "full")


async def test_ttest_after_a_picker_change_shows_loading_drops_stale_results_and_marks_partial(
    app_in, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from textual.widgets import DataTable, Select

    from rttui import api
    from rttui.store import Store
    from rttui.tui.screens.ttest import Tested

    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        t = app.screen
        assert "INCOMPLETE: 1 run failed" in t.grid["title"]  # the failed run, no runner
        old_grid, old_gen = t.grid, t.generation
        # hold the next tests back, so what the screen shows meanwhile can be seen
        release = threading.Event()
        real = api.ttest
        monkeypatch.setattr(api, "ttest", lambda *a, **k: release.wait(20) and real(*a, **k))
        # the state a study switch left: one value on both sides; the screen compares two different ones
        t.query_one("#t-a", Select).value = t.query_one("#t-b", Select).value
        await pilot.pause()
        assert t.grid is None and t.query_one("#t-table", DataTable).row_count == 0  # the old table is gone
        assert "computing" in shown(app, "#t-title")
        # a result read for the old pickers that lands now is dropped
        stale = Tested("demo", dict(app.ttest_query), dict(t.values), old_grid, "")
        stale.generation = old_gen
        t.post_message(stale)
        await pilot.pause(0.05)
        assert t.generation > old_gen and t.grid is None
        release.set()
        await wait_for(pilot, lambda: t.grid, tries=400)
        q = app.ttest_query
        assert q["a"] and q["b"] and q["a"] != q["b"]
        # while a runner works on the study, the tests are marked PARTIAL
        with Store.open(demo_dir / "demo.db", write=True) as s:
            s.acquire_lock("demo")
        try:
            await pilot.press("f5")
            await wait_for(pilot, lambda: t.grid and "PARTIAL: study still running" in t.grid["title"], tries=400)
        finally:
            with Store.open(demo_dir / "demo.db", write=True) as s:
                s.release_lock()


async def test_monitor_and_plots_say_pick_a_study_when_none_is_chosen(
    demo_dir: Path, frozen_clock, monkeypatch
) -> None:
    monkeypatch.chdir(demo_dir)
    app = make_app(db="demo.db", studies_dir="studies", clock=frozen_clock, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor")
        assert "pick one on the Studies screen" in shown(app, "#mon-head")
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "plots")
        assert "pick one on the Studies screen" in shown(app, "#pl-note")


async def test_studies_preview_never_shows_the_study_selected_before(app_in, demo_dir: Path, monkeypatch) -> None:
    import threading

    from rttui import api
    from tests.tui.conftest import DEMO_STUDY

    (demo_dir / "studies" / "other.toml").write_text(DEMO_STUDY.replace('name = "demo"', 'name = "other"'))
    release = threading.Event()
    real = api.study_source

    def slow(name: str, *a, **k) -> str:
        if name == "other":
            release.wait(20)
        return real(name, *a, **k)

    monkeypatch.setattr(api, "study_source", slow)
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.rows) == 2 and s.preview_text, tries=400)
        first = s.selected().name
        await pilot.press("down" if first == "demo" else "up")
        await pilot.pause(0.2)
        assert s.selected().name == "other"
        text = shown(app, "#studies-preview")
        assert 'name = "demo"' not in text and "reading other" in text
        release.set()
        await wait_for(pilot, lambda: 'name = "other"' in s.preview_text, tries=400)


async def test_export_preview_follows_the_selection(app_in, monkeypatch) -> None:
    import threading

    from textual.widgets import Select

    from rttui import api

    release = threading.Event()
    real = api.records_text

    def slow(records, fmt: str) -> str:
        if fmt == "csv":
            release.wait(20)
        return real(records, fmt)

    monkeypatch.setattr(api, "records_text", slow)
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await wait_for(pilot, lambda: app.current_mode == "export" and app.screen.preview, tries=400)
        x = app.screen
        x.query_one("#x-what", Select).value = "records"  # csv first: held back
        await pilot.pause(0.1)
        x.query_one("#x-fmt", Select).value = "json"
        await wait_for(pilot, lambda: x.preview.lstrip().startswith("["), tries=400)
        release.set()  # the csv preview made for the old selection lands now
        await pilot.pause(0.5)
        assert x.preview.lstrip().startswith("[") and x.query_one("#x-fmt", Select).value == "json"
        assert shown(app, "#x-preview").lstrip().startswith("[")


async def test_a_refused_launch_is_an_error_that_stays_with_the_logs_last_line(
    app_in, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another runner takes the database between the app's check and the launched process's start: the
    launched `rttui run` is refused at once; the app says so (not "launched") until dismissed, and reaps it."""
    import re

    import rttui.api.runs as runs
    from rttui.store import Store

    monkeypatch.setattr(runs, "ensure_no_runner", lambda db=None: None)  # the race, made certain
    with Store.open(demo_dir / "demo.db", write=True) as s:
        s.acquire_lock("demo")  # held by this (live) process
    try:
        app = app_in
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
            await pilot.press("l")

            def refused() -> list:
                return [n for n in app._notifications if "stopped at once" in n.message]

            await wait_for(pilot, refused, tries=1200)
            (note,) = refused()
            assert note.severity == "error" and note.timeout >= 3600
            assert "already" in note.message.lower() or "running" in note.message.lower()
            pid = int(re.search(r"process (\d+)", note.message).group(1))
            assert not Path(f"/proc/{pid}").exists()  # reaped, no zombie
    finally:
        with Store.open(demo_dir / "demo.db", write=True) as s:
            s.release_lock()


async def test_results_freeze_labels_pickers_stay_on_one_line_tradeoff_never_below_zero(app_in) -> None:
    import re

    from textual.widgets import DataTable, Select
    from textual_plotext import PlotextPlot

    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_mode == "results" and app.screen.tables, tries=400)
        r = app.screen
        dt = r.query(DataTable).first()
        assert dt.fixed_columns == 1  # the strategy column stays when the table scrolls sideways
        for sel in r.query(".pickers Select").results(Select):
            assert sel.region.height == 1, sel.id  # the picked value never wraps onto a second line
        await pilot.press("5")  # T-test: A = feature_extraction, a long value in a narrow picker
        await wait_for(pilot, lambda: app.current_mode == "ttest" and app.screen.grid, tries=400)
        for sel in app.screen.query(".pickers Select").results(Select):
            assert sel.region.height == 1, (sel.id, sel.value)
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "plots" and app.screen.drawn, tries=400)
        await pilot.press("k")  # the trade-off
        await wait_for(pilot, lambda: app.screen.drawn.get("kind") == "tradeoff", tries=400)
        for _ in range(3):  # to eps 0.05, where full has 0% under PGD
            if app.screen.drawn.get("eps") == "0.05":
                break
            await pilot.press("e")
            await pilot.pause(0.1)
        assert app.screen.drawn["eps"] == "0.05"
        await pilot.pause(0.2)
        text = re.sub(r"\x1b\[[0-9;]*m", "", app.screen.query_one(PlotextPlot).plt.build())
        ticks = [float(m) for m in re.findall(r"^\s*(-?\d+(?:\.\d+)?)\s*[┤├]", text, re.M)]
        assert ticks and min(ticks) >= 0, text


async def test_builder_params_marks_new_and_cost_left(app_in) -> None:
    from textual.widgets import Checkbox, Input, Label, SelectionList

    from rttui.tui.screens.confirm import Confirm

    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked, tries=400)
        b = app.screen
        await pilot.pause(0.2)
        # the cost counts what is left: 8 of the demo's 9 runs are done
        await wait_for(pilot, lambda: "8 done, 1 left" in str(b.query_one("#b-size").render()), tries=400)
        # only the selected options' parameters are shown
        groups = list(b.query(".params"))
        assert groups and any(not g.display for g in groups)
        for g in groups:
            axis, name = g.id.removeprefix("params-").split("-", 1)
            assert g.display == (name in b.query_one(f"#f-{axis}", SelectionList).selected), g.id
        # a parameter's label is its whole name
        for inp in b.query(".params Input").results(Input):
            key = inp.id.split("-", 3)[3]
            assert str(inp.parent.query_one(Label).render()) == key
        # marks say on or off by their glyph
        box = b.query_one("#f-src-pretrained", Checkbox)
        assert ("✓" in str(box.render())) == box.value
        box.value = not box.value
        await pilot.pause()
        assert ("✓" in str(box.render())) == box.value
        box.value = not box.value
        sl = b.query_one("#f-strategies", SelectionList)
        lines = ["".join(seg.text for seg in sl.render_line(y)) for y in range(sl.option_count)]
        for i, line in enumerate(lines):
            assert ("✓" in line) == (sl.get_option_at_index(i).value in sl.selected), line
        # ctrl+n with edits asks first; "no" keeps them
        await type_into(pilot, "#f-eps", "0.5")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is b)
        assert b.query_one("#f-eps", Input).value == "0.5"


async def test_the_timm_model_list_loads_once_in_the_background_at_start(app_in) -> None:
    from rttui.api import studies

    studies._model_names.cache_clear()
    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        # nothing asked for it: the app loads it at start, before the Builder's search is ever used
        await wait_for(pilot, lambda: studies._model_names.cache_info().currsize == 1, tries=1200)
        names = studies.model_names()
        assert "resnet50" in names and studies._model_names.cache_info().misses == 1


async def test_monitor_starting_state_follows_the_running_run_and_draws_the_eps_grid(
    app_in, demo_dir: Path, frozen_clock
) -> None:
    import re

    from textual.widgets import DataTable
    from textual_plotext import PlotextPlot

    from rttui.store import Store

    with Store.open(demo_dir / "demo.db", write=True) as s:
        run = [r for r in s.runs("demo") if r["state"] == "done"][4]
        s.update_unit("run", run["id"], state="running", started=frozen_clock() - 5)
    app = app_in
    app.launching = {"study": "demo", "pid": 4242, "at": frozen_clock()}  # launched here a moment ago
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
        m = app.screen
        assert "starting (process 4242)" in shown(app, "#mon-head")  # not "no runner"
        # the cursor, and so the chart, is on the running run
        await wait_for(pilot, lambda: m.selected() and m.selected()["id"] == run["id"], tries=200)
        # the user moves: the cursor stays where they put it
        m.query_one("#mon-runs", DataTable).focus()
        await pilot.press("up")
        await pilot.pause(0.3)
        assert m.selected()["id"] != run["id"]
        text = re.sub(r"\x1b\[[0-9;]*m", "", m.query_one(PlotextPlot).plt.build())
        assert "clean" in text  # the clean line is labelled
        axis = text.strip().splitlines()[-1]
        assert "0.01" in axis and "0.05" in axis and "0.020" not in axis  # the ε grid as ticks


async def test_monitor_shows_gpu_telemetry_from_nvml(app_in, monkeypatch: pytest.MonkeyPatch) -> None:
    from rttui.runner import gpus
    from tests.runner.test_gpus import GIB, FakeNVML

    fake = FakeNVML([{"name": "NVIDIA H200", "used": 5 * GIB, "total": 140 * GIB, "util": 42, "procs": []}])
    monkeypatch.setattr(gpus, "load_nvml", lambda: fake)
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
        await wait_for(pilot, lambda: "GPU0" in shown(app, "#mon-gpu"), tries=200)
        text = shown(app, "#mon-gpu")
        assert "GPU0 NVIDIA H200 · busy 42% · memory 5.0/140.0 GiB" in text
        assert "runner: none on this host" in text  # the demo study has no runner


async def test_monitor_shows_source_pretraining_as_rows(app_in, demo_dir: Path, frozen_clock) -> None:
    from textual.widgets import DataTable

    from rttui import api
    from rttui.store import Store

    with Store.open(demo_dir / "demo.db", write=True) as s:
        sid = next(iter(api.make_plan(api.load_study(demo_dir / "studies" / "demo.toml")).sources))
        s.update_unit("source", sid, state="running", started=frozen_clock() - 30)
        s.add_epoch(sid, "source", {"epoch": 1, "loss": 0.7, "train_acc": 0.5, "seconds": 15.0})
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
        st = app.screen.query_one("#mon-sources", DataTable)
        assert st.display and st.row_count == 1  # the sources left: of the demo's three (one per seed), one
        cells = [str(c) for c in st.get_row_at(0)]
        assert any("1/2" in c for c in cells) and any("50%" in c for c in cells)  # epoch 1 of 2


async def test_monitor_streams_each_eps_of_the_running_evaluation_marked_in_progress(
    app_in, demo_dir: Path, frozen_clock
) -> None:
    """A run evaluating PGD, 2 of its 3 eps finished: the Monitor shows those two points marked in progress
    (numbers, chart, title, log), the third as it arrives, and the plain stored line once the evaluation is
    stored."""
    import re

    from textual.widgets import DataTable, RichLog
    from textual_plotext import PlotextPlot

    from rttui.store import Store

    db = demo_dir / "demo.db"
    with Store.open(db, write=True) as s:
        run = next(r for r in s.runs("demo") if r["state"] == "done" and r["strategy"] == "full" and r["seed"] == 1)
        pgd = s.rows("select * from evaluations where run_id = ? and attack = 'pgd'", (run["id"],))[0]
        stored = s.rows("select * from metrics where eval_id = ? order by eps", (pgd["id"],))
        s.conn.execute("delete from metrics where eval_id = ?", (pgd["id"],))
        s.conn.execute("delete from evaluations where id = ?", (pgd["id"],))
        s.conn.commit()
        s.update_unit("run", run["id"], state="trained")  # trained in this job, evaluating now

        def stream(k: int) -> None:
            points = [{"eps": m["eps"], "n_adv_correct": m["n_adv_correct"], "adv_acc": m["adv_acc"]} for m in stored]
            live = {"eval_id": pgd["id"], "attack": "pgd", "label": "pgd", "n": 50, "epsilons": [0.01, 0.03, 0.05]}
            s.set_live(run["id"], {**live, "points": points[:k]})

        stream(2)
        s.acquire_lock("demo")  # a runner works on the study (this live process)
        try:
            app = app_in
            async with app.run_test(size=(120, 36)) as pilot:
                await pilot.press("3")
                m = app.screen
                await wait_for(pilot, lambda: app.current_mode == "monitor" and m.polls, tries=400)
                # the cursor follows the run being evaluated
                await wait_for(pilot, lambda: m.selected() and m.selected()["id"] == run["id"], tries=200)
                nums = m.query_one("#mon-numbers", DataTable)
                # the running evaluation's column says how far it is (2 of its 3 eps), marked in progress
                await wait_for(pilot, lambda: "pgd 2/3…" in [str(c.label) for c in nums.columns.values()], tries=200)
                col = [str(c.label) for c in nums.columns.values()].index("pgd 2/3…")
                got = [str(nums.get_row_at(i)[col]) for i in range(nums.row_count)]
                assert got == [f"{100 * stored[0]['adv_acc']:.1f}", f"{100 * stored[1]['adv_acc']:.1f}", "-"]
                chart = re.sub(r"\x1b\[[0-9;]*m", "", m.query_one(PlotextPlot).plt.build())
                assert "pgd (running)" in chart and "fgsm" in chart
                log = "\n".join(line.text for line in m.query_one("#mon-log", RichLog).lines)
                assert f"pgd eps 0.03: {100 * stored[1]['adv_acc']:.1f}% (in progress)" in log
                # the third eps arrives
                stream(3)
                await pilot.press("f5")
                await wait_for(pilot, lambda: nums.row_count == 3 and str(nums.get_row_at(2)[col]) != "-", tries=400)
                assert str(nums.get_row_at(2)[col]) == f"{100 * stored[2]['adv_acc']:.1f}"
                assert str(list(nums.columns.values())[col].label) == "pgd 3/3…"
                # stored: the plain line, nothing in progress
                s.add_evaluation(
                    {
                        **{k: pgd[k] for k in ("id", "run_id", "attack", "mode", "n", "seconds")},
                        "params": {},
                        "epsilons": [0.01, 0.03, 0.05],
                    },
                    [{k: v for k, v in x.items() if k not in ("eval_id", "run_id")} for x in stored],
                    [],
                    [],
                    [],
                )
                await pilot.press("f5")
                labels = lambda: [str(c.label) for c in nums.columns.values()]  # noqa: E731
                stored_only = lambda: "pgd" in labels() and not any(x.endswith("…") for x in labels())  # noqa: E731
                await wait_for(pilot, stored_only, tries=400)
        finally:
            s.release_lock()


async def test_monitor_shows_the_runs_peak_gpu_memory_from_its_column(app_in, demo_dir: Path) -> None:
    from rttui.store import Store

    with Store.open(demo_dir / "demo.db", write=True) as s:
        first = s.runs("demo")[0]
        s.update_unit("run", first["id"], peak_gpu_mem=3 * 2**30)
        s.merge_info("run", first["id"], {"peak_gpu_mem_mb": 1.0})  # an older runner's second record: never read
    app = app_in
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        m = app.screen
        await wait_for(pilot, lambda: app.current_mode == "monitor" and m.runs, tries=400)
        await wait_for(pilot, lambda: m.selected() and m.selected()["id"] == first["id"], tries=200)
        await wait_for(pilot, lambda: "peak GPU 3.0 GiB" in str(m.query_one("#mon-run-title").render()), tries=200)
        m.query_one("#mon-runs").focus()
        await pilot.press("down")
        await wait_for(pilot, lambda: m.selected()["id"] != first["id"], tries=200)
        assert "peak GPU" not in str(m.query_one("#mon-run-title").render())  # not measured: nothing said


async def test_builder_says_what_it_loads_at_once_and_fills_the_form_when_ready(
    app_in, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 9: the first open of the Builder showed nothing for seconds. Its first frame says what it is doing;
    the form (hundreds of widgets) is built after that frame and then shows the current study."""
    from textual.widgets import Input

    from rttui.tui.screens import builder

    first: dict[str, object] = {}
    real = builder.BuilderScreen._build_form

    async def build(self) -> None:  # what the user sees when the form starts being built
        first["screen"] = self.app.export_screenshot().replace("&#160;", " ")
        first["form"] = bool(self.query("#f-name"))
        await real(self)

    monkeypatch.setattr(builder.BuilderScreen, "_build_form", build)
    app = app_in
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_mode == "builder" and app.screen.checked, tries=400)
        assert "Builder" in first["screen"] and "reading study demo" in first["screen"]
        assert first["form"] is False  # that frame came before the form
        b = app.screen
        assert not b.query_one("#b-loading").display
        assert b.query_one("#f-name", Input).value == "demo"
        assert "runs" in str(b.query_one("#b-size").render())


async def test_monitor_gpu_rows_name_the_run_each_worker_works_on(
    app_in, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on two GPUs (fake NVML): GPU0 lists worker 0's process, GPU1 cannot list processes (its worker
    is placed by its device); each row names its worker's run as the grid names it."""
    import os

    from rttui.runner import gpus
    from rttui.store import Store
    from tests.runner.test_gpus import GIB, FakeNVML

    me = os.getpid()  # the runner (this process) and its worker 0
    fake = FakeNVML(
        [
            {"name": "NVIDIA H200", "used": 9 * GIB, "total": 140 * GIB, "util": 91, "procs": [(me, 8 * GIB)]},
            {"name": "NVIDIA H200", "used": 7 * GIB, "total": 140 * GIB, "util": 77, "procs": None},
        ]
    )
    monkeypatch.setattr(gpus, "load_nvml", lambda: fake)
    with Store.open(demo_dir / "demo.db", write=True) as s:
        runs = s.runs("demo")
        a = next(r for r in runs if r["strategy"] == "full" and r["seed"] == 0)
        b = next(r for r in runs if r["strategy"] == "feature_extraction" and r["seed"] == 1)
        s.acquire_lock("demo")
        s.set_worker(0, me, "cuda:0")
        s.set_worker(1, 999_999, "cuda:1")  # not a process NVML lists: placed by its device
        s.worker_unit(0, "run", a["id"])
        s.worker_unit(1, "run", b["id"])
    try:
        app = app_in
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await wait_for(pilot, lambda: app.current_mode == "monitor" and app.screen.polls, tries=400)
            await wait_for(pilot, lambda: "GPU1" in shown(app, "#mon-gpu"), tries=200)
            gpu0, gpu1 = shown(app, "#mon-gpu").splitlines()[:2]
            assert gpu0.startswith("GPU0 NVIDIA H200 · full/s0 · busy 91%"), gpu0
            assert f"runner 8.0 GiB (process {me})" in gpu0
            assert gpu1.startswith("GPU1 NVIDIA H200 · feature_extraction/s1 · busy 77%"), gpu1
    finally:
        with Store.open(demo_dir / "demo.db", write=True) as s:
            s.release_lock()


async def test_monitor_keeps_following_the_run_being_worked_on_until_the_user_moves(
    app_in, demo_dir: Path, frozen_clock
) -> None:
    """The cursor follows from run to run as the runner moves on (a run evaluating after its training stays
    'trained': its worker says it is worked on), and stays where the user put it once they move."""
    from textual.widgets import DataTable

    from rttui.store import Store

    db = demo_dir / "demo.db"
    with Store.open(db, write=True) as s:
        runs = [r for r in s.runs("demo") if r["state"] == "done"]
        a, b, c = runs[2], runs[5], runs[7]
        s.acquire_lock("demo")
        s.set_worker(0, 1, "cpu")
        s.update_unit("run", a["id"], state="running", started=frozen_clock() - 5)
        s.worker_unit(0, "run", a["id"])
    try:
        app = app_in
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            m = app.screen
            await wait_for(pilot, lambda: app.current_mode == "monitor" and m.polls, tries=400)
            await wait_for(pilot, lambda: m.selected() and m.selected()["id"] == a["id"], tries=200)
            n = m.polls  # a few polls later the screen still follows (its own moves are not the user's)
            await wait_for(pilot, lambda: m.polls > n + 3, tries=400)
            with Store.open(db, write=True) as s:  # the runner moves on to b: trained, evaluating
                s.update_unit("run", a["id"], state="done")
                s.update_unit("run", b["id"], state="trained")
                s.worker_unit(0, "run", b["id"])
            await wait_for(pilot, lambda: m.selected()["id"] == b["id"], tries=400)
            m.query_one("#mon-runs", DataTable).focus()
            await pilot.press("up")
            await wait_for(pilot, lambda: m.selected()["id"] != b["id"], tries=200)
            chosen = m.selected()["id"]
            with Store.open(db, write=True) as s:  # the runner moves on to c; the user's choice stands
                s.update_unit("run", b["id"], state="done")
                s.update_unit("run", c["id"], state="running", started=frozen_clock() - 1)
                s.worker_unit(0, "run", c["id"])
            n = m.polls
            await wait_for(pilot, lambda: m.polls > n + 2, tries=400)
            assert m.selected()["id"] == chosen
    finally:
        with Store.open(db, write=True) as s:
            s.release_lock()
