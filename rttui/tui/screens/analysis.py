"""What the analysis screens (Results, T-test) share: they follow the current study, offer pickers whose keys
cycle through the values the study holds, and re-run their analysis in a polling worker when a picker changes.

Written once so the two screens cannot drift apart in how they pick; this module never reads the database or
lays out results itself (each screen's `reader` and message handler do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import Select, Static

from rttui.tui.screens.base import NO_STUDY, RttuiScreen

ALL = "all"


def picker_values(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The choices each picker offers, from what the study holds."""
    out: dict[str, list[str]] = {}
    for axis in ("attack", "strategy", "model", "technique", "dataset"):
        out[axis] = list(dict.fromkeys(str(r[axis]) for r in records))
    out["eps"] = [f"{e:g}" for e in sorted({float(r["eps"]) for r in records})]
    return out


# The analysis speaks CLI (its errors serve `rttui compare --where ... --eps ...`); in the app the same advice
# names the app's own controls.
APP_WORDS = (
    ("write for example --where ", "write for example "),
    ("--where ", "filter "),
    ("use --eps with one of", "pick (e) one of"),
    ("--eps ", "eps "),
    ("check the values with `rttui export`", "check the values on the Export screen (7)"),
)


def in_app_words(error: object) -> str:
    """An analysis error's first line as the app says it: its filter and eps picker, not `--where` / `--eps`."""
    text = str(error).splitlines()[0]
    for cli, app in APP_WORDS:
        text = text.replace(cli, app)
    return text


def known_only(query: dict[str, Any], values: dict[str, list[str]]) -> dict[str, Any]:
    """The query with an attack or eps the study does not hold dropped (None: the default attack, all eps):
    pickers carried over from another study asked for an eps this one lacks and showed a blank screen."""
    q = dict(query)
    if q.get("attack") is not None and q["attack"] not in values.get("attack", []):
        q["attack"] = None
    if q.get("eps") is not None and f"{q['eps']:g}" not in values.get("eps", []):
        q["eps"] = None
    return q


class AnalysisScreen(RttuiScreen):
    """A screen of pickers over one study's results. Subclasses set the ids and say what to read and cycle."""

    PICKER_PREFIX = ""  # widget ids are f"#{PICKER_PREFIX}-{picker}", so a key binding names the picker
    NOTE_ID = ""  # the Static that says when no study is chosen
    POLL_GROUP = ""

    def __init__(self) -> None:
        super().__init__()
        self.study = ""
        self.values: dict[str, list[str]] = {}
        self.loaded = 0
        self._filling = False  # True while the screen itself sets pickers: not a user's change
        # Each start of the analysis (study or picker change) is a new generation; a result read for an older
        # one is stale (its pickers no longer match) and is dropped instead of shown.
        self.generation = 0
        # The pickers' query the shown (or coming) result answers: a Select.Changed that leaves the pickers there
        # (the screen filling them, whenever Textual delivers that message) starts nothing.
        self.asked: dict[str, Any] | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        """Follow the study chosen elsewhere (Studies, Builder); keep pickers when it is still the same one."""
        if self.rapp.current.name != self.study or not self.loaded:
            self.study = self.rapp.current.name
            self.values = {}
            self._start()

    def query_now(self) -> dict[str, Any]:
        """The pickers' values as the analysis's arguments (read on the UI thread)."""
        raise NotImplementedError

    def reader(self, name: str, query: dict[str, Any]) -> Callable[[], Message]:
        """The function the poller runs off the UI thread for `query` on study `name`."""
        raise NotImplementedError

    def cycle_values(self, which: str) -> list[str]:
        """The values the key for picker `which` steps through."""
        raise NotImplementedError

    def show_loading(self) -> None:
        """Say that the analysis for new pickers is under way (a screen drops what no longer matches them)."""
        self.query_one(f"#{self.NOTE_ID}", Static).update(f"{self.study}: computing…")

    def is_stale(self, msg: Message) -> bool:
        """Whether a result was read for another study or for pickers changed since."""
        return getattr(msg, "study", None) != self.study or getattr(msg, "generation", None) != self.generation

    def _start(self) -> None:
        name = self.study
        self.generation += 1
        if not name:
            self.query_one(f"#{self.NOTE_ID}", Static).update(NO_STUDY)
            return
        self.show_loading()
        self.asked = self.query_now()
        read, generation = self.reader(name, self.asked), self.generation

        def tagged() -> Message:
            msg = read()
            msg.generation = generation  # type: ignore[attr-defined]
            return msg

        self.start_polling(tagged, self.POLL_GROUP, every=5)

    @on(Select.Changed)
    def _changed(self) -> None:
        if not self._filling and self.query_now() != self.asked:
            self._start()

    def action_refresh(self) -> None:
        self.poll_now()

    def action_cycle(self, which: str) -> None:
        sel = self.query_one(f"#{self.PICKER_PREFIX}-{which}", Select)
        values = self.cycle_values(which)
        if values:
            i = values.index(sel.value) if sel.value in values else -1
            sel.value = values[(i + 1) % len(values)]

    def fill_picker(self, wid: str, values: list[str], value: object, with_all: bool = False) -> None:
        """Offer `values` (after `all` when `with_all`) and select `value` if it is one of them, else `all`."""
        sel = self.query_one(wid, Select)
        # Text prompts: labels such as `transfer[source]` are not markup (a str prompt would lose "[source]").
        opts = ([(ALL, ALL)] if with_all else []) + [(Text(v), v) for v in values]
        sel.set_options(opts)
        if value is not None and value in values:
            sel.value = value
        elif with_all:
            sel.value = ALL
