"""`fit_columns`: a table narrowed to the screen gives up only what it must, in the order asked, and says what."""

from __future__ import annotations

from rttui.analysis.export import fit_columns, table_width

HEADER = ["model", "diff (pts)", "t", "p", "n"]
ROWS = [["test_resnet", "+69.1", "8.12", "0.015", "3"], ["test_vit2", "-0.2", "-2.00", "0.184", "3"]]


def test_a_table_that_fits_is_left_as_it_is() -> None:
    w = table_width(HEADER, ROWS)
    assert w == (11 + 2) + (10 + 2) + (5 + 2) + (5 + 2) + (1 + 2)
    assert fit_columns(HEADER, ROWS, w, {"diff (pts)": "Δ"}, ("t", "n")) == (HEADER, ROWS, [])


def test_short_headers_first_then_columns_in_order_until_it_fits() -> None:
    w = table_width(HEADER, ROWS)
    header, rows, out = fit_columns(HEADER, ROWS, w - 5, {"diff (pts)": "Δ pts"}, ("t", "n"))
    assert (header, rows, out) == (["model", "Δ pts", "t", "p", "n"], ROWS, [])  # the short header was enough
    header, rows, out = fit_columns(HEADER, ROWS, w - 6, {"diff (pts)": "Δ pts"}, ("t", "n"))
    assert out == ["t"] and header == ["model", "Δ pts", "p", "n"]
    assert rows == [["test_resnet", "+69.1", "0.015", "3"], ["test_vit2", "-0.2", "0.184", "3"]]
    header, rows, out = fit_columns(HEADER, ROWS, 10, None, ("n", "absent", "t"))
    assert out == ["n", "t"] and header == ["model", "diff (pts)", "p"]  # never more than `drop` names
    assert rows[0] == ["test_resnet", "+69.1", "0.015"]
