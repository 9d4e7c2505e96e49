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


def whole_width(header: list[str], cells: list[list[str]], i: int) -> int:
    """The narrowest column `i` can be with no cell cut: its longest cell, or its header's longest word (a header
    wraps at its spaces)."""
    return max([len(str(r[i])) for r in cells] + [len(w) for w in header[i].split()])


def compare_tables(t: Any, width: int | None = None) -> list[Table]:
    """A `CompareTable` (from `api.compare`) as rich tables: best per column bold, caption under the last.

    One table where it fits a `width`-column console (None: any width). Where it does not, its columns come in
    blocks that each fit, the labels repeated in every block, as pandas prints a wide frame: rich would
    otherwise cut every cell to the console ("test_r…", "65.6±2…"), and a cut number reads as another number.
    A table whose labels and one number column cannot fit is left to rich (`rttui compare` then says so)."""
    header, body = t.header(), t.body()
    n = len(t.row_axes)
    need = [whole_width(header, body, i) for i in range(len(header))]
    # A boxed rich table: each column adds its padding and a rule (3), the table its last rule (1).
    labels = 1 + sum(need[i] + 3 for i in range(n))
    natural = 1 + sum(max([len(str(r[i])) for r in body] + [len(h)]) + 3 for i, h in enumerate(header))
    blocks: list[list[int]] = [list(range(n, len(header)))]
    too_wide = width is not None and labels + sum(need[j] + 3 for j in blocks[0]) > width
    if too_wide and all(labels + need[j] + 3 <= width for j in blocks[0]):
        blocks, used = [[]], labels
        for j in range(n, len(header)):
            if blocks[-1] and used + need[j] + 3 > width:
                blocks.append([])
                used = labels
            blocks[-1].append(j)
            used += need[j] + 3
    best = t.best()
    out = []
    for k, cols in enumerate(blocks):
        title = t.title if len(blocks) == 1 else f"{t.title} (part {k + 1} of {len(blocks)})"
        last = k == len(blocks) - 1
        table = Table(
            title=escape(title),
            title_justify="left",
            caption=escape(t.caption) if last else None,
            caption_justify="left",
        )
        # Fixed widths only where rich would squeeze (it cuts a label to "test_…"); a table that fits as it is,
        # or cannot fit at all, is left to rich.
        whole = width is not None and natural > width and labels + sum(need[j] + 3 for j in cols) <= width
        for i in range(n):
            table.add_column(escape(header[i]), justify="left", width=need[i] if whole else None)
        for j in cols:
            table.add_column(escape(header[j]), justify="right", width=need[j] if whole else None)
        for rk, row in zip(t.row_keys, body, strict=True):
            cells = [escape(c) for c in row]
            for j, winners in best.items():
                if rk in winners:
                    cells[n + j] = f"[bold]{cells[n + j]}[/]"
            table.add_row(*cells[:n], *(cells[j] for j in cols))
        out.append(table)
    return out


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


def label_widths(header: list[str], cells: list[list[str]], n_labels: int, width: int | None) -> list[int | None]:
    """The least width of each label column so that rich never cuts a label ("test_…" names no model): its longest
    cell, or its header's longest word; None (rich decides) for the number columns, and for every column when
    whole labels would leave the numbers under 7 characters each on a `width`-column console (None: unknown)."""
    need = [whole_width(header, cells, i) for i in range(n_labels)]
    if width is None or sum(need) + 3 * n_labels + 10 * (len(header) - n_labels) + 1 > width:
        return [None] * len(header)
    return [*need, *([None] * (len(header) - n_labels))]


def tests_table(rows: list[dict[str, Any]], width: int | None = None) -> Table:
    """ttest comparisons (from `api.ttest`) as a rich table, with the caption naming the test and n. Narrower than
    the table (`width`, the console's), it keeps the labels whole and gives up t, then n, saying so."""
    from rttui import api

    g = api.tests_grid(rows)
    note = ""
    if width is not None:
        g = api.fit_tests_grid(g, width, per_column=3, edge=1)
        note = f" ({g['note']})" if g["note"] else ""
    t = Table(
        title=escape(g["title"]), title_justify="left", caption=escape(g["caption"] + note), caption_justify="left"
    )
    least_widths = label_widths(g["header"], g["rows"], g["n_axes"], width)
    for i, (h, least) in enumerate(zip(g["header"], least_widths, strict=True)):
        t.add_column(escape(h), justify="left" if i < g["n_axes"] else "right", min_width=least)
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
