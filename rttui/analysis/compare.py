"""The compare pivot: accuracy, adversarial accuracy and robustness drop as mean +- std over seeds.

Pure functions over the flat records `Store.records()` returns (one per run, attack, eps), the study's run
list (to mark partial results) and the stored sanity checks. No SQL, no I/O, no UI.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rttui.analysis.aggregate import Stat, auc_by_run, cell_stats
from rttui.analysis.environment import mixed_envs_warning
from rttui.analysis.records import (
    AUDIT_CHECK,
    AUDIT_MARK,
    AXES,
    CONFIG_AXES,
    EPS_TOL,
    AnalysisError,
    apply_where,
    attack_label,
    audit_warning,
    config_label,
    dedupe,
    default_eps,
    fmt_axis,
    matches,
    normalize,
    params_str,
    parse_where,
    run_labels,
    select,
    variant_labels,
)

# Re-exported: callers that compare results also select records and read these.
__all__ = [
    "AXES",
    "CONFIG_AXES",
    "DEFAULT_METRICS",
    "EPS_TOL",
    "METRICS",
    "STABILITY_METRICS",
    "AnalysisError",
    "Cell",
    "CompareTable",
    "Comparison",
    "Metric",
    "apply_where",
    "auc_by_run",
    "cell_stats",
    "compare",
    "dedupe",
    "default_eps",
    "parse_where",
    "select",
    "variant_labels",
]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    std_only: bool = False  # stability columns show the spread itself


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("clean", "standard", True),
        Metric("adv", "adversarial", True),
        Metric("drop", "drop (pts)", False),
        Metric("rel_drop", "rel. drop (%)", False),
        Metric("asr", "success rate (%)", False),
        Metric("auc", "AUC", True),
        Metric("clean_sd", "sd standard", False, std_only=True),
        Metric("adv_sd", "sd adversarial", False, std_only=True),
    )
}
DEFAULT_METRICS = ("clean", "adv", "drop")
STABILITY_METRICS = ("clean", "adv", "clean_sd", "adv_sd")


# ---- the pivot ---------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One configuration in a table: its axis values and its metrics over seeds."""

    key: dict[str, Any]
    stats: dict[str, Any]
    partial: bool = False
    warnings: list[str] = field(default_factory=list)
    mark: str = ""  # significance mark from the paired test against the baseline ("*", "**" or "")
    test: dict[str, Any] | None = None
    # The attack-strength audit flagged an evaluation behind this cell (rttui.engine.attacks.audit): a stronger
    # attack shows the stored accuracy overstated by more than max(3 images, 1% of the test set).
    flagged: bool = False

    def stat(self, metric: str) -> Stat:
        return self.stats[metric]

    def fmt(self, metric: str, digits: int = 1) -> str:
        s: Stat = self.stats[metric]
        if metric == "auc":
            return s.fmt(scale=100.0, digits=digits)
        if METRICS[metric].std_only:
            return "-" if s.std is None else f"{s.std * 100:.{digits}f}"
        return s.fmt(scale=100.0, digits=digits)

    def value(self, metric: str) -> float | None:
        s: Stat = self.stats[metric]
        if METRICS[metric].std_only:
            return s.std
        return None if s.n == 0 or math.isnan(s.mean) else s.mean

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.key)
        for m in METRICS:
            if m in self.stats and not METRICS[m].std_only:
                d[m] = {**self.stats[m].as_dict(), "values": self.stats["values"].get(m)}
        d["seeds"] = self.stats["seeds"]
        d["run_ids"] = self.stats["run_ids"]
        d["partial"] = self.partial
        d["warnings"] = self.warnings
        d["mark"] = self.mark
        d["audit_flagged"] = self.flagged
        if self.test is not None:
            d["test"] = self.test
        return d


@dataclass
class CompareTable:
    """One pivot table: the axes that are fixed for it, its rows x columns of cells and what it shows."""

    fixed: dict[str, Any]
    row_axes: list[str]
    col_axes: list[str]
    metrics: list[str]
    row_keys: list[tuple[Any, ...]]
    col_keys: list[tuple[Any, ...]]
    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], Cell]
    attack: str | None
    eps: float | None
    params: dict[str, Any]
    params_label: str
    seeds: list[Any]
    n_seeds: tuple[int, int]
    n_test: list[int]
    partial: bool
    missing: list[str]
    warnings: list[str]
    notes: list[str]
    baseline: tuple[str, str] | None = None
    params_by_attack: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_states: list[str] = field(default_factory=list)
    running: bool = True  # whether a runner works on the study (unknown reads as running: the milder claim)
    studies: list[str] | None = None  # the studies the comparison's records come from (named when several)
    holm_family: str = ""  # the comparisons the significance marks were Holm-corrected over, named

    @property
    def title(self) -> str:
        fixed = ", ".join(fmt_axis(k, v) if k == "eps" else f"{k}={v}" for k, v in self.fixed.items())
        what = "Accuracy (%)" if self.attack else "Accuracy (%) under attack"
        label = incomplete_label(self.missing_states, self.running) if self.partial else ""
        return f"{what}{' - ' + fixed if fixed else ''}{f' [{label}]' if label else ''}"

    @property
    def caption(self) -> str:
        """What the numbers are: attack and its parameters, epsilon, seeds, test images, marks, warnings."""
        lo, hi = self.n_seeds
        n = f"n = {lo} seed{'s' if hi != 1 else ''}" if lo == hi else f"n = {lo}-{hi} seeds"
        parts = [f"mean ± std over seeds ({n}; seeds {', '.join(map(str, self.seeds))})"]
        if self.studies and len(self.studies) > 1:
            parts.append(f"studies {', '.join(self.studies)} (mixed on purpose: --study all)")
        if self.params_label:
            parts.append(f"attack{'s' if ';' in self.params_label else ''} {self.params_label}")
        if self.eps is not None:
            norms = sorted({str(p.get("norm", "linf")) for p in self.params_by_attack.values()} or {"linf"})
            label = " / ".join({"linf": "L∞", "l2": "L2"}.get(n, n) for n in norms)
            parts.append(f"ε = {self.eps:g} ({label}, [0, 1] pixels)")
        if self.n_test:
            parts.append(f"{'/'.join(map(str, self.n_test))} test images")
        parts.append("drop = standard − adversarial (points)")
        if "rel_drop" in self.metrics:
            parts.append("rel. drop = drop / standard")
        if "asr" in self.metrics:
            parts.append("success rate = share of the clean-correct test images the attack fooled")
        if "auc" in self.metrics:
            parts.append("AUC = mean accuracy over ε ∈ [0, max ε] (trapezoid)")
        if self.baseline:
            parts.append(
                f"* p < 0.05, ** p < 0.01 vs {self.baseline[0]}={self.baseline[1]} "
                f"(paired t-test over seeds on adversarial accuracy, Holm over {self.holm_family}; "
                "a view with other cells corrects over another family, so its marks can differ)"
            )
        if self.partial and self.running:
            parts.append(f"PARTIAL: {len(self.missing)} run(s) not evaluated yet")
        elif self.partial:
            parts.append(incomplete_label(self.missing_states, False))
        if any(c.flagged for c in self.cells.values()):
            parts.append(
                f"{AUDIT_MARK} flagged by the attack-strength audit: a stronger attack shows the accuracy overstated "
                "by more than max(3, 1% of the test images) images; the worst-case rows count what it fooled"
            )
        if self.warnings:
            parts.append(f"{len(self.warnings)} sanity warning(s)")
        return "; ".join(parts)

    @property
    def shared_clean(self) -> bool:
        """Standard accuracy does not depend on the attack or epsilon: when the columns only split those,
        it is shown once (the paper's Table I layout: standard, FGSM, PGD)."""
        return "clean" in self.metrics and bool(self.col_axes) and set(self.col_axes) <= {"attack", "eps"}

    def columns(self) -> list[tuple[tuple[Any, ...] | None, str]]:
        """The value columns in order, as (column key, metric); a key of None is the shared standard column."""
        if self.shared_clean:
            rest = [m for m in self.metrics if m != "clean"]
            return [(None, "clean"), *[(ck, m) for ck in self.col_keys for m in rest]]
        return [(ck, m) for ck in self.col_keys for m in self.metrics]

    def column_groups(self) -> list[tuple[str, int]]:
        """(group label, width) spans over `columns()` for a two-level header ('' for ungrouped)."""
        groups: list[tuple[str, int]] = []
        for ck, _m in self.columns():
            label = "" if ck is None else " ".join(fmt_axis(a, v) for a, v in zip(self.col_axes, ck, strict=True))
            if groups and groups[-1][0] == label and ck is not None:
                groups[-1] = (label, groups[-1][1] + 1)
            else:
                groups.append((label, 1))
        return groups

    def cell_at(self, rk: tuple[Any, ...], ck: tuple[Any, ...] | None) -> Cell | None:
        if ck is not None:
            return self.cells.get((rk, ck))
        return next((self.cells[(rk, k)] for k in self.col_keys if (rk, k) in self.cells), None)

    def header(self) -> list[str]:
        cols = [*self.row_axes]
        for ck, m in self.columns():
            prefix = "" if ck is None else " ".join(fmt_axis(a, v) for a, v in zip(self.col_axes, ck, strict=True))
            if ck is not None and self.col_axes == ["attack"] and m == "adv" and len(self.metrics) <= 2:
                cols.append(str(ck[0]).upper())  # Table I: "FGSM", "PGD"
            else:
                cols.append(f"{prefix} {METRICS[m].label}".strip())
        return cols

    def formatted(self, rk: tuple[Any, ...], ck: tuple[Any, ...] | None, m: str, marks: bool = True) -> str:
        cell = self.cell_at(rk, ck)
        if cell is None:
            return "-"
        txt = cell.fmt(m)
        if marks and m == "adv" and cell.mark:
            txt += cell.mark
        if marks and m == "adv" and cell.flagged:
            txt += AUDIT_MARK
        return txt

    def body(self, marks: bool = True) -> list[list[str]]:
        """Formatted cells, one list per row (row-axis values first); '-' where a cell has no data."""
        out = []
        for rk in self.row_keys:
            line = [fmt_axis(a, v) for a, v in zip(self.row_axes, rk, strict=True)]
            for j, (ck, m) in enumerate(self.columns()):
                txt = self.formatted(rk, ck, m, marks)
                cell = self.cell_at(rk, ck)
                if j == 0 and cell is not None and cell.partial:
                    txt += " (partial)"
                line.append(txt)
            out.append(line)
        return out

    def best(self) -> dict[int, tuple[tuple[Any, ...], ...]]:
        """Per value column (index into `columns()`): the row keys holding the best mean (ties all count);
        a column where every row is equal has no best."""
        out = {}
        for j, (ck, m) in enumerate(self.columns()):
            vals = {rk: c.value(m) for rk in self.row_keys if (c := self.cell_at(rk, ck)) is not None}
            vals = {k: v for k, v in vals.items() if v is not None and not math.isnan(v)}
            if len(vals) < 2 or max(vals.values()) - min(vals.values()) < 1e-12:
                continue
            target = max(vals.values()) if METRICS[m].higher_is_better else min(vals.values())
            out[j] = tuple(k for k, v in vals.items() if abs(v - target) < 1e-12)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "caption": self.caption,
            "fixed": self.fixed,
            "attack": self.attack,
            "eps": self.eps,
            "params": self.params,
            "params_label": self.params_label,
            "params_by_attack": self.params_by_attack,
            "seeds": self.seeds,
            "n_seeds": list(self.n_seeds),
            "n_test": self.n_test,
            "partial": self.partial,
            "missing": self.missing,
            "warnings": self.warnings,
            "notes": self.notes,
            "rows": self.row_axes,
            "cols": self.col_axes,
            "metrics": self.metrics,
            "baseline": list(self.baseline) if self.baseline else None,
            "cells": [c.as_dict() for c in self.cells.values()],
        }


@dataclass
class Comparison:
    """The result of `compare`: one table per combination of the axes that are neither rows nor columns."""

    tables: list[CompareTable]
    study: str | None = None
    partial: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.study, "partial": self.partial, "tables": [t.as_dict() for t in self.tables]}


def _split_axes(axes: Sequence[str] | str | None, name: str) -> list[str]:
    if axes is None:
        return []
    items = [a.strip() for a in (axes.split(",") if isinstance(axes, str) else axes) if a.strip()]
    for a in items:
        if a not in AXES:
            raise AnalysisError(f"--{name} {a!r} is not an axis; use a comma list of {', '.join(AXES)}")
    return items


def incomplete_label(states: Sequence[str], running: bool) -> str:
    """What a result missing runs is, said the same way by every face: `PARTIAL: study still running` while a
    runner works on it, else what stopped it (`INCOMPLETE: 1 run failed, 2 runs not run`); "" when nothing is
    missing. `states` are the missing runs' states."""
    if not states:
        return ""
    if running:
        return "PARTIAL: study still running"
    failed = sum(s == "failed" for s in states)
    rest = len(states) - failed
    parts = [f"{n} run{'s' if n != 1 else ''} {what}" for n, what in ((failed, "failed"), (rest, "not run")) if n]
    return "INCOMPLETE: " + ", ".join(parts)


def compare(
    records: list[dict[str, Any]],
    runs: Iterable[dict[str, Any]] = (),
    checks: Iterable[dict[str, Any]] = (),
    *,
    attack: str | None = "pgd",
    eps: float | None = None,
    rows: Sequence[str] | str | None = None,
    cols: Sequence[str] | str | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: tuple[str, str] | bool | None = True,
    study: str | None = None,
    running: bool = True,
) -> Comparison:
    """Pivot records into tables. `eps=None` keeps every epsilon (one table each unless `eps` is a row or
    column axis); `attack=None` keeps every attack likewise. Axes that vary but are neither rows nor
    columns split tables, so different configurations are never pooled. `baseline=True` picks the mark
    reference automatically (strategy=full, else technique=none), a pair names it, None/False disables it.
    `running` says whether a runner works on the study, so missing runs read as "still running" or as what
    stopped them (see `incomplete_label`)."""
    for m in metrics:
        if m not in METRICS:
            raise AnalysisError(f"metric {m!r} is unknown; use some of {', '.join(METRICS)}")
    all_recs = normalize(records)
    recs = select(records, attack, eps, where)
    aucs = auc_by_run(apply_where(all_recs, parse_where(where)))
    row_axes = _split_axes(rows, "rows")
    col_axes = _split_axes(cols, "cols")
    if set(row_axes) & set(col_axes):
        raise AnalysisError(f"--rows and --cols share {sorted(set(row_axes) & set(col_axes))}; give each axis once")
    varying = [a for a in AXES if len({r[a] for r in recs}) > 1]
    if not row_axes:
        row_axes = [a for a in CONFIG_AXES if a in varying and a not in col_axes] or ["model"]
    split = [a for a in AXES if a not in row_axes and a not in col_axes and (a in varying or a in ("attack", "eps"))]
    where_d = parse_where(where)
    runs = list(runs)
    studies = sorted({str(r["study"]) for r in records if r.get("study")})
    checks_by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    planned = {r["eval_id"] for r in records if r.get("eval_id")}
    for c in checks:
        # A check of a pair of evaluations ("id+id", PGD against FGSM) belongs to the study that planned both.
        if "+" in (c.get("eval_id") or "") and not set(c["eval_id"].split("+")) <= planned:
            continue
        checks_by_run[c["run_id"]].append(c)

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        groups[tuple(r[a] for a in split)].append(r)
    tables = []
    for gkey in sorted(groups, key=_sort_key):
        grecs = groups[gkey]
        fixed = dict(zip(split, gkey, strict=True))
        tables.append(
            _table(
                grecs,
                fixed=fixed,
                row_axes=row_axes,
                col_axes=col_axes,
                metrics=list(metrics),
                aucs=aucs,
                runs=runs,
                where=where_d,
                checks_by_run=checks_by_run,
                baseline=baseline,
                running=running,
                studies=studies,
            )
        )
    return Comparison(tables, study, any(t.partial for t in tables))


def _sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((0, v, "") if isinstance(v, int | float) else (1, 0, str(v)) for v in k)


def _table(
    recs: list[dict[str, Any]],
    *,
    fixed: dict[str, Any],
    row_axes: list[str],
    col_axes: list[str],
    metrics: list[str],
    aucs: dict[tuple[str, str], float],
    runs: list[dict[str, Any]],
    where: dict[str, list[str]],
    checks_by_run: dict[str, list[dict[str, Any]]],
    baseline: tuple[str, str] | bool | None,
    running: bool = True,
    studies: list[str] | None = None,
) -> CompareTable:
    by_cell: dict[tuple[tuple[Any, ...], tuple[Any, ...]], list[dict[str, Any]]] = defaultdict(list)
    row_keys: list[tuple[Any, ...]] = []
    col_keys: list[tuple[Any, ...]] = []
    for r in recs:
        rk, ck = tuple(r[a] for a in row_axes), tuple(r[a] for a in col_axes)
        if rk not in row_keys:
            row_keys.append(rk)
        if ck not in col_keys:
            col_keys.append(ck)
        by_cell[(rk, ck)].append(r)
    col_keys.sort(key=_sort_key)
    if "eps" in row_axes or "attack" in row_axes:
        row_keys.sort(key=_sort_key)

    # Which registered runs should appear in this table, and which of them have no numbers yet.
    attacks_here = {r["attack"] for r in recs}
    eps_here = {float(r["eps"]) for r in recs}
    have = {r["run_id"] for r in recs}
    expected = [
        run
        for run in runs
        if all(matches(run.get(k), vs) for k, vs in where.items() if k in CONFIG_AXES or k == "seed")
        and all(matches(run.get(k), [str(v).split("[", 1)[0]]) for k, v in fixed.items() if k in CONFIG_AXES)
    ]
    missing_runs = [run for run in expected if run["id"] not in have]
    labels_ = run_labels(runs)
    missing = [f"{labels_[run['id']]} ({run['state']})" for run in missing_runs]
    missing_cfg = {tuple(run.get(a) for a in CONFIG_AXES) for run in missing_runs}

    cells: dict[tuple[tuple[Any, ...], tuple[Any, ...]], Cell] = {}
    warnings: list[str] = []
    notes: list[str] = []
    eval_ids = {r["eval_id"] for r in recs}
    for (rk, ck), crecs in by_cell.items():
        stats = cell_stats(crecs, aucs)
        key = {**dict(zip(row_axes, rk, strict=True)), **dict(zip(col_axes, ck, strict=True))}
        base_cfg = tuple(str(crecs[0].get(f"{a}_name", crecs[0][a])) for a in CONFIG_AXES)
        cell = Cell(key, stats, partial=base_cfg in missing_cfg)
        for r in crecs:
            msg = audit_warning(r)
            if msg:
                cell.flagged = True
                msg = f"{config_label(r)} seed {r['seed']}: {msg}"
                cell.warnings.append(msg)
                if msg not in warnings:
                    warnings.append(msg)
        for rid in stats["run_ids"]:
            for c in checks_by_run.get(rid, []):
                if c["eval_id"] and "+" not in c["eval_id"] and c["eval_id"] not in eval_ids:
                    continue
                if c["check"] == AUDIT_CHECK:  # shown per eps from the records' audit (above), not per evaluation
                    continue
                if c["level"] in ("warning", "error"):
                    msg = f"{c['level']}: {config_label(crecs[0])} seed {_seed_of(crecs, rid)}: {c['message']}"
                    cell.warnings.append(msg)
                    if msg not in warnings:
                        warnings.append(msg)
                elif c["level"] == "info":
                    msg = f"{config_label(crecs[0])} seed {_seed_of(crecs, rid)}: {c['message']}"
                    if msg not in notes:
                        notes.append(msg)
        if stats["duplicates"]:
            msg = (
                f"{config_label(crecs[0])}: {stats['duplicates']} run(s) share a seed with another run; "
                "the first is used"
            )
            cell.warnings.append(msg)
            warnings.append(msg)
        cells[(rk, ck)] = cell

    first = recs[0]
    by_attack: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by_attack[r["attack"]].append(r)
    labels = []
    for att, arecs in by_attack.items():
        param_sets = {params_str(r.get("attack_params")) for r in arecs}
        if len(param_sets) > 1:
            warnings.append(f"{att}: mixed attack parameters in one table: {' | '.join(sorted(param_sets))}")
        steps = sorted({r.get("step_size") for r in arecs if r.get("step_size") is not None})
        labels.append(attack_label(arecs[0], steps if len(eps_here) == 1 else None))
    mixed_env = mixed_envs_warning(recs)
    if mixed_env:
        warnings.append(mixed_env)
    label = "; ".join(labels)
    ns = [c.stats["clean"].n for c in cells.values()]
    table = CompareTable(
        fixed=fixed,
        row_axes=row_axes,
        col_axes=col_axes,
        metrics=metrics,
        row_keys=row_keys,
        col_keys=col_keys,
        cells=cells,
        attack=first["attack"] if len(attacks_here) == 1 else None,
        eps=float(first["eps"]) if len(eps_here) == 1 else None,
        params=dict(first.get("attack_params") or {}) if len(attacks_here) == 1 else {},
        params_by_attack={a: dict(rs[0].get("attack_params") or {}) for a, rs in by_attack.items()},
        params_label=label,
        seeds=sorted({s for c in cells.values() for s in c.stats["seeds"]}, key=str),
        n_seeds=(min(ns), max(ns)) if ns else (0, 0),
        n_test=sorted({int(r["n"]) for r in recs}),
        partial=bool(missing),
        missing=missing,
        warnings=warnings,
        notes=notes,
        missing_states=[str(run["state"]) for run in missing_runs],
        running=running,
        studies=studies,
    )
    _mark_significance(table, baseline)
    return table


def _seed_of(recs: list[dict[str, Any]], run_id: str) -> Any:
    return next((r["seed"] for r in recs if r["run_id"] == run_id), "?")


def _mark_significance(table: CompareTable, baseline: tuple[str, str] | bool | None) -> None:
    """Paired t-test (seeds) of each cell's adversarial accuracy against the baseline cell that differs
    only on the baseline axis; Holm over the table; '*' p < 0.05, '**' p < 0.01."""
    from rttui.analysis.stats import holm, paired_test

    axes = [*table.row_axes, *table.col_axes]
    if baseline is True:
        baseline = None
        for ax, val in (("strategy", "full"), ("technique", "none")):
            present = {c.key.get(ax) for c in table.cells.values()}
            if ax in axes and val in present and len(present) > 1:
                baseline = (ax, val)
                break
    if not baseline or baseline[0] not in axes:
        return
    ax, val = baseline
    index = {
        tuple(sorted((k, str(v)) for k, v in c.key.items() if k != ax)): c
        for c in table.cells.values()
        if str(c.key.get(ax)) == val
    }
    tested: list[Cell] = []
    for c in table.cells.values():
        if str(c.key.get(ax)) == val:
            continue
        ref = index.get(tuple(sorted((k, str(v)) for k, v in c.key.items() if k != ax)))
        if ref is None:
            continue
        a = dict(zip(c.stats["seeds"], c.stats["values"]["adv"], strict=True))
        b = dict(zip(ref.stats["seeds"], ref.stats["values"]["adv"], strict=True))
        seeds = sorted(set(a) & set(b), key=str)
        c.test = paired_test([a[s] for s in seeds], [b[s] for s in seeds])
        tested.append(c)
    if not tested:
        return
    table.baseline = (ax, val)
    spans = [a for a in axes if a != ax and len({str(c.key.get(a)) for c in tested}) > 1]
    n = sum(c.test is not None and c.test["p"] is not None for c in tested)  # Holm counts those with a p-value
    table.holm_family = f"the {n} tested cell(s) of this table" + (f", one per {' × '.join(spans)}" if spans else "")
    adj = holm([c.test["p"] for c in tested if c.test is not None])
    for c, p in zip(tested, adj, strict=True):
        assert c.test is not None
        c.test["p_holm"] = p
        if p is not None and p < 0.01:
            c.mark = "**"
        elif p is not None and p < 0.05:
            c.mark = "*"
