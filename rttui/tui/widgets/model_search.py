"""A search box over timm's model names: type to see matches, enter (or a click) picks one.

timm's list (~1,300 names; importing timm takes seconds) is loaded once, in a thread worker, the first time
something is typed; until then the list says it is loading. A pick is posted as `ModelSearch.Picked`, and the
owner decides what to do with the name. Never import timm or torch here: the names come through `rttui.api`.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, OptionList

from rttui.tui.messages import ModelsListed

MAX_MATCHES = 50


def rank_matches(names: list[str], text: str, limit: int = MAX_MATCHES) -> list[str]:
    """The names containing `text` (case-insensitive): those starting with it first, then shorter, then by name."""
    q = text.strip().lower()
    hits = [m for m in names if q in m.lower()]
    hits.sort(key=lambda m: (not m.lower().startswith(q), len(m), m))
    return hits[:limit]


class ModelSearch(Vertical):
    """A labelled search field (`#f-model-search`) over a list of matches (`#f-model-matches`)."""

    DEFAULT_CSS = """
    ModelSearch {
        height: auto;
    }
    """

    class Picked(Message):
        """A model name was chosen from the matches."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, load_names: Callable[[], list[str]], label: str = "search") -> None:
        super().__init__()
        self.load_names = load_names
        self.label = label
        self.names: list[str] = []
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Horizontal(
            Label(self.label, classes="field-label"),
            Input(id="f-model-search", compact=True, placeholder="type to search timm"),
            classes="field",
        )
        yield OptionList(id="f-model-matches", compact=True)

    def on_mount(self) -> None:
        self.query_one(OptionList).display = False

    @on(Input.Changed, "#f-model-search")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()  # a search is not an edit of the form around it
        self.search(event.value)

    def search(self, text: str) -> None:
        matches = self.query_one(OptionList)
        if not text.strip():
            matches.display = False
            return
        matches.display = True
        if not self.names:
            matches.clear_options()
            matches.add_option("loading timm's model list…")
            if not self._loading:
                self._loading = True

                def load() -> None:
                    try:
                        self.post_message(ModelsListed(self.load_names()))
                    except Exception as exc:
                        self.post_message(ModelsListed([], str(exc)))

                self.run_worker(load, thread=True, exclusive=True, group="timm-models", exit_on_error=False)
            return
        matches.clear_options()
        matches.add_options(rank_matches(self.names, text) or ["no timm model matches"])

    def on_models_listed(self, msg: ModelsListed) -> None:
        msg.stop()
        self._loading = False
        if msg.error:
            self.app.notify(f"timm models could not be listed: {msg.error}", severity="error", markup=False)
            return
        self.names = msg.names
        self.search(self.query_one("#f-model-search", Input).value)

    @on(Input.Submitted, "#f-model-search")
    def _pick_highlighted(self, event: Input.Submitted) -> None:
        event.stop()
        matches = self.query_one(OptionList)
        if matches.option_count and self.names:
            idx = matches.highlighted if matches.highlighted is not None else 0
            self._pick(str(matches.get_option_at_index(idx).prompt))

    @on(OptionList.OptionSelected, "#f-model-matches")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.names:
            self._pick(str(event.option.prompt))

    def _pick(self, name: str) -> None:
        if name in self.names:  # not the "loading…" or "no match" line
            self.post_message(self.Picked(name))
