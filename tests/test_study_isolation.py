"""Two studies sharing a trained run each show their own results: membership per evaluation, state per study,
labels that identify, reads that default to one study, exports that obey their filters, old databases migrated.

The scenario is the docs' weak-pgd-audit-after-quickstart (docs/explanation/architecture.md) in miniature: a study A
(FGSM and 3-step PGD) and a study B that asks for the same training and a 1-step PGD only, in one database.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.entry import run_cli as _cli
from tests.studies import tiny_study

WEAK = tiny_study(
    study={"name": "weak"},
    attacks={"fgsm": None, "pgd": {"steps": 1, "rel_step_size": 0.25, "random_start": False}},
    grid=[{"models": ["test_resnet"], "strategies": ["full"]}],
)


def _copy_db(src: Path, folder: Path) -> Path:
    """A copy of a database with its checkpoints (`<stem>.artifacts`, stored relative to the database)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, folder / src.name)
    shutil.copytree(src.parent / f"{src.stem}.artifacts", folder / f"{src.stem}.artifacts")
    return folder / src.name


def _export(db: Path, study: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> list[dict]:
    code, out, err = _cli(["export", "--db", str(db), "--study", study, "-f", "json"], monkeypatch, capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory: pytest.TempPathFactory, tiny_run_db: Path) -> dict:
    """The tiny study's database with the weak study run into it, and tiny's records from before."""
    from rttui import api

    d = tmp_path_factory.mktemp("isolation")
    db = _copy_db(tiny_run_db, d / "two")
    before = api.export_records(db, "tiny")
    f = d / "weak.toml"
    f.write_text(WEAK)
    res = api.run_study(api.load_study(f), db)
    assert res["failed"] == 0, res
    return {"db": db, "before": before, "weak_file": f}


def test_study_isolation_shared_run_shows_each_studys_own_evaluations(
    two_studies: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rttui import api

    db = two_studies["db"]
    exported = _export(db, "weak", monkeypatch, capsys)
    # One run, one PGD-1 evaluation, three eps: the weak study's own records, none of tiny's (beside them, the
    # per-sample worst case derived from them: PGD-1 and its audit).
    weak = [r for r in exported if r["attack"] != "worst-case"]
    assert len(weak) == 3 and len(exported) == 6
    assert {r["attack"] for r in weak} == {"pgd"} and {r["steps"] for r in weak} == {1}
    assert {r["study"] for r in weak} == {"weak"}
    # The run is tiny's full run: shared training, a separate evaluation.
    tiny_full = {r["run_id"] for r in two_studies["before"] if r["strategy"] == "full"}
    assert {r["run_id"] for r in weak} == tiny_full
    # tiny's results are unchanged by the second study.
    assert api.export_records(db, "tiny") == two_studies["before"]
    # compare shows the weak study's 1-step numbers, not tiny's 3-step PGD.
    comp = api.compare(db, "weak", "pgd", 0.1)
    (cell,) = comp.tables[0].cells.values()
    want = next(r["adv_acc"] for r in weak if abs(r["eps"] - 0.1) < 1e-9)
    assert cell.stats["adv"].mean == pytest.approx(want)
    assert "steps=1" in comp.tables[0].caption
    tiny_pgd = next(r for r in two_studies["before"] if r["attack"] == "pgd" and r["strategy"] == "full")
    assert tiny_pgd["steps"] == 3


def test_study_isolation_mixing_studies_keeps_different_evaluations_apart(two_studies: dict) -> None:
    from rttui import api

    comp = api.compare(two_studies["db"], "all", None, 0.1)
    attacks = {t.fixed.get("attack") for t in comp.tables}
    # Two PGD evaluations of one run never share a cell: labelled by what differs.
    assert any(a and a.startswith("pgd[") and "steps=1" in a for a in attacks), attacks
    assert any(a and a.startswith("pgd[") and "steps=3" in a for a in attacks), attacks
    assert all("studies tiny, weak" in t.caption for t in comp.tables if "steps=1" in str(t.fixed.get("attack")))


def test_study_isolation_reads_default_to_one_study(
    two_studies: dict, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = str(two_studies["db"])
    for args in (["compare"], ["export"], ["ttest"], ["plot", "strategies"]):
        code, _, err = _cli([*args, "--db", db], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (args, err)
        assert "2 studies (tiny, weak)" in lines[0] and "--study all" in lines[0], err
    # A database with one study needs no --study.
    code, out, err = _cli(["compare", "--db", str(tiny_run_db), "--attack", "pgd"], monkeypatch, capsys)
    assert code == 0 and "Accuracy" in out, err
    code, out, err = _cli(["export", "--db", db, "--study", "all"], monkeypatch, capsys)
    assert code == 0, err
    recs = json.loads(out)
    assert {r["study"] for r in recs} == {"tiny", "weak"}


def test_study_isolation_export_obeys_its_filters(
    tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = str(tiny_run_db)
    code, out, err = _cli(["export", "--db", db], monkeypatch, capsys)
    everything = json.loads(out)
    assert code == 0 and {r["attack"] for r in everything} == {"fgsm", "pgd", "worst-case"}
    for args, keep in (
        (["--attack", "fgsm"], lambda r: r["attack"] == "fgsm"),
        (["--eps", "0.03"], lambda r: abs(r["eps"] - 0.03) < 1e-9),
        (["--where", "strategy=full"], lambda r: r["strategy"] == "full"),
        (["--attack", "pgd", "--eps", "0.1", "-f", "csv"], lambda r: r["attack"] == "pgd" and r["eps"] == 0.1),
    ):
        code, out, err = _cli(["export", "--db", db, *args], monkeypatch, capsys)
        assert code == 0, err
        want = [r for r in everything if keep(r)]
        if "csv" in args:
            assert len(out.strip().splitlines()) == len(want) + 1
        else:
            assert json.loads(out) == want and 0 < len(want) < len(everything)
    for args in (["--rows", "model"], ["--cols", "eps"], ["--eps", "0.5"]):
        code, _, err = _cli(["export", "--db", db, *args], monkeypatch, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (args, err)


def test_study_isolation_a_failed_evaluation_is_that_studys_only(
    tmp_path: Path, tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from rttui import api

    db = _copy_db(tiny_run_db, tmp_path / "f")
    before = {r["id"]: r["state"] for r in api.status(db, "tiny")["runs"]}
    assert set(before.values()) == {"done"}
    f = tmp_path / "df.toml"
    f.write_text(tiny_study(study={"name": "adds-deepfool"}, attacks={"deepfool": {}}))
    monkeypatch.setenv("RTTUI_FAULTS", json.dumps([{"unit": "*", "fail_attack": "deepfool"}]))
    res = api.run_study(api.load_study(f), db)
    monkeypatch.delenv("RTTUI_FAULTS")
    assert res["failed"] >= 1
    # tiny's runs are still done for tiny: another study's evaluation failing never touches them.
    assert {r["id"]: r["state"] for r in api.status(db, "tiny")["runs"]} == before
    mine = api.status(db, "adds-deepfool")["runs"]
    assert {r["state"] for r in mine} == {"failed"}
    assert all("deepfool" in (r["error"] or "") for r in mine)
    # The runs' own (training) state is untouched, and the failure is stored on the evaluation.
    assert {r["train_state"] for r in mine} <= {"done", "trained"}
    with sqlite3.connect(db) as c:
        failed = c.execute("select attack, error from evaluations where state = 'failed'").fetchall()
    assert failed and all(a == "deepfool" and "injected" in e for a, e in failed)
    # The failed study's own tables hold its FGSM and PGD (the same evaluations as tiny's: computed once).
    assert {r["attack"] for r in api.export_records(db, "adds-deepfool")} == {"fgsm", "pgd", "worst-case"}
    # Each study counts its own units in `rttui status`.
    counts = {st["name"]: (st["runs"], st["done"], st["failed"]) for st in api.status(db)["studies"]}
    assert counts == {"tiny": (2, 2, 0), "adds-deepfool": (2, 0, 2)}


def test_study_isolation_labels_tell_runs_apart() -> None:
    from rttui.analysis.records import run_labels

    def run(rid: str, size: int, test_size: int) -> dict:
        return {
            "id": rid,
            "dataset": "digits",
            "model": "test_resnet",
            "strategy": "full",
            "technique": "none",
            "seed": 0,
            "config": {"target": {"image_size": size, "test_size": test_size}, "seed": 0},
        }

    labels = run_labels([run("a", 32, 300), run("b", 16, 60), {**run("c", 32, 300), "strategy": "lp"}])
    assert labels["a"] != labels["b"]
    assert "image_size=32" in labels["a"] and "test_size=300" in labels["a"]
    assert "image_size=16" in labels["b"]
    assert labels["c"] == "digits/test_resnet/lp/none seed 0"  # nothing to tell apart: the plain label


def test_study_isolation_old_database_migrates(
    tmp_path: Path, two_studies: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A database written before membership was recorded (schema v2: no study_evals) reads the same tables,
    read-only (membership rebuilt on the connection only) and after a write open (rebuilt into the file)."""
    from rttui import api

    db = tmp_path / "old.db"
    shutil.copy(two_studies["db"], db)  # read only: its checkpoints are not needed
    want = {name: api.export_records(db, name) for name in ("tiny", "weak")}
    code, table_before, _ = _cli(["compare", "--db", str(db), "--study", "tiny"], monkeypatch, capsys)
    assert code == 0
    with sqlite3.connect(db) as c:
        c.execute("drop table study_evals")
        c.execute("update meta set value = '2' where key = 'schema_version'")
    before_bytes = db.read_bytes()
    assert {name: api.export_records(db, name) for name in ("tiny", "weak")} == want
    code, table_after, _ = _cli(["compare", "--db", str(db), "--study", "tiny"], monkeypatch, capsys)
    assert code == 0 and table_after == table_before
    assert db.read_bytes() == before_bytes  # a read never writes the file
    with api.open_store(db, write=True) as s:
        assert s.schema_version >= 3
    with sqlite3.connect(db) as c:
        n = dict(c.execute("select study, count(*) from study_evals group by study").fetchall())
    assert n == {"tiny": 4, "weak": 1}
    assert {name: api.export_records(db, name) for name in ("tiny", "weak")} == want


def test_names_that_match_nothing_are_refused(
    tiny_run_db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A study, run or count that selects nothing is one line and exit 2, never an empty success."""
    db = str(tiny_run_db)
    for args, phrase in (
        (["status", "--study", "nope"], "study 'nope' is not in"),
        (["checks", "--run", "nope"], "run 'nope' is not in"),
        (["confusions", "--top", "-1"], "--top -1: must be at least 1"),
    ):
        code, _, err = _cli([*args, "--db", db], monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and phrase in lines[0], (args, err)
