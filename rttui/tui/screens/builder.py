"""Builder: assemble a study with pickers that come from the catalog, see its size and its errors while
editing, and save a TOML file that `rttui run` accepts unchanged.

The form edits a copy of the study's parsed TOML (`Study.raw`), so keys the form does not show (extra grid
blocks, model kwargs, descriptions) survive a load-edit-save round trip.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Footer, Header, Input, Label, OptionList, Select, SelectionList, Static

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.messages import ModelsListed, StudyChecked
from rttui.tui.screens.base import RttuiScreen

# A new study: small enough to run offline on a CPU in about a minute.
TEMPLATE: dict[str, Any] = {
    "study": {"name": "new-study", "seeds": [0, 1, 2]},
    "source": {"dataset": "digits", "classes": [0, 1, 2, 3, 4], "epochs": 4},
    "target": {"dataset": "digits", "classes": [5, 6, 7, 8, 9], "image_size": 16, "test_size": 100},
    "train": {"epochs": 2, "lr": 0.002},
    "eval": {"epsilons": [0.01, 0.03, 0.05]},
    "attacks": {"fgsm": {}, "pgd": {"steps": 10}},
    "grid": [{"models": ["test_resnet"], "strategies": ["full", "feature_extraction"]}],
}

# (input id, section, key, label, kind): kind is "list" for comma-separated lists, else a scalar.
FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("f-name", "study", "name", "name", "str"),
    ("f-seeds", "study", "seeds", "seeds", "list"),
    ("f-src-classes", "source", "classes", "classes", "list"),
    ("f-src-epochs", "source", "epochs", "epochs", "scalar"),
    ("f-tgt-classes", "target", "classes", "classes", "list"),
    ("f-tgt-image", "target", "image_size", "image size", "scalar"),
    ("f-tgt-test", "target", "test_size", "test size", "scalar"),
    ("f-tgt-train", "target", "train_size", "train size", "scalar"),
    ("f-train-epochs", "train", "epochs", "epochs", "scalar"),
    ("f-train-lr", "train", "lr", "lr", "scalar"),
    ("f-train-batch", "train", "batch_size", "batch size", "scalar"),
    ("f-eps", "eval", "epsilons", "epsilons", "list"),
)


def parse_value(text: str, kind: str) -> Any:
    """A field's text as a TOML value: `3` -> 3, `0.1` -> 0.1, `true` -> True, `half` -> "half"."""
    text = text.strip()
    if not text:
        return None
    if kind == "list" and not text.startswith("["):
        text = f"[{text}]"
    if kind == "str":
        return text
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def show_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(show_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _name(item: Any) -> str:
    return item["name"] if isinstance(item, dict) else str(item)


def widget_name(name: str) -> str:
    """A catalog name as part of a widget id (ids take letters, digits, '_' and '-'; `ta:CW` has a colon)."""
    return name.replace(":", "_")


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
        self.models: list[str] = []
        self.errors: list[str] = []
        self.info: dict[str, Any] = {}
        self.checked = 0
        self.base_text: str | None = None
        self._filling = False

    # ---- layout ------------------------------------------------------------------------------------
    def _row(self, label: str, widget: Any) -> Horizontal:
        return Horizontal(Label(label, classes="field-label"), widget, classes="field")

    def compose(self) -> ComposeResult:
        cat = self.catalog
        datasets = [(d["name"], d["name"]) for d in cat["datasets"]]
        yield Header()
        with Horizontal(id="builder-body"):
            with VerticalScroll(id="builder-form"):
                yield self._row("file", Input(id="f-path", compact=True, placeholder="studies/NAME.toml"))
                yield self._row("name", Input(id="f-name", compact=True))
                yield self._row("seeds", Input(id="f-seeds", compact=True, placeholder="0, 1, 2"))
                yield Static("source (pretraining)", classes="section-title")
                yield self._row("dataset", Select(datasets, id="f-src-dataset", compact=True, allow_blank=False))
                yield self._row("classes", Input(id="f-src-classes", compact=True, placeholder="all"))
                yield self._row("epochs", Input(id="f-src-epochs", compact=True))
                yield self._row("pretrained", Checkbox("timm weights", id="f-src-pretrained", compact=True))
                yield Static("target (transfer task)", classes="section-title")
                yield self._row("dataset", Select(datasets, id="f-tgt-dataset", compact=True, allow_blank=False))
                yield self._row("classes", Input(id="f-tgt-classes", compact=True, placeholder="all"))
                yield self._row("image size", Input(id="f-tgt-image", compact=True))
                yield self._row("test size", Input(id="f-tgt-test", compact=True))
                yield self._row("train size", Input(id="f-tgt-train", compact=True, placeholder="all"))
                yield Static("fine-tuning", classes="section-title")
                yield self._row("epochs", Input(id="f-train-epochs", compact=True))
                yield self._row("lr", Input(id="f-train-lr", compact=True))
                yield self._row("batch size", Input(id="f-train-batch", compact=True))
                yield Static("models (timm names)", classes="section-title")
                yield self._row("models", Input(id="f-models", compact=True, placeholder="test_resnet, resnet50"))
                yield self._row("search", Input(id="f-model-search", compact=True, placeholder="type to search timm"))
                yield OptionList(id="f-model-matches", compact=True)
                yield Static("strategies", classes="section-title")
                yield SelectionList(*self._choices("strategies"), id="f-strategies", compact=True)
                yield from self._params("strategies")
                yield Static("techniques", classes="section-title")
                yield SelectionList(*self._choices("techniques"), id="f-techniques", compact=True)
                yield from self._params("techniques")
                yield Static("attacks and epsilons", classes="section-title")
                yield SelectionList(*self._choices("attacks"), id="f-attacks", compact=True)
                yield from self._params("attacks")
                yield self._row("epsilons", Input(id="f-eps", compact=True, placeholder="0.01, 0.03, 0.05"))
            with Vertical(id="builder-side"):
                yield Static("", id="b-size")
                yield Static("", id="b-errors", classes="error", markup=False)
                yield Static("", id="b-toml", classes="preview", markup=False)
        yield Footer()

    def _choices(self, axis: str) -> list[tuple[str, str, bool, bool]]:
        # (prompt, value, selected, disabled): names the engine does not implement yet are shown, not offered.
        out = []
        for e in self.catalog[axis]:
            label = e["name"] if e["implemented"] else f"{e['name']} (not implemented)"
            out.append((label, e["name"], False, not e["implemented"]))
        return [(p, v, s) for p, v, s, _ in out]

    def _params(self, axis: str) -> ComposeResult:
        for e in self.catalog[axis]:
            # A catalogue attack (`ta:CW`: torchattacks, dozens of them with up to 11 arguments each) is listed and
            # saved with its table, but its parameters are edited in the file: hundreds of inputs would bury the form.
            if not e["implemented"] or ":" in e["name"]:
                continue
            for k, p in e["params"].items():
                yield self._row(
                    f"{e['name'][:6]}.{k}"[:14],
                    Input(
                        id=f"p-{axis}-{widget_name(e['name'])}-{k}",
                        compact=True,
                        placeholder=f"{show_value(p['default']) or '-'}: {p['help']}",
                        tooltip=f"[{axis}.{e['name']}] {k}: {p['help']}",
                    ),
                )

    def on_mount(self) -> None:
        super().on_mount()
        for axis in ("strategies", "techniques", "attacks"):
            sl = self.query_one(f"#f-{axis}", SelectionList)
            for i, e in enumerate(self.catalog[axis]):
                if not e["implemented"]:
                    sl.get_option_at_index(i).disabled = True
        self.query_one("#f-model-matches", OptionList).display = False
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        """Show the app's current study (chosen elsewhere) unless it is already the one in the form."""
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
        sdir = self.rapp.studies_dir or Path(".")
        self._fill(path or str(Path(sdir) / f"{name}.toml"))

    def _fill(self, path: str) -> None:
        """Put self.raw into the widgets (without treating that as an edit)."""
        self._filling = True
        raw = self.raw
        block = (raw.get("grid") or [{}])[0]
        self.query_one("#f-path", Input).value = path
        for fid, sec, key, _, _ in FIELDS:
            self.query_one(f"#{fid}", Input).value = show_value((raw.get(sec) or {}).get(key))
        for sec, wid in (("source", "#f-src-dataset"), ("target", "#f-tgt-dataset")):
            ds = (raw.get(sec) or {}).get("dataset", "digits")
            sel = self.query_one(wid, Select)
            if ds in {d["name"] for d in self.catalog["datasets"]}:
                sel.value = ds
        self.query_one("#f-src-pretrained", Checkbox).value = bool((raw.get("source") or {}).get("pretrained"))
        self.query_one("#f-models", Input).value = ", ".join(_name(m) for m in block.get("models", []))
        chosen = {
            "strategies": [_name(s) for s in block.get("strategies", [])],
            "techniques": [_name(s) for s in block.get("techniques", ["none"])],
            "attacks": [_name(s) for s in block.get("attacks", list(raw.get("attacks", {})) or ["fgsm", "pgd"])],
        }
        for axis, names in chosen.items():
            sl = self.query_one(f"#f-{axis}", SelectionList)
            sl.deselect_all()
            for n in names:
                if n in {e["name"] for e in self.catalog[axis] if e["implemented"]}:
                    sl.select(n)
            for e in self.catalog[axis]:
                for k in e["params"]:
                    w = self.query(f"#p-{axis}-{widget_name(e['name'])}-{k}")
                    if w:
                        w.first(Input).value = show_value(((raw.get(axis) or {}).get(e["name"]) or {}).get(k))
        self.call_after_refresh(self._done_filling)

    def _done_filling(self) -> None:
        self._filling = False
        self._changed()

    # ---- the form back into a study ----------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        """The study the form shows, as a TOML-ready dict (self.raw with the form's values applied)."""
        raw = copy.deepcopy(self.raw)

        def put(sec: str, key: str, value: Any) -> None:
            table = raw.setdefault(sec, {})
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

        for fid, sec, key, _, kind in FIELDS:
            put(sec, key, parse_value(self.query_one(f"#{fid}", Input).value, kind))
        put("source", "dataset", self.query_one("#f-src-dataset", Select).value)
        put("target", "dataset", self.query_one("#f-tgt-dataset", Select).value)
        pre = self.query_one("#f-src-pretrained", Checkbox).value
        put("source", "pretrained", True if pre else None)
        grid = raw.setdefault("grid", [{}])
        if not grid:
            grid.append({})
        block = grid[0]
        old = {axis: {_name(x): x for x in block.get(axis, [])} for axis in ("models", "strategies", "techniques")}
        models = [m.strip() for m in self.query_one("#f-models", Input).value.split(",") if m.strip()]
        block["models"] = [old["models"].get(m, m) for m in models]
        for axis in ("strategies", "techniques"):
            names = self.query_one(f"#f-{axis}", SelectionList).selected
            if axis == "techniques" and axis not in block and names == ["none"]:
                continue  # the default: leave the file as it was
            block[axis] = [old[axis].get(n, n) for n in names]
        attacks = self.query_one("#f-attacks", SelectionList).selected
        tables = raw.setdefault("attacks", {})
        if "attacks" in block:
            block["attacks"] = list(attacks)
        for a in list(tables):
            if a not in attacks and not any(a in map(_name, b.get("attacks", [])) for b in grid[1:]):
                del tables[a]
        for a in attacks:
            tables.setdefault(a, {})
        for axis in ("strategies", "techniques", "attacks"):
            for e in self.catalog[axis]:
                for k in e["params"]:
                    w = self.query(f"#p-{axis}-{widget_name(e['name'])}-{k}")
                    if not w:
                        continue
                    v = parse_value(w.first(Input).value, "scalar")
                    if axis == "attacks" and e["name"] not in attacks:
                        continue
                    t = raw.setdefault(axis, {}).setdefault(e["name"], {})
                    if v is None:
                        t.pop(k, None)
                    else:
                        t[k] = v
                    if axis != "attacks" and not t:
                        raw[axis].pop(e["name"], None)
            if axis in raw and not raw[axis] and axis != "attacks":
                raw.pop(axis)
        return raw

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(SelectionList.SelectedChanged)
    def _edited(self, event: Message) -> None:
        if getattr(event, "input", None) is not None and event.input.id == "f-model-search":  # type: ignore[attr-defined]
            self._search(event.value)  # type: ignore[attr-defined]
            return
        if not self._filling:
            self._changed()

    def _changed(self) -> None:
        try:
            raw = self.collect()
        except Exception as exc:  # a widget mid-update; the next change checks again
            self.log.warning(f"collect failed: {exc}")
            return
        base = self.base_text

        def check() -> None:
            try:
                text = api.study_toml(raw, base)
            except Exception as exc:  # e.g. a value TOML cannot hold
                self.post_message(StudyChecked("", {}, f"cannot be written as TOML: {exc}"))
                return
            try:
                study = api.parse_study(text, "study")
                info = api.study_size(study)
                self.post_message(StudyChecked(text, info))
            except RttuiError as exc:
                self.post_message(StudyChecked(text, {}, str(exc)))

        self.run_in_thread(check, "check")

    def on_study_checked(self, msg: StudyChecked) -> None:
        self.checked += 1
        self.errors = [e.removeprefix("study: ") for e in msg.error.splitlines()] if msg.error else []
        self.info = msg.info
        size = self.query_one("#b-size", Static)
        if msg.info:
            i = msg.info
            size.update(
                f"[b]{i['runs']} runs[/b] · {i['sources']} source models · {i['evaluations']} evaluations\n"
                f"cost ≈ {i['train_epochs']} training epochs + {i['attack_steps_per_image']} attack steps per "
                f"test image"
            )
        else:
            size.update("[b]not valid yet[/b]")
        self.query_one("#b-errors", Static).update("\n".join(f"✗ {e}" for e in self.errors))
        self.query_one("#b-toml", Static).update(msg.text)

    # ---- model search (timm's list is loaded once, in a worker) ----------------------------------------
    def _search(self, text: str) -> None:
        matches = self.query_one("#f-model-matches", OptionList)
        if not text.strip():
            matches.display = False
            return
        matches.display = True
        if not self.models:
            matches.clear_options()
            matches.add_option("loading timm's model list…")
            if not getattr(self, "_loading", False):
                self._loading = True

                def load() -> None:
                    try:
                        self.post_message(ModelsListed(api.model_names()))
                    except Exception as exc:
                        self.post_message(ModelsListed([], str(exc)))

                self.run_in_thread(load, "timm-models")
            return
        q = text.strip().lower()
        hits = [m for m in self.models if q in m.lower()]
        hits.sort(key=lambda m: (not m.lower().startswith(q), len(m), m))
        matches.clear_options()
        matches.add_options(hits[:50] or ["no timm model matches"])

    def on_models_listed(self, msg: ModelsListed) -> None:
        self._loading = False
        if msg.error:
            self.tell(f"timm models could not be listed: {msg.error}", severity="error")
            return
        self.models = msg.names
        self._search(self.query_one("#f-model-search", Input).value)

    @on(Input.Submitted, "#f-model-search")
    def _pick_first(self) -> None:
        matches = self.query_one("#f-model-matches", OptionList)
        if matches.option_count and self.models:
            idx = matches.highlighted if matches.highlighted is not None else 0
            self._add_model(str(matches.get_option_at_index(idx).prompt))

    @on(OptionList.OptionSelected, "#f-model-matches")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if self.models:
            self._add_model(str(event.option.prompt))

    def _add_model(self, name: str) -> None:
        if name not in self.models:
            return
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

    def action_save(self) -> Path | None:
        path = self._path()
        if path is None:
            return None
        try:
            study = api.save_study(self.collect(), path, self.base_text)
        except RttuiError as exc:
            self.tell(f"not saved: {str(exc).splitlines()[0]}", severity="error", timeout=8)
            return None
        self.base_text = path.read_text(encoding="utf-8")
        self.raw = tomllib.loads(self.base_text)
        self.rapp.open_study(study.name, str(path))
        self._shown = (study.name, str(path))
        self.tell(f"saved {path}")
        return path

    def action_launch(self) -> None:
        path = self.action_save()
        if path is None:
            return
        try:
            info = api.launch_study(path, self.rapp.db)
        except RttuiError as exc:
            self.tell(str(exc).splitlines()[0], severity="error", timeout=8)
            return
        self.tell(f"launched {info['study']} (process {info['pid']})")
        self.rapp.action_mode("monitor")

    def action_new(self) -> None:
        self.rapp.open_study("", "")
        self._shown = ("", "")
        self.new()

    def action_reload(self) -> None:
        path = self._path()
        if path is not None:
            self.load(path.stem, str(path))


SCREEN = BuilderScreen
