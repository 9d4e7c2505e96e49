"""Statistics against scipy on hand-made data: paired t / Wilcoxon, Holm, Levene, McNemar, and the
per-configuration comparisons `rttui ttest` prints."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from rttui.analysis import stats
from rttui.analysis.compare import AnalysisError
from tests.analysis.records import rec, study

A = [0.60, 0.62, 0.65, 0.63, 0.61]
B = [0.55, 0.57, 0.58, 0.56, 0.57]


def test_paired_t_matches_scipy_significant() -> None:
    r = stats.paired_test(A, B)
    ref = sps.ttest_rel(A, B)
    ci = ref.confidence_interval(0.95)
    assert r["p"] == pytest.approx(ref.pvalue) and r["p"] < 0.05
    assert r["t"] == pytest.approx(ref.statistic)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    d = [a - b for a, b in zip(A, B, strict=True)]
    assert r["mean_diff"] == pytest.approx(sum(d) / 5)
    assert r["dz"] == pytest.approx((sum(d) / 5) / sps.tstd(d))
    assert r["n"] == 5 and r["warning"] is None


def test_paired_t_not_significant_and_small_n_warns() -> None:
    a, b = [0.50, 0.62, 0.55], [0.52, 0.57, 0.58]
    r = stats.paired_test(a, b)
    assert r["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue) and r["p"] > 0.05
    assert r["ci_low"] < 0 < r["ci_high"]
    assert "n=3" in r["warning"] and "degrees of freedom" in r["warning"]


def test_undefined_test_gives_null_not_a_number() -> None:
    r = stats.paired_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])  # every difference is 0.1: no variance
    assert r["p"] is None and r["t"] is None and r["dz"] is None
    assert r["mean_diff"] == pytest.approx(0.1) and "undefined" in r["warning"]
    one = stats.paired_test([0.5], [0.4])
    assert one["p"] is None and one["ci_low"] is None and "no test" in one["warning"]


def test_wilcoxon_matches_scipy() -> None:
    a = [0.61, 0.64, 0.60, 0.66, 0.63, 0.65, 0.62]
    b = [0.55, 0.60, 0.61, 0.58, 0.57, 0.60, 0.59]
    r = stats.paired_test(a, b, test="wilcoxon")
    ref = sps.wilcoxon([x - y for x, y in zip(a, b, strict=True)])
    assert r["p"] == pytest.approx(ref.pvalue) and r["w"] == pytest.approx(ref.statistic)
    small = stats.paired_test(A[:3], B[:3], test="wilcoxon")
    assert "can never reach 0.05" in small["warning"]


def test_holm_worked_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([None, 0.01, 0.04])  # undefined tests do not count
    assert out[0] is None and out[1:] == pytest.approx([0.02, 0.04])


def test_levene_matches_scipy() -> None:
    a, b = [0.61, 0.70, 0.52, 0.66], [0.60, 0.61, 0.60, 0.62]
    for center in ("median", "mean"):
        r = stats.levene(a, b, center=center)
        ref = sps.levene(a, b, center=center)
        assert r["p"] == pytest.approx(ref.pvalue) and r["statistic"] == pytest.approx(ref.statistic)
    assert stats.levene(a, b)["test"] == "brown-forsythe"
    flat = stats.levene([0.5, 0.5, 0.5], [0.4, 0.4, 0.4])
    assert flat["p"] is None and flat["sd_a"] == 0
    assert stats.levene([0.5], [0.4, 0.6])["p"] is None


def test_brown_forsythe_with_two_seeds_per_group_has_no_p() -> None:
    """Two values are equidistant from their median, so Brown-Forsythe's within-group spread is zero whatever the
    data: scipy answers p = 0 (a 'significant' difference from nothing); rttui says undefined. Levene's mean-centred
    form is still defined at n = 2."""
    a, b = [0.50, 0.90], [0.60, 0.61]
    assert sps.levene(a, b, center="median").pvalue < 1e-6  # the artefact
    bf = stats.levene(a, b)
    assert bf["p"] is None and bf["sd_a"] == pytest.approx(0.2828, abs=1e-4)
    assert stats.levene(a, b, center="mean")["p"] == pytest.approx(sps.levene(a, b, center="mean").pvalue)


def test_levene_in_ttest_variance_option() -> None:
    recs = study({"full": [0.50, 0.62, 0.41], "bn": [0.55, 0.56, 0.555]})
    rows = stats.comparisons(recs, "strategy", "bn", "full", variance=True)
    ref = sps.levene([0.55, 0.56, 0.555], [0.50, 0.62, 0.41], center="median")
    assert rows[0]["variance"]["p"] == pytest.approx(ref.pvalue)


def test_mcnemar_exact() -> None:
    r = stats.mcnemar(10, 2)
    assert r["p"] == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert stats.mcnemar(0, 0)["p"] is None


def test_comparisons_pair_by_seed_and_fix_other_axes() -> None:
    recs = study({"full": [0.50, 0.52, 0.49], "layer_freezing": [0.60, 0.58, 0.63]})
    recs += [
        rec(model="m2", strategy=s, seed=i, adv=v)
        for s, vs in (("full", [0.3] * 3), ("layer_freezing", [0.31, 0.33, 0.30]))
        for i, v in enumerate(vs)
    ]
    rows = stats.comparisons(recs, "strategy", "layer_freezing", "full")
    assert [r["model"] for r in rows] == ["m", "m2"]
    r = rows[0]
    assert r["n"] == 3 and r["dataset"] == "digits" and r["technique"] == "none" and r["attack"] == "pgd"
    assert r["eps"] == 0.03 and r["mean_diff"] == pytest.approx((0.1 + 0.06 + 0.14) / 3)
    assert r["p"] == pytest.approx(sps.ttest_rel([0.60, 0.58, 0.63], [0.50, 0.52, 0.49]).pvalue)
    holm = stats.holm([x["p"] for x in rows])
    assert [x["p_holm"] for x in rows] == pytest.approx(holm)
    drop = stats.comparisons(recs, "strategy", "layer_freezing", "full", metric="drop")
    assert drop[0]["mean_diff"] == pytest.approx(-r["mean_diff"])


def test_comparisons_reject_unknown_values() -> None:
    recs = study({"full": [0.5], "layer_freezing": [0.6]})
    with pytest.raises(AnalysisError, match="no value 'adapter'"):
        stats.comparisons(recs, "strategy", "adapter", "full")
    with pytest.raises(AnalysisError, match="--metric"):
        stats.comparisons(recs, "strategy", "layer_freezing", "full", metric="acc")


def test_outcome_bits_and_mcnemar_on_samples() -> None:
    grid = [0.01, 0.03]
    # sample: (idx, clean_correct, fooled_mask)
    sa = [{"idx": i, "label": 0, "clean_correct": 1, "fooled_mask": 0} for i in range(6)]
    sb = [{"idx": i, "label": 0, "clean_correct": 1, "fooled_mask": 2 if i < 4 else 0} for i in range(6)]
    assert sum(stats.outcome_bits(sb, grid, 0.03, "adv_acc").values()) == 2
    assert sum(stats.outcome_bits(sb, grid, 0.01, "adv_acc").values()) == 6
    row = {"eps": 0.03, "metric": "adv_acc", "pairs": [{"seed": 0, "eval_a": "a", "eval_b": "b"}]}
    stats.add_mcnemar([row], {"a": sa, "b": sb}.get, {"a": grid, "b": grid})
    assert row["mcnemar"]["b"] == 4 and row["mcnemar"]["c"] == 0
    assert row["mcnemar"]["p"] == pytest.approx(sps.binomtest(4, 4, 0.5).pvalue)


def test_stability_spread() -> None:
    recs = study({"full": [0.5, 0.6, 0.7]}, clean={"full": [0.9, 0.92, 0.94]})
    (s,) = stats.stability(recs, "pgd", 0.03)
    assert s["adv_sd"] == pytest.approx(0.1) and s["clean_sd"] == pytest.approx(0.02)
    assert s["adv_range"] == pytest.approx(0.2) and s["n"] == 3
    assert not math.isnan(s["adv_mean"])


def _three_models_two_attacks_three_eps() -> list[dict]:
    """Clean accuracy is one number per run, repeated on every (attack, eps) record of it, as the store gives it."""
    recs = []
    for m, gap in (("m1", 0.02), ("m2", 0.05), ("m3", 0.0)):
        for s in ("full", "layer_freezing"):
            for seed in range(3):
                spread = 0.01 * seed * (1 if s == "full" else 2)
                clean = 0.9 + (gap if s == "layer_freezing" else 0.0) + spread
                recs += [
                    rec(model=m, strategy=s, seed=seed, clean=clean, adv=0.4 - e + spread, eps=e, attack=a)
                    for a in ("fgsm", "pgd")
                    for e in (0.01, 0.03, 0.1)
                ]
    return recs


def test_clean_accuracy_is_tested_once_per_configuration_and_holm_counts_each_once() -> None:
    recs = _three_models_two_attacks_three_eps()
    rows = stats.comparisons(recs, "strategy", "layer_freezing", "full", metric="clean_acc")
    assert [r["model"] for r in rows] == ["m1", "m2", "m3"]
    assert all("attack" not in r and "eps" not in r for r in rows)
    assert [r["p_holm"] for r in rows] == pytest.approx(stats.holm([r["p"] for r in rows]))
    adv = stats.comparisons(recs, "strategy", "layer_freezing", "full", metric="adv_acc")
    assert len(adv) == len(rows) * 2 * 3  # adversarial accuracy does depend on the attack and eps


def test_the_ttest_caption_names_the_holm_family() -> None:
    from rttui.analysis import export

    recs = _three_models_two_attacks_three_eps()
    clean = export.tests_caption(stats.comparisons(recs, "strategy", "layer_freezing", "full", metric="clean_acc"))
    assert "Holm over 3 comparison(s) (one per model)" in clean
    assert "clean_acc does not depend on the attack, so each configuration is tested once" in clean
    adv = export.tests_caption(stats.comparisons(recs, "strategy", "layer_freezing", "full"))
    assert "Holm over 18 comparison(s) (one per model × attack × eps)" in adv


def test_the_latex_ttest_caption_spells_the_family_in_latex() -> None:
    from rttui.analysis import export

    rows = stats.comparisons(_three_models_two_attacks_three_eps(), "strategy", "layer_freezing", "full")
    tex = export.render(rows, "latex")
    assert r"model $\times$ attack $\times$ eps" in tex and "×" not in tex
