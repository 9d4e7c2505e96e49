"""MkDocs hook: the reference pages, written from the code at build time so they cannot drift from it.

`mkdocs.yml` names this file under `hooks:`. The pages exist only in the built site (never in `docs/`), made by
`rttui.cli.reference` (every command and option of the typer app) and `rttui.study.reference` (every study-file
key from the catalog's key tables; every attack, strategy, technique and dataset from its registries).
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

PAGES = {
    "reference/cli.md": ("rttui.cli.reference", "cli_markdown"),
    "reference/study-keys.md": ("rttui.study.reference", "study_keys_markdown"),
    "reference/registries.md": ("rttui.study.reference", "registries_markdown"),
}


def on_files(files: Files, config: Any) -> Files:
    """Add each generated reference page to the site's files."""
    import importlib

    for path, (module, func) in PAGES.items():
        content = getattr(importlib.import_module(module), func)()
        files.append(File.generated(config, path, content=content))
    return files
