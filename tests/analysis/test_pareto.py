"""The clean-vs-adversarial front (`rttui plot pareto`): which configurations are Pareto-optimal, the figure and
its numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rttui.analysis.fronts import pareto_optimal, pareto_rows


def test_pareto_optimal_marks_the_undominated_points() -> None:
    pts = [(0.9, 0.1), (0.8, 0.3), (0.7, 0.2), (0.8, 0.3), (0.5, 0.5)]
    # (0.7, 0.2) is dominated by (0.8, 0.3); equal points do not dominate each other.
    assert pareto_optimal(pts) == [True, True, False, True, True]


def _rec(strategy: str, seed: int, clean: float, adv: float, select: str = "last") -> dict:
    return {
        "run_id": f"{strategy}-{select}-{seed}",
        "dataset": "digits",
        "model": "m",
        "strategy": strategy,
        "technique": "none",
        "strategy_params": {},
        "technique_params": {},
        "seed": seed,
        "attack": "pgd",
        "eps": 0.03,
        "clean_acc": clean,
        "adv_acc": adv,
        "n": 100,
        "select": select,
        "selected_epoch": 2,
    }


def test_pareto_rows_average_seeds_and_keep_select_variants_apart() -> None:
    recs = [
        _rec("full", 0, 0.9, 0.1),
        _rec("full", 1, 0.8, 0.3),
        _rec("full", 0, 0.85, 0.4, "best_robust"),
        _rec("feature_extraction", 0, 0.6, 0.05),
        _rec("feature_extraction", 1, 0.7, 0.15),
    ]
    rows, fields = pareto_rows({"records": recs, "attack": "pgd", "eps": 0.03})
    by = {r["config"]: r for r in rows}
    assert set(by) == {"full/none", "full/none[select=best_robust]", "feature_extraction/none"}
    full = by["full/none"]
    assert full["seeds"] == 2 and full["clean_mean"] == pytest.approx(0.85) and full["adv_mean"] == pytest.approx(0.2)
    assert full["clean_std"] is not None and full["adv_std"] is not None
    assert not by["feature_extraction/none"]["pareto"]  # worse on both than full
    assert by["full/none[select=best_robust]"]["pareto"]
    assert by["full/none"]["pareto"] is (full["clean_mean"] > 0.85)  # ties on clean with the best_robust variant
    assert set(fields) >= {"config", "clean_mean", "adv_mean", "pareto"}


def test_pareto_plot_cli_writes_figure_and_numbers(
    tiny_run_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rttui.cli import main

    out = tmp_path / "figs"
    argv = ["rttui", "plot", "pareto", "--db", str(tiny_run_db), "--attack", "pgd", "--eps", "0.03", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None), capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [f"pareto.{e}" for e in ("csv", "json", "png", "svg")]
    rows = json.loads((out / "pareto.json").read_text())
    assert rows and all(r["attack"] == "pgd" and r["eps"] == 0.03 for r in rows)
    assert any(r["pareto"] for r in rows)
    assert {r["strategy"] for r in rows} == {"full", "layer_freezing"}


def test_select_variants_are_never_pooled_in_the_analysis_views() -> None:
    """Two runs of one cell that keep different epochs ([train] select) are two configurations in every view that
    labels variants (compare, ttest, figures), and a `technique=none` filter still matches both."""
    from rttui.analysis.records import apply_where, parse_where, variant_labels

    recs = [_rec("full", 0, 0.9, 0.1), _rec("full", 0, 0.85, 0.4, "best_robust")]
    out = variant_labels(recs)
    assert [r["technique"] for r in out] == ["none", "none[select=best_robust]"]
    assert len(apply_where(out, parse_where(["technique=none"]))) == 2
    assert [r["technique"] for r in variant_labels([_rec("full", 0, 0.9, 0.1)])] == ["none"]
