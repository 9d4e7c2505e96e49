"""The Textual face: `make_app(...)` builds the app the `rttui` command, `rttui serve` and the tests run.

It talks only to `rttui.api`, never imports torch at import time, and never owns a run: it launches detached
`rttui run` processes and watches the database from worker threads.
"""

from rttui.tui.app import RttuiApp, make_app

__all__ = ["RttuiApp", "make_app"]
