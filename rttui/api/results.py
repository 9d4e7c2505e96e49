"""The facade for results: the flat records, the compare tables, paired tests, stability, error analysis,
figures, text exports and the freeze-depth table, all read-only.

Thin on purpose: record selection, defaults and aggregation are `rttui.analysis` (records, aggregate,
compare, stats, errors, figures, export, depth). Matplotlib and scipy are imported only when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rttui.analysis.compare import CompareTable, Comparison
from rttui.analysis.records import CONFIG_AXES, default_attack, default_eps
from rttui.api.stores import open_store, read_results, require_study, study_records

__all__ = [
    "CONFIG_AXES",
    "CompareTable",
    "Comparison",
    "compare",
    "confusions",
    "default_attack",
    "default_eps",
    "depth_figure",
    "depth_json",
    "depth_table",
    "export_records",
    "export_table",
    "figure_kinds",
    "fit_tests_grid",
    "headline_attack",
    "plot",
    "records_text",
    "stability",
    "summary",
    "tests_grid",
    "ttest",
]


def export_records(
    db: str | Path | None = None,
    study: str | None = None,
    *,
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One flat record per (study, evaluation, eps), accuracies as fractions in [0, 1]; `attack`, `eps` and
    `where` keep the records they match (see `rttui.analysis.records.filter_records`), as they stand in the
    store (no variant labels)."""
    with open_store(db) as s:
        study = require_study(s, study)
        recs = study_records(s, study)
    if attack is None and eps is None and not where:
        return recs
    from rttui.analysis.records import filter_records

    return filter_records(recs, attack, eps, where)


def headline_attack(db: str | Path | None = None, study: str | None = None) -> str:
    """The attack a study's tables lead with when none is asked for: its `[eval] headline` ('worst_case' reads
    as the per-sample worst case), else pgd."""
    with open_store(db) as s:
        name = require_study(s, study)
        spec = s.study_spec(name) if name else None
    head = ((spec or {}).get("eval") or {}).get("headline") if isinstance(spec, dict) else None
    if head == "worst_case":
        from rttui.analysis.worst_case import WORST_CASE

        return WORST_CASE
    return str(head) if head else "pgd"


def frame(db: str | Path | None = None, study: str | None = None, kind: str = "records") -> Any:
    """A pandas DataFrame of stored results for notebooks (extra `rttui[pandas]`): `records` (one row per run,
    attack and eps, accuracies as fractions, the audit as `audit_*` columns), `samples` (one row per evaluated
    test image, its outcomes a bitmask over the grid), `outcomes` (the same tidy: one row per test image and eps)
    or `epochs` (one row per training epoch), with typed columns and every parameter as a column of one dtype.
    Read-only, like `export_records`."""
    from rttui.analysis.frame import check_kind, require_pandas, to_frame

    check_kind(kind)
    require_pandas()
    rows: list[dict[str, Any]]
    if kind == "records":
        rows = export_records(db, study)
    else:
        with open_store(db) as s:
            study = require_study(s, study)
            rows = s.epoch_records(study) if kind == "epochs" else s.sample_records(study)
    return to_frame(rows, kind)


def incomplete(db: str | Path | None, study: str | None) -> str:
    """One line saying what a study's results still lack, "" when every run is done: `PARTIAL: study still
    running` while a runner works on it, else what stopped it (`rttui.analysis.compare.incomplete_label`).
    Faces put it beside analyses that do not carry it themselves (paired tests)."""
    from rttui.analysis.compare import incomplete_label

    with open_store(db) as s:
        study = require_study(s, study)
        states = [str(r["state"]) for r in s.runs(study) if r["state"] != "done"]
        lock = s.runner_lock()
    return incomplete_label(states, bool(lock) and (study is None or lock["study"] == study))


def summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- std over seeds per (dataset, model, strategy, technique, attack, eps), variants labelled as
    `compare` labels them (the same selection and aggregation as every other view)."""
    from rttui.analysis.aggregate import summarize

    return summarize(records)


def compare(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    rows: Sequence[str] | str | None = None,
    cols: Sequence[str] | str | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    *,
    metrics: Sequence[str] | None = None,
    stability: bool = False,
    baseline: tuple[str, str] | bool | None = True,
) -> Comparison:
    """Pivot tables of standard / adversarial accuracy and drop, mean +- std over seeds (see
    `rttui.analysis.compare.compare`). `where` takes "axis=value" strings (repeats OR together) or a dict;
    `stability=True` shows the spread over seeds instead of the drop. Partial results are marked.

    For a face: each `CompareTable` in `.tables` has `title`, `caption` (attack, parameters, eps, n seeds,
    marks), `header()` and `body()` (display strings, row-axis columns first), `best()` ({value column index:
    row keys to bold}), `warnings` (sanity checks on its numbers), `partial` and `missing` (runs not yet
    evaluated), and `cells` with the numbers; `.as_dict()` is the JSON form."""
    from rttui.analysis import compare as cmp

    recs, runs, s, study = read_results(db, study)
    try:
        stored_checks = s.checks()
        lock = s.runner_lock()
    finally:
        s.close()
    running = bool(lock) and (study is None or lock["study"] == study)
    ms = tuple(metrics) if metrics else (cmp.STABILITY_METRICS if stability else cmp.DEFAULT_METRICS)
    if not recs:  # a study that has started but evaluated nothing yet: nothing to show, and it says so
        return Comparison([], study, partial=True)
    return cmp.compare(
        recs,
        runs,
        stored_checks,
        attack=attack,
        eps=eps,
        rows=rows,
        cols=cols,
        where=where,
        metrics=ms,
        baseline=baseline,
        study=study,
        running=running,
    )


def ttest(
    db: str | Path | None,
    axis: str,
    a: str,
    b: str,
    metric: str = "adv_acc",
    attack: str | None = None,
    eps: float | None = None,
    study: str | None = None,
    *,
    test: str = "t",
    mcnemar: bool = False,
    variance: bool = False,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Paired tests (over seeds) of axis=a against axis=b, one per combination of the other axes, attack
    and eps; each dict has mean_diff (a - b), ci_low, ci_high, t, p, p_holm, dz, n, warning and the fixed
    axes. p is None where the test is undefined. `mcnemar` adds an exact per-sample McNemar test,
    `variance` a Brown-Forsythe (Levene, median) equal-variance test of the metric across seeds."""
    from rttui.analysis import stats

    recs, _runs, s, study = read_results(db, study)
    try:
        if not recs:
            return []
        rows = stats.comparisons(
            recs, axis, a, b, metric=metric, attack=attack, eps=eps, where=where, test=test, variance=variance
        )
        if mcnemar and rows:
            grids = s.eval_grids({p[k] for r in rows for p in r["pairs"] for k in ("eval_a", "eval_b")})
            stats.add_mcnemar(rows, s.samples, grids)
    finally:
        s.close()
    return rows


def stability(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Per configuration, attack and eps: mean, sd and range of standard and adversarial accuracy over seeds."""
    from rttui.analysis import stats

    recs, _runs, s, study = read_results(db, study)
    s.close()
    return stats.stability(recs, attack, eps, where) if recs else []


def confusions(
    db: str | Path | None = None,
    study: str | None = None,
    attack: str | None = "pgd",
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    top: int = 5,
) -> list[dict[str, Any]]:
    """The class pairs most confused under attack, per (dataset, model, strategy, technique, attack, eps),
    summed over seeds, with class names and the full confusion matrix. eps=None: `default_eps`."""
    from rttui.analysis import errors
    from rttui.analysis.records import at_eps, select

    recs, _runs, s, study = read_results(db, study)
    try:
        if not recs:
            return []
        sel = select(recs, attack, eps, where)
        if eps is None:
            sel = at_eps(sel, default_eps(sel))
        conf = s.confusion({r["eval_id"] for r in sel})
        classes = s.run_classes({r["run_id"] for r in sel})
    finally:
        s.close()
    return errors.confusions(sel, conf, classes, top)


def figure_kinds() -> dict[str, str]:
    """The figure kinds `plot` can draw, with what each shows (a registry other analyses extend)."""
    from rttui.analysis import figures

    return {k: f.description for k, f in figures.FIGURES.items()}


def plot(
    db: str | Path | None,
    kind: str,
    out: str | Path,
    study: str | None = None,
    attack: str | None = None,
    eps: float | None = None,
    where: Sequence[str] | dict[str, Any] | None = None,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """Draw one figure kind (see `figure_kinds()`) into `out` (a folder, or a file name such as fig1.png);
    returns the files written. attack=None: every attack for `curves`, else `default_attack`. Matplotlib
    (Agg) is imported only here."""
    from rttui.analysis import figures

    fig = figures.get(kind)
    recs, runs, s, study = read_results(db, study)
    s.close()
    if attack is None and kind != "curves":
        attack = default_attack(recs)
    data: dict[str, Any] = {"records": recs, "runs": runs, "study": study, "attack": attack, "eps": eps}
    data["where"] = where
    if "confusions" in fig.needs:
        data["confusions"] = confusions(db, study, attack, eps, where)
    return figures.draw(kind, data, Path(out), tuple(formats))


def records_text(records: list[dict[str, Any]], fmt: str) -> str:
    """The flat records as csv (one column per parameter; see analysis.export.RECORD_FIELDS) or json."""
    from rttui.analysis import export

    return export.records_text(records, fmt)


def export_table(comparison: Comparison | CompareTable | list[dict[str, Any]], fmt: str) -> str:
    """A compare result (or ttest rows) as text: csv, md, latex or json."""
    from rttui.analysis import export

    return export.render(comparison, fmt)


def tests_grid(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ttest rows as display strings: title, header, rows (lists of cells), caption, n_axes (leading
    label columns). Differences in points; p 'n/a' where undefined."""
    from rttui.analysis import export

    axes = export.test_axes(rows)
    title = f"{rows[0]['axis']}: {rows[0]['a']} vs {rows[0]['b']} ({rows[0]['metric']})" if rows else "no comparisons"
    return {
        "title": title,
        "header": export.test_header(rows, axes),
        "rows": [export.test_cells(r, axes) for r in rows],
        "caption": export.tests_caption(rows),
        "n_axes": len(axes),
    }


def fit_tests_grid(grid: dict[str, Any], width: int, per_column: int = 2, edge: int = 0) -> dict[str, Any]:
    """`tests_grid`'s grid narrowed to `width` screen columns (see `analysis.export.fit_columns`): the same cells
    in fewer columns, `left_out` naming those given up and `note` saying so in words for the caption ("" when
    it fits). `per_column`/`edge`: what each column and the table add to its cells (2/0 for a DataTable, 3/1 for a
    boxed rich table)."""
    from rttui.analysis import export

    header, rows, left_out = export.fit_columns(
        grid["header"], grid["rows"], width, export.TEST_SHORT, export.TEST_DROP, per_column, edge
    )
    note = (
        f"{' and '.join(left_out)} left out at this width; a wider screen or an export shows them" if left_out else ""
    )
    return {**grid, "header": header, "rows": rows, "left_out": left_out, "note": note}


def depth_table(
    db: str | Path | None = None, study: str | None = None, attack: str | None = None, eps: float | None = None
) -> dict[str, Any]:
    """Clean and adversarial accuracy by freeze depth (mean ± std over seeds), per dataset, model and technique.

    Returns {"attack", "eps", "params", "rows"}; each row's "clean"/"adv" are `Stat`s (see analysis.depth).
    """
    from rttui.analysis.depth import depth_rows

    with open_store(db) as s:
        study = require_study(s, study)
        return depth_rows(study_records(s, study), s.runs(study), attack, eps)


def depth_json(table: dict[str, Any]) -> dict[str, Any]:
    """`depth_table`'s result with plain numbers (Stat -> {mean, std, n}), for --format json."""
    from rttui.analysis.depth import depth_json as plain

    return plain(table)


def depth_figure(table: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Draw `depth_table`'s result: accuracy and robustness against freeze depth (PNG, SVG or PDF)."""
    from rttui.analysis.depth import depth_figure as draw

    return draw(table, path, title)
