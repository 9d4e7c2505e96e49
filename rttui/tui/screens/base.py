"""What every rttui screen shares: header, footer, the current study, and a polling worker that reads the
database off the UI thread and posts what it read back as a message."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

if TYPE_CHECKING:
    from rttui.tui.app import RttuiApp


class RttuiScreen(Screen[None]):
    """A screen of the app. Subclasses call `start_polling` to watch the database."""

    TITLE_TEXT = ""

    def __init__(self) -> None:
        super().__init__()
        self._wake = threading.Event()

    @property
    def rapp(self) -> RttuiApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.sub_title = self.TITLE_TEXT

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Read-only hides and refuses the screen's writing keys (the rule lives in `RttuiApp.refuses`)."""
        return not self.rapp.refuses(action, parameters)

    def tell(self, message: str, severity: str = "information", timeout: float = 5) -> None:
        """A toast with the text as written (messages name keys like `grid[0]` that are not markup)."""
        self.app.notify(message, severity=severity, timeout=timeout, markup=False)  # type: ignore[arg-type]

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
