"""T-test: pick an axis and two of its values (say strategy full vs layer_freezing) and see the paired tests
over seeds, one per combination of the other axes, Holm-corrected. The statistics come from `api.ttest`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Label, Select, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import fill_table
from rttui.tui.screens.analysis import ALL, AnalysisScreen, in_app_words, known_only, picker_values

AXES = ("strategy", "technique", "model", "dataset")
METRICS = (("adversarial accuracy", "adv_acc"), ("clean accuracy", "clean_acc"), ("drop", "drop"))


def pick_pair(choices: list[str], a: str | None, b: str | None) -> tuple[str | None, str | None]:
    """The two values to compare: the pickers' where the study has them, else B = the first value (e.g. full,
    the reference) and A = the first other one. Never a value against itself: after a study switch the
    pickers may hold one value on both sides, or one the new study lacks."""
    b = b if b in choices else (choices[0] if choices else None)
    a = a if a in choices and a != b else next((c for c in choices if c != b), None)
    return a, b


class Tested(Message):
    def __init__(self, study: str, query: dict[str, Any], values: dict, grid: dict | None, error: str) -> None:
        super().__init__()
        self.study = study
        self.query = query
        self.values = values
        self.grid = grid
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Tested)


class TTestScreen(AnalysisScreen):
    TITLE_TEXT = "T-test"
    PICKER_PREFIX = "t"
    NOTE_ID = "t-title"
    POLL_GROUP = "poll-ttest"
    BINDINGS = [
        Binding("x", "cycle('axis')", "Axis", tooltip="next axis to compare along"),
        Binding("a", "cycle('a')", "A", tooltip="next value for side A"),
        Binding("b", "cycle('b')", "B", tooltip="next value for side B"),
        Binding("s", "swap", "Swap", tooltip="swap A and B"),
        Binding("m", "cycle('metric')", "Metric", tooltip="next metric"),
        Binding("e", "cycle('eps')", "Eps", tooltip="next epsilon (or all)"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.grid: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="pickers"):
            yield Label("axis")
            yield Select([(a, a) for a in AXES], id="t-axis", value="strategy", compact=True, allow_blank=False)
            yield Label("A")
            yield Select([], id="t-a", compact=True, prompt="-")
            yield Label("vs B")
            yield Select([], id="t-b", compact=True, prompt="-")
        with Horizontal(classes="pickers"):
            yield Label("metric")
            yield Select(METRICS, id="t-metric", value="adv_acc", compact=True, allow_blank=False)
            yield Label("attack")
            yield Select([(ALL, ALL)], id="t-attack", value=ALL, compact=True, allow_blank=False)
            yield Label("eps")
            yield Select([(ALL, ALL)], id="t-eps", value=ALL, compact=True, allow_blank=False)
        yield Static("", id="t-title", classes="note")
        yield DataTable(id="t-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="t-caption", classes="t-caption", markup=False)
        yield Footer()

    def query_now(self) -> dict[str, Any]:
        def val(wid: str) -> str | None:
            v = self.query_one(wid, Select).value
            return v if isinstance(v, str) and v != ALL else None

        eps = val("#t-eps")
        return {
            "axis": val("#t-axis") or "strategy",
            "a": val("#t-a"),
            "b": val("#t-b"),
            "metric": val("#t-metric") or "adv_acc",
            "attack": val("#t-attack"),
            "eps": float(eps) if eps else None,
        }

    def reader(self, name: str, q: dict[str, Any]) -> Callable[[], Tested]:
        db = self.rapp.db

        def read() -> Tested:
            try:
                values = picker_values(api.export_records(db, name))
                a, b = pick_pair(values.get(q["axis"], []), q["a"], q["b"])
                query = {**known_only(q, values), "a": a, "b": b}  # no attack or eps of another study
                if a is None or b is None:
                    return Tested(name, query, values, None, f"{q['axis']} has fewer than two values to compare")
                rows = api.ttest(db, q["axis"], a, b, q["metric"], query["attack"], query["eps"], name)
                grid = api.tests_grid(rows)
                label = api.incomplete(db, name)
                if label:  # the tests use the runs stored so far
                    grid["title"] += f" [{label}]"
                return Tested(name, query, values, grid, "")
            except RttuiError as exc:
                return Tested(name, q, {}, None, in_app_words(exc))

        return read

    def cycle_values(self, which: str) -> list[str]:
        axis = self.query_now()["axis"]
        return {
            "axis": list(AXES),
            "metric": [m for _, m in METRICS],
            "a": self.values.get(axis, []),
            "b": self.values.get(axis, []),
            "eps": [ALL, *self.values.get("eps", [])],
            "attack": [ALL, *self.values.get("attack", [])],
        }[which]

    def action_swap(self) -> None:
        a, b = self.query_one("#t-a", Select), self.query_one("#t-b", Select)
        va, vb = a.value, b.value
        self._filling = True
        a.value, b.value = vb, va
        self._filling = False
        self._start()

    def show_loading(self) -> None:
        """New pickers: the old table no longer matches them, so it goes until the new one is read."""
        super().show_loading()
        self.grid = None
        self.query_one("#t-table", DataTable).clear(columns=True)
        self.query_one("#t-caption", Static).update("")

    def on_tested(self, msg: Tested) -> None:
        if self.is_stale(msg):
            return
        self.loaded += 1
        q = msg.query
        self.asked = dict(q)  # the pickers are set to what was read (a and b as resolved): not a user's change
        self.rapp.ttest_query = {"study": msg.study, **q}
        if msg.values:
            self._filling = True
            self.values = msg.values
            choices = msg.values.get(q["axis"], [])
            self.fill_picker("#t-a", choices, q["a"])
            self.fill_picker("#t-b", choices, q["b"])
            self.fill_picker("#t-attack", msg.values["attack"], q["attack"], with_all=True)
            eps = f"{q['eps']:g}" if q["eps"] is not None else None
            self.fill_picker("#t-eps", msg.values["eps"], eps, with_all=True)
            self.call_after_refresh(setattr, self, "_filling", False)
        title = self.query_one("#t-title", Static)
        table = self.query_one("#t-table", DataTable)
        if msg.grid == self.grid and not msg.error:
            return
        self.grid = msg.grid
        table.clear(columns=True)
        if msg.error or msg.grid is None:
            title.update(Content.styled(msg.error, "red"))
            self.query_one("#t-caption", Static).update("")
            return
        title.update(Content.styled(msg.grid["title"], "bold"))
        self._fill()

    def _fill(self) -> None:
        """The table and its caption at this screen's width (again on a resize)."""
        if self.grid is None:
            return
        g = self.grid
        # On a narrow terminal (80 columns over SSH) the table keeps what a reader decides by, and says what it left.
        fit = api.fit_tests_grid(g, self.size.width - 2)  # less the vertical scrollbar
        fill_table(self.query_one("#t-table", DataTable), fit["header"], fit["rows"], markup=False)
        self.query_one("#t-caption", Static).update(g["caption"] + (f" ({fit['note']})" if fit["note"] else ""))

    def on_resize(self) -> None:
        self._fill()


SCREEN = TTestScreen
