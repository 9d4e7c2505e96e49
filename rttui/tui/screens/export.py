"""Export: write what the other screens show to a file: the compare table (as set up on Results), the paired
tests (as set up on T-test), the flat records, or a figure, as CSV, Markdown, LaTeX, JSON (figures: PNG/SVG)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Footer, Header, Input, Label, Select, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.screens.analysis import in_app_words
from rttui.tui.screens.base import NO_STUDY, RttuiScreen

WHAT = (
    ("compare table (Results)", "table"),
    ("paired tests (T-test)", "ttest"),
    ("records (one per run, attack, eps)", "records"),
    ("figure", "figure"),
)
FORMATS = {
    "table": ("md", "latex", "csv", "json"),
    "ttest": ("md", "latex", "csv", "json"),
    "records": ("csv", "json"),
    "figure": ("svg", "png"),
}
EXT = {"md": "md", "latex": "tex", "csv": "csv", "json": "json", "svg": "svg", "png": "png"}


class Exported(Message):
    def __init__(self, preview: str, written: list[str], error: str = "", key: tuple = ()) -> None:
        super().__init__()
        self.preview = preview
        self.written = written
        self.error = error
        self.key = key  # the selection it was made for: one made for an older selection is dropped


class ExportScreen(RttuiScreen):
    TITLE_TEXT = "Export"
    BINDINGS = [
        Binding("ctrl+s", "write", "Write", tooltip="write the file named in `to`"),
        Binding("ctrl+e", "cycle('what')", "What", show=False, tooltip="next thing to export"),
        Binding("ctrl+f", "cycle('fmt')", "Format", tooltip="next format"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.study = ""
        self.preview = ""
        self.written: list[str] = []
        self.figure_kinds: list[str] = []
        self._job_n = 0
        self._job_key: tuple = ()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="pickers"):
            yield Label("export")
            yield Select(WHAT, id="x-what", value="table", compact=True, allow_blank=False)
            yield Label("as")
            yield Select([(f, f) for f in FORMATS["table"]], id="x-fmt", value="md", compact=True, allow_blank=False)
            yield Label("figure")
            yield Select([], id="x-kind", compact=True, prompt="-")
        with Horizontal(classes="pickers"):
            yield Label("to")
            yield Input(id="x-path", compact=True)
        yield Static("", id="x-note", classes="note")
        yield Static("", id="x-preview", classes="preview", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        try:
            self.figure_kinds = list(api.figure_kinds())
        except RttuiError:
            self.figure_kinds = []
        kind = self.query_one("#x-kind", Select)
        kind.set_options([(k, k) for k in self.figure_kinds])
        if self.figure_kinds:
            kind.value = self.figure_kinds[0]
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        self.study = self.rapp.current.name
        self._suggest_path()
        self._preview()

    def _what(self) -> tuple[str, str]:
        what = self.query_one("#x-what", Select).value
        fmt = self.query_one("#x-fmt", Select).value
        return str(what), str(fmt)

    def _suggest_path(self) -> None:
        what, fmt = self._what()
        stem = f"{self.study or 'study'}-{what}"
        if what == "figure":
            stem += f"-{self.query_one('#x-kind', Select).value}"
        self.query_one("#x-path", Input).value = str(Path("exports") / f"{stem}.{EXT.get(fmt, fmt)}")

    @on(Select.Changed, "#x-what")
    def _what_changed(self) -> None:
        what = self._what()[0]
        sel = self.query_one("#x-fmt", Select)
        with sel.prevent(Select.Changed):
            sel.set_options([(f, f) for f in FORMATS[what]])
            sel.value = FORMATS[what][0]
        self._suggest_path()
        self._preview()

    @on(Select.Changed, "#x-fmt")
    @on(Select.Changed, "#x-kind")
    def _fmt_changed(self) -> None:
        self._suggest_path()
        self._preview()

    def action_cycle(self, which: str) -> None:
        sel = self.query_one(f"#x-{which}", Select)
        values = [v for _, v in WHAT] if which == "what" else list(FORMATS[self._what()[0]])
        i = values.index(sel.value) if sel.value in values else -1
        sel.value = values[(i + 1) % len(values)]

    def _job(self, write_to: Path | None) -> None:
        """Render (and, with a path, write) in a worker: analysis and figures may take a moment."""
        if not self.study:
            self.query_one("#x-note", Static).update(NO_STUDY)
            return
        what, fmt = self._what()
        db, study = self.rapp.db, self.study
        rq = dict(getattr(self.rapp, "results_query", {}) or {})
        tq = dict(getattr(self.rapp, "ttest_query", {}) or {})
        kind = self.query_one("#x-kind", Select).value
        self._job_n += 1
        key = self._job_key = (self._job_n, study, what, fmt, kind)
        # The pane never shows a preview of another selection: it says "computing" until this one is read.
        self.query_one("#x-note", Static).update(Content(f"{study}: computing {what} ({fmt})…"))
        if write_to is None:
            self.preview = ""
            self.query_one("#x-preview", Static).update("")

        def post(msg: Exported) -> None:
            msg.key = key
            self.post_message(msg)

        def run() -> None:
            try:
                if what == "figure":
                    if write_to is None:
                        post(Exported(f"a {kind} figure of {study} ({fmt}); ctrl+s writes it", []))
                        return
                    files = api.plot(db, str(kind), write_to, study, formats=(fmt,))
                    post(Exported("", [str(f) for f in files]))
                    return
                if what == "records":
                    text = api.records_text(api.export_records(db, study), fmt)  # what `rttui export` writes
                elif what == "table":
                    q = rq if rq.get("study") == study else {}
                    comp = api.compare(
                        db, study, q.get("attack", "pgd"), q.get("eps"), q.get("rows"), q.get("cols"), q.get("where")
                    )
                    text = api.export_table(comp, fmt)
                else:
                    q = tq if tq.get("study") == study else {}
                    if not q.get("a") or not q.get("b"):
                        raise RttuiError("no paired test set up yet; choose two values on the T-test screen (5)")
                    rows = api.ttest(db, q["axis"], q["a"], q["b"], q["metric"], q["attack"], q["eps"], study)
                    text = api.export_table(rows, fmt)
                written = []
                if write_to is not None:
                    write_to.parent.mkdir(parents=True, exist_ok=True)
                    write_to.write_text(text, encoding="utf-8")
                    written = [str(write_to)]
                post(Exported(text, written))
            except (RttuiError, OSError) as exc:
                post(Exported("", [], in_app_words(exc)))

        self.run_in_thread(run, "export")

    def _preview(self) -> None:
        self._job(None)

    def action_write(self) -> None:
        p = self.query_one("#x-path", Input).value.strip()
        if not p:
            self.tell("name a file in `to` first", severity="error")
            return
        self._job(Path(p))

    def on_exported(self, msg: Exported) -> None:
        if msg.key != self._job_key:
            return  # made for a selection changed since
        note = self.query_one("#x-note", Static)
        if msg.error:
            note.update(Content.styled(msg.error, "red"))
            return
        if msg.written:
            self.written = msg.written
            note.update(Content("wrote " + ", ".join(msg.written)))
            self.tell("wrote " + ", ".join(Path(w).name for w in msg.written))
        else:
            note.update(Content(f"{self.study}: preview (ctrl+s writes it)"))
        if msg.preview:
            self.preview = msg.preview
            self.query_one("#x-preview", Static).update(msg.preview[:20000])


SCREEN = ExportScreen
