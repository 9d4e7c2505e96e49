"""Tables on a narrow terminal (80 columns over SSH): no cell is cut. A compare table too wide for the console
comes in blocks of columns with the labels repeated (as pandas prints a wide frame); a tests table gives up t,
then n, and says so. Rich left alone would print "test_r…" and "65.6±2…", and a cut number reads as another."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from rttui import api
from rttui.cli.render import compare_tables
from rttui.cli.render import tests_table as rich_tests_table


def render(tables: list, width: int) -> list[str]:
    buf = io.StringIO()
    c = Console(width=width, file=buf, color_system=None)
    for t in tables:
        c.print(t)
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def test_a_compare_table_too_wide_comes_in_blocks_of_whole_cells(seeds3_db: Path) -> None:
    comp = api.compare(seeds3_db, None, "pgd", None, None, "eps", None, metrics=["clean", "adv"])
    t = comp.tables[0]
    assert len(compare_tables(t, None)) == 1
    width = 50  # the labels and one number column fit, not all of them
    assert max(len(line) for line in render(compare_tables(t, None), 1000)) > width
    tables = compare_tables(t, width)
    assert len(tables) >= 2 and all(f"(part {k + 1} of {len(tables)})" in str(x.title) for k, x in enumerate(tables))
    lines = render(tables, width)
    assert max(len(line) for line in lines) <= width and not any("…" in line for line in lines)
    text = "\n".join(lines)
    for row in t.body():  # every cell whole, labels in every block
        for cell in row:
            assert cell in text
        assert sum(line.startswith(f"│ {row[0]} ") for line in lines) == len(tables)
    assert [x.caption is not None for x in tables] == [False] * (len(tables) - 1) + [True]
    # Each number column is in exactly one block, in order.
    headers = [str(c.header) for x in tables for c in x.columns[len(t.row_axes) :]]
    assert headers == t.header()[len(t.row_axes) :]


def test_a_compare_table_that_fits_is_printed_as_before(seeds3_db: Path) -> None:
    comp = api.compare(seeds3_db, None, "pgd", 0.03, None, "eps", None)
    t = comp.tables[0]
    natural = max(len(line) for line in render(compare_tables(t, None), 1000))
    assert render(compare_tables(t, natural + 20), natural + 20) == render(compare_tables(t, None), natural + 20)


def test_a_narrow_tests_table_gives_up_t_then_n_and_says_so(seeds3_db: Path) -> None:
    rows = api.ttest(seeds3_db, "strategy", "full", "layer_freezing", "adv_acc", "pgd", None, None)
    grid = api.tests_grid(rows)
    natural = max(len(line) for line in render([rich_tests_table(rows)], 1000))
    width = natural - 6  # the short header and t are enough
    table = rich_tests_table(rows, width)
    labels = [str(c.header) for c in table.columns]
    assert "t" not in labels and "Δ pts" in labels and "p Holm" in labels and "d_z" in labels
    lines = render([table], width)
    assert max(len(line) for line in lines) <= width and not any("…" in line for line in lines)
    assert "left out at this width" in str(table.caption) and "t " in str(table.caption).split("(")[-1]
    for r in grid["rows"]:
        assert r[0] in "\n".join(lines)  # the labels whole
    assert [str(c.header) for c in rich_tests_table(rows, natural + 10).columns] == grid["header"]
