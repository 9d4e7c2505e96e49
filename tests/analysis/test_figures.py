"""Every figure kind writes a non-empty PNG and SVG from hand-made data."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.analysis import figures
from rttui.analysis.compare import AnalysisError
from rttui.analysis.errors import confusions
from tests.analysis.records import rec

RECS = [
    rec(model=m, strategy=s, technique=t, seed=i, clean=0.9 - 0.01 * i, adv=a - 0.05 * e * 10 - 0.01 * i, eps=e)
    for m in ("cnn", "vit")
    for s, a in (("full", 0.5), ("layer_freezing", 0.6))
    for t in ("none", "bn_freeze")
    for i in range(3)
    for e in (0.01, 0.03, 0.05)
]


def _confusions() -> list[dict]:
    sel = [
        r
        for r in RECS
        if r["eps"] == 0.03 and r["model"] == "cnn" and r["technique"] == "none" and r["strategy"] == "full"
    ]
    rows = [
        {"eval_id": r["eval_id"], "eps": 0.03, "label": t, "pred": p, "count": 3 if t == p else 1}
        for r in sel
        for t in range(3)
        for p in range(3)
    ]
    return confusions(sel, rows, {r["run_id"]: ["cat", "dog", "bird"] for r in sel})


@pytest.mark.parametrize("kind", ["strategies", "tradeoff", "curves", "confusion"])
def test_each_figure_kind_is_written(kind: str, tmp_path: Path) -> None:
    data = {"records": RECS, "runs": [], "attack": "pgd", "eps": None, "confusions": _confusions()}
    paths = figures.draw(kind, data, tmp_path, ("png", "svg"))
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
    assert (
        paths[0].read_bytes()[:4] == b"\x89PNG" if paths[0].suffix == ".png" else b"<svg" in paths[1].read_bytes()[:400]
    )


def test_figure_file_name_and_registry(tmp_path: Path) -> None:
    paths = figures.draw("strategies", {"records": RECS}, tmp_path / "fig1.png", ("png",))
    assert paths == [tmp_path / "fig1.png"]
    with pytest.raises(AnalysisError, match="figure kind 'pie' is unknown"):
        figures.draw("pie", {"records": RECS}, tmp_path)
    assert {"strategies", "tradeoff", "curves", "confusion"} <= set(figures.FIGURES)


def test_confusion_pairs_use_class_names() -> None:
    (g,) = _confusions()
    assert g["classes"] == ["cat", "dog", "bird"] and g["matrix"][0] == [9, 3, 3]
    top = g["pairs"][0]
    assert top["true_name"] == "cat" and top["pred_name"] == "dog" and top["count"] == 3
    assert top["share"] == pytest.approx(3 / 15)


def test_single_attack_figures_fall_back_to_the_evaluated_attack(tmp_path: Path) -> None:
    fgsm_only = [dict(r, attack="fgsm") for r in RECS if r["attack"] == "pgd"]
    paths = figures.draw("strategies", {"records": fgsm_only, "attack": None}, tmp_path, ("svg",))
    assert paths[0].stat().st_size > 1000 and b"FGSM accuracy" in paths[0].read_bytes()


def _drawn(kind: str, recs: list[dict]) -> object:
    """The figure `kind` draws (not saved), for reading its artists."""
    figures._plt()
    return figures.get(kind).draw({"records": recs, "runs": [], "attack": "pgd", "eps": 0.03})


def test_a_bar_at_zero_is_drawn_and_every_bar_says_its_value_with_the_audit_mark() -> None:
    """Figure 1: a strategy at 0% is a visible line in its colour (not an empty slot), every bar is labelled
    with its value, and a cell the audit flagged carries the tables' dagger and the note saying what it means."""
    recs = [
        rec(strategy=s, seed=i, adv=0.0 if s == "full" else 0.4, eps=0.03, n=100)
        for s in ("full", "layer_freezing")
        for i in range(2)
    ]
    recs[2]["audit"] = {"flagged": True}  # one layer_freezing seed flagged
    fig = _drawn("strategies", recs)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert "0.0" in labels and "40.0†" in labels
    zero_lines = [c for c in ax.collections if c.__class__.__name__ == "LineCollection" and len(c.get_segments())]
    bar_colors = {b.get_label(): b.patches[0].get_facecolor() for b in ax.containers if hasattr(b, "patches")}
    assert any(tuple(c.get_colors()[0]) == tuple(bar_colors["full"]) for c in zero_lines)
    assert any("flagged by the attack-strength audit" in t.get_text() for t in fig.texts)


def test_each_configuration_has_its_own_colour_and_marker_in_tradeoff_and_curves() -> None:
    """Figure 2 and the curves: one (colour, marker) per configuration, the same in every panel, and every
    configuration in the legend (the curves' legend listed only the last panel's)."""
    fig = _drawn("tradeoff", RECS)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() in figures.MARKERS]  # not the error bars' caps
    styles = {(ln.get_color(), ln.get_marker()) for ln in lines}
    assert len(styles) == len(lines) == 8  # models x strategies x techniques
    curves = figures.get("curves").draw(
        {"records": RECS + [{**r, "attack": "fgsm", "eval_id": f"{r['eval_id']}-f"} for r in RECS], "runs": []}
    )
    (legend,) = curves.legends
    assert len(legend.get_texts()) == 8
    per_panel = [{ln.get_label(): (ln.get_color(), ln.get_marker()) for ln in ax.get_lines()} for ax in curves.axes]
    assert per_panel[0] == per_panel[1]
