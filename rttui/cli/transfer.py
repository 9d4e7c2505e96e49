"""`rttui transfer`: the transferability matrix (surrogate x target adversarial accuracy, white-box PGD on the
diagonal). One Typer per domain file, merged flat into the main app by `rttui.cli.app` (`app.add_typer`).

A thin shell over `rttui.api.transfer`; never import torch or a layer below the facade here.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rttui import api
from rttui.cli.options import DbOpt, OutputOpt, StudyOpt, TableFormatOpt
from rttui.cli.output import check_format, check_output_file, emit, out

app = typer.Typer()


@app.command("transfer")
def transfer(
    db: DbOpt = None,
    study: StudyOpt = None,
    eps: Annotated[
        float | None, typer.Option(help="one epsilon (default: 0.03 if evaluated; json/csv: every epsilon)")
    ] = None,
    fmt: TableFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Transfer attacks: surrogate x target adversarial accuracy (mean±std over seeds), white-box PGD diagonal."""
    check_format(fmt, api.TRANSFER_FORMATS)
    check_output_file(output, "--output")
    matrices = api.transfer(db, study, eps, all_eps=fmt in ("json", "csv"))
    if fmt != "table":
        emit(api.transfer_text(matrices, fmt), output, f"wrote {len(matrices)} matrix(es) to {output}")
        return
    for m in matrices:
        out.print(matrix_table(m))
        out.print(escape(m.caption))
        for w in m.warnings:
            out.print(f"[bold yellow]⚠[/] {escape(w)}")
        out.print()


def matrix_table(m: api.TransferMatrix) -> Table:
    """The matrix as a rich table; the diagonal (white-box PGD) in italics."""
    t = Table(title=escape(m.title), title_justify="left")
    for i, h in enumerate(m.header()):  # model/strategy on two lines: six targets fit 160 columns
        t.add_column(escape(h if i == 0 else h.replace("/", "/\n")), justify="left" if i == 0 else "right")
    for row in m.body():
        cells = [escape(row[0])] + [f"[italic]{escape(x)}[/]" if x.endswith(" wb") else escape(x) for x in row[1:]]
        t.add_row(*cells)
    return t
