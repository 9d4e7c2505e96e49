"""Plots: the accuracy-epsilon curves of a study (mean over seeds, one line per configuration) and the
trade-off between standard and adversarial accuracy at one epsilon, drawn in the terminal (plotext)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Footer, Header, Label, Select, Static
from textual_plotext import PlotextPlot

from rttui import api
from rttui.errors import RttuiError
from rttui.tui.messages import ResultsLoaded
from rttui.tui.screens.analysis import in_app_words
from rttui.tui.screens.base import NO_STUDY, RttuiScreen

KINDS = (("accuracy vs eps", "curves"), ("trade-off: clean vs adversarial", "tradeoff"))


def config_name(row: dict[str, Any], vary: list[str]) -> str:
    """The shortest label that tells configurations apart: only the axes that vary in the study."""
    return "/".join(str(row[a]) for a in vary) or str(row["model"])


class PlotsScreen(RttuiScreen):
    TITLE_TEXT = "Plots"
    BINDINGS = [
        Binding("k", "cycle('kind')", "Kind", tooltip="switch between the eps curves and the trade-off"),
        Binding("a", "cycle('attack')", "Attack", tooltip="next attack"),
        Binding("e", "cycle('eps')", "Eps", tooltip="next epsilon (trade-off plot)"),
        Binding("f5", "refresh", "Refresh", show=False, tooltip="read the database again now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.study = ""
        self.summary: list[dict[str, Any]] = []
        self.loaded = 0
        self.drawn: dict[str, Any] = {}
        self.choices: dict[str, list[str]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="pickers"):
            yield Label("plot")
            yield Select(KINDS, value="curves", id="pl-kind", compact=True, allow_blank=False)
            yield Label("attack")
            yield Select([], id="pl-attack", compact=True, allow_blank=True, prompt="-")
            yield Label("eps")
            yield Select([], id="pl-eps", compact=True, allow_blank=True, prompt="-")
        yield Static("", id="pl-note", classes="note")
        yield PlotextPlot(id="pl-plot")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        name = self.rapp.current.name
        if name == self.study and self.loaded:
            return
        self.study = name
        if not name:
            self.query_one("#pl-note", Static).update(NO_STUDY)
            return
        db = self.rapp.db

        def read() -> ResultsLoaded:
            try:
                return ResultsLoaded(name, api.export_records(db, name))
            except RttuiError as exc:
                return ResultsLoaded(name, [], in_app_words(exc))

        self.start_polling(read, "poll-plots", every=3)

    def action_refresh(self) -> None:
        self.poll_now()

    def on_results_loaded(self, msg: ResultsLoaded) -> None:
        if msg.study != self.study:
            return
        self.loaded += 1
        if msg.error:
            self.query_one("#pl-note", Static).update(Content.styled(msg.error, "red"))
            return
        summary = api.summary(msg.records)
        if summary == self.summary and self.drawn:
            return
        self.summary = summary
        attacks = list(dict.fromkeys(r["attack"] for r in summary))
        eps = sorted({r["eps"] for r in summary})
        self._options("#pl-attack", attacks, api.default_attack(attacks))
        mid = api.default_eps(eps) if eps else None
        self._options("#pl-eps", [f"{e:g}" for e in eps], f"{mid:g}" if mid is not None else None)
        self.draw()

    def _options(self, wid: str, values: list[str], default: str | None) -> None:
        sel = self.query_one(wid, Select)
        self.choices[wid] = values
        old = sel.value
        with sel.prevent(Select.Changed):
            sel.set_options([(Text(v), v) for v in values])  # plain text: `transfer[source]` is not markup
            if old in values:
                sel.value = old
            elif default is not None:
                sel.value = default

    @on(Select.Changed)
    def _picked(self) -> None:
        self.draw()

    def action_cycle(self, which: str) -> None:
        sel = self.query_one(f"#pl-{which}", Select)
        values = self.choices.get(f"#pl-{which}", [v for _, v in KINDS])
        if not values:
            return
        i = values.index(sel.value) if sel.value in values else -1
        sel.value = values[(i + 1) % len(values)]

    def draw(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        kind = self.query_one("#pl-kind", Select).value
        attack = self.query_one("#pl-attack", Select).value
        eps_v = self.query_one("#pl-eps", Select).value
        rows = [r for r in self.summary if r["attack"] == attack]
        note = self.query_one("#pl-note", Static)
        if not rows:
            note.update(Content(f"{self.study}: no results yet") if self.study else NO_STUDY)
            self.drawn = {}
            plot.refresh()
            return
        vary = [a for a in api.CONFIG_AXES if len({r[a] for r in rows}) > 1]
        seeds = sorted({s for r in rows for s in r["seeds"]})
        params = rows[0]["params"]
        self.drawn = {"kind": kind, "attack": attack, "eps": eps_v, "lines": {}}
        if kind == "curves":
            by: dict[str, list[tuple[float, float]]] = {}
            for r in rows:
                by.setdefault(config_name(r, vary), []).append((r["eps"], 100 * r["adv"].mean))
            plt.title(f"{attack}: adversarial accuracy (%) vs eps")
            plt.xlabel("eps ([0, 1] pixels)")
            plt.ylim(0, 100)
            self.drawn["ylim"] = (0, 100)
            for name, pts in by.items():
                pts.sort()
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=name, marker="braille")
                self.drawn["lines"][name] = pts
        else:
            at = [r for r in rows if f"{r['eps']:g}" == eps_v]
            plt.title(f"{attack} at eps {eps_v}: clean vs adversarial accuracy (%)")
            plt.xlabel("clean accuracy (%)")
            plt.ylabel("adversarial (%)")
            plt.ylim(0, 100)  # accuracies: an axis below 0% or above 100% would show impossible values
            self.drawn["ylim"] = (0, 100)
            for r in at:
                name = config_name(r, vary)
                pt = (100 * r["clean"].mean, 100 * r["adv"].mean)
                plt.scatter([pt[0]], [pt[1]], label=name, marker="●")
                self.drawn["lines"][name] = [pt]
        note.update(Content(f"{self.study} · {params} · mean over seeds {', '.join(map(str, seeds))}"))
        plot.refresh()


SCREEN = PlotsScreen
