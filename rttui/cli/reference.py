"""The command-line reference of the documentation, written from the typer app itself.

The docs site renders it at build time (`mkdocs.yml`'s hook): every command, argument and option with its type,
default and help, exactly as `rttui CMD --help` knows them, so the reference cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

import typer.main

# typer (>= 0.19) carries its own copy of click, so its objects are read by their attributes, never checked
# against the `click` package's classes.
Command = Any
Context = Any


def root_command() -> Command:
    """The click group `rttui` runs (the typer app, with every command group merged in)."""
    from rttui.cli.app import app

    return typer.main.get_command(app)


def _context(cmd: Command, name: str, parent: Context | None = None) -> Context:
    return cmd.context_class(cmd, info_name=name, parent=parent)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _param_row(p: Any, ctx: Context) -> str:
    """One option or argument as `--help` shows it: its spelling with metavar, then its help and default."""
    record = p.get_help_record(ctx) or (p.name, "")
    names, help_text = record
    if p.param_type_name == "argument":
        names = f"{names} (argument)"
    return f"| `{_cell(names)}` | {_cell(help_text)} |"


def _params(cmd: Command, ctx: Context) -> list[str]:
    params = [p for p in cmd.get_params(ctx) if p.name != "help" and not getattr(p, "hidden", False)]
    if not params:
        return ["No options.", ""]
    rows = ["| option | meaning |", "|---|---|"]
    return [*rows, *(_param_row(p, ctx) for p in params), ""]


def cli_markdown() -> str:
    """Every command of `rttui` with its usage, help and options."""
    root = root_command()
    rctx = _context(root, "rttui")
    out = [
        "# Command line",
        "",
        "Generated from the typer app (`rttui.cli.app`) when the site is built, so it lists exactly what "
        "`rttui CMD --help` prints. `rttui` with no command opens the app on `--db`.",
        "",
        "## `rttui`",
        "",
        _cell(root.help or ""),
        "",
        f"```text\n{root.get_usage(rctx)}\n```",
        "",
        *_params(root, rctx),
    ]
    for name in root.list_commands(rctx):
        cmd = root.get_command(rctx, name)
        if cmd is None or cmd.hidden:
            continue
        ctx = _context(cmd, name, rctx)
        out += [f"## `rttui {name}`", "", (cmd.help or "").strip(), "", f"```text\n{cmd.get_usage(ctx)}\n```", ""]
        out += _params(cmd, ctx)
    return "\n".join(out)
