"""Warnings under a compare table say their level once ("warning x", never "warning warning: x")."""

from __future__ import annotations

from rttui.cli.render import _warning_line


def test_a_stored_checks_level_is_said_once_and_an_error_reads_as_one() -> None:
    assert _warning_line("warning: cfg seed 0: pgd leaves 4 more samples correct") == (
        "[bold yellow]warning[/] cfg seed 0: pgd leaves 4 more samples correct"
    )
    assert _warning_line("error: cfg seed 1: nan logits").startswith("[bold red]error[/] cfg seed 1")
    # the audit's own lines carry no level: kept whole
    assert _warning_line("cfg seed 0: audit at ε=0.03: fooled 9 of 9") == (
        "[bold yellow]warning[/] cfg seed 0: audit at ε=0.03: fooled 9 of 9"
    )
