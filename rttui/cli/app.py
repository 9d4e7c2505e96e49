"""Typer commands. Each one is a thin shell over `rttui.api`: parse options, call, print."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rttui import __version__, api

app = typer.Typer(
    name="rttui",
    help="Adversarial robustness of transfer-learned image models: run studies, store, compare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

DbOpt = Annotated[Path | None, typer.Option("--db", help="SQLite database (default: $RTTUI_DB, else ./rttui.db)")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
# Piped output (logs, CI) gets a wide console so tables are not truncated at 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


def _version(value: bool) -> None:
    if value:
        print(f"rttui {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """rttui: run transfer-robustness studies headless or in the TUI."""


def _json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _check_format(fmt: str, allowed: tuple[str, ...]) -> None:
    if fmt not in allowed:
        from rttui.errors import RttuiError

        raise RttuiError(f"--format {fmt!r} is not supported here; use one of {', '.join(allowed)}")


@app.command()
def validate(
    study: Annotated[Path, typer.Argument(help="study TOML file")],
    check_data: Annotated[bool, typer.Option("--check-data", help="also load every dataset it names")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Check a study file: keys, names, epsilons, models (and data with --check-data)."""
    _check_format(fmt, ("table", "json"))
    s = api.validate_study(study, data=check_data)
    n = len(api.make_plan(s).runs)
    if fmt == "json":
        _json({"study": s.name, "valid": True, "runs": n, "blocks": len(s.blocks)})
    else:
        out.print(f"{study}: study {s.name!r} is valid: {len(s.blocks)} block(s), {n} runs")


@app.command()
def plan(
    study: Annotated[Path, typer.Argument(help="study TOML file")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List the runs a study implies and which are already done in the database."""
    _check_format(fmt, ("table", "json"))
    s = api.load_study(study)
    rows = api.plan_status(s, db)
    if fmt == "json":
        _json([r.__dict__ for r in rows])
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
def run(
    study: Annotated[Path, typer.Argument(help="study TOML file")],
    db: DbOpt = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda if available, else cpu)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    json_events: Annotated[bool, typer.Option("--json-events", help="one JSON event per line on stdout")] = False,
) -> None:
    """Run (or resume) a study: train sources and runs, attack them, store everything, print the results."""
    from rttui.cli.progress import JsonListener, RichListener
    from rttui.cli.render import accuracy_tables, checks_table

    s = api.validate_study(study)
    if json_events:
        api.run_study(s, db, JsonListener(), device)
        return
    with RichListener(err, quiet=quiet) as listener:
        result = api.run_study(s, db, listener, device)
    records = api.export_records(db, s.name)
    summary = api.summary(records)
    report_eps = s.blocks[0].eval.get("report_eps")
    for t in accuracy_tables(summary, report_eps, title=f"{s.name}: "):
        out.print(t)
    labels = {
        r["id"]: f"{r['model']}/{r['strategy']}/{r['technique']}/s{r['seed']}" for r in api.status(db, s.name)["runs"]
    }
    ct = checks_table([c for c in api.checks(db) if c["run_id"] in labels], labels)
    if ct is not None:
        out.print(ct)
    if result["failed"]:
        err.print(f"rttui: {result['failed']} unit(s) failed; see `rttui status --db ...` for the reasons")
        raise typer.Exit(1)


@app.command()
def status(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study's runs")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List studies and runs with their states (read-only)."""
    _check_format(fmt, ("table", "json"))
    st = api.status(db, study)
    if fmt == "json":
        _json(st)
        return
    if st["runner"]:
        r = st["runner"]
        out.print(f"runner: study {r['study']!r} running in process {r['pid']} on {r['host']}")
    t = Table(title="studies", title_justify="left")
    for c in ("study", "runs", "done", "failed", "running", "path"):
        t.add_column(c)
    for s in st["studies"]:
        t.add_row(
            s["name"],
            str(s["runs"]),
            str(s["done"] or 0),
            str(s["failed"] or 0),
            str(s["running"] or 0),
            s["path"] or "",
        )
    out.print(t)
    t = Table(title="runs", title_justify="left")
    for c in (
        "run id",
        "dataset",
        "model",
        "strategy",
        "technique",
        "seed",
        "state",
        "epoch",
        "clean",
        "error",
    ):
        t.add_column(c)
    for r in st["runs"]:
        t.add_row(
            r["id"],
            r["dataset"],
            r["model"],
            r["strategy"],
            r["technique"],
            str(r["seed"]),
            r["state"],
            str(r["epoch"] or "-"),
            f"{r['clean_acc']:.3f}" if r["clean_acc"] is not None else "-",
            (r["error"] or "")[:80],
        )
    out.print(t)


EXPORT_FIELDS = (
    "run_id",
    "study",
    "dataset",
    "model",
    "strategy",
    "technique",
    "attack",
    "norm",
    "steps",
    "step_size",
    "restarts",
    "random_start",
    "eps",
    "seed",
    "clean_acc",
    "adv_acc",
    "n",
    "mode",
    "precision",
)


@app.command()
def export(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file instead of stdout")] = None,
) -> None:
    """Export one record per (run, attack, eps) with every parameter that produced it."""
    _check_format(fmt, ("json", "csv"))
    recs = api.export_records(db, study)
    if fmt == "json":
        text = json.dumps(recs, indent=2, default=str) + "\n"
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(recs)
        text = buf.getvalue()
    if output:
        output.write_text(text)
        err.print(f"wrote {len(recs)} records to {output}")
    else:
        sys.stdout.write(text)


@app.command()
def checks(
    db: DbOpt = None,
    run_id: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Show the sanity checks stored with the evaluations (adv <= clean, monotone in eps, PGD <= FGSM)."""
    _check_format(fmt, ("table", "json"))
    rows = api.checks(db, run_id)
    if fmt == "json":
        _json(rows)
        return
    t = Table(title="sanity checks", title_justify="left")
    for c in ("run", "check", "level", "message"):
        t.add_column(c)
    for c in rows:
        t.add_row(c["run_id"], c["check"], c["level"], c["message"])
    out.print(t)
