"""Commands about weights files: `convert-checkpoint` (MadryLab robustness checkpoints to safetensors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rttui import api
from rttui.cli.options import FormatOpt
from rttui.cli.output import check_format, out, print_json

app = typer.Typer()


@app.command("convert-checkpoint")
def convert_checkpoint(
    src: Annotated[Path, typer.Argument(help="MadryLab robustness checkpoint (.pt), read weights-only")],
    dst: Annotated[Path, typer.Argument(help="the .safetensors file to write")],
    force: Annotated[bool, typer.Option("--force", help="overwrite DST if it exists")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Convert a MadryLab robustness checkpoint to safetensors (tensors only; anything else is refused)."""
    check_format(fmt, ("table", "json"))
    r = api.convert_checkpoint(src, dst, force=force)
    if fmt == "json":
        print_json(r)
        return
    out.print(
        f"wrote {r['path']}: {r['tensors']} tensors ({r['parameters']:,} parameters; {r['dropped']} wrapper tensors "
        f'dropped), sha256 {r["sha256"]}; use it as checkpoint = "{r["path"]}" under [models.NAME]',
        soft_wrap=True,
    )
