"""`rttui curves`: validation accuracy per training epoch (clean and under the probe), one line per configuration
with a band over seeds, drawn to PNG/SVG with its numbers in JSON and CSV. Read-only; a thin shell over
`rttui.api.validation_curves`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rttui import api
from rttui.cli.options import DbOpt, FormatOpt, WhereOpt
from rttui.cli.output import FIGURE_SUFFIXES, check_format, check_output_file, check_output_folder, out, print_json

app = typer.Typer()


@app.command()
def curves(
    db: DbOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study's runs")] = None,
    where: WhereOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="folder (or file name like curves.png)")] = Path(
        "figures"
    ),
    formats: Annotated[str, typer.Option("--formats", help="comma list of png, svg, pdf")] = "png,svg",
    fmt: FormatOpt = "table",
) -> None:
    """Clean and robust validation accuracy per epoch (runs with [target] val_size), a band over seeds."""
    check_format(fmt, ("table", "json"))
    if out_dir.suffix in FIGURE_SUFFIXES:
        check_output_file(out_dir, "--out", creates_folder=True)
    else:
        check_output_folder(out_dir, "--out")
    rows, paths = api.validation_curves(db, out_dir, study, where, [f.strip() for f in formats.split(",")])
    if fmt == "json":
        print_json({"rows": rows, "files": [str(p) for p in paths]})
        return
    for p in paths:
        out.print(f"wrote {p} ({p.stat().st_size} bytes)")
    for cfg in dict.fromkeys(r["config"] for r in rows):
        cr = [r for r in rows if r["config"] == cfg]
        adv = [r["val_adv_mean"] for r in cr if r["val_adv_mean"] is not None]
        peak = max(cr, key=lambda r: (r["val_adv_mean"] or 0.0, -r["epoch"]))
        line = (
            f"{cfg}: {len(cr)} epochs, {cr[0]['seeds']} seed(s); clean {cr[0]['val_clean_mean']:.1%} -> "
            f"{cr[-1]['val_clean_mean']:.1%}"
        )
        if adv:
            line += f"; robust peaks at {peak['val_adv_mean']:.1%} (epoch {peak['epoch']}), ends {adv[-1]:.1%}"
        if cr[0]["select"] != "last":
            line += f"; select={cr[0]['select']} kept epochs {cr[0]['selected_epochs']}"
        out.print(line, markup=False, highlight=False)
