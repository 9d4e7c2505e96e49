"""The app: modes (one per screen), app-wide keys, the command palette, themes; built by `make_app`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from rttui import api

# (mode, key, title, what it is for). The order is the order of the keys 1..7 and of the help screen.
SCREENS: tuple[tuple[str, str, str, str], ...] = (
    ("studies", "1", "Studies", "studies in the studies folder and in the database, with their progress"),
    ("builder", "2", "Builder", "assemble a study, see its size and errors, save it, launch it"),
    ("monitor", "3", "Monitor", "the runs of a launched study, live"),
    ("results", "4", "Results", "mean ± std over seeds, by attack and epsilon"),
    ("ttest", "5", "T-test", "paired tests between two configurations"),
    ("plots", "6", "Plots", "accuracy-epsilon curves and the clean/robust trade-off"),
    ("export", "7", "Export", "write CSV, JSON, Markdown or LaTeX"),
)

# What read-only (`rttui tui --read-only`, `rttui serve --read-only`) takes away, in one place: the screens whose
# purpose is to write (study files, exported files) and, on every other screen, the actions that change something
# (the database, study files, runner processes), plus `new`/`edit`, which lead to the Builder.
WRITING_SCREENS = frozenset({"builder", "export"})
WRITE_ACTIONS = frozenset({"launch", "retry", "cancel", "delete", "duplicate", "save", "write", "new", "edit"})


@dataclass
class Current:
    """The study the screens are about (chosen on the Studies screen, or saved/launched by the Builder)."""

    name: str = ""
    path: str = ""


def _screen(mode: str) -> Screen:
    """Import a screen's module only when it is first shown (keeps start-up fast)."""
    import importlib

    module = importlib.import_module(f"rttui.tui.screens.{mode}")
    return module.SCREEN()


class RttuiApp(App[None]):
    """rttui's full-screen face. Build it with `make_app`."""

    CSS_PATH = "rttui.tcss"
    TITLE = "rttui"
    BINDINGS = [
        *[Binding(key, f"mode('{mode}')", title, show=False) for mode, key, title, _ in SCREENS],
        # The same screens on F1..F7 work from anywhere, a text input included. Function keys are plain escape
        # sequences that survive SSH and tmux; alt+digit is not (tmux turned alt+4 into a typed "¢").
        *[Binding(f"f{key}", f"mode('{mode}')", title, show=False, priority=True) for mode, key, title, _ in SCREENS],
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_hint", "Quit", show=False),  # the usual quit key says which one quits here
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
    ]

    def __init__(
        self,
        db: str | Path | None = None,
        studies_dir: str | Path | None = "studies",
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        theme: str = "textual-dark",
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.read_only = read_only
        if read_only:
            for mode in WRITING_SCREENS:
                self.remove_mode(mode)
        self.db = api.db_path(db)
        self.studies_dir = Path(studies_dir) if studies_dir else None
        self.clock = clock
        self.poll_interval = poll_interval
        self.current = Current()
        # A runner this app launched and is not yet seen holding the database: {"study", "pid", "at"}.
        self.launching: dict | None = None
        # What Results and T-test show, so Export writes the same thing.
        self.results_query: dict = {}
        self.ttest_query: dict = {}
        self.theme = theme
        self.sub_title = self.db.name
        if read_only:
            self.title = "rttui (read-only)"  # the header says so on every screen

    # Each screen lives in its own mode, so it keeps its state (and its poller) while another is in front.
    MODES = {mode: (lambda m=mode: _screen(m)) for mode, *_ in SCREENS}

    def on_mount(self) -> None:
        self.switch_mode("studies")
        if not self.read_only:  # the Builder's model search: timm's list takes seconds, so it loads now, once
            import threading

            threading.Thread(target=api.model_names, daemon=True, name="timm-models").start()

    def refuses(self, action: str, parameters: tuple[object, ...] = ()) -> bool:
        """Whether read-only forbids an action; every screen asks it for its keys and palette entries."""
        if not self.read_only:
            return False
        if action == "mode":
            return bool(parameters) and parameters[0] in WRITING_SCREENS
        return action in WRITE_ACTIONS

    def action_mode(self, mode: str) -> None:
        if self.refuses("mode", (mode,)):  # said, not hidden: people know the number keys by heart
            self.notify(f"the {mode} screen is off: this app is read-only", severity="warning")
            return
        if mode not in self.MODES:
            self.notify(f"the {mode} screen is not in this version", severity="warning")
            return
        if self.current_mode != mode:
            self.switch_mode(mode)

    def action_help(self) -> None:
        from rttui.tui.screens.base import RttuiScreen
        from rttui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):  # the keys shown are those of the screen under any dialog
            below = next((s for s in reversed(self.screen_stack) if isinstance(s, RttuiScreen)), None)
            self.push_screen(HelpScreen(below))

    def action_quit_hint(self) -> None:
        self.notify("press ctrl+q to quit (a launched study keeps running)", timeout=4)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def open_study(self, name: str, path: str = "") -> None:
        """Make a study the current one; screens read it when they are shown."""
        self.current = Current(name, path)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, title, help_ in SCREENS:
            if self.refuses("mode", (mode,)):
                continue
            yield SystemCommand(f"Go to {title} ({key})", help_, lambda m=mode: self.action_mode(m))
        yield SystemCommand(
            "Toggle dark/light theme (ctrl+t)", "switch between the dark and light theme", self.action_toggle_theme
        )
        yield SystemCommand("Help (?)", "every key of every screen", self.action_help)
        # Every key of the screen in front is also a palette entry.
        for b in getattr(type(screen), "BINDINGS", ()):
            if isinstance(b, Binding) and b.description and not self.refuses(b.action.split("(")[0]):
                yield SystemCommand(
                    f"{b.description} ({b.key_display or b.key.split(',')[0]})",
                    b.tooltip or b.description,
                    lambda a=b.action, s=screen: self.call_later(s.run_action, a),
                )


def make_app(
    db: str | Path | None = None,
    studies_dir: str | Path | None = "studies",
    clock: Callable[[], float] = time.time,
    poll_interval: float = 1.0,
    theme: str = "textual-dark",
    read_only: bool = False,
) -> RttuiApp:
    """The one way to build the app: the CLI, `rttui serve`, the tests and the screenshot script all use it.

    `clock` and `poll_interval` exist so tests and screenshots can freeze time and poll fast. `read_only` shows
    the analysis screens only and refuses every action that writes (see `WRITE_ACTIONS`).
    """
    return RttuiApp(
        db=db, studies_dir=studies_dir, clock=clock, poll_interval=poll_interval, theme=theme, read_only=read_only
    )
