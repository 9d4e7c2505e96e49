"""Commands about study files: validate, plan, and the datasets a study can name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rttui import api
from rttui.cli.options import DbOpt, FormatOpt
from rttui.cli.output import check_format, out, print_json

app = typer.Typer()


@app.command()
def validate(
    study: Annotated[Path, typer.Argument(help="study TOML file")],
    check_data: Annotated[bool, typer.Option("--check-data", help="also load every dataset it names")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Check a study file: keys, names, epsilons, models (and data with --check-data)."""
    check_format(fmt, ("table", "json"))
    s = api.validate_study(study, data=check_data)
    n = len(api.make_plan(s).runs)
    if fmt == "json":
        print_json({"study": s.name, "valid": True, "runs": n, "blocks": len(s.blocks)})
    else:
        out.print(f"{study}: study {s.name!r} is valid: {len(s.blocks)} block(s), {n} runs")


@app.command()
def plan(
    study: Annotated[Path, typer.Argument(help="study TOML file")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List the runs a study implies and which are already done in the database."""
    check_format(fmt, ("table", "json"))
    s = api.load_study(study)
    rows = api.plan_status(s, db)
    if fmt == "json":
        print_json([r.__dict__ for r in rows])
        return
    t = Table(title=f"{s.name}: {len(rows)} runs", title_justify="left")
    for c in ("run id", "run", "state", "evaluations"):
        t.add_column(c)
    for r in rows:
        t.add_row(r.id, r.label, r.state, f"{r.evals_done}/{r.evals_total}")
    out.print(t)
    todo = sum(r.state != "done" or r.evals_done < r.evals_total for r in rows)
    out.print(f"{len(rows) - todo} done, {todo} to do")


@app.command()
def datasets(fmt: FormatOpt = "table") -> None:
    """List the datasets a study can name and where each looks for its files (set `root` to override)."""
    check_format(fmt, ("table", "json"))
    rows = api.datasets()
    if fmt == "json":
        print_json(rows)
        return
    t = Table(title="datasets: dataset = NAME; files under root = ..., else $RTTUI_DATA (./data)", title_justify="left")
    for c in ("name", "what", "files (without root = ...)"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["help"], r["files"])
    out.print(t)
