"""Monitor: a study's runs, live from the database (whoever runs it: this app, another shell, another SSH
session). The grid shows state, epoch, loss, progress and time; the selected run's per-epsilon accuracy is
drawn as it is measured: stored evaluations, and the one running now epsilon by epsilon as each finishes (marked
in progress: `pgd 2/5…` in the numbers, `pgd (running)` in the chart); a log pane tells what changed. The app never
owns the run: cancel interrupts the runner through a request in the database, retry asks the runner to redo a
failed run (or, with no runner, launches `rttui run` again, which redoes failed and unfinished runs only).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Header, RichLog, Static
from textual_plotext import PlotextPlot

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import bar, duration, fill_table, gib, gpu_lines, pct
from rttui.tui.eta import EtaModel
from rttui.tui.messages import ProgressPolled
from rttui.tui.screens.base import NO_STUDY, RttuiScreen
from rttui.tui.screens.confirm import Confirm

AXES = api.CONFIG_AXES
# The widest a cell updated in place gets ("running", "12/12", "1h02m"): columns are sized when a table is filled,
# and no wider, so that 80 columns hold the grid without a scrollbar that would cost a row.
CELL_WIDTHS = {"state": 7}
GRID_REST = 53  # the grid's other columns (38 cells), their padding (2 each) and a scrollbar


def fit_label(label: str, width: int) -> str:
    """A run's label cut in its middle to `width` (its seed kept: `test_resnet/feature_ext…/s0`), so the grid's
    last columns (time, ETA) stay on an 80-column screen; the detail pane's title names the run in full."""
    if len(label) <= width:
        return label
    head, _, seed = label.rpartition("/")
    keep = width - len(seed) - 2
    return f"{head[:keep]}…/{seed}" if head and keep > 0 else label[: width - 1] + "…"


def run_label(r: dict[str, Any], vary: tuple[str, ...] = AXES[1:]) -> str:
    """A run by the axes that tell it apart in its study, then its seed: `full/s0`, `resnet50/adapter/s2`."""
    return "/".join([*(str(r[a]) for a in vary), f"s{r['seed']}"])


class MonitorScreen(RttuiScreen):
    TITLE_TEXT = "Monitor"
    BINDINGS = [
        Binding("l", "launch", "Launch", tooltip="start (or resume) the study as a detached `rttui run` process"),
        Binding("r", "retry", "Retry", tooltip="run the study again: failed and unfinished runs only"),
        Binding("c", "cancel", "Cancel", tooltip="interrupt the runner (finished work stays; asks first)"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.study = ""
        self.data: dict[str, Any] = {}
        self.runs: list[dict[str, Any]] = []
        self.polls = 0
        self.vary: tuple[str, ...] = AXES[1:]
        self._prev: dict[str, dict[str, Any]] | None = None
        self._prev_runner: Any = None
        self.follow = True
        self._auto_row = -1  # the row this screen last moved the cursor to (not the user)
        self.eta = EtaModel()
        self._live_logged: dict[str, tuple[str, int]] = {}  # run -> (evaluation, eps already logged)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="mon-body"):
            yield Static("", id="mon-head", classes="note")
            yield Static("", id="mon-gpu", classes="gpu", markup=False)
            yield DataTable(id="mon-sources", cursor_type="none", show_cursor=False)
            yield DataTable(id="mon-runs", cursor_type="row", zebra_stripes=True)
            with Horizontal(id="mon-detail"):
                yield PlotextPlot(id="mon-plot")
                with Vertical(id="mon-side"):
                    yield Static("", id="mon-run-title")
                    yield DataTable(id="mon-numbers", cursor_type="none", show_cursor=False)
                    # below the numbers: on a small terminal the provenance line is what is cut, not the numbers
                    yield Static("", id="mon-env")
            yield RichLog(id="mon-log", max_lines=500, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        name = self.rapp.current.name
        if name and name == self.study:
            self.poll_now()
            return
        self.study = name
        self.eta = EtaModel()
        self._prev = None
        self._live_logged = {}
        self.runs = []
        self.follow = True
        self.query_one("#mon-runs", DataTable).clear()
        if name:  # at once, not the previous study's head until the first poll lands
            self.query_one("#mon-head", Static).update(Content.assemble((name, "bold"), " · reading…"))
        if not name:
            self.query_one("#mon-head", Static).update(NO_STUDY)
            return
        self.query_one("#mon-log", RichLog).clear()
        db = self.rapp.db

        def read() -> ProgressPolled:
            try:
                data = api.study_progress(db, name)
                data["gpus"] = api.gpu_telemetry(data["runner"], data["workers"])  # refreshed with the rest
                return ProgressPolled(name, data)
            except RttuiError as exc:
                return ProgressPolled(name, {}, str(exc).splitlines()[0])

        self.start_polling(read, "poll-monitor")

    # ---- applying a poll ---------------------------------------------------------------------------
    def on_progress_polled(self, msg: ProgressPolled) -> None:
        if msg.study != self.study:
            return
        self.polls += 1
        if msg.error:
            self.query_one("#mon-head", Static).update(Content.styled(msg.error, "red"))
            return
        self.data = msg.data
        runs = msg.data["runs"]
        sources = msg.data.get("sources", [])
        self.eta.update([*sources, *runs], self.rapp.clock())  # source pretraining has an ETA too
        self.vary = tuple(a for a in AXES if len({r[a] for r in runs}) > 1) or ("model",)
        self._log_changes(runs, msg.data["runner"])
        self._head(runs, msg.data["runner"], sources)
        if "gpus" in msg.data:  # each device names the run its worker works on
            names = {r["id"]: run_label(r, self.vary) for r in runs}
            names.update({u["id"]: f"source {u['model']}/s{u['seed']}" for u in sources})
            self.query_one("#mon-gpu", Static).update("\n".join(gpu_lines(msg.data["gpus"], names)))
        t = self.query_one("#mon-runs", DataTable)
        now = self.rapp.clock()
        if [r["id"] for r in runs] != [r["id"] for r in self.runs]:
            keep = t.cursor_row
            header = ["run", "state", "epoch", "loss", "progress", "time", "ETA"]
            rows = [self._cells(r, now) for r in runs]
            fill_table(t, header, rows, [r["id"] for r in runs], min_width=5, min_widths=CELL_WIDTHS)
            if runs:
                self._auto_row = max(0, min(keep, len(runs) - 1))
                t.move_cursor(row=self._auto_row)
        else:
            for r, old in zip(runs, self.runs, strict=True):
                if r != old or r["state"] == "running":
                    for col, value in zip(t.columns, self._cells(r, now), strict=True):
                        t.update_cell(r["id"], col, value)
        self.runs = runs
        self._sources(sources, now)
        self._follow_running(t)
        self._detail()

    def _follow_running(self, t: DataTable) -> None:
        """Keep the cursor (and so the chart) on the run being worked on, until the user moves it. Worked on:
        running, or a worker's unit (a run evaluating after its training in the same job stays 'trained')."""
        busy = {w["unit_id"] for w in self.data.get("workers") or [] if w.get("unit_id")}
        running = [i for i, r in enumerate(self.runs) if r["state"] == "running" or r["id"] in busy or self._live(r)]
        if self.follow and running and t.cursor_row not in running:
            self._auto_row = running[0]
            t.move_cursor(row=running[0])

    def _sources(self, sources: list[dict[str, Any]], now: float) -> None:
        """Source pretraining as rows of their own, shown while a source is not done (runs wait on them): the
        sources left, the ones training first, so that on a small terminal (two rows at 24 lines, beside the
        runs and a detail pane that holds five eps) what works now is what shows; the rest scroll."""
        st = self.query_one("#mon-sources", DataTable)
        order = {"running": 0, "failed": 1}
        left = sorted((s for s in sources if s["state"] != "done"), key=lambda s: order.get(s["state"], 2))
        st.display = bool(left)
        if not st.display:
            return
        header = ["source", "state", "epoch", "loss", "progress", "time", "ETA"]
        rows = []
        for s in left:
            cells = self._cells(s, now)
            cells[0] = f"{s['model']}/s{s['seed']}"  # the column says "source"; a narrow table needs no scrollbar
            rows.append(cells)
        fill_table(st, header, rows, min_width=5, min_widths=CELL_WIDTHS)
        st.styles.height = min(len(rows), 2 if self.size.height < 30 else 4) + 1

    def _cells(self, r: dict[str, Any], now: float) -> list[str]:
        ep = f"{r['epoch'] or 0}/{r['epochs_total']}" if r["epochs_total"] else str(r["epoch"] or "-")
        loss = f"{r['loss']:.3f}" if r["loss"] is not None else "-"
        state = r["state"]
        if state == "running" and not self.data.get("runner"):
            # Nothing runs it (its runner was killed before it could say so): no ticking clock; `rttui run` resumes.
            state = "stopped"
        if state == "running":
            elapsed = now - r["started"] if r["started"] else None
            tm, eta_s = duration(elapsed), duration(self.eta.run_eta(r["id"], now))
        else:
            tm, eta_s = duration(r["seconds"]), "-"
        styled = {
            "failed": "[red]failed[/red]",
            "done": "[green]done[/green]",
            "running": "[b]running[/b]",
            "stopped": "[yellow]stopped[/yellow]",
        }
        return [
            fit_label(run_label(r, self.vary), max(16, self.size.width - GRID_REST)),
            styled.get(state, state),
            ep,
            loss,
            f"{bar(r['progress'], 6)} {round(100 * r['progress']):3d}%",
            tm,
            eta_s,
        ]

    def _head(self, runs: list[dict[str, Any]], runner: dict[str, Any] | None, sources: list[dict[str, Any]]) -> None:
        n = len(runs)
        done = sum(r["state"] == "done" for r in runs)
        failed = sum(r["state"] == "failed" for r in runs)
        who = Content.assemble(("running", "bold"), f" in process {runner['pid']}") if runner else Content("no runner")
        starting = self.rapp.launching if self.rapp.launching and self.rapp.launching["study"] == self.study else None
        if starting and runner:
            self.rapp.launching = None  # it holds the database now
        elif starting and self.rapp.clock() - starting["at"] < 120:  # launched here, not holding the database yet
            who = Content.assemble(("starting", "bold"), f" (process {starting['pid']})…")
        parts = [Content.styled(self.study, "bold"), who, Content(f"{done}/{n} done")]
        if not n and not runner and not starting:  # a study file never run here: not an empty "0/0 done"
            parts[2] = Content("not run on this database yet: l launches it")
        if failed:
            parts.append(Content.assemble((f"{failed} failed", "red"), " (r: retry)"))
        left = [u for u in [*sources, *runs] if u["state"] not in ("done", "failed")]
        now = self.rapp.clock()
        eta = self.eta.study_eta(runs, now, sources) if runner and left else None
        if eta is not None:  # the same model as the ETA columns, so they agree; it counts the sources left too
            parts.append(Content(f"ETA ≈ {duration(eta)}"))
        elif runner and any(s["state"] not in ("done", "failed") for s in sources):
            # Pretraining: the runs are not timed until one has run, but when the sources are done is known.
            pre = self.eta.sources_eta(sources, now)
            if pre is not None:
                parts.append(Content(f"sources ETA ≈ {duration(pre)}"))
        self.query_one("#mon-head", Static).update(Content(" · ").join(parts))

    def _log_changes(self, runs: list[dict[str, Any]], runner: dict[str, Any] | None) -> None:
        log = self.query_one("#mon-log", RichLog)
        if self._prev is None:
            done = sum(r["state"] == "done" for r in runs)
            log.write(f"watching study {self.study}: {len(runs)} runs, {done} done")
            for r in runs:
                if r["state"] == "failed":
                    log.write(Text.assemble((f"✗ {run_label(r, self.vary)} failed:", "red"), f" {r['error'] or ''}"))
        else:
            if runner and not self._prev_runner:
                log.write(f"runner started (process {runner['pid']})")
            if self._prev_runner and not runner:
                log.write("runner finished")
            for r in runs:
                old = self._prev.get(r["id"])
                if old is None:
                    log.write(f"+ {run_label(r, self.vary)}")
                    continue
                name = run_label(r, self.vary)
                if r["epoch"] and r["epoch"] != old["epoch"]:
                    loss = f"{r['loss']:.3f}" if r["loss"] is not None else "-"
                    log.write(f"{name}: epoch {r['epoch']}/{r['epochs_total']} loss {loss}")
                if r["evals_done"] > old["evals_done"]:
                    log.write(f"{name}: evaluation {r['evals_done']}/{r['evals_total']} stored")
                if r["state"] != old["state"]:
                    if r["state"] == "failed":
                        log.write(Text.assemble((f"✗ {name} failed:", "red"), f" {r['error'] or ''}"))
                    else:
                        log.write(f"{name}: {old['state']} → {r['state']}")
        self._log_live(runs)
        self._prev = {r["id"]: r for r in runs}
        self._prev_runner = runner

    def _log_live(self, runs: list[dict[str, Any]]) -> None:
        """One line per epsilon streamed since the last poll (an evaluation still running)."""
        log = self.query_one("#mon-log", RichLog)
        seen = self._live_logged
        now: dict[str, tuple[str, int]] = {}
        names = {r["id"]: run_label(r, self.vary) for r in runs}
        for rid, live in (self.data.get("live") or {}).items():
            points = live.get("points") or []
            eid = str(live.get("eval_id"))
            old_eid, old_n = seen.get(rid, ("", 0))
            start = old_n if old_eid == eid else 0
            for p in points[start:]:
                log.write(
                    f"{names.get(rid, rid)}: {live.get('label')} eps {p['eps']:g}: {pct(p['adv_acc'])}% (in progress)"
                )
            now[rid] = (eid, len(points))
        self._live_logged = now

    # ---- the selected run ----------------------------------------------------------------------------
    def selected(self) -> dict[str, Any] | None:
        t = self.query_one("#mon-runs", DataTable)
        if not self.runs or not 0 <= t.cursor_row < len(self.runs):
            return None
        return self.runs[t.cursor_row]

    @on(DataTable.RowHighlighted, "#mon-runs")
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        # The user chose a run when the cursor lands where this screen did not put it; the highlight messages
        # of the screen's own moves (refilling the table, following) arrive later and say the row it chose, or
        # an older row that is no longer the cursor's.
        user = event.cursor_row == event.data_table.cursor_row and event.cursor_row != self._auto_row
        if user and self.runs:
            self.follow = False  # the cursor stays where they put it
        self._detail()

    def _live(self, r: dict[str, Any] | None) -> dict[str, Any] | None:
        """The evaluation the run is working through (eps finished so far), while a runner works on the study
        (what a killed runner left behind is not in progress)."""
        if r is None or not self.data.get("runner"):
            return None
        live = (self.data.get("live") or {}).get(r["id"])
        return live if live and live.get("points") else None

    def _detail(self) -> None:
        r = self.selected()
        live = self._live(r)
        val = (self.data.get("validation") or {}).get(r["id"]) if r else None
        sig = (r, self.data.get("metrics", {}).get(r["id"]) if r else None, live, val)
        if sig == getattr(self, "_shown_detail", None):
            return  # nothing new for this run: keep the chart as drawn
        self._shown_detail = sig
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        nums = self.query_one("#mon-numbers", DataTable)
        nums.clear(columns=True)
        title = self.query_one("#mon-run-title", Static)
        env = self.query_one("#mon-env", Static)  # the environment it trained in (rttui.runner.provenance)
        env.update(Content.styled(r["env_line"], "dim") if r and r.get("env_line") else "")
        if r is None:
            title.update("")
            plot.refresh()
            return
        metrics = self.data.get("metrics", {}).get(r["id"], [])
        by_attack: dict[str, dict[float, float]] = {}
        for m in metrics:
            by_attack.setdefault(m["attack"], {})[m["eps"]] = m["adv_acc"]
        running = ""  # the series of the evaluation still running, marked in progress
        grid: list[float] = []
        if live is not None:
            grid = [float(e) for e in live.get("epsilons") or []]
            # Its progress rides in the column's label ("pgd 2/5…"), not a line of its own: at 80x24 the side
            # panel holds the title, the header and five eps rows, the paper's grid, and nothing more.
            running = f"{live['label']} {len(live['points'])}/{len(grid) or len(live['points'])}…"
            by_attack[running] = {float(p["eps"]): float(p["adv_acc"]) for p in live["points"]}
        clean = r["clean_acc"]
        head = Content.assemble((run_label(r, self.vary), "bold"), f"  clean {pct(clean)}%")
        if r.get("peak_gpu_mem") is not None:  # measured on a GPU (the unit's peak, training and evaluation)
            head += Content(f"  peak GPU {gib(r['peak_gpu_mem'])}")
        if val:  # the last epoch's validation (runs with a validation split)
            v = val[-1]
            head += Content(f"  val {pct(v['val_clean_acc'])}/{pct(v['val_adv_acc'])}% (epoch {v['epoch']})")
        if r["state"] == "failed":
            head += Content.styled(f"\nfailed: {r['error'] or ''}", "red")
        title.update(head)
        if not by_attack and val:  # training: its validation curves, growing as each epoch ends
            self._validation_curves(plt, nums, val)
            plot.refresh()
            return
        eps = sorted({e for v in by_attack.values() for e in v} | set(grid))
        rows = [[f"{e:g}", *[pct(by_attack[a].get(e)) for a in by_attack]] for e in eps]
        fill_table(nums, ["eps", *by_attack], rows)
        plt.title("adversarial accuracy (%) vs eps")
        plt.ylim(0, 100)
        plt.yticks([0, 50, 100])  # plotext's own ticks label a short chart's rows 16.7/66.7/100.0
        if eps:
            plt.xticks(eps, [f"{e:g}" for e in eps])  # the ε grid itself, not evenly spaced ticks
        for a, pts in by_attack.items():
            xs = sorted(pts)
            name = f"{live['label']} (running)" if live is not None and a == running else a
            plt.plot(xs, [100 * pts[x] for x in xs], label=name, marker="braille")
        if clean is not None and eps:  # a labelled series, not an unlabelled rule
            plt.plot([eps[0], eps[-1]], [100 * clean] * 2, label="clean", marker="braille")
        if not by_attack:
            plt.title("no evaluation stored yet for this run")
        plot.refresh()

    def _validation_curves(self, plt: Any, nums: DataTable, val: list[dict[str, Any]]) -> None:
        """Clean and probe-robust validation accuracy per epoch (rttui.engine.validation), chart and numbers."""
        xs = [int(v["epoch"]) for v in val]
        fill_table(
            nums,
            ["epoch", "val clean", "val robust"],
            [[str(x), pct(v["val_clean_acc"]), pct(v["val_adv_acc"])] for x, v in zip(xs, val, strict=True)],
        )
        plt.title("validation accuracy (%) vs epoch")
        plt.ylim(0, 100)
        plt.yticks([0, 50, 100])  # plotext's own ticks label a short chart's rows 16.7/66.7/100.0
        plt.xticks(xs, [str(x) for x in xs])
        plt.plot(xs, [100 * float(v["val_clean_acc"]) for v in val], label="val clean", marker="braille")
        adv = [(x, v["val_adv_acc"]) for x, v in zip(xs, val, strict=True) if v["val_adv_acc"] is not None]
        if adv:
            plt.plot([a[0] for a in adv], [100 * float(a[1]) for a in adv], label="val robust", marker="braille")

    # ---- actions ---------------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.poll_now()

    def action_launch(self) -> None:
        path = self.rapp.current.path
        if not path:
            self.tell(
                f"study {self.study or '?'} has no file here; open it on the Studies screen or save it in the Builder",
                severity="error",
            )
            return
        self.launch_after_asking(path, lambda: self._launch(path))

    def _launch(self, path: str) -> None:
        try:
            info = api.launch_study(path, self.rapp.db)
        except RttuiError as exc:
            self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
            return
        self.query_one("#mon-log", RichLog).write(f"launched process {info['pid']} (log: {info['log']})")
        self.launched(info)
        self.poll_now()

    def action_retry(self) -> None:
        """A live runner is asked to retry the selected failed run; with none, `rttui run` is started again."""
        r = self.selected()
        if self.data.get("runner") and r is not None and r["state"] == "failed":
            try:
                api.retry(self.rapp.db, r["id"])
            except RttuiError as exc:
                self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
                return
            self.query_one("#mon-log", RichLog).write(f"asked the runner to retry {run_label(r, self.vary)}")
            return
        self.action_launch()

    def action_cancel(self) -> None:
        if not self.data.get("runner"):
            self.tell("no runner is working on this study", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                lock = api.cancel(self.rapp.db)  # a request in the database that the runner applies
            except RttuiError as exc:
                self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
                return
            if lock:
                self.query_one("#mon-log", RichLog).write(f"asked process {lock['pid']} to stop")
            self.poll_now()

        self.app.push_screen(Confirm(f"Cancel the run of {self.study!r}? Finished runs stay stored."), done)


SCREEN = MonitorScreen
