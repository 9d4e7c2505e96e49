"""Small helpers for Pilot tests."""

from __future__ import annotations

from collections.abc import Callable


async def wait_for(pilot, cond: Callable[[], object], tries: int = 200, step: float = 0.05) -> None:
    """Let the app run until `cond()` holds (workers post their results asynchronously)."""
    for _ in range(tries):
        if cond():
            return
        await pilot.pause(step)
    raise AssertionError("condition not met in time")


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus a field by clicking nothing: set focus, clear it with keys, type the text key by key."""
    w = pilot.app.screen.query_one(selector)
    w.focus()
    await pilot.pause()
    await pilot.press("end", "ctrl+u", *list(text))
