"""Check marks that say on or off by their glyph, not only by colour: Textual draws `X` for both states and
tells them apart by colour, which many terminals (and a screenshot in grey) lose. Never reads data."""

from __future__ import annotations

from rich.segment import Segment
from textual.content import Content
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList
from textual.widgets._toggle_button import ToggleButton

ON, OFF = "✓", " "


class MarkedCheckbox(Checkbox):
    """A checkbox drawn `✓` when on and blank when off."""

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = ON if self.value else OFF
        return Checkbox._button.fget(self)  # type: ignore[attr-defined]


class MarkedSelectionList(SelectionList):
    """A selection list whose options are drawn `✓` when selected and blank when not."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        for i, seg in enumerate(segments[:4]):
            if seg.text == ToggleButton.BUTTON_INNER and seg.style is not None:
                index = seg.style.meta.get("option")
                if index is None:
                    break
                on = self.get_option_at_index(index).value in self._selected
                segments[i] = Segment(ON if on else OFF, seg.style)
                return Strip(segments, strip.cell_length)
        return strip
