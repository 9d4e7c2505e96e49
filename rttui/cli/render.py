"""Rich renderings of plain results: the compare and test tables, the sanity checks and their summary lines.

Rich reads strings as markup, and results hold labels such as `layer_freezing[freeze=2]` that it would drop:
every value that comes from the data goes through `escape` before it reaches a table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.markup import escape
from rich.table import Table

from rttui import api

CONFIG = api.CONFIG_AXES


LEVEL_STYLE = {"ok": "green", "info": "cyan", "warning": "bold yellow", "error": "bold red"}


def checks_table(checks: list[dict[str, Any]], labels: dict[str, str]) -> Table | None:
    """Only the checks that did not pass; None when every check passed."""
    bad = [c for c in checks if c["level"] != "ok"]
    if not bad:
        return None
    t = Table(title="Sanity checks that did not pass", title_justify="left")
    t.add_column("level")
    t.add_column("run")
    t.add_column("message")
    for c in bad:
        t.add_row(
            f"[{LEVEL_STYLE.get(c['level'], '')}]{c['level']}[/]",
            escape(labels.get(c["run_id"], c["run_id"])),
            escape(c["message"]),
        )
    return t


def audit_line(tables: list[Any], checks: list[dict[str, Any]], db: str) -> str | None:
    """One line for the attack-strength audit of the tables shown: per attack, in how many of its cells (ε > 0)
    the audit found the accuracy overstated (the cells marked †); None when nothing was audited."""
    if not any(c["check"] == "attack_strength" for c in checks):
        return None
    counts: dict[str, list[int]] = {}
    for t in tables:
        if not t.attack:
            continue
        cells = [c for c in t.cells.values() if (c.key.get("eps", t.eps) or 0) > 0]
        n = counts.setdefault(t.attack, [0, 0])
        n[0] += sum(c.flagged for c in cells)
        n[1] += len(cells)
    flagged = [(a, f, n) for a, (f, n) in counts.items() if f]
    parts = [f"{a.upper()} {'overstated ' if i == 0 else ''}in {f} of {n} cells" for i, (a, f, n) in enumerate(flagged)]
    if not parts:
        return "audit: no attack's accuracy was found overstated (no cell marked †)"
    return f"audit: {', '.join(parts)} (marked †); `rttui checks --db {db}` lists them"


def other_checks_line(checks: list[dict[str, Any]], db: str) -> str | None:
    """One line counting the other sanity checks that did not pass (by level and check); None if none."""
    bad = Counter((c["level"], c["check"]) for c in checks if c["level"] != "ok" and c["check"] != "attack_strength")
    if not bad:
        return None
    parts = [f"{n} {level} ({check})" for (level, check), n in sorted(bad.items())]
    return f"sanity checks: {', '.join(parts)}; `rttui checks --db {db}` lists them"


def compare_table(t: Any) -> Table:
    """A `CompareTable` (from `api.compare`) as a rich table: best per column bold, caption below."""
    table = Table(title=escape(t.title), title_justify="left", caption=escape(t.caption), caption_justify="left")
    header = t.header()
    for i, h in enumerate(header):
        table.add_column(escape(h), justify="left" if i < len(t.row_axes) else "right")
    best = t.best()
    for rk, row in zip(t.row_keys, t.body(), strict=True):
        cells = [escape(c) for c in row]
        for j, winners in best.items():
            if rk in winners:
                cells[len(t.row_axes) + j] = f"[bold]{cells[len(t.row_axes) + j]}[/]"
        table.add_row(*cells)
    return table


def _warning_line(w: str) -> str:
    """A table's warning with its level said once: a stored check's message carries its level ("warning: ...",
    "error: ..."), the audit's and the table's own do not."""
    level, _, body = w.partition(": ")
    if level == "error":
        return f"[bold red]error[/] {escape(body)}"
    return f"[bold yellow]warning[/] {escape(body if level == 'warning' else w)}"


def compare_notes(t: Any) -> list[str]:
    """The lines printed under a compare table: sanity warnings and what is still missing."""
    lines = [_warning_line(w) for w in t.warnings]
    if t.partial:
        more = f" (+{len(t.missing) - 5} more)" if len(t.missing) > 5 else ""
        lines.append(f"[cyan]partial[/] not evaluated yet: {escape('; '.join(t.missing[:5]))}{more}")
    return lines


def tests_table(rows: list[dict[str, Any]]) -> Table:
    """ttest comparisons (from `api.ttest`) as a rich table, with the caption naming the test and n."""
    from rttui import api

    g = api.tests_grid(rows)
    t = Table(title=escape(g["title"]), title_justify="left", caption=escape(g["caption"]), caption_justify="left")
    for i, h in enumerate(g["header"]):
        t.add_column(escape(h), justify="left" if i < g["n_axes"] else "right")
    for r, cells in zip(rows, g["rows"], strict=True):
        cells = [escape(c) for c in cells]
        if r.get("p_holm") is not None and r["p_holm"] < 0.05:
            cells = [f"[bold]{c}[/]" for c in cells]
        t.add_row(*cells)
    return t


def layers_table(rows: list[dict[str, Any]], run_id: str) -> Table:
    """Per depth group: frozen or not, parameters, gradient norm and share at the start, CKA before/after."""
    batch = f"{rows[0]['batch']}, {rows[0]['n_images']} images" if rows else "no groups"
    t = Table(
        title=f"run {run_id}: layer analysis (input side first; {batch})",
        caption="grad: L2 norm of the target-loss gradient when fine-tuning starts (share: of the whole model's "
        "squared norm, head included); CKA: linear CKA of the group's features before vs after fine-tuning",
        title_justify="left",
        caption_justify="left",
    )
    for c, j in (("#", "right"), ("group", "left"), ("frozen", "left"), ("params", "right")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    for c in ("grad", "share", "grad after", "CKA"):
        t.add_column(c, justify="right")

    def num(v: Any, f: str) -> str:
        return "-" if v is None else format(v, f)

    for r in rows:
        t.add_row(
            str(r["group_idx"]),
            r["group"],
            "yes" if r["frozen"] else "",
            f"{r['n_params']:,}",
            num(r["grad_norm"], ".3g"),
            "-" if r.get("grad_share") is None else f"{100 * r['grad_share']:.1f}%",
            num(r.get("grad_norm_after"), ".3g"),
            num(r.get("cka"), ".4f"),
        )
    return t


def depth_table(table: dict[str, Any], study: str | None = None) -> Table:
    """Rows: (dataset, model, technique) by freeze depth; clean and adversarial accuracy, mean ± std over seeds."""
    rows = table["rows"]
    seeds = sorted({s for r in rows for s in r["seeds"]})
    t = Table(
        title=escape(
            f"{study + ': ' if study else ''}accuracy (%) vs freeze depth, mean±std over {len(seeds)} seed(s); "
            f"adversarial: {table['params']} ε={table['eps']:g}"
        ),
        title_justify="left",
    )
    varying = [k for k in ("dataset", "model", "technique") if len({r[k] for r in rows}) > 1] or ["model"]
    for k in varying:
        t.add_column(k)
    t.add_column("depth", justify="right")
    t.add_column("strategy")
    t.add_column("clean", justify="right")
    t.add_column(f"{table['attack'].upper()} ε={table['eps']:g}", justify="right")
    t.add_column("drop", justify="right")
    for r in rows:
        depth = "/".join(str(d) for d in r["depths"]) + f" of {r['n_groups']}"
        drop = r["clean"].mean - r["adv"].mean
        t.add_row(
            *[escape(str(r[k])) for k in varying],
            depth,
            escape(r["strategy"]),
            r["clean"].fmt(),
            r["adv"].fmt(),
            f"{100 * drop:.1f}",
        )
    return t
