"""Commands about results: export, compare, ttest, confusions, plot, report and depth (read-only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rttui import api
from rttui.cli.options import (
    AttackOpt,
    ColsOpt,
    DbOpt,
    EpsOpt,
    FormatOpt,
    OutputOpt,
    RowsOpt,
    StudyOpt,
    TableFormatOpt,
    WhereOpt,
    attack_or_all,
)
from rttui.cli.output import (
    FIGURE_SUFFIXES,
    check_format,
    check_output_file,
    check_output_folder,
    emit,
    err,
    out,
    print_json,
)
from rttui.errors import RttuiError

app = typer.Typer()


@app.command()
def export(
    db: DbOpt = None,
    study: StudyOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="json or csv: records; md or latex: compare tables")
    ] = "json",
    output: OutputOpt = None,
    attack: Annotated[
        str | None, typer.Option(help="attack name, or all (default: all for json/csv, pgd for md/latex)")
    ] = None,
    eps: EpsOpt = None,
    rows: RowsOpt = None,
    cols: ColsOpt = None,
    where: WhereOpt = None,
    to: Annotated[
        str | None, typer.Option("--to", help="push the study's runs to a tracker instead: mlflow or wandb")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="--to mlflow: tracking URI (default $MLFLOW_TRACKING_URI)")
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="--to mlflow: experiment (default: the study's name)")] = None,
    project: Annotated[str | None, typer.Option(help="--to wandb: project (default: rttui)")] = None,
    mode: Annotated[
        str | None, typer.Option(help="--to wandb: online or offline (default $WANDB_MODE, else online)")
    ] = None,
) -> None:
    """Export one record per (study, evaluation, eps) as json/csv, or the compare tables as md/latex; or, with
    --to, push the study's runs to MLflow or Weights & Biases (a second push updates them)."""
    if to is not None:
        _push(
            db,
            study,
            to,
            tracking_uri,
            experiment,
            project,
            mode,
            {
                "--output": output,
                "--attack": attack,
                "--eps": eps,
                "--rows": rows,
                "--cols": cols,
                "--where": where,
                "--format": fmt != "json" and fmt,
            },
        )
        return
    for name, value in (
        ("--tracking-uri", tracking_uri),
        ("--experiment", experiment),
        ("--project", project),
        ("--mode", mode),
    ):
        if value:
            raise RttuiError(f"{name} is a tracker setting; add --to mlflow or --to wandb, or drop {name}")
    check_format(fmt, ("json", "csv", "md", "latex"))
    check_output_file(output, "--output")
    if fmt in ("md", "latex"):
        comp = api.compare(db, study, attack_or_all(attack or api.headline_attack(db, study)), eps, rows, cols, where)
        text = api.export_table(comp, fmt)
        n = len(comp.tables)
        emit(text, output, f"wrote {n} table(s) to {output}")
        return
    for name, value in (("--rows", rows), ("--cols", cols)):
        if value:
            raise RttuiError(
                f"{name} lays out md/latex tables; --format {fmt} writes one record per (study, evaluation, eps): "
                f"drop {name}, or use --format md"
            )
    recs = api.export_records(db, study, attack=attack_or_all(attack), eps=eps, where=where)
    text = api.records_text(recs, fmt)
    emit(text, output, f"wrote {len(recs)} records to {output}")


def _push(
    db: Path | None,
    study: str | None,
    to: str,
    tracking_uri: str | None,
    experiment: str | None,
    project: str | None,
    mode: str | None,
    ignored: dict[str, object],
) -> None:
    """`export --to`: the whole study goes; options that select or lay out records do not apply."""
    for name, value in ignored.items():
        if value:
            raise RttuiError(f"{name} selects what a file export writes; --to pushes the whole study: drop {name}")
    res = api.push_study(db, study, to, tracking_uri=tracking_uri, experiment=experiment, project=project, mode=mode)
    out.print(
        f"pushed study {escape(res['study'])} to {escape(res['where'])}: "
        f"{res['created']} run(s) created, {res['updated']} updated",
        soft_wrap=True,
    )


@app.command()
def compare(
    db: DbOpt = None,
    study: StudyOpt = None,
    attack: Annotated[
        str | None,
        typer.Option(help="attack name, worst-case, or all (default: the study's [eval] headline, else pgd)"),
    ] = None,
    eps: EpsOpt = None,
    rows: RowsOpt = None,
    cols: ColsOpt = None,
    where: WhereOpt = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="comma list of clean,adv,drop,rel_drop,asr,auc,clean_sd,adv_sd (asr: attack success rate)"),
    ] = None,
    stability: Annotated[
        bool, typer.Option("--stability", help="show the spread (sd) of standard and adversarial accuracy over seeds")
    ] = False,
    fmt: TableFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Standard accuracy, adversarial accuracy and drop, mean±std over seeds, pivoted by axis."""
    from rttui.cli.render import compare_notes, compare_tables

    check_format(fmt, ("table", "json", "md", "latex", "csv"))
    check_output_file(output, "--output")
    ms = [m.strip() for m in metrics.split(",")] if metrics else None
    attack = attack or api.headline_attack(db, study)
    comp = api.compare(db, study, attack_or_all(attack), eps, rows, cols, where, metrics=ms, stability=stability)
    if not comp.tables:
        err.print("rttui: no evaluation is stored yet; run the study (rttui run STUDY --db DB) or wait for it")
    if fmt != "table":
        emit(api.export_table(comp, fmt), output, f"wrote {len(comp.tables)} table(s) to {output}")
        return
    for t in comp.tables:
        for table in compare_tables(t, out.width):
            out.print(table)
            need = out.measure(table, options=out.options.update_width(10_000)).maximum  # its natural width
            if out.is_terminal and need > out.width:  # squeezed into the terminal: cells are cut and wrapped
                out.print(
                    f"[bold yellow]note[/] this table needs {need} columns and the terminal has {out.width}: "
                    "name one ε with --eps, give fewer --cols, or write it with --format md"
                )
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
    study: StudyOpt = None,
    where: WhereOpt = None,
    test: Annotated[str, typer.Option(help="t (paired t-test) or wilcoxon (signed-rank)")] = "t",
    mcnemar: Annotated[bool, typer.Option("--mcnemar", help="add McNemar on per-sample outcomes")] = False,
    variance: Annotated[
        bool, typer.Option("--variance", help="add a Brown-Forsythe (Levene) equal-variance test over seeds")
    ] = False,
    fmt: TableFormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Paired tests over seeds between two configurations that differ on one axis (Holm-corrected)."""
    from rttui.cli.render import tests_table

    check_format(fmt, ("table", "json", "md", "latex", "csv"))
    check_output_file(output, "--output")
    rows = api.ttest(
        db,
        axis,
        a,
        b,
        metric,
        attack_or_all(attack),
        eps,
        study,
        test=test,
        mcnemar=mcnemar,
        variance=variance,
        where=where,
    )
    if fmt != "table":
        emit(
            api.export_table(rows, fmt) if fmt != "json" else json.dumps(rows, indent=2, default=str) + "\n",
            output,
            f"wrote {len(rows)} comparison(s) to {output}",
        )
        return
    if not rows:
        err.print(f"rttui: no configuration has both {axis}={a} and {axis}={b} with a common seed")
        raise typer.Exit(1)
    out.print(tests_table(rows, out.width))
    for w in sorted({r["warning"] for r in rows if r.get("warning")}):
        out.print(f"[bold yellow]note[/] {w}")
    label = api.incomplete(db, study)
    if label:
        out.print(f"[cyan]{escape(label)}[/]: the tests use the runs stored so far; numbers will change")


@app.command()
def confusions(
    db: DbOpt = None,
    study: StudyOpt = None,
    attack: AttackOpt = "pgd",
    eps: EpsOpt = None,
    where: WhereOpt = None,
    top: Annotated[int, typer.Option(help="class pairs per configuration")] = 5,
    fmt: FormatOpt = "table",
) -> None:
    """Error analysis: the class pairs most confused under attack, per configuration, summed over seeds."""
    check_format(fmt, ("table", "json"))
    if top < 1:
        raise RttuiError(f"--top {top}: must be at least 1 (the class pairs shown per configuration)")
    groups = api.confusions(db, study, attack_or_all(attack), eps, where, top)
    if fmt == "json":
        print_json(groups)
        return
    t = Table(title="Most confused class pairs under attack (summed over seeds)", title_justify="left")
    for c in (*api.CONFIG_AXES, "attack", "ε", "seeds", "true → predicted (count, share)"):
        t.add_column(c)
    for g in groups:
        pairs = ", ".join(f"{p['true_name']}→{p['pred_name']} ({p['count']}, {p['share']:.0%})" for p in g["pairs"])
        t.add_row(
            *(escape(str(g[a])) for a in (*api.CONFIG_AXES, "attack")),
            f"{g['eps']:g}",
            str(len(g["seeds"])),
            escape(pairs or "none"),
        )
    out.print(t)


@app.command()
def plot(
    kinds: Annotated[
        list[str] | None, typer.Argument(help="strategies, tradeoff, curves, confusion (default: all)")
    ] = None,
    db: DbOpt = None,
    study: StudyOpt = None,
    attack: Annotated[str | None, typer.Option(help="attack (default: all for curves, else pgd)")] = None,
    eps: EpsOpt = None,
    where: WhereOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder (or file name like fig1.png)")] = Path("figures"),
    formats: Annotated[str, typer.Option("--formats", help="comma list of png, svg, pdf")] = "png,svg",
) -> None:
    """Draw figures: Figure 1 (strategies), Figure 2 (tradeoff), accuracy-vs-ε curves, confusion maps."""
    if out_dir.suffix in FIGURE_SUFFIXES:  # a file name, as `figures.draw` reads it
        check_output_file(out_dir, "--out", creates_folder=True)
    else:
        check_output_folder(out_dir, "--out")
    wanted = kinds or ["all"]
    if "all" in wanted:
        wanted = list(api.figure_kinds())
    for k in wanted:
        paths = api.plot(
            db, k, out_dir, study, attack_or_all(attack), eps, where, [f.strip() for f in formats.split(",")]
        )
        for p in paths:
            out.print(f"wrote {p} ({p.stat().st_size} bytes)")


@app.command()
def report(
    study: Annotated[
        str, typer.Argument(help="the study: its file as rttui run takes it (studies/quickstart.toml) or its name")
    ],
    db: DbOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder to write into (created)")] = Path("report"),
) -> None:
    """Write every table and figure of a study into one folder, with an index.md."""
    check_output_folder(out_dir, "--out")
    res = api.report(db, study, out_dir)
    out.print(f"wrote {len(res['files'])} files to {out_dir}; open {res['index']}")
    if res["partial"]:
        out.print(f"[cyan]{escape(res['incomplete'])}[/]: the report shows what is stored so far")


@app.command()
def depth(
    db: DbOpt = None,
    study: StudyOpt = None,
    attack: Annotated[str | None, typer.Option(help="attack of the robustness column (default: pgd)")] = None,
    eps: Annotated[float | None, typer.Option(help="epsilon of the robustness column (default: 0.03)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="also draw the figure to this .png/.svg/.pdf")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Accuracy and robustness against freeze depth (0 = full fine-tuning ... all = feature extraction)."""
    check_format(fmt, ("table", "json"))
    check_output_file(plot, "--plot", creates_folder=True)
    table = api.depth_table(db, study, attack, eps)
    if plot is not None:
        path = api.depth_figure(table, plot, study or "")
        err.print(f"wrote {path}")
    if fmt == "json":
        print_json(api.depth_json(table))
        return
    from rttui.cli.render import depth_table

    out.print(depth_table(table, study))
