"""`rttui transfer`: the transferability matrix in every format, compare/ttest/export on transfer attacks."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rttui.cli.app import app

runner = CliRunner()


def test_transfer_json_gives_one_record_per_surrogate_target_and_eps(transfer_run_db: Path) -> None:
    r = runner.invoke(app, ["transfer", "--db", str(transfer_run_db), "--format", "json"])
    assert r.exit_code == 0, r.output
    recs = json.loads(r.stdout)
    keys = {(x["surrogate"], x["target"], x["eps"]) for x in recs}
    assert len(keys) == len(recs)
    assert {x["eps"] for x in recs} == {0.0, 0.03, 0.1}
    assert {x["surrogate"] for x in recs} == {
        "source",
        "full",
        "layer_freezing",
        "full (other seed)",
        "layer_freezing (other seed)",
    }
    for x in recs:
        assert {"adv_acc", "std", "n_seeds"} <= set(x) and x["n_seeds"] == 2
        assert x["adv_acc"] <= x["clean_acc"] + 1e-12
    diag = [x for x in recs if x["surrogate"] == x["target"]]
    assert diag and all(x["kind"] == "white-box" and x["attack"] == "pgd" for x in diag)


def test_transfer_table_and_text_formats(transfer_run_db: Path) -> None:
    r = runner.invoke(app, ["transfer", "--db", str(transfer_run_db), "--eps", "0.1"])
    assert r.exit_code == 0, r.output
    assert "surrogate (rows) x target (columns), ε=0.1" in r.stdout and "wb" in r.stdout
    for fmt, needle in (("md", "| source |"), ("latex", r"\begin{tabular}"), ("csv", "surrogate,target,eps")):
        r = runner.invoke(app, ["transfer", "--db", str(transfer_run_db), "--study", "tr", "--format", fmt])
        assert r.exit_code == 0 and needle in r.stdout, (fmt, r.output)


def test_transfer_bad_input_is_one_line(transfer_run_db: Path, tiny_run_db: Path) -> None:
    from rttui.cli import main  # noqa: F401  (the entry point prints RttuiError as one line; CliRunner raises it)
    from rttui.errors import RttuiError

    for args, needle in (
        (["--db", str(transfer_run_db), "--eps", "0.5"], "use --eps with one of 0, 0.03, 0.1"),
        (["--db", str(tiny_run_db)], "no transfer attack is stored here"),
        (["--db", str(transfer_run_db), "--format", "xml"], "--format 'xml' is not supported"),
    ):
        r = runner.invoke(app, ["transfer", *args])
        assert isinstance(r.exception, RttuiError) and needle in str(r.exception), r.output
        assert len(str(r.exception).splitlines()) == 1


def test_compare_ttest_and_export_handle_transfer(transfer_run_db: Path) -> None:
    db = str(transfer_run_db)
    r = runner.invoke(app, ["compare", "--db", db, "--attack", "transfer[source]", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert "transfer[source]" in r.stdout
    r = runner.invoke(app, ["compare", "--db", db, "--attack", "transfer"])
    assert "has 4 variants here" in str(r.exception)
    r = runner.invoke(
        app,
        [
            "ttest",
            "--db",
            db,
            "--a",
            "layer_freezing",
            "--b",
            "full",
            "--attack",
            "transfer[source]",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert rows and all(x["attack"] == "transfer[source]" for x in rows)
    r = runner.invoke(app, ["export", "--db", db, "--format", "json"])
    recs = json.loads(r.stdout)
    tr = [x for x in recs if x["attack"].startswith("transfer")]
    assert tr and all(x["surrogate_id"] and x["attack_name"] == "transfer" for x in tr)
    r = runner.invoke(app, ["export", "--db", db, "--format", "csv"])
    assert "transfer[sibling: strategy=full]" in r.stdout


def test_report_has_the_transfer_matrix(transfer_run_db: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", "tr", "--db", str(transfer_run_db), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "## Transfer attacks" in index and "surrogate (rows) x target (columns)" in index
    assert (tmp_path / "rep" / "compare_transfer-source_eps0.03.md").is_file()
    assert json.loads((tmp_path / "rep" / "transfer.json").read_text())
