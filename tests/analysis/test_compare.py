"""The compare pivot: mean ± std with 1 and 3 seeds, axes, filters, partial results, warnings, trade-offs."""

from __future__ import annotations

import statistics

import pytest

from rttui.analysis.compare import AnalysisError, auc_by_run, compare
from tests.analysis.records import rec, study


def _cell(comp, **key):
    for t in comp.tables:
        for c in t.cells.values():
            if all(c.key.get(k) == v for k, v in key.items()):
                return c
    raise KeyError(key)


def test_mean_std_one_and_three_seeds() -> None:
    recs = study({"full": [0.50, 0.55, 0.62]}, clean={"full": [0.90, 0.94, 0.95]})
    recs += [rec(strategy="layer_freezing", seed=0, clean=0.91, adv=0.6)]
    comp = compare(recs, attack="pgd", eps=0.03, rows="strategy")
    full = _cell(comp, strategy="full")
    assert full.stats["adv"].mean == pytest.approx(statistics.fmean([0.50, 0.55, 0.62]))
    assert full.stats["adv"].std == pytest.approx(statistics.stdev([0.50, 0.55, 0.62]))
    assert full.stats["drop"].mean == pytest.approx(statistics.fmean([0.40, 0.39, 0.33]))
    assert full.fmt("adv") == f"{statistics.fmean([50, 55, 62]):.1f}±{statistics.stdev([50, 55, 62]):.1f}"
    one = _cell(comp, strategy="layer_freezing")
    assert one.stats["adv"].n == 1 and one.stats["adv"].std is None and one.fmt("adv") == "60.0"
    t = comp.tables[0]
    assert t.n_seeds == (1, 3) and "n = 1-3 seeds" in t.caption and "pgd steps=10" in t.caption


def test_rows_cols_and_where() -> None:
    recs = [
        rec(model=m, strategy=s, seed=i, adv=0.1 * (i + 1) + (0.2 if s == "full" else 0), eps=e)
        for m in ("a", "b")
        for s in ("full", "layer_freezing")
        for i in range(3)
        for e in (0.01, 0.03)
    ]
    comp = compare(recs, eps=0.03, rows="model", cols="strategy")
    (t,) = comp.tables
    assert t.header() == [
        "model",
        "full standard",
        "full adversarial",
        "full drop (pts)",
        "layer_freezing standard",
        "layer_freezing adversarial",
        "layer_freezing drop (pts)",
    ]
    assert len(t.body()) == 2 and t.eps == 0.03
    per_eps = compare(recs, eps=None, rows="model,strategy")
    assert [tb.fixed["eps"] for tb in per_eps.tables] == [0.01, 0.03]  # one table per epsilon
    eps_cols = compare(recs, eps=None, rows="model,strategy", cols="eps", metrics=("adv",))
    assert len(eps_cols.tables) == 1 and eps_cols.tables[0].header()[-2:] == [
        "ε=0.01 adversarial",
        "ε=0.03 adversarial",
    ]
    only_a = compare(recs, eps=0.03, where=["model=a"])
    assert {c.key["strategy"] for c in only_a.tables[0].cells.values()} == {"full", "layer_freezing"}
    assert all("model" not in c.key for c in only_a.tables[0].cells.values())
    with pytest.raises(AnalysisError, match=r"epsilon 0\.05 was not evaluated"):
        compare(recs, eps=0.05)
    with pytest.raises(AnalysisError, match="not an axis"):
        compare(recs, rows="colour")
    with pytest.raises(AnalysisError, match="attack 'deepfool' has no results"):
        compare(recs, attack="deepfool")


def test_varying_axes_never_pooled() -> None:
    recs = [rec(dataset=d, strategy="full", seed=0, adv=a) for d, a in (("x", 0.1), ("y", 0.9))]
    comp = compare(recs, rows="strategy")  # dataset varies but is not a row: one table per dataset
    assert [t.fixed["dataset"] for t in comp.tables] == ["x", "y"]
    variants = [
        rec(strategy="layer_freezing", seed=0, adv=a, strategy_params={"freeze": f}) for f, a in ((1, 0.2), (2, 0.4))
    ]
    for v in variants:
        v["run_id"] += str(v["strategy_params"]["freeze"])
        v["eval_id"] += str(v["strategy_params"]["freeze"])  # each run has its own evaluations
    comp = compare(variants, rows="strategy")
    assert sorted(c.key["strategy"] for c in comp.tables[0].cells.values()) == [
        "layer_freezing[freeze=1]",
        "layer_freezing[freeze=2]",
    ]


def test_partial_results_and_sanity_warnings_are_named() -> None:
    recs = study({"full": [0.5, 0.6]})
    runs = [
        {
            "id": r["run_id"],
            "dataset": "digits",
            "model": "m",
            "strategy": "full",
            "technique": "none",
            "seed": r["seed"],
            "state": "done",
        }
        for r in recs
    ] + [
        {
            "id": "pending-run",
            "dataset": "digits",
            "model": "m",
            "strategy": "full",
            "technique": "none",
            "seed": 2,
            "state": "running",
        }
    ]
    checks = [
        {
            "run_id": recs[0]["run_id"],
            "eval_id": recs[0]["eval_id"],
            "check": "adv_le_clean",
            "level": "warning",
            "message": "adv above clean",
        }
    ]
    comp = compare(recs, runs, checks, rows="strategy")
    t = comp.tables[0]
    assert comp.partial and t.partial and "PARTIAL" in t.title and "seed 2 (running)" in t.missing[0]
    assert t.warnings and "adv above clean" in t.warnings[0] and "1 sanity warning" in t.caption
    assert _cell(comp, strategy="full").partial
    done = compare(recs, runs[:2], [], rows="strategy")
    assert not done.partial and "PARTIAL" not in done.tables[0].title
    # no runner: the missing run is not "still running"; the title says what stopped it
    runs[-1]["state"] = "failed"
    stopped = compare(recs, runs, checks, rows="strategy", running=False).tables[0]
    assert "INCOMPLETE: 1 run failed" in stopped.title and "still running" not in stopped.title
    assert "INCOMPLETE: 1 run failed" in stopped.caption


def test_incomplete_label_says_what_stopped_a_study() -> None:
    from rttui.analysis.compare import incomplete_label

    assert incomplete_label([], False) == incomplete_label([], True) == ""
    assert incomplete_label(["failed", "pending"], True) == "PARTIAL: study still running"
    assert incomplete_label(["failed"], False) == "INCOMPLETE: 1 run failed"
    assert incomplete_label(["failed", "failed", "pending"], False) == "INCOMPLETE: 2 runs failed, 1 run not run"


def test_relative_drop_and_auc() -> None:
    recs = [rec(seed=0, clean=0.8, adv=a, eps=e) for e, a in ((0.02, 0.6), (0.04, 0.2))]
    (auc,) = auc_by_run(recs).values()
    assert auc == pytest.approx(((0.8 + 0.6) / 2 * 0.02 + (0.6 + 0.2) / 2 * 0.02) / 0.04)
    comp = compare(recs, eps=0.04, metrics=("clean", "adv", "drop", "rel_drop", "auc"))
    c = next(iter(comp.tables[0].cells.values()))
    assert c.stats["rel_drop"].mean == pytest.approx(0.75) and c.stats["auc"].mean == pytest.approx(auc)


def test_significance_marks_against_full() -> None:
    recs = study(
        {
            "full": [0.50, 0.52, 0.49, 0.51, 0.50],
            "layer_freezing": [0.70, 0.73, 0.69, 0.72, 0.71],
            "feature_extraction": [0.50, 0.55, 0.45, 0.52, 0.49],
        }
    )
    t = compare(recs, rows="strategy").tables[0]
    assert t.baseline == ("strategy", "full")
    assert _cell(compare(recs, rows="strategy"), strategy="layer_freezing").mark == "**"
    assert _cell(compare(recs, rows="strategy"), strategy="feature_extraction").mark == ""
    assert _cell(compare(recs, rows="strategy", baseline=None), strategy="layer_freezing").mark == ""


def test_table_one_layout_shows_standard_once() -> None:
    recs = [
        rec(strategy=s, seed=i, clean=0.9, adv=a, attack=att)
        for s in ("full", "layer_freezing")
        for i in range(2)
        for att, a in (("fgsm", 0.7), ("pgd", 0.6 if s == "full" else 0.65))
    ]
    t = compare(recs, attack=None, eps=0.03, rows="strategy", cols="attack", metrics=("clean", "adv")).tables[0]
    assert t.header() == ["strategy", "standard", "FGSM", "PGD"]
    assert t.body() == [
        ["full", "90.0±0.0", "70.0±0.0", "60.0±0.0"],
        ["layer_freezing", "90.0±0.0", "70.0±0.0", "65.0±0.0"],
    ]
    assert t.best() == {2: (("layer_freezing",),)}  # equal columns have no best
    assert "fgsm norm=linf" in t.caption and "pgd steps=10" in t.caption and not t.warnings


def test_the_caption_names_the_holm_family_the_marks_were_corrected_over() -> None:
    """A mark can differ between a one-eps view and an every-eps view (another Holm family): the caption says
    which cells each one corrected over."""
    grid = (0.01, 0.03, 0.1)
    recs = []
    for eps in grid:
        recs += study(
            {"full": [0.50, 0.52, 0.49, 0.51], "layer_freezing": [0.55, 0.60, 0.52, 0.58]},
            eps=eps,
        )
    every = compare(recs, eps=None, rows="strategy", cols="eps", metrics=("adv",)).tables[0]
    one = compare(recs, eps=grid[0], rows="strategy").tables[0]
    assert f"Holm over the {len(grid)} tested cell(s) of this table, one per eps" in every.caption
    assert "Holm over the 1 tested cell(s) of this table;" in one.caption
    assert "a view with other cells corrects over another family" in one.caption


def test_attack_success_rate_is_a_metric_on_clean_correct_images() -> None:
    """The success rate divides by the clean-correct images, so it moves with the attack, not with clean accuracy:
    the store's own count where a record carries it, else 1 - adv / clean."""
    recs = [rec(seed=0, clean=0.8, adv=0.2), rec(seed=1, clean=0.5, adv=0.25)]
    recs[1]["attack_success_rate"] = 0.4  # the store's count wins over the rounded accuracies
    comp = compare(recs, attack="pgd", eps=0.03, metrics=("adv", "asr"))
    c = next(iter(comp.tables[0].cells.values()))
    assert c.stats["asr"].mean == pytest.approx((0.75 + 0.4) / 2)
    assert c.fmt("asr") == f"{(75 + 40) / 2:.1f}±{statistics.stdev([75, 40]):.1f}"
    assert "success rate = share of the clean-correct test images the attack fooled" in comp.tables[0].caption
    assert c.as_dict()["asr"]["values"] == pytest.approx([0.75, 0.4])


def test_a_torchattacks_row_is_credited_to_torchattacks_in_the_caption() -> None:
    """A `ta:` evaluation names the torchattacks release that computed it (its path), never `implementation=rttui`;
    rttui's own attacks keep theirs."""
    ta = rec(seed=0, attack="ta:PGD", path="projected+torchattacks-3.5.1")
    t = compare([ta], attack="ta:PGD", eps=0.03).tables[0]
    assert "implementation=torchattacks 3.5.1" in t.caption and "implementation=rttui" not in t.caption
    own = compare([rec(seed=0)], attack="pgd", eps=0.03).tables[0]
    assert "implementation=rttui" in own.caption
