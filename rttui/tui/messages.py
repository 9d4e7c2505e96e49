"""Past-tense messages that worker threads post back to screens (the UI thread applies them).

Polling results coalesce: a newer message of the same kind replaces one still waiting in the queue, so a
busy study redraws its latest state rather than every tick.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class Coalescing(Message):
    """A message whose newer copy supersedes an older one still queued."""

    def can_replace(self, message: Message) -> bool:
        return type(message) is type(self)


class StudiesListed(Coalescing):
    def __init__(self, rows: list[Any], error: str = "") -> None:
        super().__init__()
        self.rows = rows
        self.error = error


class ProgressPolled(Coalescing):
    def __init__(self, study: str, data: dict[str, Any], error: str = "") -> None:
        super().__init__()
        self.study = study
        self.data = data
        self.error = error


class ModelsListed(Message):
    def __init__(self, names: list[str], error: str = "") -> None:
        super().__init__()
        self.names = names
        self.error = error


class StudyChecked(Coalescing):
    def __init__(self, text: str, info: dict[str, Any], error: str = "") -> None:
        super().__init__()
        self.text = text
        self.info = info
        self.error = error


class ResultsLoaded(Coalescing):
    def __init__(self, study: str, records: list[dict[str, Any]], error: str = "") -> None:
        super().__init__()
        self.study = study
        self.records = records
        self.error = error
