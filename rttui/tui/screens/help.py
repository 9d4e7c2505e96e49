"""The help screen: every screen, its key, and the keys of the screen it was opened from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

INTRO = """\
# rttui

Measure how much adversarial robustness survives transfer learning. Build a study, launch it (it runs as a
detached `rttui run` process, so closing this terminal loses nothing), watch it, then compare, test and export.

| key | screen |
| --- | --- |
{screens}

| key | anywhere |
| --- | --- |
| `f1` .. `f7` | the screens, also from inside a text field |
| `ctrl+p` | command palette: every action by name |
| `?` | this help |
| `ctrl+t` | dark / light theme |
| `tab` / `shift+tab` | next / previous field |
| `escape` | leave a text field (then `1`..`7` and the letters act again); close a dialog |
| `ctrl+q` | quit (a launched study keeps running) |
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, below: Screen | None = None) -> None:
        super().__init__()
        self.below = below  # the screen it was opened from (once pushed, the top of the stack is this one)

    def compose(self) -> ComposeResult:
        from rttui.tui.app import SCREENS

        rows = "\n".join(f"| `{key}` | **{title}**: {what} |" for _, key, title, what in SCREENS)
        text = INTRO.format(screens=rows)
        folder = getattr(self.app, "studies_dir", None)
        text += f"\nStudy files are read from and saved to `{folder or '(none)'}/` (`--studies DIR`).\n"
        below = self.below
        own = [b for cls in reversed(type(below).__mro__) for b in cls.__dict__.get("BINDINGS", ())]
        keys = [b for b in own if isinstance(b, Binding) and b.description]
        if keys:
            title = getattr(below, "TITLE_TEXT", "") or "this screen"
            text += f"\n| key | {title} |\n| --- | --- |\n"
            text += "\n".join(f"| `{b.key.split(',')[0]}` | {b.tooltip or b.description} |" for b in keys)
        with VerticalScroll(classes="dialog help"):
            yield Markdown(text)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
