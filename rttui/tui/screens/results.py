"""Results: the compare tables of a study (mean ± std over seeds) with pickers for the attack, the epsilon,
the row and column axes and a filter. The numbers come from `api.compare`; this screen only lays them out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Label, Select, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import fill_table
from rttui.tui.screens.analysis import ALL, AnalysisScreen, in_app_words, known_only, picker_values

AXES = ("strategy", "model", "technique", "dataset", "attack", "eps")
NONE = "(none)"


def comparison_view(comp: Any) -> list[dict[str, Any]]:
    """A Comparison as plain display data: title, header, body rows, caption and notes per table."""
    return [
        {
            "title": t.title,
            "header": t.header(),
            "body": t.body(),
            "caption": t.caption,
            "notes": table_notes(t),
            "n_axes": len(t.row_axes),  # the leading label columns, frozen when the table scrolls sideways
        }
        for t in comp.tables
    ]


def table_notes(t: Any, most: int = 5) -> str:
    """The lines under a table: each sanity warning in full, and which runs are missing (the caption only
    counts them; a count alone hid a gradient-masking warning)."""
    lines = [f"⚠ {w}" for w in t.warnings]
    if t.missing:
        more = f" (+{len(t.missing) - most} more)" if len(t.missing) > most else ""
        lines.append(f"missing: {'; '.join(t.missing[:most])}{more}")
    return "\n".join(lines)


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


class ResultsScreen(AnalysisScreen):
    TITLE_TEXT = "Results"
    PICKER_PREFIX = "r"
    NOTE_ID = "r-note"
    POLL_GROUP = "poll-results"
    BINDINGS = [
        Binding("a", "cycle('attack')", "Attack", tooltip="next attack"),
        Binding("e", "cycle('eps')", "Eps", tooltip="next epsilon (or all)"),
        Binding("w", "cycle('rows')", "Rows", tooltip="next row axis"),
        Binding("o", "cycle('cols')", "Cols", tooltip="next column axis"),
        Binding("slash", "filter", "Filter", tooltip="filter: axis=value, comma separated (e.g. strategy=full)"),
        Binding("x", "transfer", "Transfer", tooltip="transfer attacks: surrogate x target matrix"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []

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

    def reader(self, name: str, q: dict[str, Any]) -> Callable[[], Compared]:
        self.rapp.results_query = {"study": name, **q}  # what the Export screen exports as "the table shown"
        db = self.rapp.db

        def read() -> Compared:
            try:
                values = picker_values(api.export_records(db, name))
                known = known_only(q, values)  # pickers left on another study's attack or eps
                attack = known["attack"] or api.default_attack(values["attack"])
                comp = api.compare(db, name, attack, known["eps"], q["rows"], q["cols"], q["where"])
                return Compared(name, {**known, "attack": attack}, values, comparison_view(comp), "")
            except RttuiError as exc:
                return Compared(name, q, {}, [], in_app_words(exc))

        return read

    @on(Input.Submitted)
    def _filter_submitted(self) -> None:
        self._changed()

    def action_filter(self) -> None:
        self.query_one("#r-where", Input).focus()

    def action_transfer(self) -> None:
        from rttui.tui.screens.transfer import TransferScreen

        self.app.push_screen(TransferScreen())

    def cycle_values(self, which: str) -> list[str]:
        if which in ("rows", "cols"):
            return list(AXES) if which == "rows" else [NONE, *AXES]
        if which == "eps":
            return [ALL, *self.values.get("eps", [])]
        return self.values.get(which, [])

    def on_compared(self, msg: Compared) -> None:
        if self.is_stale(msg):
            return
        self.loaded += 1
        note = self.query_one("#r-note", Static)
        if msg.values and msg.values != self.values:
            self.values = msg.values
            self._filling = True
            # The pickers show what was read: an eps or attack this study lacks was dropped by the reader.
            self.asked = {**self.query_now(), "attack": msg.query["attack"], "eps": msg.query["eps"]}
            self.fill_picker("#r-attack", msg.values["attack"], msg.query["attack"])
            eps = f"{msg.query['eps']:g}" if msg.query["eps"] is not None else None
            self.fill_picker("#r-eps", msg.values["eps"], eps, with_all=True)
            self.call_after_refresh(setattr, self, "_filling", False)
        if msg.error:
            note.update(Content.styled(msg.error, "red"))
            self.tables = []
            self.query_one("#r-tables").remove_children()
            return
        note.update(Content(f"{self.study} · {len(msg.tables)} table(s) · * p<0.05, ** p<0.01 vs the baseline (Holm)"))
        if msg.tables == self.tables:
            return
        self.tables = msg.tables
        box = self.query_one("#r-tables", VerticalScroll)
        box.remove_children()
        widgets = []
        tables = []
        for t in msg.tables:
            dt = DataTable(cursor_type="row", zebra_stripes=True, classes="r-table")
            dt.fixed_columns = t["n_axes"]
            dt.styles.height = len(t["body"]) + 2  # header, rows, and a horizontal scrollbar when wide
            tables.append((dt, t))
            widgets += [
                Static(Content.styled(t["title"], "bold"), classes="r-title"),
                dt,
                Static(t["caption"], classes="r-caption", markup=False),
            ]
            if t["notes"]:
                widgets.append(Static(t["notes"], classes="r-notes", markup=False))
        box.mount_all(widgets)
        for dt, t in tables:
            fill_table(dt, t["header"], t["body"], markup=False)


SCREEN = ResultsScreen
