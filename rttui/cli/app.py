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
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

DbOpt = Annotated[Path | None, typer.Option("--db", help="SQLite database (default: $RTTUI_DB, else ./rttui.db)")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json")]
AttackOpt = Annotated[str | None, typer.Option(help="attack name, or all")]
EpsOpt = Annotated[float | None, typer.Option(help="one epsilon of the evaluated grid (default: all)")]
RowsOpt = Annotated[
    str | None, typer.Option(help="comma list of axes for rows: dataset,model,strategy,technique,attack,eps")
]
ColsOpt = Annotated[str | None, typer.Option(help="comma list of axes for columns (default: metrics only)")]
WhereOpt = Annotated[list[str] | None, typer.Option(help="AXIS=VALUE filter, repeatable (e.g. model=resnet50)")]
# Piped output (logs, CI) gets a wide console so tables are not truncated at 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)


def _version(value: bool) -> None:
    if value:
        print(f"rttui {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
) -> None:
    """rttui: run transfer-robustness studies headless or in the TUI (no command: open the TUI)."""
    if ctx.invoked_subcommand is None:
        _open_tui(None, Path("studies"))


def _open_tui(db: Path | None, studies: Path | None, read_only: bool = False) -> None:
    # Textual is imported only here, so the headless commands never pay for it.
    from rttui.tui import make_app

    make_app(db=db, studies_dir=studies, read_only=read_only).run()


StudiesOpt = Annotated[Path, typer.Option("--studies", help="folder of study files to list")]
ReadOnlyOpt = Annotated[
    bool, typer.Option("--read-only", help="analysis screens only: no launching, cancelling, deleting, saving")
]


@app.command()
def tui(db: DbOpt = None, studies: StudiesOpt = Path("studies"), read_only: ReadOnlyOpt = False) -> None:
    """Open the full-screen app on a database (the same as `rttui` with no command)."""
    _open_tui(db, studies, read_only)


@app.command()
def serve(
    db: DbOpt = None,
    studies: StudiesOpt = Path("studies"),
    host: Annotated[str, typer.Option(help="interface to listen on (0.0.0.0: every interface)")] = "localhost",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="the address browsers use, behind a reverse proxy")
    ] = None,
    read_only: ReadOnlyOpt = False,
) -> None:
    """Serve the app to a web browser: each tab runs its own `rttui tui`; open the tokened URL it prints."""
    from rttui.tui.serve import serve_app

    serve_app(db, studies, host=host, port=port, public_url=public_url, read_only=read_only)


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
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", help="worker processes (default: one per GPU when several, else in-process)"),
    ] = None,
    devices: Annotated[
        str | None, typer.Option("--devices", help="comma-separated devices, one worker each: cuda:0,cuda:1")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (processes on this machine) or ray")] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (default: start a local one)")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="retries of a unit whose worker died")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    json_events: Annotated[bool, typer.Option("--json-events", help="one JSON event per line on stdout")] = False,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="the whole path at tiny scale, into DB's .smoke.db; the DB is not touched")
    ] = False,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help="with --smoke: random init instead of timm's pretrained weights")
    ] = False,
) -> None:
    """Run (or resume) a study: train sources and runs, attack them, store everything, print the results."""
    from rttui.cli.progress import JsonListener, RichListener
    from rttui.cli.render import accuracy_tables, checks_table

    _term_is_interrupt()
    api.ensure_no_runner(db)  # a second runner is refused before the study is even read
    s = api.validate_study(study)
    opts: dict[str, Any] = {
        "workers": workers,
        "devices": [d.strip() for d in devices.split(",") if d.strip()] if devices else None,
        "executor": executor,
        "address": address,
        "max_retries": retries,
    }
    if smoke or random_weights:  # smoke: its own database and a pass/fail summary instead of result tables
        if not smoke:
            from rttui.errors import RttuiError

            raise RttuiError("--random-weights only goes with --smoke; to train from scratch set pretrained = false")
        with RichListener(err, quiet=quiet or json_events) as rich:
            listener = JsonListener() if json_events else rich
            res = api.run_smoke(s, db, listener, device, random_weights=random_weights, **opts)
        for line in res["lines"]:
            (err if json_events else out).print(line, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(0 if res["passed"] else 130 if res["cancelled"] else 1)
    if json_events:
        result = api.run_study(s, db, JsonListener(), device, **opts)
        _exit_status(result)
        return
    with RichListener(err, quiet=quiet) as listener:
        result = api.run_study(s, db, listener, device, **opts)
    if result["cancelled"]:
        _exit_status(result)
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
    _exit_status(result)


def _exit_status(result: dict[str, Any]) -> None:
    """Exit 130 when cancelled (like Ctrl-C), 1 when a unit failed, else return."""
    if result["cancelled"]:
        err.print("rttui: cancelled; finished work is stored, run the same command again to resume")
        raise typer.Exit(130)
    if result["failed"]:
        err.print(f"rttui: {result['failed']} unit(s) failed; see `rttui status --db ...` for the reasons")
        raise typer.Exit(1)


def _term_is_interrupt() -> None:
    """SIGTERM (a TUI stopping its detached run, a job scheduler) stops as cleanly as Ctrl-C."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@app.command()
def cancel(db: DbOpt = None) -> None:
    """Ask the study running on this database to stop; it stops within a second and the next run resumes."""
    lock = api.cancel(db)
    if lock is None:
        out.print("no runner holds this database; nothing to cancel")
    else:
        out.print(f"cancel requested: study {lock['study']!r} in process {lock['pid']} on {lock['host']}")


@app.command()
def retry(run_id: Annotated[str, typer.Argument(help="id of a failed run")], db: DbOpt = None) -> None:
    """Ask the running runner to run a failed run again (without a runner, `rttui run` retries failed runs)."""
    lock = api.retry(db, run_id)
    if lock is None:
        out.print("no runner holds this database; `rttui run STUDY` retries every failed run")
    else:
        out.print(f"retry of {run_id} requested from process {lock['pid']}")


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
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="json or csv: records; md or latex: compare tables")
    ] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file instead of stdout")] = None,
    attack: AttackOpt = "pgd",
    eps: EpsOpt = None,
    rows: RowsOpt = None,
    cols: ColsOpt = None,
    where: WhereOpt = None,
) -> None:
    """Export one record per (run, attack, eps) as json/csv, or the compare tables as md/latex."""
    _check_format(fmt, ("json", "csv", "md", "latex"))
    if fmt in ("md", "latex"):
        comp = api.compare(db, study, _attack(attack), eps, rows, cols, where)
        text = api.export_table(comp, fmt)
        n = len(comp.tables)
        _emit(text, output, f"wrote {n} table(s) to {output}")
        return
    recs = api.export_records(db, study)
    if fmt == "json":
        text = json.dumps(recs, indent=2, default=str) + "\n"
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(recs)
        text = buf.getvalue()
    _emit(text, output, f"wrote {len(recs)} records to {output}")


def _emit(text: str, output: Path | None, message: str) -> None:
    if output:
        output.write_text(text)
        err.print(message)
    else:
        sys.stdout.write(text)


def _attack(a: str | None) -> str | None:
    return None if a in (None, "all") else a


@app.command()
def compare(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study (default: every study in the database)")] = None,
    attack: AttackOpt = "pgd",
    eps: EpsOpt = None,
    rows: RowsOpt = None,
    cols: ColsOpt = None,
    where: WhereOpt = None,
    metrics: Annotated[
        str | None, typer.Option(help="comma list of clean,adv,drop,rel_drop,auc,clean_sd,adv_sd")
    ] = None,
    stability: Annotated[
        bool, typer.Option("--stability", help="show the spread (sd) of standard and adversarial accuracy over seeds")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json, md, latex or csv")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file instead of stdout")] = None,
) -> None:
    """Standard accuracy, adversarial accuracy and drop, mean±std over seeds, pivoted by axis."""
    from rttui.cli.render import compare_notes, compare_table

    _check_format(fmt, ("table", "json", "md", "latex", "csv"))
    ms = [m.strip() for m in metrics.split(",")] if metrics else None
    comp = api.compare(db, study, _attack(attack), eps, rows, cols, where, ms, stability)
    if not comp.tables:
        err.print("rttui: no evaluation is stored yet; run the study (rttui run STUDY --db DB) or wait for it")
    if fmt != "table":
        _emit(api.export_table(comp, fmt), output, f"wrote {len(comp.tables)} table(s) to {output}")
        return
    for t in comp.tables:
        out.print(compare_table(t))
        for line in compare_notes(t):
            out.print(line)
        out.print()


@app.command()
def ttest(
    db: DbOpt = None,
    axis: Annotated[str, typer.Option(help="the axis the two configurations differ on, e.g. strategy")] = "strategy",
    a: Annotated[str, typer.Option("--a", help="first value (differences are a - b)")] = "layer_freezing",
    b: Annotated[str, typer.Option("--b", help="second value, the reference")] = "full",
    metric: Annotated[str, typer.Option(help="adv_acc, clean_acc or drop")] = "adv_acc",
    attack: Annotated[str | None, typer.Option(help="one attack (default: every attack)")] = None,
    eps: EpsOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study")] = None,
    where: WhereOpt = None,
    test: Annotated[str, typer.Option(help="t (paired t-test) or wilcoxon (signed-rank)")] = "t",
    mcnemar: Annotated[bool, typer.Option("--mcnemar", help="add McNemar on per-sample outcomes")] = False,
    variance: Annotated[
        bool, typer.Option("--variance", help="add a Brown-Forsythe (Levene) equal-variance test over seeds")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json, md, latex or csv")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to a file instead of stdout")] = None,
) -> None:
    """Paired tests over seeds between two configurations that differ on one axis (Holm-corrected)."""
    from rttui.cli.render import tests_table

    _check_format(fmt, ("table", "json", "md", "latex", "csv"))
    rows = api.ttest(db, axis, a, b, metric, _attack(attack), eps, study, test, mcnemar, variance, where)
    if fmt != "table":
        _emit(
            api.export_table(rows, fmt) if fmt != "json" else json.dumps(rows, indent=2, default=str) + "\n",
            output,
            f"wrote {len(rows)} comparison(s) to {output}",
        )
        return
    if not rows:
        err.print(f"rttui: no configuration has both {axis}={a} and {axis}={b} with a common seed")
        raise typer.Exit(1)
    out.print(tests_table(rows))
    for w in sorted({r["warning"] for r in rows if r.get("warning")}):
        out.print(f"[bold yellow]note[/] {w}")


@app.command()
def confusions(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study")] = None,
    attack: AttackOpt = "pgd",
    eps: EpsOpt = None,
    where: WhereOpt = None,
    top: Annotated[int, typer.Option(help="class pairs per configuration")] = 5,
    fmt: FormatOpt = "table",
) -> None:
    """Error analysis: the class pairs most confused under attack, per configuration, summed over seeds."""
    _check_format(fmt, ("table", "json"))
    groups = api.confusions(db, study, _attack(attack), eps, where, top)
    if fmt == "json":
        _json(groups)
        return
    t = Table(title="Most confused class pairs under attack (summed over seeds)", title_justify="left")
    for c in (*api.CONFIG_AXES, "attack", "ε", "seeds", "true → predicted (count, share)"):
        t.add_column(c)
    for g in groups:
        pairs = ", ".join(f"{p['true_name']}→{p['pred_name']} ({p['count']}, {p['share']:.0%})" for p in g["pairs"])
        t.add_row(
            g["dataset"],
            g["model"],
            g["strategy"],
            g["technique"],
            g["attack"],
            f"{g['eps']:g}",
            str(len(g["seeds"])),
            pairs or "none",
        )
    out.print(t)


@app.command()
def plot(
    kinds: Annotated[
        list[str] | None, typer.Argument(help="strategies, tradeoff, curves, confusion (default: all)")
    ] = None,
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study")] = None,
    attack: Annotated[str | None, typer.Option(help="attack (default: all for curves, else pgd)")] = None,
    eps: EpsOpt = None,
    where: WhereOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder (or file name like fig1.png)")] = Path("figures"),
    formats: Annotated[str, typer.Option("--formats", help="comma list of png, svg, pdf")] = "png,svg",
) -> None:
    """Draw figures: Figure 1 (strategies), Figure 2 (tradeoff), accuracy-vs-ε curves, confusion maps."""
    wanted = kinds or ["all"]
    if "all" in wanted:
        wanted = list(api.figure_kinds())
    for k in wanted:
        paths = api.plot(db, k, out_dir, study, _attack(attack), eps, where, [f.strip() for f in formats.split(",")])
        for p in paths:
            out.print(f"wrote {p} ({p.stat().st_size} bytes)")


@app.command()
def report(
    study: Annotated[str, typer.Argument(help="the study's name (see rttui status)")],
    db: DbOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder to write into (created)")] = Path("report"),
) -> None:
    """Write every table and figure of a study into one folder, with an index.md."""
    res = api.report(db, study, out_dir)
    out.print(f"wrote {len(res['files'])} files to {out_dir}; open {res['index']}")
    if res["partial"]:
        out.print("[cyan]partial[/] the study is still running; the report shows what is stored so far")


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


@app.command()
def layers(
    run_id: Annotated[str, typer.Option("--run", help="run id (from `rttui status` or export records' run_id)")],
    db: DbOpt = None,
    fmt: FormatOpt = "table",
    images: Annotated[int, typer.Option("--images", min=2, help="size of the fixed batch of target images")] = 128,
    recompute: Annotated[bool, typer.Option("--recompute", help="compute again even if stored")] = False,
    no_store: Annotated[bool, typer.Option("--no-store", help="compute and print, but do not write the database")] = (
        False
    ),
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda if available, else cpu)")] = None,
) -> None:
    """A run's layer analysis per depth group: gradient flow of the target loss and CKA before/after fine-tuning."""
    _check_format(fmt, ("table", "json"))
    rows = api.layers(db, run_id, images, recompute=recompute, store=not no_store, device=device)
    if fmt == "json":
        _json(rows)
        return
    from rttui.cli.render import layers_table

    out.print(layers_table(rows, run_id))


@app.command()
def depth(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study's runs")] = None,
    attack: Annotated[str | None, typer.Option(help="attack of the robustness column (default: pgd)")] = None,
    eps: Annotated[float | None, typer.Option(help="epsilon of the robustness column (default: 0.03)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="also draw the figure to this .png/.svg/.pdf")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Accuracy and robustness against freeze depth (0 = full fine-tuning ... all = feature extraction)."""
    _check_format(fmt, ("table", "json"))
    table = api.depth_table(db, study, attack, eps)
    if plot is not None:
        path = api.depth_figure(table, plot, study or "")
        err.print(f"wrote {path}")
    if fmt == "json":
        _json(api.depth_json(table))
        return
    from rttui.cli.render import depth_table

    out.print(depth_table(table, study))


@app.command()
def datasets(fmt: FormatOpt = "table") -> None:
    """List the datasets a study can name and where each looks for its files (set `root` to override)."""
    _check_format(fmt, ("table", "json"))
    rows = api.datasets()
    if fmt == "json":
        _json(rows)
        return
    t = Table(title="datasets: dataset = NAME; files under root = ..., else $RTTUI_DATA (./data)", title_justify="left")
    for c in ("name", "what", "files (without root = ...)"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["help"], r["files"])
    out.print(t)
