"""What every rttui screen shares: header, footer, the current study, and a polling worker that reads the
database off the UI thread and posts what it read back as a message."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, TextArea
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from rttui.tui.app import RttuiApp


# What a screen about one study says while none is chosen (never a blank pane).
NO_STUDY = "no study chosen: pick one on the Studies screen (1)"


class RttuiScreen(Screen[None]):
    """A screen of the app. Subclasses call `start_polling` to watch the database."""

    TITLE_TEXT = ""
    # Escape leaves a text input, so the screen keys (1..7, letters) act on the screen again. Active only while
    # an input has focus (see `check_action`), so escape keeps its other meanings elsewhere.
    BINDINGS = [Binding("escape", "leave_input", "Leave field", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self._wake = threading.Event()

    @property
    def rapp(self) -> RttuiApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        # The header names the keys a new user needs before any other: how to move between screens and out.
        self.sub_title = f"{self.TITLE_TEXT} · 1-7/F1-F7 screens · ? keys · ^q quit"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only hides and refuses the screen's writing keys (the rule lives in `RttuiApp.refuses`)."""
        if action == "leave_input":
            return isinstance(self.focused, Input | TextArea)
        return not self.rapp.refuses(action, parameters)

    def action_leave_input(self) -> None:
        self.set_focus(None)

    def on_key(self, event: events.Key) -> None:
        """A key read-only took away says so (it is hidden from the footer, but fingers remember it)."""
        if not self.rapp.read_only or isinstance(self.focused, Input | TextArea):
            return
        for b in self._bindings.key_to_bindings.get(event.key, ()):
            action = b.action.split("(")[0]
            if self.rapp.refuses(action):
                event.stop()
                event.prevent_default()
                self.tell(f"{b.description or action} is off: this app is read-only", severity="warning")
                return

    @on(events.ScreenResume)
    def _focus_no_input(self) -> None:
        """Entering a screen never puts the cursor in a text input, where the screen keys would type.

        Textual focuses the first focusable widget, or the one focused when the screen was left; an input there
        turned `5` (go to T-test) into a `5` typed into the Builder's epsilons.
        """
        if isinstance(self.focused, Input | TextArea):
            self.set_focus(None)
        if self.focused is None:
            for widget in self.focus_chain:
                if not isinstance(widget, Input | TextArea):
                    self.set_focus(widget, scroll_visible=False)
                    break

    def tell(self, message: str, severity: str = "information", timeout: float = 5) -> None:
        """A toast with the text as written (messages name keys like `grid[0]` that are not markup)."""
        self.app.notify(message, severity=severity, timeout=timeout, markup=False)  # type: ignore[arg-type]

    def launch_after_asking(self, path: str, go: Callable[[], None]) -> None:
        """Run `go` (the launch) at once for a small study; a large plan or a full-size model asks y/n first."""
        from rttui import api
        from rttui.tui.screens.confirm import Confirm

        question = api.launch_question(path, self.rapp.db)
        if question is None:
            go()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                go()
            else:
                self.tell("not launched")

        self.app.push_screen(Confirm(question), answered)

    def launched(self, info: dict[str, Any]) -> None:
        """Watch a runner this app just started: one that dies at once (refused, crashed) is an error that
        stays until dismissed, with its log's last line; one that runs on is reaped when it ends."""
        from rttui import api

        app = self.rapp
        app.launching = {"study": info.get("study", ""), "pid": info["pid"], "at": app.clock()}

        def watch() -> None:
            said = api.watch_launch(info)
            if said:
                app.launching = None
                with contextlib.suppress(RuntimeError):  # the app has closed meanwhile
                    app.call_from_thread(app.notify, said, severity="error", timeout=24 * 3600, markup=False)

        # A plain daemon thread, not a worker: it may wait on the process longer than the app lives.
        threading.Thread(target=watch, daemon=True, name=f"watch-{info['pid']}").start()

    def poll_now(self) -> None:
        """Ask the poller for fresh data at once instead of at its next tick."""
        self._wake.set()

    def start_polling(self, read: Callable[[], Message], group: str, every: float = 1.0) -> None:
        """Run `read` every `every` poll intervals in a thread worker; it returns the message to post.

        Analyses (compare, tests) poll less often than the monitor: they cost more and change only when an
        evaluation lands.
        """

        def loop() -> None:
            worker = get_current_worker()
            said = ""
            while not worker.is_cancelled:
                self._wake.clear()
                try:
                    msg = read()
                except Exception as exc:  # a database mid-creation, or a bug: say it once, try again next tick
                    msg = None
                    text = f"reading {self.rapp.db.name} failed: {type(exc).__name__}: {exc}"
                    if text != said and not worker.is_cancelled:
                        said = text
                        self.app.call_from_thread(self.tell, text, "error", 10)
                if msg is not None and not worker.is_cancelled:
                    self.post_message(msg)
                self._wake.wait(self.rapp.poll_interval * every)

        self.run_worker(loop, thread=True, exclusive=True, group=group, exit_on_error=False, name=group)

    def run_in_thread(self, fn: Callable[[], Any], group: str) -> None:
        """A one-off read or write off the UI thread (fn posts its own message)."""
        self.run_worker(fn, thread=True, exclusive=True, group=group, exit_on_error=False, name=group)

    def on_unmount(self) -> None:
        self._wake.set()
