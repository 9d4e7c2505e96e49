"""The transferability view: surrogate x target adversarial accuracy, mean +- std over seeds, with white-box PGD
on the diagonal for reference, and its text forms (JSON records, CSV, Markdown, LaTeX).

Columns are the study's target configurations (the axes of `CONFIG_AXES` that vary, e.g. the strategy). Rows are
the surrogates an attacker crafts on: `source` (the public pretrained model each target was fine-tuned from),
then each configuration the study used as a sibling surrogate (the same seed as the target; a sibling of
another seed is a row of its own, "... (other seed)"), then white-box PGD on each target for reference, and
its clean accuracy. Where a surrogate row is the target's own configuration (the diagonal) the entry is
white-box PGD on the target, at the same epsilon and on the same test set, marked `wb`: a transfer
evaluation whose surrogate is the target itself is white-box PGD by construction and is not shown twice. The
JSON records hold every (surrogate, target) entry, the diagonal once per target (`kind = "white-box"`).

Pure functions over the flat records `Store.records()` returns (a transfer record carries its label,
`transfer[source]` / `transfer[sibling: ...]`, and its `surrogate_id`) and the stored checks. No SQL, no I/O,
no UI.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rttui.analysis.aggregate import Stat, cell_stats
from rttui.analysis.records import CONFIG_AXES, EPS_TOL, AnalysisError, default_eps, normalize

WHITE_BOX = "pgd"
SOURCE_ROW = "source"
OTHER_SEED = " (other seed)"
WHITE_BOX_ROW = "white-box pgd (the target itself)"
CLEAN_ROW = "(clean, no attack)"
FORMATS = ("table", "json", "md", "latex", "csv")


@dataclass
class MatrixCell:
    """One (surrogate, target) entry: adversarial (and clean) accuracy over the target's seeds."""

    adv: Stat
    clean: Stat
    kind: str  # "transfer" | "white-box"
    attack: str  # the label of what produced it (transfer[source], pgd, ...)
    seeds: list[Any]
    run_ids: list[str]


@dataclass
class TransferMatrix:
    """Surrogate x target accuracy at one epsilon (see the module doc)."""

    eps: float
    axes: list[str]  # the configuration axes the row and column labels spell
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], MatrixCell]
    whitebox: dict[str, MatrixCell]  # column -> white-box PGD on that target (the diagonal's values)
    params: dict[str, dict[str, Any]]  # attack label -> its parameters
    n_test: list[int]
    warnings: list[str] = field(default_factory=list)
    study: str | None = None

    @property
    def title(self) -> str:
        where = f"{self.study}: " if self.study else ""
        return f"{where}transfer attacks, surrogate (rows) x target (columns), ε={self.eps:g}"

    @property
    def caption(self) -> str:
        seeds = sorted({s for c in self.cells.values() for s in c.seeds}, key=str)
        parts = [
            f"adversarial accuracy (%) on clean-correct test samples, mean±std over {len(seeds)} seed(s)",
            f"n = {'/'.join(map(str, self.n_test))} test images",
            "diagonal (wb): white-box PGD on the target itself",
        ]
        for label, p in sorted(self.params.items()):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(p.items()) if v is not None and k != "sibling")
            parts.append(f"{label}: {shown}")
        return "; ".join(parts)

    def cell(self, row: str, col: str) -> MatrixCell | None:
        return self.cells.get((row, col))

    def header(self) -> list[str]:
        return ["surrogate \\ target", *self.cols]

    def clean(self, col: str) -> Stat | None:
        """The target's clean accuracy over its seeds (the same in every cell of its column)."""
        cell = self.whitebox.get(col) or next((c for (_, k), c in self.cells.items() if k == col), None)
        return cell.clean if cell is not None else None

    def body(self) -> list[list[str]]:
        """Display strings, one list per row: `mean±std` in %, the diagonal marked `wb`, `-` for none; a last
        row gives each target's clean accuracy for reference."""
        out = []
        for r in self.rows:
            line = [r]
            for c in self.cols:
                cell = self.whitebox.get(c) if r == WHITE_BOX_ROW else self.cell(r, c)
                if cell is None:
                    line.append("-")
                else:
                    txt = cell.adv.fmt(100.0)
                    line.append(f"{txt} wb" if cell.kind == "white-box" else txt)
            out.append(line)
        out.append([CLEAN_ROW, *[(st.fmt(100.0) if (st := self.clean(c)) is not None else "-") for c in self.cols]])
        return out

    def records(self) -> list[dict[str, Any]]:
        """One record per (surrogate, target): adv_acc and std (fractions of 1), n_seeds, what produced it, and
        the target's clean and white-box accuracy for reference."""
        out = []
        for (r, c), cell in self.cells.items():
            wb = self.whitebox.get(c)
            out.append(
                {
                    "surrogate": r,
                    "target": c,
                    "eps": self.eps,
                    "kind": cell.kind,
                    "attack": cell.attack,
                    "adv_acc": cell.adv.mean,
                    "std": cell.adv.std,
                    "n_seeds": cell.adv.n,
                    "seeds": cell.seeds,
                    "clean_acc": cell.clean.mean,
                    "whitebox_acc": wb.adv.mean if wb is not None else None,
                    "run_ids": cell.run_ids,
                    "params": self.params.get(cell.attack, {}),
                }
            )
        return out


def _cell_label(r: dict[str, Any], axes: list[str]) -> str:
    return "/".join(str(r[a]) for a in axes)


def transfer_matrices(
    records: list[dict[str, Any]],
    checks: list[dict[str, Any]] | None = None,
    eps: float | None = None,
    study: str | None = None,
    all_eps: bool = False,
) -> list[TransferMatrix]:
    """The matrix at `eps` (None: the default epsilon, or every epsilon with `all_eps`)."""
    recs = normalize(records)
    transfer = [r for r in recs if str(r.get("attack_name", r["attack"])) == "transfer"]
    if not transfer:
        raise AnalysisError(
            "no transfer attack is stored here; add [attacks.transfer] to the study and run it "
            "(see docs/how-to/transfer-attacks.md)"
        )
    grid = sorted({float(r["eps"]) for r in transfer})
    if eps is not None:
        if not any(abs(e - eps) < EPS_TOL for e in grid):
            raise AnalysisError(
                f"epsilon {eps:g} was not evaluated by the transfer attack; use --eps with one of "
                + ", ".join(f"{e:g}" for e in grid)
            )
        wanted = [e for e in grid if abs(e - eps) < EPS_TOL]
    elif all_eps:
        wanted = grid
    else:
        wanted = [default_eps(grid)]
    axes = [a for a in CONFIG_AXES if len({r[a] for r in recs}) > 1] or ["strategy"]
    cell_of_run = {r["run_id"]: _cell_label(r, axes) for r in recs}
    seed_of_run = {r["run_id"]: r["seed"] for r in recs}
    warned = [
        f"{c['level']}: {cell_of_run.get(c['run_id'], c['run_id'])} seed {seed_of_run.get(c['run_id'], '?')}: "
        f"{c['message']}"
        for c in checks or []
        if c.get("check") == "pgd_le_transfer" and c.get("level") == "warning" and c["run_id"] in cell_of_run
    ]
    return [_matrix(recs, transfer, e, axes, cell_of_run, seed_of_run, warned, study) for e in wanted]


def _matrix(
    recs: list[dict[str, Any]],
    transfer: list[dict[str, Any]],
    eps: float,
    axes: list[str],
    cell_of_run: dict[str, str],
    seed_of_run: dict[str, Any],
    warned: list[str],
    study: str | None,
) -> TransferMatrix:
    at = [r for r in recs if abs(float(r["eps"]) - eps) < EPS_TOL]
    cols = list(dict.fromkeys(_cell_label(r, axes) for r in sorted(at, key=lambda r: [str(r[a]) for a in axes])))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    labels: dict[tuple[str, str], set[str]] = defaultdict(set)
    params: dict[str, dict[str, Any]] = {}
    other_rows: list[str] = []
    for r in (t for t in transfer if abs(float(t["eps"]) - eps) < EPS_TOL):
        sur = r.get("surrogate_id")
        if r["attack_params"].get("surrogate") == "sibling":
            if sur == r["run_id"]:
                continue  # the target itself: white-box PGD, which the diagonal shows
            row = cell_of_run.get(sur, str(sur))
            if seed_of_run.get(sur) != r["seed"]:
                row += OTHER_SEED
                if row not in other_rows:
                    other_rows.append(row)
        else:
            row = SOURCE_ROW
        col = _cell_label(r, axes)
        groups[(row, col)].append(r)
        labels[(row, col)].add(r["attack"])
        params.setdefault(r["attack"], dict(r["attack_params"]))
    warnings = list(warned)
    cells: dict[tuple[str, str], MatrixCell] = {}
    for key, rs in groups.items():
        if len(labels[key]) > 1:
            first = sorted(labels[key])[0]
            warnings.append(
                f"{key[0]} -> {key[1]}: {len(labels[key])} transfer attacks share this surrogate "
                f"({', '.join(sorted(labels[key]))}); {first} is shown"
            )
            rs = [r for r in rs if r["attack"] == first]
        st = cell_stats(rs)
        cells[key] = MatrixCell(st["adv"], st["clean"], "transfer", rs[0]["attack"], st["seeds"], st["run_ids"])
    whitebox: dict[str, MatrixCell] = {}
    for col in cols:
        rs = [r for r in at if r["attack"] == WHITE_BOX and _cell_label(r, axes) == col]
        if rs:
            st = cell_stats(rs)
            whitebox[col] = MatrixCell(st["adv"], st["clean"], "white-box", WHITE_BOX, st["seeds"], st["run_ids"])
            cells[(col, col)] = whitebox[col]
            params.setdefault(WHITE_BOX, dict(rs[0]["attack_params"]))
    rows = [SOURCE_ROW] if any(k[0] == SOURCE_ROW for k in cells) else []
    rows += [c for c in cols if any(k[0] == c and cell.kind == "transfer" for k, cell in cells.items())]
    rows += [r for r in other_rows if r not in rows]
    if whitebox:
        rows.append(WHITE_BOX_ROW)
    n_test = sorted({int(r["n"]) for r in at})
    return TransferMatrix(eps, axes, rows, cols, cells, whitebox, params, n_test, warnings, study)


# ---- text forms -----------------------------------------------------------------------------------------
def render_matrices(matrices: list[TransferMatrix], fmt: str) -> str:
    """json: one record per (surrogate, target, eps); csv: the same as lines; md / latex: one table per eps."""
    if fmt == "json":
        return json.dumps([rec for m in matrices for rec in m.records()], indent=2, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        fields = ["surrogate", "target", "eps", "kind", "attack", "adv_acc", "std", "n_seeds", "clean_acc"]
        w = csv.DictWriter(buf, fieldnames=[*fields, "whitebox_acc"], extrasaction="ignore")
        w.writeheader()
        for m in matrices:
            w.writerows(m.records())
        return buf.getvalue()
    if fmt == "md":
        return "\n".join(_markdown(m) for m in matrices)
    if fmt == "latex":
        return "\n".join(_latex(m, i) for i, m in enumerate(matrices))
    raise AnalysisError(f"--format {fmt!r} is not supported here; use one of {', '.join(FORMATS)}")


def _md(x: Any) -> str:
    return str(x).replace("|", "\\|")


def _markdown(m: TransferMatrix) -> str:
    lines = [f"### {_md(m.title)}", "", "| " + " | ".join(_md(h) for h in m.header()) + " |"]
    lines.append("| --- |" + " ---: |" * len(m.cols))
    lines += ["| " + " | ".join(_md(x) for x in row) + " |" for row in m.body()]
    lines += ["", f"*{_md(m.caption)}.*"]
    lines += [f"- ⚠ {_md(w)}" for w in m.warnings]
    return "\n".join(lines) + "\n"


def _latex(m: TransferMatrix, index: int) -> str:
    from rttui.analysis.export import latex_escape

    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    cap = m.caption + (". " + "; ".join(m.warnings) if m.warnings else "")
    out.append(r"\caption{" + latex_escape(m.title + ". " + cap + ".") + "}")
    out.append(r"\label{tab:rttui-transfer-" + str(index) + "}")
    out.append(r"\begin{tabular}{l" + "r" * len(m.cols) + "}")
    out.append(r"\toprule")
    out.append(" & ".join(latex_escape(h) for h in m.header()) + r" \\")
    out.append(r"\midrule")
    for row in m.body():
        cells = [latex_escape(row[0])]
        for x in row[1:]:
            cells.append(r"\textit{" + latex_escape(x[:-3]) + "}" if x.endswith(" wb") else latex_escape(x))
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"
