"""Studies: every study file in studies/ and every study in the database, with its state and progress."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.cells import bar
from rttui.tui.messages import StudiesListed
from rttui.tui.screens.base import RttuiScreen
from rttui.tui.screens.confirm import Confirm, Prompt


class PreviewRead(Message):
    def __init__(self, key: str, text: str) -> None:
        super().__init__()
        self.key = key
        self.text = text


class StudiesScreen(RttuiScreen):
    TITLE_TEXT = "Studies"
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="open the study: its live monitor, or the builder if it never ran"),
        Binding("e", "edit", "Edit", tooltip="edit the study in the builder"),
        Binding("n", "new", "New", tooltip="start a new study in the builder"),
        Binding("l", "launch", "Launch", tooltip="run the study as a detached `rttui run` process"),
        Binding("d", "duplicate", "Duplicate", tooltip="save a copy of the study under a new name"),
        Binding("x,delete", "delete", "Delete", tooltip="delete the study's file and its results (asks first)"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[api.StudyRow] = []
        self.loaded = 0
        self.preview_text = ""
        self._preview_key = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="studies-body"):
            yield Static("", id="studies-note", classes="note")
            yield DataTable(id="studies-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="studies-preview", classes="preview")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        t = self.query_one(DataTable)
        for label, width in (("study", 24), ("state", 8), ("progress", 16), ("failed", 6), ("file", 20)):
            t.add_column(label, key=label, width=width)
        db, sdir = self.rapp.db, self.rapp.studies_dir

        def read() -> StudiesListed:
            try:
                return StudiesListed(api.list_studies(db, sdir))
            except RttuiError as exc:
                return StudiesListed([], str(exc).splitlines()[0])

        self.start_polling(read, "poll-studies")

    def on_screen_resume(self) -> None:
        self.poll_now()

    def on_studies_listed(self, msg: StudiesListed) -> None:
        note = self.query_one("#studies-note", Static)
        sdir = self.rapp.studies_dir
        where = f"{sdir.name}/ and " if sdir else ""
        note.update(Content(msg.error or f"{len(msg.rows)} studies in {where}{self.rapp.db.name}"))
        self.loaded += 1
        if msg.rows == self.rows:
            return
        # The cursor stays on the study it was on (by name: a save reorders the list), not on its row number.
        was = self.selected()
        self.rows = msg.rows
        t = self.query_one(DataTable)
        keep = t.cursor_row
        if was is not None:
            names = [r.name for r in msg.rows]
            same = [i for i, r in enumerate(msg.rows) if (r.name, r.path) == (was.name, was.path)]
            keep = same[0] if same else names.index(was.name) if was.name in names else keep
        t.clear()
        for r in msg.rows:
            frac = r.done / r.runs if r.runs else 0.0
            t.add_row(
                r.name,
                r.state,
                f"{bar(frac, 8)} {r.done}/{r.runs}",
                str(r.failed or "") or "-",
                Path(r.path).name if r.path else "(database only)",
                key=f"{r.name}|{r.path}",
            )
        if msg.rows:
            t.move_cursor(row=min(keep, len(msg.rows) - 1))
            self._preview()

    def selected(self) -> api.StudyRow | None:
        t = self.query_one(DataTable)
        if not self.rows or t.cursor_row < 0 or t.cursor_row >= len(self.rows):
            return None
        return self.rows[t.cursor_row]

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._preview()

    def _preview(self) -> None:
        row = self.selected()
        if row is None:
            return
        db = self.rapp.db
        key = f"{row.name}|{row.path}"
        if key != self._preview_key:  # until the new file is read the pane says so, not the study before
            self._preview_key = key
            self.preview_text = ""
            self.query_one("#studies-preview", Static).update(Content(f"# reading {row.name}…"))
        # A path the database remembers may point anywhere (and `rttui serve` shows the preview to a browser):
        # outside the studies folder, the preview is the study as the database stored it, not that file.
        path = row.path if row.path and api.study_file_inside(row.path, self.rapp.studies_dir) else None

        def read() -> None:
            try:
                text = api.study_source(row.name, db, path)
            except (RttuiError, OSError) as exc:
                text = f"# {exc}"
            if row.error:
                text = f"# {row.error}\n{text}"
            self.post_message(PreviewRead(key, text))

        self.run_in_thread(read, "preview")

    def on_preview_read(self, msg: PreviewRead) -> None:
        row = self.selected()
        if row is None or f"{row.name}|{row.path}" != msg.key:
            return
        self.preview_text = msg.text
        theme = "monokai" if self.app.current_theme.dark else "default"
        self.query_one("#studies-preview", Static).update(Syntax(msg.text, "toml", theme=theme, line_numbers=False))

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open()

    # ---- actions -----------------------------------------------------------------------------------
    def _need(self) -> api.StudyRow | None:
        row = self.selected()
        if row is None:
            self.tell("no study selected; press n to start one", severity="warning")
        return row

    def action_open(self) -> None:
        row = self._need()
        if row is None:
            return
        self.rapp.open_study(row.name, row.path)
        self.rapp.action_mode("monitor" if row.in_db else "builder")

    def action_edit(self) -> None:
        row = self._need()
        if row is None:
            return
        self.rapp.open_study(row.name, row.path)
        self.rapp.action_mode("builder")

    def action_new(self) -> None:
        self.rapp.open_study("", "")
        self.rapp.action_mode("builder")

    def action_refresh(self) -> None:
        self.poll_now()

    def action_launch(self) -> None:
        row = self._need()
        if row is None:
            return
        if not row.path:
            self.tell(f"study {row.name!r} has no file; press d to save a copy, then launch that", severity="error")
            return
        self.launch_after_asking(row.path, lambda: self._launch(row))

    def _launch(self, row: api.StudyRow) -> None:
        try:
            info = api.launch_study(row.path, self.rapp.db)
        except RttuiError as exc:
            self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
            return
        self.tell(f"launched {info['study']} (process {info['pid']}); log: {Path(info['log']).name}")
        self.launched(info)
        self.rapp.open_study(row.name, row.path)
        self.rapp.action_mode("monitor")

    def action_duplicate(self) -> None:
        row = self._need()
        if row is None:
            return
        sdir = self.rapp.studies_dir or Path(".")

        def done(name: str | None) -> None:
            if not name:
                return
            try:
                text = api.study_source(row.name, self.rapp.db, row.path)
                api.duplicate_study(text, name, Path(sdir) / f"{name}.toml")
            except RttuiError as exc:
                self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
                return
            self.tell(f"saved {name}.toml")
            self.poll_now()

        self.app.push_screen(Prompt(f"Name of the copy of {row.name!r}:", f"{row.name}-copy"), done)

    def action_delete(self) -> None:
        row = self._need()
        if row is None:
            return
        sdir = self.rapp.studies_dir
        full = Path(row.path).resolve() if row.path else None
        inside = full is not None and api.study_file_inside(full, sdir)
        parts = []
        if row.in_db:
            parts.append("its results in the database")
        if full is not None and inside:
            parts.append(f"the file {full}")
        question = f"Delete study {row.name!r}: {' and '.join(parts) or 'nothing stored'}? This cannot be undone."
        if full is not None and not inside:
            where = f"the studies folder {Path(sdir).resolve()}" if sdir else "a studies folder"
            question += f" The file {full} lies outside {where} and is left."

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                res = api.delete_study(row.name, self.rapp.db, row.path, studies_dir=sdir)
            except RttuiError as exc:
                self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
                return
            left = res.get("file_left")
            kept = f"; the file {left} was left (outside the studies folder)" if left else ""
            self.tell(f"deleted {row.name}{kept}")
            self.poll_now()

        self.app.push_screen(Confirm(question), done)


SCREEN = StudiesScreen
