"""The options every command group shares (typer `Annotated` aliases), so a flag reads the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOpt = Annotated[Path | None, typer.Option("--db", help="SQLite database (default: $RTTUI_DB, else ./rttui.db)")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
TableFormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, json, md, latex or csv")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="write to a file instead of stdout")]
AttackOpt = Annotated[str | None, typer.Option(help="attack name, or all")]
EpsOpt = Annotated[float | None, typer.Option(help="one epsilon of the evaluated grid (default: all)")]
RowsOpt = Annotated[
    str | None, typer.Option(help="comma list of axes for rows: dataset,model,strategy,technique,attack,eps")
]
ColsOpt = Annotated[str | None, typer.Option(help="comma list of axes for columns (default: metrics only)")]
WhereOpt = Annotated[list[str] | None, typer.Option(help="AXIS=VALUE filter, repeatable (e.g. model=resnet50)")]
StudyOpt = Annotated[
    str | None,
    typer.Option(help="the study to read (default: the only one; several in the database: name one, or all to mix)"),
]
StudiesOpt = Annotated[Path, typer.Option("--studies", help="folder of study files to list")]


def attack_or_all(a: str | None) -> str | None:
    """`--attack all` (or none given) means every attack."""
    return None if a in (None, "all") else a
