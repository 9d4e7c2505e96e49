"""Text exports of compare tables and test results: CSV, Markdown, LaTeX (booktabs) and JSON.

Every format carries what the numbers are (attack, parameters, epsilon, seeds, partial, warnings).
Pure string building over plain results; no I/O.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

from rttui.analysis.compare import METRICS, CompareTable, Comparison
from rttui.analysis.records import AXES, AnalysisError, fmt_axis

FORMATS = ("csv", "md", "latex", "json")
RECORD_FORMATS = ("csv", "json")

# The flat records as CSV: every parameter that produced a number, one column each (the JSON form holds
# every field, nested parameters included).
RECORD_FIELDS = (
    "run_id",
    "study",
    "dataset",
    "model",
    "strategy",
    "technique",
    "attack",
    "norm",
    "steps",
    "step_size",
    "restarts",
    "random_start",
    "eps",
    "seed",
    "clean_acc",
    "adv_acc",
    "attack_success_rate",  # of the clean-correct images, the share the attack fooled
    "n",
    "mode",
    "precision",
    "selected_epoch",  # the training epoch whose weights were attacked ([train] select)
)

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    "±": r"$\pm$",
    "ε": r"$\varepsilon$",
    "−": "-",
    "∈": r"$\in$",
    "·": r"$\cdot$",
    "∞": r"$\infty$",
    "†": r"$^{\dagger}$",
    "–": "--",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (underscores included) and spell the few symbols we print."""
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for k, v in _LATEX_UNICODE.items():
        out = out.replace(k, v)
    return out


def render(obj: Comparison | CompareTable | list[dict[str, Any]], fmt: str) -> str:
    """A compare result or a list of ttest comparisons in `fmt` (csv, md, latex, json)."""
    if fmt not in FORMATS:
        raise AnalysisError(f"--format {fmt!r} is not supported here; use one of {', '.join(FORMATS)}")
    if isinstance(obj, CompareTable):
        obj = Comparison([obj])
    if isinstance(obj, Comparison):
        return {"csv": comparison_csv, "md": comparison_markdown, "latex": comparison_latex, "json": comparison_json}[
            fmt
        ](obj)
    return {"csv": tests_csv, "md": tests_markdown, "latex": tests_latex, "json": tests_json}[fmt](obj)


# ---- compare -----------------------------------------------------------------------------------------
def comparison_json(c: Comparison) -> str:
    return json.dumps(c.as_dict(), indent=2, default=str) + "\n"


def comparison_csv(c: Comparison) -> str:
    """Long format: one line per cell, each metric's mean and std in fractions of 1, plus what it shows."""
    fixed_axes = list(dict.fromkeys(a for t in c.tables for a in t.fixed))
    key_axes = list(dict.fromkeys(a for t in c.tables for a in (*t.row_axes, *t.col_axes)))
    metrics = list(dict.fromkeys(m for t in c.tables for m in t.metrics if not METRICS[m].std_only))
    for m in ("clean", "adv", "drop"):
        if m not in metrics:
            metrics.append(m)
    cols = [*fixed_axes, *[a for a in key_axes if a not in fixed_axes]]
    head = [*cols, *[f"{m}_{s}" for m in metrics for s in ("mean", "std")], "n_seeds", "seeds", "n_test"]
    head += ["attack_params", "partial", "mark", "p_holm", "warnings"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for t in c.tables:
        for cell in t.cells.values():
            vals = {**t.fixed, **cell.key}
            line = [vals.get(a, "") for a in cols]
            for m in metrics:
                s = cell.stats.get(m)
                line += [_num(s.mean if s and s.n else None), _num(s.std if s else None)]
            line += [
                cell.stats["clean"].n,
                " ".join(map(str, cell.stats["seeds"])),
                "/".join(map(str, t.n_test)),
                t.params_label,
                int(cell.partial),
                cell.mark,
                _num(cell.test.get("p_holm")) if cell.test else "",
                " | ".join(cell.warnings),
            ]
            w.writerow(line)
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.10g}"


def comparison_markdown(c: Comparison, level: int = 3, warnings: bool = True) -> str:
    parts = []
    for t in c.tables:
        parts.append(table_markdown(t, level, warnings))
    return "\n".join(parts)


def table_markdown(t: CompareTable, level: int = 3, warnings: bool = True) -> str:
    """A table as Markdown with its caption; its sanity warnings listed under it unless `warnings` is False (the
    report lists them once, grouped, at its end)."""
    header = t.header()
    best = t.best()
    lines = [f"{'#' * level} {t.title}", "", "| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---" if i < len(t.row_axes) else "---:" for i in range(len(header))) + " |")
    for rk, row in zip(t.row_keys, t.body(), strict=True):
        cells = [_md(x) for x in row]
        for j, winners in best.items():
            if rk in winners:
                cells[len(t.row_axes) + j] = f"**{cells[len(t.row_axes) + j]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"*{_md(t.caption)}; best per column in bold.*"]
    lines += [f"- ⚠ {_md(w)}" for w in t.warnings] if warnings else []
    if t.partial:
        lines += [f"- not yet evaluated: {_md(m)}" for m in t.missing[:20]]
    lines.append("")
    return "\n".join(lines)


def _md(x: Any) -> str:
    return str(x).replace("|", "\\|")


def comparison_latex(c: Comparison) -> str:
    return "\n".join(table_latex(t, i) for i, t in enumerate(c.tables))


def table_latex(t: CompareTable, index: int = 0) -> str:
    """A booktabs table: best value per column in bold, significance marks, a caption naming the attack,
    its parameters, epsilon and n seeds. Every row has as many cells as the column spec declares."""
    nrow = len(t.row_axes)
    columns = t.columns()
    ncols = nrow + len(columns)
    best = t.best()
    spec = "l" * nrow + "r" * len(columns)
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    cap = t.caption + (". " + "; ".join(t.warnings) if t.warnings else "")
    out.append(r"\caption{" + latex_escape(t.title + ". " + cap + ". Best value per column in bold.") + "}")
    label = re.sub(r"[^a-z0-9]+", "-", "-".join(str(v) for v in t.fixed.values()).lower()).strip("-")
    out.append(r"\label{tab:rttui-" + (label or str(index)) + "}")
    out.append(r"\begin{tabular}{" + spec + "}")
    out.append(r"\toprule")
    groups = t.column_groups()
    if t.col_axes and any(w > 1 for _, w in groups):
        top = [""] * nrow
        rules = []
        start = nrow + 1
        for name, width in groups:
            if width > 1 or name:
                top.append(r"\multicolumn{" + str(width) + "}{c}{" + latex_escape(name) + "}")
                rules.append(r"\cmidrule(lr){" + f"{start}-{start + width - 1}" + "}")
            else:
                top.append("")
            start += width
        out.append(" & ".join(top) + r" \\")
        out.append(" ".join(rules))
        sub = [latex_escape(a) for a in t.row_axes] + [latex_escape(METRICS[m].label) for _, m in columns]
        out.append(" & ".join(sub) + r" \\")
    else:
        out.append(" & ".join(latex_escape(h) for h in t.header()) + r" \\")
    out.append(r"\midrule")
    for rk in t.row_keys:
        cells = [latex_escape(fmt_axis(a, v)) for a, v in zip(t.row_axes, rk, strict=True)]
        for j, (ck, m) in enumerate(columns):
            cell = t.cell_at(rk, ck)
            if cell is None:
                cells.append("--")
                continue
            txt = latex_escape(cell.fmt(m))
            if rk in best.get(j, ()):
                txt = r"\textbf{" + txt + "}"
            if m == "adv" and cell.mark:
                txt += "$^{" + cell.mark + "}$"
            if cell.partial and j == 0:
                txt += r"$^{\dagger}$"
            cells.append(txt)
        assert len(cells) == ncols
        out.append(" & ".join(cells) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    if t.partial:
        out.append(r"\\[2pt]{\footnotesize $^{\dagger}$ partial: the study is still running.}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


# ---- ttest -------------------------------------------------------------------------------------------
TEST_FIELDS = ("mean_diff", "ci_low", "ci_high", "t", "p", "p_holm", "dz", "n")
_INTERNAL = ("pairs",)


def tests_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=str) + "\n"


def test_axes(rows: list[dict[str, Any]]) -> list[str]:
    """The axes a list of paired tests varies on (attack and eps always), in the order tables show them."""
    axes = [a for a in AXES if rows and a in rows[0]]
    return [a for a in axes if len({str(r[a]) for r in rows}) > 1 or a in ("attack", "eps")]


def tests_csv(rows: list[dict[str, Any]]) -> str:
    axes = [a for a in AXES if rows and a in rows[0]]
    head = [*axes, "axis", "a", "b", "metric", "test", *TEST_FIELDS, "w", "warning", "mcnemar_p", "levene_p"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in rows:
        line = [r.get(a, "") for a in (*axes, "axis", "a", "b", "metric", "test")]
        line += [_num(r.get(f)) if f != "n" else r.get(f) for f in TEST_FIELDS]
        line += [_num(r.get("w")), r.get("warning") or ""]
        line += [_num((r.get("mcnemar") or {}).get("p")), _num((r.get("variance") or {}).get("p"))]
        w.writerow(line)
    return buf.getvalue()


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def test_cells(r: dict[str, Any], axes: list[str]) -> list[str]:
    """The formatted cells of one comparison (differences in points)."""
    md = r.get("mean_diff")
    ci = "n/a" if r.get("ci_low") is None else f"[{r['ci_low'] * 100:+.1f}, {r['ci_high'] * 100:+.1f}]"
    cells = [fmt_axis(a, r[a]) if a != "eps" else f"{r[a]:g}" for a in axes]
    cells += [
        "n/a" if md is None else f"{md * 100:+.1f}",
        ci,
        "n/a" if r.get("t") is None else f"{r['t']:.2f}",
        _p(r.get("p")),
        _p(r.get("p_holm")),
        "n/a" if r.get("dz") is None else f"{r['dz']:.2f}",
        str(r.get("n")),
    ]
    if any("mcnemar" in x for x in [r]):
        m = r["mcnemar"]
        cells.append(f"{m['b']}/{m['c']} p={_p(m['p'])}")
    if "variance" in r:
        v = r["variance"]
        cells.append(f"{_sd(v['sd_a'])} vs {_sd(v['sd_b'])} p={_p(v['p'])}")
    return cells


def _sd(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}"


def test_header(rows: list[dict[str, Any]], axes: list[str]) -> list[str]:
    head = [*axes, "diff (pts)", "95% CI", "t", "p", "p Holm", "d_z", "n"]
    if rows and "mcnemar" in rows[0]:
        head.append("McNemar b/c")
    if rows and "variance" in rows[0]:
        head.append("sd a vs b (B-F)")
    return head


# A tests table on a narrow screen (80 columns over SSH) keeps what a reader decides by: the labels, the difference,
# its interval, the corrected p and the effect size. It shortens one header, then gives up t (p says it) and n (the
# caption says it), in that order.
TEST_SHORT = {"diff (pts)": "Δ pts"}
TEST_DROP = ("t", "n")


def cell_len(text: str) -> int:
    """Screen columns a plain string takes (wide East Asian characters count two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table_width(header: list[str], rows: list[list[str]], per_column: int = 2, edge: int = 0) -> int:
    """Screen columns a table of these plain cells takes: each column's widest cell plus `per_column` (a
    DataTable's padding of one a side: 2; a boxed rich table's padding and rule: 3) plus `edge` (its last rule)."""
    return edge + sum(
        max([cell_len(h), *(cell_len(str(r[i])) for r in rows)]) + per_column for i, h in enumerate(header)
    )


def fit_columns(
    header: list[str],
    rows: list[list[str]],
    width: int,
    short: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    per_column: int = 2,
    edge: int = 0,
) -> tuple[list[str], list[list[str]], list[str]]:
    """A table narrowed to `width` screen columns where it is wider: first the `short` headers, then the `drop`
    columns left out one by one in that order (the least needed first), until it fits or nothing is left to
    drop. Returns the header, the rows and the names of the columns left out, which the caller says on screen:
    a column past the edge, or a label cut to "test_…", is one nobody reads."""
    left_out: list[str] = []
    if table_width(header, rows, per_column, edge) <= width:
        return header, rows, left_out
    header = [(short or {}).get(h, h) for h in header]
    for name in drop:
        if table_width(header, rows, per_column, edge) <= width:
            break
        if name in header:
            i = header.index(name)
            header = header[:i] + header[i + 1 :]
            rows = [r[:i] + r[i + 1 :] for r in rows]
            left_out.append(name)
    return header, rows, left_out


def tests_caption(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no comparisons"
    r = rows[0]
    test = "paired t-test" if r["test"] == "t" else "Wilcoxon signed-rank test"
    warns = sorted({x["warning"] for x in rows if x.get("warning")})
    return (
        f"{r['axis']}: {r['a']} minus {r['b']} on {r['metric']}, {test} over seeds (n = "
        f"{'/'.join(sorted({str(x['n']) for x in rows}))}), 95% t confidence interval, Cohen's d_z, "
        f"{holm_family(rows)}" + (f". Note: {'; '.join(warns)}" if warns else "")
    )


def holm_family(rows: list[dict[str, Any]]) -> str:
    """The family Holm corrected over, named: how many comparisons, and the axes they span (so a caption says
    why a p Holm differs from another view's: another view tests another family)."""
    # Holm counts the comparisons that have a p-value (stats.holm), so the caption counts the same ones.
    tested = sum(x.get("p") is not None for x in rows)
    untested = f"; {len(rows) - tested} without a p-value" if tested < len(rows) else ""
    spans = [a for a in AXES if rows and a in rows[0] and len({str(x[a]) for x in rows}) > 1]
    over = f" (one per {' × '.join(spans)})" if spans else ""
    once = (
        f"; {rows[0]['metric']} does not depend on the attack, so each configuration is tested once"
        if rows and "attack" not in rows[0]
        else ""
    )
    return f"Holm over {tested} comparison(s){over}{untested}{once}"


def tests_markdown(rows: list[dict[str, Any]]) -> str:
    axes = test_axes(rows)
    head = test_header(rows, axes)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(_md(c) for c in test_cells(r, axes)) + " |" for r in rows]
    lines += ["", f"*{_md(tests_caption(rows))}*", ""]
    return "\n".join(lines)


def tests_latex(rows: list[dict[str, Any]]) -> str:
    axes = test_axes(rows)
    head = test_header(rows, axes)
    out = [r"\begin{table}[t]", r"\centering", r"\small", r"\caption{" + latex_escape(tests_caption(rows)) + "}"]
    out += [r"\begin{tabular}{" + "l" * len(axes) + "r" * (len(head) - len(axes)) + "}", r"\toprule"]
    out.append(" & ".join(latex_escape(h) for h in head) + r" \\")
    out.append(r"\midrule")
    for r in rows:
        out.append(" & ".join(latex_escape(c) for c in test_cells(r, axes)) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def records_text(records: list[dict[str, Any]], fmt: str) -> str:
    """The flat records (one per run, attack, eps) as `csv` (the RECORD_FIELDS columns) or `json` (every
    field): the one writer behind `rttui export` and the app's Export screen."""
    if fmt not in RECORD_FORMATS:
        raise AnalysisError(f"--format {fmt!r} is not supported for records; use one of {', '.join(RECORD_FORMATS)}")
    if fmt == "json":
        return json.dumps(records, indent=2, default=str) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RECORD_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()
