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

from rttui.tui.screens.base import RttuiScreen

ALL = "all"


def picker_values(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The choices each picker offers, from what the study holds."""
    out: dict[str, list[str]] = {}
    for axis in ("attack", "strategy", "model", "technique", "dataset"):
        out[axis] = list(dict.fromkeys(str(r[axis]) for r in records))
    out["eps"] = [f"{e:g}" for e in sorted({float(r["eps"]) for r in records})]
    return out


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

    def _start(self) -> None:
        name = self.study
        if not name:
            self.query_one(f"#{self.NOTE_ID}", Static).update("no study chosen: pick one on the Studies screen (1)")
            return
        self.start_polling(self.reader(name, self.query_now()), self.POLL_GROUP, every=5)

    @on(Select.Changed)
    def _changed(self) -> None:
        if not self._filling:
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
