"""Results: the compare tables of a study (mean ± std over seeds) with pickers for the attack, the epsilon,
the row and column axes and a filter. The numbers come from `api.compare`; this screen only lays them out."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import fill_table
from rttui.tui.screens.base import RttuiScreen

AXES = ("strategy", "model", "technique", "dataset", "attack", "eps")
ALL = "all"
NONE = "(none)"


def comparison_view(comp: Any) -> list[dict[str, Any]]:
    """A Comparison as plain display data: title, header, body rows and caption per table."""
    return [{"title": t.title, "header": t.header(), "body": t.body(), "caption": t.caption} for t in comp.tables]


class Compared(Message):
    def __init__(self, study: str, query: dict[str, Any], values: dict[str, list[str]], tables: list, error: str):
        super().__init__()
        self.study = study
        self.query = query
        self.values = values
        self.tables = tables
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Compared)


def picker_values(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The choices each picker offers, from what the study holds."""
    out: dict[str, list[str]] = {}
    for axis in ("attack", "strategy", "model", "technique", "dataset"):
        out[axis] = list(dict.fromkeys(str(r[axis]) for r in records))
    out["eps"] = [f"{e:g}" for e in sorted({float(r["eps"]) for r in records})]
    return out


class ResultsScreen(RttuiScreen):
    TITLE_TEXT = "Results"
    BINDINGS = [
        Binding("a", "cycle('attack')", "Attack", tooltip="next attack"),
        Binding("e", "cycle('eps')", "Eps", tooltip="next epsilon (or all)"),
        Binding("w", "cycle('rows')", "Rows", tooltip="next row axis"),
        Binding("o", "cycle('cols')", "Cols", tooltip="next column axis"),
        Binding("slash", "filter", "Filter", tooltip="filter: axis=value, comma separated (e.g. strategy=full)"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.study = ""
        self.values: dict[str, list[str]] = {}
        self.tables: list[dict[str, Any]] = []
        self.loaded = 0
        self._filling = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="pickers"):
            yield Label("attack")
            yield Select([], id="r-attack", compact=True, allow_blank=True)
            yield Label("eps")
            yield Select([(ALL, ALL)], id="r-eps", compact=True, value=ALL, allow_blank=False)
            yield Label("rows")
            yield Select([(a, a) for a in AXES], id="r-rows", compact=True, value="strategy", allow_blank=False)
            yield Label("cols")
            yield Select([(a, a) for a in (NONE, *AXES)], id="r-cols", compact=True, value="eps", allow_blank=False)
        with Horizontal(classes="pickers"):
            yield Label("filter")
            yield Input(id="r-where", compact=True, placeholder="axis=value, ... (e.g. strategy=full)")
        yield Static("", id="r-note", classes="note")
        yield VerticalScroll(id="r-tables")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        if self.rapp.current.name != self.study or not self.loaded:
            self.study = self.rapp.current.name
            self.values = {}
            self._start()

    def query_now(self) -> dict[str, Any]:
        """The pickers' values as `api.compare` arguments (read on the UI thread)."""
        attack = self.query_one("#r-attack", Select).value
        eps = self.query_one("#r-eps", Select).value
        rows = self.query_one("#r-rows", Select).value
        cols = self.query_one("#r-cols", Select).value
        where = [w.strip() for w in self.query_one("#r-where", Input).value.split(",") if w.strip()]
        return {
            "attack": attack if isinstance(attack, str) else None,
            "eps": float(eps) if isinstance(eps, str) and eps != ALL else None,
            "rows": [rows] if isinstance(rows, str) else None,
            "cols": [cols] if isinstance(cols, str) and cols not in (NONE, rows) else None,
            "where": where or None,
        }

    def _start(self) -> None:
        name = self.study
        if not name:
            self.query_one("#r-note", Static).update("no study chosen: pick one on the Studies screen (1)")
            return
        q = self.query_now()
        self.rapp.results_query = {"study": name, **q}
        db = self.rapp.db

        def read() -> Compared:
            try:
                values = picker_values(api.export_records(db, name))
                attack = q["attack"] or ("pgd" if "pgd" in values["attack"] else next(iter(values["attack"]), None))
                comp = api.compare(db, name, attack, q["eps"], q["rows"], q["cols"], q["where"])
                return Compared(name, {**q, "attack": attack}, values, comparison_view(comp), "")
            except RttuiError as exc:
                return Compared(name, q, {}, [], str(exc).splitlines()[0])

        self.start_polling(read, "poll-results", every=5)

    @on(Select.Changed)
    @on(Input.Submitted)
    def _changed(self) -> None:
        if not self._filling:
            self._start()

    def action_refresh(self) -> None:
        self.poll_now()

    def action_filter(self) -> None:
        self.query_one("#r-where", Input).focus()

    def action_cycle(self, which: str) -> None:
        sel = self.query_one(f"#r-{which}", Select)
        if which in ("rows", "cols"):
            values = list(AXES) if which == "rows" else [NONE, *AXES]
        elif which == "eps":
            values = [ALL, *self.values.get("eps", [])]
        else:
            values = self.values.get(which, [])
        if values:
            i = values.index(sel.value) if sel.value in values else -1
            sel.value = values[(i + 1) % len(values)]

    def on_compared(self, msg: Compared) -> None:
        if msg.study != self.study:
            return
        self.loaded += 1
        note = self.query_one("#r-note", Static)
        if msg.values and msg.values != self.values:
            self.values = msg.values
            self._filling = True
            sel = self.query_one("#r-attack", Select)
            sel.set_options([(a, a) for a in msg.values["attack"]])
            if msg.query["attack"] in msg.values["attack"]:
                sel.value = msg.query["attack"]
            eps = self.query_one("#r-eps", Select)
            old = eps.value
            eps.set_options([(ALL, ALL), *[(e, e) for e in msg.values["eps"]]])
            eps.value = old if old in msg.values["eps"] else ALL
            self.call_after_refresh(setattr, self, "_filling", False)
        if msg.error:
            note.update(f"[red]{escape(msg.error)}[/red]")
            self.tables = []
            self.query_one("#r-tables").remove_children()
            return
        note.update(f"{self.study} · {len(msg.tables)} table(s) · * p<0.05, ** p<0.01 vs the baseline (Holm)")
        if msg.tables == self.tables:
            return
        self.tables = msg.tables
        box = self.query_one("#r-tables", VerticalScroll)
        box.remove_children()
        widgets = []
        tables = []
        for t in msg.tables:
            dt = DataTable(cursor_type="row", zebra_stripes=True, classes="r-table")
            dt.styles.height = len(t["body"]) + 2  # header, rows, and a horizontal scrollbar when wide
            tables.append((dt, t))
            widgets += [
                Static(f"[b]{escape(t['title'])}[/b]", classes="r-title"),
                dt,
                Static(t["caption"], classes="r-caption", markup=False),
            ]
        box.mount_all(widgets)
        for dt, t in tables:
            fill_table(dt, t["header"], t["body"])


SCREEN = ResultsScreen
