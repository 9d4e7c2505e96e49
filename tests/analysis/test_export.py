"""Exports: LaTeX that compiles structurally (balanced tabular, escaped underscores, booktabs, bold best,
caption naming the attack and n), Markdown, CSV and JSON of the same tables and of test results."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from rttui.analysis import export, stats
from rttui.analysis.compare import compare
from tests.analysis.records import rec, study

RECS = study(
    {"full": [0.50, 0.52, 0.49], "layer_freezing": [0.70, 0.73, 0.69], "feature_extraction": [0.40, 0.42, 0.41]}
)


def _rows_of_tabular(tex: str) -> list[str]:
    body = tex.split(r"\begin{tabular}", 1)[1].split(r"\end{tabular}", 1)[0]
    return [ln for ln in body.splitlines() if ln.rstrip().endswith(r"\\")]


def _ncols(tex: str) -> int:
    return len(re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1))


def _cells(line: str) -> int:
    n = 0
    for part in re.split(r"(?<!\\)&", line):
        m = re.match(r"\s*\\multicolumn\{(\d+)\}", part)
        n += int(m.group(1)) if m else 1
    return n


def test_latex_structure_balanced_and_escaped() -> None:
    tex = export.render(compare(RECS, rows="model,strategy"), "latex")
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    assert tex.count("{") == tex.count("}")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    n = _ncols(tex)
    rows = _rows_of_tabular(tex)
    assert len(rows) == 1 + 3 and all(_cells(r) == n for r in rows)
    assert "layer\\_freezing" in tex and "feature\\_extraction" in tex
    assert not re.search(r"(?<!\\)_(?![^$]*\$)", tex.replace(r"\_", "")), "unescaped underscore"
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert "pgd steps=10" in caption and "n = 3 seeds" in caption and "ε" not in tex
    lf = next(r for r in rows if "layer" in r)
    assert r"\textbf{70.7$\pm$2.1}" in lf  # best adversarial accuracy in bold
    assert "$^{*}$" in lf or "$^{**}$" in lf  # and significantly above full (Holm)


def test_latex_with_column_axis_is_balanced() -> None:
    tex = export.render(compare(RECS, rows="model", cols="strategy"), "latex")
    n = _ncols(tex)
    assert n == 1 + 3 * 3
    assert all(_cells(r) == n for r in _rows_of_tabular(tex))
    assert tex.count(r"\cmidrule") == 3


def test_markdown_csv_json_carry_what_they_show() -> None:
    comp = compare(RECS, rows="strategy")
    md = export.render(comp, "md")
    assert "| strategy | standard | adversarial | drop (pts) |" in md and "pgd steps=10" in md
    assert "**70.7±2.1" in md
    rows = list(csv.DictReader(io.StringIO(export.render(comp, "csv"))))
    assert len(rows) == 3 and {r["strategy"] for r in rows} == {"full", "layer_freezing", "feature_extraction"}
    full = next(r for r in rows if r["strategy"] == "full")
    assert float(full["adv_mean"]) == pytest.approx(sum([0.50, 0.52, 0.49]) / 3) and full["n_seeds"] == "3"
    data = json.loads(export.render(comp, "json"))
    assert data["tables"][0]["params"]["steps"] == 10 and len(data["tables"][0]["cells"]) == 3


def test_test_results_export() -> None:
    extra = [rec(strategy=s, seed=0, adv=0.3, eps=0.1) for s in ("full", "layer_freezing")]
    recs = [*RECS, *extra]
    rows = stats.comparisons(recs, "strategy", "layer_freezing", "full")
    tex = export.render(rows, "latex")
    n = _ncols(tex)
    assert all(_cells(r) == n for r in _rows_of_tabular(tex)) and "n/a" in tex  # n=1 at eps 0.1: no p
    assert json.loads(export.render(rows, "json"))[1]["p"] is None
    assert "layer\\_freezing minus full" in tex


def test_tests_caption_counts_the_comparisons_holm_used() -> None:
    """Holm adjusts over the comparisons that have a p-value; the caption says that number, not every row."""
    extra = [rec(strategy=s, seed=0, adv=0.3, eps=0.1) for s in ("full", "layer_freezing")]
    rows = stats.comparisons([*RECS, *extra], "strategy", "layer_freezing", "full")
    tested = [r for r in rows if r["p"] is not None]
    assert 0 < len(tested) < len(rows)
    # the adjusted p-values are those of Holm over `tested` comparisons
    assert [r["p_holm"] for r in tested] == stats.holm([r["p"] for r in tested])
    caption = export.tests_caption(rows)
    assert f"Holm over {len(tested)} comparison(s)" in caption
    assert f"{len(rows) - len(tested)} without a p-value" in caption


def test_latex_table_one_layout_is_balanced() -> None:
    recs = [
        rec(strategy=s, seed=i, adv=a + 0.01 * i, attack=att)
        for s in ("full", "layer_freezing")
        for i in range(3)
        for att, a in (("fgsm", 0.7), ("pgd", 0.6))
    ]
    tex = export.render(compare(recs, attack=None, eps=0.03, rows="strategy", cols="attack"), "latex")
    n = _ncols(tex)
    assert n == 1 + 1 + 2 * 2  # standard once, then adversarial and drop per attack
    assert all(_cells(r) == n for r in _rows_of_tabular(tex)) and tex.count(r"\cmidrule") == 2


def test_record_csv_carries_the_attack_success_rate() -> None:
    r = {**rec(seed=0, clean=0.8, adv=0.2), "attack_success_rate": 0.75}
    (row,) = csv.DictReader(io.StringIO(export.records_text([r], "csv")))
    assert float(row["attack_success_rate"]) == 0.75 and float(row["adv_acc"]) == 0.2
