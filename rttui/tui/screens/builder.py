"""Builder: assemble a study with pickers that come from the catalog, see its size and its errors while
editing, and save a TOML file that `rttui run` accepts unchanged.

The form edits a copy of the study's parsed TOML (`Study.raw`), so keys the form does not show (extra grid
blocks, model kwargs, descriptions) survive a load-edit-save round trip. What the widgets show for a study and
what they hold back into it is `rttui.tui.study_form` (pure, tested without an app); this screen only moves
values between that `Form` and the widgets. The model search is its own widget (`widgets.model_search`).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Footer, Header, Input, Label, Select, SelectionList, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.messages import StudyChecked
from rttui.tui.screens.base import RttuiScreen
from rttui.tui.screens.confirm import Confirm
from rttui.tui.study_form import (
    AXES,
    FIELDS,
    TEMPLATE,
    Form,
    form_from_study,
    param_id,
    show_value,
    study_from_form,
    unshown,
)
from rttui.tui.widgets.marks import MarkedCheckbox, MarkedSelectionList
from rttui.tui.widgets.model_search import ModelSearch


class ParamsChanged(Message):
    pass


class BuilderScreen(RttuiScreen):
    TITLE_TEXT = "Builder"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="check the study and write it to the file named at the top"),
        Binding("ctrl+r", "launch", "Save+run", tooltip="save, then run it as a detached `rttui run` process"),
        Binding("ctrl+n", "new", "New", tooltip="start again from the template study"),
        Binding("ctrl+o", "reload", "Reload", tooltip="load the file named at the top again (drops edits)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.catalog = api.catalog()
        self.raw: dict[str, Any] = copy.deepcopy(TEMPLATE)
        self.errors: list[str] = []
        self.info: dict[str, Any] = {}
        self.checked = 0
        self.base_text: str | None = None
        self.opened: Path | None = None
        self._filling = False
        self._filled: dict[str, Any] | None = None
        self.ready = False  # the form is mounted (see `compose`)

    # ---- layout ------------------------------------------------------------------------------------
    def _row(self, label: str, widget: Any) -> Horizontal:
        return Horizontal(Label(label, classes="field-label"), widget, classes="field")

    def compose(self) -> ComposeResult:
        # The form (hundreds of widgets: every option's parameters) takes a second or more to build; the screen
        # shows at once with a line saying what it is doing, and the form is mounted right after that frame.
        yield Header()
        yield Static("", id="b-loading", classes="note")
        yield Horizontal(id="builder-body")
        yield Footer()

    def _form_widgets(self) -> list[Widget]:
        """The form and its side panel (size, errors, TOML preview)."""
        cat = self.catalog
        datasets = [(d["name"], d["name"]) for d in cat["datasets"]]
        form = VerticalScroll(
            self._row("file", Input(id="f-path", compact=True, placeholder="studies/NAME.toml")),
            self._row("name", Input(id="f-name", compact=True)),
            self._row("seeds", Input(id="f-seeds", compact=True, placeholder="0, 1, 2")),
            Static("source (pretraining)", classes="section-title"),
            self._row("dataset", Select(datasets, id="f-src-dataset", compact=True, allow_blank=False)),
            self._row("classes", Input(id="f-src-classes", compact=True, placeholder="all")),
            self._row("epochs", Input(id="f-src-epochs", compact=True)),
            self._row("pretrained", MarkedCheckbox("timm weights", id="f-src-pretrained", compact=True)),
            Static("target (transfer task)", classes="section-title"),
            self._row("dataset", Select(datasets, id="f-tgt-dataset", compact=True, allow_blank=False)),
            self._row("classes", Input(id="f-tgt-classes", compact=True, placeholder="all")),
            self._row("image size", Input(id="f-tgt-image", compact=True)),
            self._row("test size", Input(id="f-tgt-test", compact=True)),
            self._row("train size", Input(id="f-tgt-train", compact=True, placeholder="all")),
            Static("fine-tuning", classes="section-title"),
            self._row("epochs", Input(id="f-train-epochs", compact=True)),
            self._row("lr", Input(id="f-train-lr", compact=True)),
            self._row("batch size", Input(id="f-train-batch", compact=True)),
            Static("models (timm names)", classes="section-title"),
            self._row("models", Input(id="f-models", compact=True, placeholder="test_resnet, resnet50")),
            ModelSearch(api.model_names),
            Static("", id="f-unshown", classes="note", markup=False),
            Static("strategies", classes="section-title"),
            MarkedSelectionList(*self._choices("strategies"), id="f-strategies", compact=True),
            *self._params("strategies"),
            Static("techniques", classes="section-title"),
            MarkedSelectionList(*self._choices("techniques"), id="f-techniques", compact=True),
            *self._params("techniques"),
            Static("attacks and epsilons", classes="section-title"),
            MarkedSelectionList(*self._choices("attacks"), id="f-attacks", compact=True),
            *self._params("attacks"),
            self._row("epsilons", Input(id="f-eps", compact=True, placeholder="0.01, 0.03, 0.05")),
            id="builder-form",
        )
        side = Vertical(
            Static("", id="b-size"),
            Static("", id="b-errors", classes="error", markup=False),
            Static("", id="b-toml", classes="preview", markup=False),
            id="builder-side",
        )
        return [form, side]

    def _choices(self, axis: str) -> list[tuple[str, str, bool, bool]]:
        # (prompt, value, selected, disabled): names the engine does not implement yet are shown, not offered.
        out = []
        for entry in self.catalog[axis]:
            label = entry["name"] if entry["implemented"] else f"{entry['name']} (not implemented)"
            out.append((label, entry["name"], False, not entry["implemented"]))
        return [(p, v, s) for p, v, s, _ in out]

    def _params(self, axis: str) -> Iterator[Widget]:
        """Each option's parameters in a group of their own, shown only while the option is selected (every
        parameter of every option made the epsilons the 57th Tab stop)."""
        for entry in self.catalog[axis]:
            # A catalogue attack (`ta:CW`: torchattacks, dozens of them with up to 11 arguments each) is listed and
            # saved with its table, but its parameters are edited in the file: hundreds of inputs would bury the form.
            if not entry["implemented"] or not entry["params"] or ":" in entry["name"]:
                continue
            rows = [
                self._row(
                    k,  # the option is named by the group's title, so the label is the parameter's whole name
                    Input(
                        id=param_id(axis, entry["name"], k),
                        compact=True,
                        placeholder=f"{show_value(p['default']) or '-'}: {p['help']}",
                        tooltip=f"[{axis}.{entry['name']}] {k}: {p['help']}",
                    ),
                )
                for k, p in entry["params"].items()
            ]
            group = Vertical(
                Static(f"{entry['name']}:", classes="params-title", markup=False),
                *rows,
                id=f"params-{axis}-{entry['name']}",
                classes="params",
            )
            group.display = False
            yield group

    def _show_params(self) -> None:
        """Show the parameter groups of the selected options only."""
        for axis in AXES:
            selected = set(self.query_one(f"#f-{axis}", SelectionList).selected)
            for group in self.query(".params").results(Vertical):
                prefix = f"params-{axis}-"
                if group.id and group.id.startswith(prefix):
                    group.display = group.id.removeprefix(prefix) in selected

    def on_mount(self) -> None:
        super().on_mount()
        cur = self.rapp.current
        what = f"reading study {cur.name or cur.path}" if cur.name or cur.path else "starting a new study"
        self.query_one("#b-loading", Static).update(
            Content.assemble(("Builder: ", "bold"), f"loading the models, strategies and attacks, {what}…")
        )
        self.call_after_refresh(self._build_form)  # after the frame that shows the line above

    async def _build_form(self) -> None:
        await self.query_one("#builder-body", Horizontal).mount_all(self._form_widgets())
        for axis in AXES:
            sl = self.query_one(f"#f-{axis}", SelectionList)
            for i, entry in enumerate(self.catalog[axis]):
                if not entry["implemented"]:
                    sl.get_option_at_index(i).disabled = True
        self.ready = True
        self.query_one("#b-loading", Static).display = False
        self.query_one("#b-size", Static).update("checking the study…")  # until the first check lands
        self.refresh_bindings()
        self.on_screen_resume()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The form's keys wait for the form (they act on its widgets): shown dimmed until it is built."""
        if not self.ready and action in ("save", "launch", "new", "reload"):
            return None
        return super().check_action(action, parameters)

    def on_screen_resume(self) -> None:
        """Show the app's current study (chosen elsewhere) unless it is already the one in the form."""
        if not self.ready:  # the form is still being built; it shows the current study when it is
            return
        cur = self.rapp.current
        key = (cur.name, cur.path)
        if key == getattr(self, "_shown", None):
            return
        self._shown = key
        if cur.name or cur.path:
            self.load(cur.name, cur.path)
        else:
            self.new()

    # ---- loading and filling the form ----------------------------------------------------------------
    def new(self) -> None:
        self.raw = copy.deepcopy(TEMPLATE)
        self.base_text: str | None = None
        self.opened = None
        sdir = self.rapp.studies_dir or Path(".")
        self._fill(str(Path(sdir) / "new-study.toml"))

    def load(self, name: str, path: str = "") -> None:
        try:
            text = api.study_source(name, self.rapp.db, path or None)
            raw = tomllib.loads(text)
        except (RttuiError, tomllib.TOMLDecodeError, OSError) as exc:
            self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
            return
        self.raw = raw
        self.base_text = text
        # The file the form holds, if it came from one: saving back to it asks nothing unless it changed on disk.
        self.opened = Path(path).resolve() if path and Path(path).is_file() else None
        sdir = self.rapp.studies_dir or Path(".")
        self._fill(path or str(Path(sdir) / f"{name}.toml"))

    def _fill(self, path: str) -> None:
        """Put self.raw into the widgets (without treating that as an edit)."""
        self._filling = True
        form = form_from_study(self.raw, self.catalog)
        # Every input by id in one walk of the form: a query per field (hundreds of parameters) walked the whole
        # form each time, which made the first open take seconds.
        inputs = {w.id: w for w in self.query(Input).results(Input) if w.id}
        inputs["f-path"].value = path
        for fid, *_ in FIELDS:
            inputs[fid].value = form.fields[fid]
        self._named = form.fields["f-name"].strip()  # the name the file is named after, while it follows it
        for wid, ds in (("#f-src-dataset", form.source_dataset), ("#f-tgt-dataset", form.target_dataset)):
            if ds is not None:
                self.query_one(wid, Select).value = ds
        # What the pickers hold now: left there, they leave the study's datasets as written (a study may name one
        # the pickers do not offer, or none at all; then the picker shows whatever it held before).
        self._picked = {wid: self.query_one(wid, Select).value for wid in ("#f-src-dataset", "#f-tgt-dataset")}
        self.query_one("#f-src-pretrained", Checkbox).value = form.pretrained
        inputs["f-models"].value = form.models
        note = self.query_one("#f-unshown", Static)
        note.update(unshown(self.raw))
        note.display = bool(unshown(self.raw))
        for axis in AXES:
            sl = self.query_one(f"#f-{axis}", SelectionList)
            sl.deselect_all()
            for name in form.selected[axis]:
                sl.select(name)
        for pid, text in form.params.items():
            if pid in inputs:
                inputs[pid].value = text
        self.call_after_refresh(self._done_filling)

    def _done_filling(self) -> None:
        self._filling = False
        self._show_params()
        self._filled = self.collect()  # what "no edits" looks like, for ctrl+n
        self._changed()

    # ---- the form back into a study ----------------------------------------------------------------
    def form(self) -> Form:
        """What the widgets hold now."""
        return Form(
            fields={fid: self.query_one(f"#{fid}", Input).value for fid, *_ in FIELDS},
            source_dataset=self._dataset("#f-src-dataset"),
            target_dataset=self._dataset("#f-tgt-dataset"),
            pretrained=self.query_one("#f-src-pretrained", Checkbox).value,
            models=self.query_one("#f-models", Input).value,
            selected={axis: list(self.query_one(f"#f-{axis}", SelectionList).selected) for axis in AXES},
            params={w.id: w.value for w in self.query(Input) if w.id and w.id.startswith("p-")},
        )

    def _dataset(self, wid: str) -> str | None:
        """A dataset picker's choice, or None while it holds what the form was filled with (no edit)."""
        value = self.query_one(wid, Select).value
        return None if value == getattr(self, "_picked", {}).get(wid) else value  # type: ignore[return-value]

    def collect(self) -> dict[str, Any]:
        """The study the form shows, as a TOML-ready dict (self.raw with the form's values applied)."""
        return study_from_form(self.raw, self.form(), self.catalog)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(SelectionList.SelectedChanged)
    def _edited(self, event: Message) -> None:
        if isinstance(event, SelectionList.SelectedChanged):
            self._show_params()
        if isinstance(event, Input.Changed) and event.input.id == "f-name" and not self._filling:
            self._file_follows_name(event.value.strip())
        if not self._filling:
            self._changed()

    def _file_follows_name(self, name: str) -> None:
        """A study not yet in a file of its own is saved under its name: renaming `new-study` to `mine` names the
        file `mine.toml` (it kept `new-study.toml`); a file the user typed, or one opened, stays as it is."""
        path = self.query_one("#f-path", Input)
        named = getattr(self, "_named", "")
        if not name or "/" in name or self.opened is not None:
            return
        if Path(path.value).name == f"{named}.toml":
            path.value = str(Path(path.value).with_name(f"{name}.toml"))
        self._named = name

    def _changed(self) -> None:
        try:
            raw = self.collect()
        except Exception as exc:  # a widget mid-update; the next change checks again
            self.log.warning(f"collect failed: {exc}")
            return
        base = self.base_text
        db = self.rapp.db

        def check() -> None:
            try:
                text = api.study_toml(raw, base)
            except Exception as exc:  # e.g. a value TOML cannot hold
                self.post_message(StudyChecked("", {}, f"cannot be written as TOML: {exc}"))
                return
            try:
                study = api.parse_study(text, "study")
                info = api.study_size(study)
                # What is left: runs the database already holds as done cost nothing to launch again.
                info["left"] = sum(r.state != "done" for r in api.plan_status(study, db)) if db.exists() else None
                self.post_message(StudyChecked(text, info))
            except RttuiError as exc:
                self.post_message(StudyChecked(text, {}, str(exc)))

        self.run_in_thread(check, "check")

    def on_study_checked(self, msg: StudyChecked) -> None:
        self.checked += 1
        self.errors = [line.removeprefix("study: ") for line in msg.error.splitlines()] if msg.error else []
        self.info = msg.info
        size = self.query_one("#b-size", Static)
        if msg.info:
            i = msg.info
            left = i["runs"] if i.get("left") is None else i["left"]
            share = left / i["runs"] if i["runs"] else 0.0
            done = f" ({i['runs'] - left} done, {left} left)" if left != i["runs"] else ""
            size.update(
                Content.assemble(
                    (f"{i['runs']} run{'s' if i['runs'] != 1 else ''}", "bold"),
                    f"{done} · {i['sources']} source model{'s' if i['sources'] != 1 else ''} · "
                    f"{i['evaluations']} evaluation{'s' if i['evaluations'] != 1 else ''}\n"
                    f"cost of what is left ≈ {round(i['train_epochs'] * share)} training epochs + "
                    f"{round(i['attack_steps_per_image'] * share)} attack steps per test image",
                )
            )
        else:
            size.update(Content.styled("not valid yet", "bold"))
        self.query_one("#b-errors", Static).update("\n".join(f"✗ {line}" for line in self.errors))
        self.query_one("#b-toml", Static).update(msg.text)

    # ---- a model picked in the search widget joins the models field ----------------------------------------
    def on_model_search_picked(self, msg: ModelSearch.Picked) -> None:
        self._add_model(msg.name)

    def _add_model(self, name: str) -> None:
        w = self.query_one("#f-models", Input)
        have = [m.strip() for m in w.value.split(",") if m.strip()]
        if name not in have:
            w.value = ", ".join([*have, name])
        self.tell(f"added model {name}")

    # ---- actions ---------------------------------------------------------------------------------------
    def _path(self) -> Path | None:
        p = self.query_one("#f-path", Input).value.strip()
        if not p:
            self.tell("name a file at the top (e.g. studies/my-study.toml) before saving", severity="error")
            return None
        return Path(p)

    def _overwrite_question(self, path: Path) -> str | None:
        """Why saving to `path` needs a yes first: the file exists and is not the one this form opened, or that
        one changed on disk since. None when saving replaces nothing the user has not seen."""
        if not path.exists():
            return None
        full = path.resolve()
        if full == self.opened:
            try:
                if full.read_text(encoding="utf-8") == self.base_text:
                    return None
            except (OSError, UnicodeDecodeError):
                pass
            return f"{full} changed on disk since it was opened. Overwrite it with the study in the form?"
        return f"{full} already exists. Overwrite it with the study in the form?"

    def action_save(self, then: Callable[[Path], None] | None = None) -> None:
        """Check and write the study to the file named at the top, asking first before replacing a file the
        form did not open; `then(path)` runs once it is saved."""
        path = self._path()
        if path is None:
            return
        question = self._overwrite_question(path)
        if question is None:
            self._save(path, then)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._save(path, then)
            else:
                self.tell(f"not saved: {path.resolve()} is left as it was")

        self.app.push_screen(Confirm(question), answered)

    def _save(self, path: Path, then: Callable[[Path], None] | None) -> None:
        full = path.resolve()
        try:
            study = api.save_study(self.collect(), path, self.base_text)
        except RttuiError as exc:
            self.tell(f"not saved: {str(exc).splitlines()[0]}", severity="error", timeout=8)
            return
        except OSError as exc:
            self.tell(f"not saved: {full} cannot be written ({exc.strerror}); name another file", severity="error")
            return
        self.base_text = path.read_text(encoding="utf-8")
        self.raw = tomllib.loads(self.base_text)
        self.opened = full
        self.rapp.open_study(study.name, str(path))
        self._shown = (study.name, str(path))
        self.tell(f"saved {full}")
        if then is not None:
            then(path)

    def action_launch(self) -> None:
        self.action_save(then=lambda path: self.launch_after_asking(str(path), lambda: self._launch(path)))

    def _launch(self, path: Path) -> None:
        try:
            info = api.launch_study(path, self.rapp.db)
        except RttuiError as exc:
            self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
            return
        self.tell(f"launched {info['study']} (process {info['pid']})")
        self.launched(info)
        self.rapp.action_mode("monitor")

    def edited(self) -> bool:
        """Whether the form holds edits that are not in its file (or, for a new study, not the template)."""
        try:
            return self.collect() != self._filled
        except Exception:  # a widget mid-update: assume edits, asking once too often is harmless
            return True

    def action_new(self) -> None:
        def go(yes: bool | None = True) -> None:
            if yes:
                self.rapp.open_study("", "")
                self._shown = ("", "")
                self.new()

        if self.edited():
            self.app.push_screen(Confirm("Discard the edits in the form and start a new study?"), go)
        else:
            go()

    def action_reload(self) -> None:
        path = self._path()
        if path is not None:
            self.load(path.stem, str(path))


SCREEN = BuilderScreen
