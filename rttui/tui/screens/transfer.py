"""Transfer: the transferability matrix of a study (surrogate x target adversarial accuracy, mean ± std over
seeds, white-box PGD on the diagonal), opened from Results with `x`. The numbers come from `api.transfer`;
this screen only lays them out. `e` steps through the epsilons, `escape` goes back to Results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Label, Select, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import fill_table
from rttui.tui.screens.analysis import AnalysisScreen, in_app_words


def matrix_view(m: Any) -> dict[str, Any]:
    """A TransferMatrix as plain display data."""
    return {
        "title": m.title,
        "header": m.header(),
        "body": m.body(),
        "caption": m.caption,
        "warnings": list(m.warnings),
        "eps": f"{m.eps:g}",
    }


class MatrixRead(Message):
    def __init__(self, study: str, eps: list[str], view: dict[str, Any] | None, error: str) -> None:
        super().__init__()
        self.study = study
        self.eps = eps
        self.view = view
        self.error = error

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MatrixRead)


class TransferScreen(AnalysisScreen):
    TITLE_TEXT = "Transfer"
    PICKER_PREFIX = "tr"
    NOTE_ID = "tr-note"
    POLL_GROUP = "poll-transfer"
    BINDINGS = [
        Binding("e", "cycle('eps')", "Eps", tooltip="next epsilon"),
        Binding("escape", "back", "Back", tooltip="back to Results"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="pickers"):
            yield Label("eps")
            yield Select([], id="tr-eps", compact=True, allow_blank=True, prompt="-")
        yield Static("", id="tr-note", classes="note")
        with VerticalScroll(id="tr-box"):
            yield Static("", id="tr-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="tr-table")
            yield Static("", id="tr-caption", markup=False)
            yield Static("", id="tr-warnings", markup=False)
        yield Footer()

    def query_now(self) -> dict[str, Any]:
        eps = self.query_one("#tr-eps", Select).value
        return {"eps": float(eps) if isinstance(eps, str) else None}

    def reader(self, name: str, q: dict[str, Any]) -> Callable[[], MatrixRead]:
        db = self.rapp.db

        def read() -> MatrixRead:
            try:
                every = api.transfer(db, name, all_eps=True)
                grid = [f"{m.eps:g}" for m in every]
                shown = api.transfer(db, name, q["eps"])[0]
                return MatrixRead(name, grid, matrix_view(shown), "")
            except RttuiError as exc:
                return MatrixRead(name, [], None, in_app_words(exc))

        return read

    def cycle_values(self, which: str) -> list[str]:
        return self.values.get(which, [])

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_matrix_read(self, msg: MatrixRead) -> None:
        if msg.study != self.study:
            return
        self.loaded += 1
        note = self.query_one("#tr-note", Static)
        if msg.eps and msg.eps != self.values.get("eps"):
            self.values = {"eps": msg.eps}
            self._filling = True
            self.fill_picker("#tr-eps", msg.eps, msg.view["eps"] if msg.view else None)
            self.call_after_refresh(setattr, self, "_filling", False)
        if msg.error or msg.view is None:
            note.update(Content.styled(msg.error, "red"))
            self.view = None
            self.query_one("#tr-table", DataTable).clear(columns=True)
            return
        note.update(Content(f"{self.study} · diagonal (wb): white-box PGD · escape: back to Results"))
        if msg.view == self.view:
            return
        self.view = msg.view
        self.query_one("#tr-title", Static).update(Content.styled(msg.view["title"], "bold"))
        fill_table(self.query_one("#tr-table", DataTable), msg.view["header"], msg.view["body"], markup=False)
        self.query_one("#tr-caption", Static).update(msg.view["caption"])
        self.query_one("#tr-warnings", Static).update("\n".join(f"⚠ {w}" for w in msg.view["warnings"]))


SCREEN = TransferScreen
