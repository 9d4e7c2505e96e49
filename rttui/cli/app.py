"""The `rttui` command: the root Typer, the app itself (`rttui` with no command, `rttui tui`, `rttui serve`),
and the command groups of cli/studies.py, cli/runs.py and cli/results.py merged in with `add_typer`, so the
command names stay flat. Each command is a thin shell over `rttui.api`: parse options, call, print.

Importing this module imports typer and rich but never torch or Textual, so `rttui --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from rttui import __version__
from rttui.cli import curves, results, runs, studies, transfer, weights
from rttui.cli.options import DbOpt, StudiesOpt
from rttui.errors import RttuiError

# click's UsageError as this typer raises it (typer >= 0.2x vendors its own click): BadParameter's base either way.
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


@contextmanager
def _one_line_usage() -> Iterator[None]:
    """A command-line mistake click catches (an unknown option, a value of the wrong type, an extra argument) as
    rttui's one line, naming the command's help, instead of click's usage block (four lines)."""
    try:
        yield
    except UsageError as exc:
        ctx, names = getattr(exc, "ctx", None), []
        while ctx is not None and ctx.parent is not None:  # the command's name, not how Python was started
            names.append(ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["rttui", *reversed(names)])
        message = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        raise RttuiError(f"{where}: {message}; see `{where} --help`") from None


class OneLineUsage(TyperGroup):
    """The root group: parses its own options and each command's with `_one_line_usage`."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _one_line_usage():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: typer.Context) -> Any:
        with _one_line_usage():
            return super().invoke(ctx)


app = typer.Typer(
    name="rttui",
    cls=OneLineUsage,
    help="Adversarial robustness of transfer-learned image models: run studies, store, compare.",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"rttui {__version__}")
        raise typer.Exit()


ReadOnlyOpt = Annotated[
    bool, typer.Option("--read-only", help="analysis screens only: no launching, cancelling, deleting, saving")
]


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version")
    ] = False,
    db: DbOpt = None,
    studies: Annotated[Path | None, typer.Option("--studies", help="folder of study files to list")] = None,
    read_only: ReadOnlyOpt = False,
) -> None:
    """rttui: run transfer-robustness studies headless or in the TUI (no command: open the TUI, with the
    options of `rttui tui`)."""
    if ctx.invoked_subcommand is None:
        _open_tui(db, studies or Path("studies"), read_only)
        return
    # Given before a command (`rttui --db q.db status`), they are that command's defaults (its own win).
    given = {k: v for k, v in (("db", db), ("studies", studies), ("read_only", read_only or None)) if v is not None}
    if given:
        commands = getattr(ctx.command, "commands", {})
        ctx.default_map = {name: dict(given) for name in commands}


def _open_tui(db: Path | None, studies: Path | None, read_only: bool = False) -> None:
    # Textual is imported only here, so the headless commands never pay for it.
    import warnings

    from rttui import api
    from rttui.errors import StoreNote
    from rttui.tui import make_app

    api.check_reads(False)  # the app reopens the database every second: no quick_check each time
    warnings.simplefilter("ignore", StoreNote)  # a line on stderr would land in the middle of the screen

    tui_app = make_app(db=db, studies_dir=studies, read_only=read_only)
    tui_app.run()
    if tui_app.return_code:  # Textual prints the traceback and sets 1 when the app died of an exception
        raise typer.Exit(tui_app.return_code)


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


app.add_typer(studies.app)
app.add_typer(runs.app)
app.add_typer(results.app)
app.add_typer(transfer.app)
app.add_typer(curves.app)
app.add_typer(weights.app)
