"""The study-file and registry references of the documentation, written from the catalog itself.

The docs site (`mkdocs.yml`'s hook) renders these pages at build time, so a key, attack, strategy or technique
added to the catalog is documented the moment it exists and a removed one cannot linger. Torch-free.
"""

from __future__ import annotations

import json
from typing import Any

from rttui.study import catalog
from rttui.study.catalog import Entry, Param


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, newlines flattened."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _value(v: Any) -> str:
    """A default as it is written in TOML (true, "adam", [0, 1, 2]); '-' when there is none."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return f'`"{v}"`' if v else '`""`'
    if isinstance(v, dict) and not v:
        return "`{}`"
    return f"`{json.dumps(v)}`"


def _type(p: Param) -> str:
    """The accepted TOML types, with the choices or range a value must be in."""
    names = {"str": "string", "int": "integer", "float": "float", "bool": "boolean", "list": "array", "dict": "table"}
    t = " or ".join(names.get(x.__name__, x.__name__) for x in p.types)
    if p.choices:
        t += ": " + ", ".join(f'`"{c}"`' if isinstance(c, str) else f"`{c}`" for c in p.choices)
    elif p.low is not None or p.high is not None:
        lo = "" if p.low is None else f"{p.low:g}"
        hi = "" if p.high is None else f"{p.high:g}"
        t += f", {lo}..{hi}" if lo and hi else f", >= {lo}" if lo else f", <= {hi}"
    return t


def params_table(params: dict[str, Param]) -> str:
    """One row per key: name, type, default and what it means."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{k}` | {_cell(_type(p))} | {_cell(_value(p.default))} | {_cell(p.help)} |" for k, p in params.items()]
    return "\n".join(rows)


def study_keys_markdown() -> str:
    """Every table of a study file and every key in it, with its type, default and meaning."""
    out = [
        "# Study-file keys",
        "",
        "Generated from rttui's own key tables (`rttui.study.catalog.SECTIONS`) when the site is built: this is the "
        "list `rttui validate` checks a study against, and an unknown key is refused with a suggestion. A `[[grid]]` "
        "block may override `[source]`, `[target]`, `[train]` and `[eval]` for its own runs. Epsilons are in [0, 1] "
        "pixel units.",
        "",
        "The parameters of `[attacks.NAME]`, `[strategies.NAME]` and `[techniques.NAME]` are those of each entry "
        "in the [registries](registries.md).",
        "",
    ]
    for sec in catalog.SECTIONS:
        out += [f"## `{sec.header}`", "", sec.help[0].upper() + sec.help[1:] + ".", "", params_table(sec.keys), ""]
    return "\n".join(out)


def _entries(title: str, intro: str, entries: dict[str, Entry]) -> list[str]:
    out = [f"## {title}", "", intro, ""]
    for e in entries.values():
        state = "" if e.implemented else " (not implemented yet)"
        out += [f"### `{e.name}`{state}", "", _cell(e.help[0].upper() + e.help[1:]) + ".", ""]
        out += [params_table(e.params), ""] if e.params else ["No parameters.", ""]
    return out


def registries_markdown() -> str:
    """Every attack, strategy, technique and dataset a study can name, with each one's parameters."""
    out = [
        "# Attacks, strategies, techniques, datasets",
        "",
        "Generated from rttui's registries (`rttui.study.catalog`) when the site is built. Each name goes in a "
        "`[[grid]]` block's list; its parameters go under `[attacks.NAME]`, `[strategies.NAME]` or "
        "`[techniques.NAME]`.",
        "",
    ]
    out += _entries("Attacks", "rttui's own attacks (epsilons in [0, 1] pixel units).", catalog.ATTACKS)
    out += _entries(
        "torchattacks catalogue (`ta:` attacks)",
        "Offered when the `torchattacks` extra is installed (`pip install 'rttui[torchattacks]'`); each runs "
        "torchattacks' class of that name, and its captions say `implementation=torchattacks <version>`.",
        catalog.TA_ATTACKS,
    )
    out += _entries("Fine-tuning strategies", "What trains when a model transfers.", catalog.STRATEGIES)
    out += _entries("Robustness techniques", "What is done for robustness besides fine-tuning.", catalog.TECHNIQUES)
    out += ["## Datasets", "", "| name | what it is | where its files are |", "|---|---|---|"]
    out += [f"| `{d['name']}` | {_cell(d['help'])} | {_cell(d['files'])} |" for d in catalog.datasets_data()]
    return "\n".join(out) + "\n"
