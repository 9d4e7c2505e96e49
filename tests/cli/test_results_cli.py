"""compare, ttest, confusions, plot, report and export on a real (tiny, 3-seed) study database."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rttui import api
from rttui.cli.app import app
from rttui.errors import RttuiError

runner = CliRunner()


def _fails(*args: str, message: str) -> None:
    """A user mistake raises an RttuiError (which `rttui` prints as one line and exits 2 on)."""
    r = runner.invoke(app, list(args))
    assert isinstance(r.exception, RttuiError) and message in str(r.exception), r.output


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_compare_table_and_json(seeds3_db: Path) -> None:
    text = _ok("compare", "--db", str(seeds3_db), "--attack", "pgd", "--eps", "0.03", "--rows", "model,strategy")
    assert "layer_freezing" in text and "pgd steps=2" in text and "n = 3 seeds" in text
    data = json.loads(_ok("compare", "--db", str(seeds3_db), "--eps", "0.03", "--format", "json"))
    (t,) = data["tables"]
    assert t["eps"] == 0.03 and t["params"]["steps"] == 2 and not t["partial"]
    recs = [r for r in api.export_records(seeds3_db) if r["attack"] == "pgd" and r["eps"] == 0.03]
    full = next(c for c in t["cells"] if c["strategy"] == "full")
    vals = sorted(r["adv_acc"] for r in recs if r["strategy"] == "full")
    assert sorted(full["adv"]["values"]) == vals and full["adv"]["n"] == 3
    stab = _ok("compare", "--db", str(seeds3_db), "--eps", "0.03", "--stability")
    assert "sd adversarial" in stab


def test_compare_exports_and_errors(seeds3_db: Path) -> None:
    tex = _ok("compare", "--db", str(seeds3_db), "--eps", "0.1", "--format", "latex")
    assert r"\begin{tabular}" in tex and "layer\\_freezing" in tex
    csv_text = _ok(
        "compare", "--db", str(seeds3_db), "--attack", "all", "--eps", "0.1", "--cols", "attack", "--format", "csv"
    )
    assert csv_text.count("\n") == 1 + 2 * 3  # header + 2 strategies x (2 attacks and the worst case)
    _fails("compare", "--db", str(seeds3_db), "--eps", "0.05", message="epsilon 0.05 was not evaluated")
    _fails("compare", "--db", str(seeds3_db), "--where", "model", message="AXIS=VALUE")


def test_ttest_json_fields(seeds3_db: Path) -> None:
    args = ["ttest", "--db", str(seeds3_db), "--axis", "strategy", "--a", "layer_freezing", "--b", "full"]
    rows = json.loads(_ok(*args, "--format", "json", "--mcnemar", "--variance"))
    assert len(rows) == 6  # (2 attacks and the worst case) x 2 eps
    for r in rows:
        for k in (
            "mean_diff",
            "ci_low",
            "ci_high",
            "t",
            "p",
            "p_holm",
            "dz",
            "n",
            "dataset",
            "model",
            "technique",
            "attack",
            "eps",
        ):
            assert k in r
        assert r["n"] == 3 and "p" in r["variance"]
        if r["attack"] == "worst-case":  # derived per eps, no per-sample record of its own: said, not tested
            assert r["mcnemar"]["seed_pairs"] == 0 and "no per-sample outcomes stored" in r["mcnemar"]["notes"][0]
        else:
            assert r["mcnemar"]["seed_pairs"] == 3
        assert r["p"] is None or 0 <= r["p"] <= r["p_holm"] <= 1
    table = _ok(*args, "--metric", "clean_acc", "--attack", "pgd", "--eps", "0.03")
    assert "95% CI" in table and "n=3" in table
    _fails(*args[:-1], "adapter", message="no value 'adapter'")


def test_confusions_plot_report_export(seeds3_db: Path, tmp_path: Path) -> None:
    groups = json.loads(_ok("confusions", "--db", str(seeds3_db), "--format", "json"))
    assert groups and groups[0]["classes"] == ["5", "6", "7", "8", "9"] and groups[0]["eps"] == 0.03
    _ok("plot", "--db", str(seeds3_db), "--out", str(tmp_path / "figs"))
    figs = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert figs == sorted(
        [
            f"{k}.{e}"
            for k in ("strategies", "tradeoff", "curves", "confusion", "depth", "pareto")
            for e in ("png", "svg")
        ]
        + ["pareto.json", "pareto.csv"]  # the front's numbers, beside it
    )
    assert all((tmp_path / "figs" / f).stat().st_size > (1000 if f.endswith(("png", "svg")) else 100) for f in figs)
    _ok("report", "tiny3", "--db", str(seeds3_db), "--out", str(tmp_path / "rep"))
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "# Study tiny3" in index and "strategies.png" in index and "layer_freezing vs full" in index
    assert (tmp_path / "rep" / "compare_pgd_eps0.03.tex").exists()
    tex = _ok("export", "--db", str(seeds3_db), "--format", "latex", "--eps", "0.03")
    assert "pgd steps=2" in tex and r"\toprule" in tex
    recs = json.loads(_ok("export", "--db", str(seeds3_db), "--format", "json"))
    assert isinstance(recs, list) and len(recs) == 6 * 3 * 2 and "adv_acc" in recs[0]  # with the worst case
    _fails("report", "nope", "--db", str(seeds3_db), "--out", str(tmp_path / "x"), message="study 'nope' is not in")
    # The study file, as `rttui run` takes it, names the same study: the same index.
    _ok("report", str(seeds3_db.parent / "tiny3.toml"), "--db", str(seeds3_db), "--out", str(tmp_path / "rep2"))
    assert (tmp_path / "rep2" / "index.md").read_text() == index
    _fails(
        "report",
        str(tmp_path / "gone.toml"),
        "--db",
        str(seeds3_db),
        "--out",
        str(tmp_path / "y"),
        message="no such study file",
    )
    assert not (tmp_path / "y").exists()


def test_compare_on_a_study_with_no_results_yet(tmp_path: Path, tiny_study_file: Path) -> None:
    from rttui.store import Store

    db = tmp_path / "new.db"
    with Store.open(db, write=True) as s:  # registered, nothing run yet: what a just-started study looks like
        s.register_study("tiny", str(tiny_study_file), {}, [])
    comp = api.compare(db, "tiny")
    assert comp.tables == [] and comp.partial
    assert api.ttest(db, "strategy", "layer_freezing", "full", study="tiny") == []
    assert api.stability(db, "tiny") == [] and api.confusions(db, "tiny") == []
    assert json.loads(_ok("compare", "--db", str(db), "--format", "json"))["tables"] == []
