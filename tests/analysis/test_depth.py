"""Accuracy and robustness by freeze depth: the table reads each run's recorded depth; the figure is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rttui import api
from rttui.analysis.depth import depth_rows
from rttui.cli.app import app
from rttui.errors import RttuiError


def test_depth_table_uses_recorded_depths_and_matches_the_records(tiny_run_db: Path) -> None:
    table = api.depth_table(tiny_run_db, "tiny")
    assert table["attack"] == "pgd" and table["eps"] == 0.03
    runs = {r["id"]: json.loads(r["info"]) for r in api.status(tiny_run_db)["runs"]}
    recs = [r for r in api.export_records(tiny_run_db) if r["attack"] == "pgd" and r["eps"] == 0.03]
    assert len(table["rows"]) == len(recs) == 2
    for row in table["rows"]:
        (rec,) = [r for r in recs if r["strategy"] == ("full" if row["strategy"] == "full" else "layer_freezing")]
        assert row["depths"] == [runs[rec["run_id"]]["frozen_groups"]]
        assert row["adv"].mean == rec["adv_acc"] and row["clean"].mean == rec["clean_acc"]
    assert [r["depth"] for r in table["rows"]] == sorted(r["depth"] for r in table["rows"])
    assert table["rows"][0]["depth"] == 0 and table["rows"][1]["strategy"] == "freeze=half"


def test_depth_rows_average_over_seeds_and_reject_unknown_eps() -> None:
    base = {"dataset": "d", "model": "m", "technique": "none", "strategy": "layer_freezing", "attack": "pgd"}
    base |= {"strategy_params": {"freeze": 2}, "mode": "sweep", "attack_params": {}, "n": 10}
    recs = [
        {**base, "run_id": f"r{s}", "seed": s, "eps": e, "clean_acc": c, "adv_acc": a}
        for s, c, a in ((0, 0.9, 0.5), (1, 0.8, 0.3))
        for e in (0.01, 0.05)
    ]
    runs = [{"id": f"r{s}", "info": json.dumps({"frozen_groups": 2, "n_groups": 5})} for s in (0, 1)]
    t = depth_rows(recs, runs)
    assert t["eps"] == 0.01  # no 0.03 in the grid: the smallest positive epsilon
    (row,) = t["rows"]
    assert row["clean"].mean == pytest.approx(0.85) and row["adv"].mean == pytest.approx(0.4)
    assert row["adv"].std == pytest.approx(0.1414213, rel=1e-5) and row["seeds"] == [0, 1]
    with pytest.raises(RttuiError, match=r"--eps 0\.03 is not in the pgd grid; use one of 0\.01, 0\.05"):
        depth_rows(recs, runs, eps=0.03)
    with pytest.raises(RttuiError, match="--attack 'fgsm' has no results"):
        depth_rows(recs, runs, attack="fgsm")


def test_depth_figure_and_json_come_out_of_one_command(tiny_run_db: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    png, svg = tmp_path / "d.png", tmp_path / "d.svg"
    r = runner.invoke(app, ["depth", "--db", str(tiny_run_db), "--plot", str(png), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(r.stdout)
    assert {"attack", "eps", "rows"} <= set(data) and data["rows"][0]["adv"]["mean"] is not None
    r = runner.invoke(app, ["depth", "--db", str(tiny_run_db), "--attack", "fgsm", "--eps", "0.1", "--plot", str(svg)])
    assert r.exit_code == 0, r.output
    assert "<svg" in svg.read_text() and "FGSM" in r.stdout


def test_depth_is_a_plot_kind(tiny_run_db: Path, tmp_path: Path) -> None:
    assert "depth" in api.figure_kinds()
    paths = api.plot(tiny_run_db, "depth", tmp_path / "fd.png", formats=("png", "svg"))
    assert sorted(p.name for p in paths) == ["fd.png", "fd.svg"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and "freeze depth" in paths[1].read_text()
