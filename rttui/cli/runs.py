"""Commands about running studies: run (with live progress and the result tables at the end), cancel, retry,
status, the stored sanity checks and a run's layer analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rttui import api
from rttui.cli.options import DbOpt, FormatOpt
from rttui.cli.output import check_format, err, out, print_json
from rttui.errors import RttuiError

app = typer.Typer()


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
    executor: Annotated[
        str | None, typer.Option("--executor", help="local (default), ray, or slurm (default: the study's [run])")
    ] = None,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (default: start a local one)")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="retries of a unit whose worker died")] = 1,
    slurm: Annotated[
        list[str] | None, typer.Option("--slurm", help="SLURM job option KEY=VALUE over [run.slurm], repeatable")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    json_events: Annotated[bool, typer.Option("--json-events", help="one JSON event per line on stdout")] = False,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="the whole path at tiny scale, into DB's .smoke.db; the DB is not touched")
    ] = False,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help="with --smoke: random init instead of timm's pretrained weights")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="check everything and say what would run (SLURM: print the sbatch script); run nothing"
        ),
    ] = False,
) -> None:
    """Run (or resume) a study: train sources and runs, attack them, store everything, print the results."""
    from rttui.cli.progress import JsonListener, RichListener
    from rttui.cli.render import audit_line, checks_table, compare_tables, other_checks_line

    _term_is_interrupt()
    api.ensure_no_runner(db)  # a second runner is refused before the study is even read
    s = api.validate_study(study)
    opts: dict[str, Any] = {
        "workers": workers,
        "devices": [d.strip() for d in devices.split(",") if d.strip()] if devices else None,
        "executor": executor,
        "address": address,
        "max_retries": retries,
        "slurm": slurm,
    }
    if dry_run:
        if smoke or random_weights:
            raise RttuiError("--dry-run does not go with --smoke; a smoke run is itself the quick check")
        _print_dry_run(api.dry_run(s, db, device, **opts))
        return
    if smoke or random_weights:  # smoke: its own database and a pass/fail summary instead of result tables
        if not smoke:
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
    # The study's tables as `rttui compare` shows them (significance and audit marks included), one per attack,
    # then one line for the audit and one for the other checks: the details are a command away, not 100 lines.
    comp = api.compare(db, s.name, None, None, None, "eps", None, metrics=["clean", "adv"])
    for t in comp.tables:
        for table in compare_tables(t, out.width):
            out.print(table)
    labels = {
        r["id"]: f"{r['model']}/{r['strategy']}/{r['technique']}/s{r['seed']}" for r in api.status(db, s.name)["runs"]
    }
    checks = [c for c in api.checks(db) if c["run_id"] in labels]
    where = escape(str(api.db_path(db)))
    for line in (audit_line(comp.tables, checks, where), other_checks_line(checks, where)):
        if line:
            out.print(line, highlight=False)
    errors = checks_table([c for c in checks if c["level"] == "error"], labels)  # a broken result: in full
    if errors is not None:
        out.print(errors)
    _exit_status(result)


def _print_dry_run(d: dict[str, Any]) -> None:
    """The SLURM job script alone on stdout (to save or diff), what would run on stderr; else one summary line."""
    done = f"no database at {d['db']} yet" if d["runs_done"] is None else f"{d['runs_done']} done in {d['db']}"
    what = (
        f"dry run of {d['study']} with --executor {d['executor']}: {d['sources']} source(s), {d['runs']} run(s) "
        f"({done}), {d['evaluations']} evaluation(s); nothing was run, submitted or written"
    )
    if d["script"]:
        typer.echo(d["script"], nl=False)
        err.print(
            f"{what}; above: the sbatch script of every job (made by submitit's own writer; units ready together "
            "go as one job array, which adds #SBATCH --array=0-N%P)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(what, markup=False, highlight=False, soft_wrap=True)


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
    """Ask the study running on this database to stop, at the running unit's next forward pass; a rerun resumes."""
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


@app.command("check-db")
def check_db(
    db: DbOpt = None,
    full: Annotated[
        bool, typer.Option("--full", help="integrity_check and the stored values, as a runner checks (slower)")
    ] = False,
) -> None:
    """Check the database file for damage (quick_check; with --full, integrity_check and the stored values)."""
    out.print(api.check_db(db, full), highlight=False)


@app.command()
def status(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study's runs")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run", help="one run: its state and the environment it ran in")
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List studies and runs with their states (read-only); --run RUN shows that run's environment."""
    check_format(fmt, ("table", "json"))
    st = api.status(db, study, run_id)
    if fmt == "json":
        print_json(st)
        return
    if run_id is not None:
        _print_run_env(st["run"])
        return
    if st["runner"]:
        r = st["runner"]
        out.print(f"runner: study {r['study']!r} running in process {r['pid']} on {r['host']}")
    elif any(r["state"] == "running" for r in st["runs"]):
        out.print("no runner holds this database: runs marked stopped were interrupted; `rttui run` resumes them")
    t = Table(title="studies", title_justify="left")
    for c in ("study", "runs", "done", "failed", "running", "evaluations", "path"):
        t.add_column(c)
    for s in st["studies"]:
        failed = f", {s['evals_failed']} failed" if s.get("evals_failed") else ""
        t.add_row(
            s["name"],
            str(s["runs"]),
            str(s["done"] or 0),
            str(s["failed"] or 0),
            str(s["running"] or 0),
            f"{s.get('evals_done', 0)}/{s.get('evals', 0)}{failed}",
            s["path"] or "",
        )
    out.print(t)
    if st.get("sources"):  # adversarial pretraining the runs start from: minutes of work before any run moves
        t = Table(title="sources (pretrained by rttui; their runs wait pending meanwhile)", title_justify="left")
        for c in ("source id", "dataset", "model", "seed", "state", "epoch", "clean", "error"):
            t.add_column(c)
        for u in st["sources"]:
            t.add_row(
                u["id"],
                u["dataset"] or "",
                u["model"] or "",
                str(u["seed"]),
                "stopped" if u["state"] == "running" and not st["runner"] else str(u["state"]),
                str(u["epoch"] or "-"),
                f"{u['clean_acc']:.3f}" if u["clean_acc"] is not None else "-",
                escape((u["error"] or "")[:80]),
            )
        out.print(t)
    t = Table(title="runs", title_justify="left")
    gpu = any(r.get("peak_gpu_mem") is not None for r in st["runs"])  # a column only where a GPU measured one
    for c in ("run id", "dataset", "model", "strategy", "technique", "seed", "state", "epoch", "clean"):
        t.add_column(c)
    if gpu:
        t.add_column("GPU peak")
    t.add_column("error")
    for r in st["runs"]:
        peak = [_gib(r.get("peak_gpu_mem"))] if gpu else []
        t.add_row(
            r["id"],
            r["dataset"],
            r["model"],
            r["strategy"],
            r["technique"],
            str(r["seed"]),
            # 'running' with no runner holding the database: its runner was killed; `rttui run` resumes it.
            "stopped" if r["state"] == "running" and not st["runner"] else r["state"],
            str(r["epoch"] or "-"),
            f"{r['clean_acc']:.3f}" if r["clean_acc"] is not None else "-",
            *peak,
            escape((r["error"] or "")[:80]),
        )
    out.print(t)


def _gib(n_bytes: int | None) -> str:
    return "-" if n_bytes is None else f"{n_bytes / 2**30:.1f} GiB"


def _print_run_env(run: dict) -> None:
    """A run's environment, and its evaluations' where they differ from it."""
    t = Table(title=f"run {run['id']}: environment", title_justify="left")
    t.add_column("field")
    t.add_column("value")
    for k, v in run["env_rows"]:
        t.add_row(k, escape(v))
    out.print(t)
    peak = run.get("peak_gpu_mem")
    said = f"{_gib(peak)} (training and evaluation)" if peak is not None else "not measured (not run on a GPU)"
    out.print(f"peak GPU memory: {said}", highlight=False)
    run_env = (run["env"] or {}).get("env_id")
    for e in run["evaluations"]:
        e_env = (e["env"] or {}).get("env_id")
        same = " (same as the run)" if e_env and e_env == run_env else ""
        out.print(
            f"evaluation {e['id']} ({e['attack']}): {escape(e['env_line'])}{same}", highlight=False, soft_wrap=True
        )


@app.command()
def checks(
    db: DbOpt = None,
    run_id: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Show the sanity checks stored with the evaluations (adv <= clean, monotone in eps, PGD <= FGSM)."""
    check_format(fmt, ("table", "json"))
    rows = api.checks(db, run_id)
    if fmt == "json":
        print_json(rows)
        return
    t = Table(title="sanity checks", title_justify="left")
    for c in ("run", "check", "level", "message"):
        t.add_column(c)
    for c in rows:
        t.add_row(c["run_id"], c["check"], c["level"], escape(c["message"]))
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
    check_format(fmt, ("table", "json"))
    rows = api.layers(db, run_id, images, recompute=recompute, store=not no_store, device=device)
    if fmt == "json":
        print_json(rows)
        return
    from rttui.cli.render import layers_table

    out.print(layers_table(rows, run_id))
