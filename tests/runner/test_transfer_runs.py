"""Transfer evaluations run by the runner: surrogates trained first (a sibling run before its targets), crafted
images stored once as files and reused, stored like every other attack, and the sanity check that catches a
white-box attack weaker than a transfer one."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from rttui import api
from tests.studies import SIB_FULL, tiny_study
from tests.studies import TRANSFER_STUDY as STUDY


def _rows(db: Path, sql: str, args: tuple = ()) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def _numbers(db: Path) -> dict[tuple[str, str, float], int]:
    return {(r["run_id"], r["attack"], r["eps"]): r["n_adv_correct"] for r in api.export_records(db, "tr")}


def _by(records: list[dict], attack: str) -> dict[tuple[str, float], int]:
    return {(r["run_id"], r["eps"]): r["n_adv_correct"] for r in records if r["attack"] == attack}


def test_transfer_from_the_run_itself_equals_white_box_pgd_in_a_study(transfer_run_db: Path) -> None:
    recs = api.export_records(transfer_run_db, "tr")
    own, pgd = _by(recs, "transfer[sibling: self]"), _by(recs, "pgd")
    assert own and own == pgd
    assert any(v < max(pgd.values()) for v in pgd.values())  # PGD does fool some samples here


def test_transfer_evaluations_are_stored_with_their_surrogate(transfer_run_db: Path) -> None:
    evals = _rows(transfer_run_db, "select * from evaluations where attack = 'transfer'")
    assert len(evals) == 4 * 4
    runs = {r["id"]: r for r in _rows(transfer_run_db, "select * from runs")}
    sources = {r["id"]: r for r in _rows(transfer_run_db, "select * from sources")}
    artifacts = transfer_run_db.parent / "tr.artifacts" / "transfer"
    for e in evals:
        params = json.loads(e["params"])
        unit = sources if params["surrogate"] == "source" else runs
        assert e["surrogate_sha256"] == unit[e["surrogate_id"]]["sha256"]
        if params["surrogate"] == "source":
            assert e["surrogate_id"] == runs[e["run_id"]]["source_id"]
        crafted = json.loads(e["crafted"])
        assert set(crafted["keys"]) == {"0.03", "0.1"}  # eps 0 is the clean image, never stored
        for key in crafted["keys"].values():
            assert (artifacts / f"{key}.safetensors").is_file()
    # Crafted once, used many times: both strategies of a seed share their source's images.
    src = [json.loads(e["crafted"]) for e in evals if json.loads(e["params"])["surrogate"] == "source"]
    assert sum(len(c["crafted"]) for c in src) == 2 * 2  # two sources x two epsilons
    assert sum(len(c["reused"]) for c in src) == 2 * 2
    samples = _rows(transfer_run_db, "select count(*) as n from samples where eval_id = ?", (evals[0]["id"],))
    assert samples[0]["n"] == 40  # per-sample fooled masks, as for every attack
    checks = {c["check"] for c in _rows(transfer_run_db, "select * from checks where eval_id = ?", (evals[0]["id"],))}
    assert {"adv_le_clean", "monotone_eps", "pgd_le_transfer"} <= checks


def test_transfer_accuracy_is_clean_correct_only_and_not_above_clean(transfer_run_db: Path) -> None:
    for r in api.export_records(transfer_run_db, "tr"):
        if r["attack"].startswith("transfer"):
            assert r["n_adv_correct"] <= r["n_clean_correct"]
            assert r["adv_acc"] == r["n_adv_correct"] / r["n"]
            assert r["surrogate_id"]


def test_a_rerun_reuses_the_stored_adversarial_images(transfer_run_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rttui.engine.attacks import transfer as engine_transfer

    before = _numbers(transfer_run_db)
    files = {p: p.stat().st_mtime_ns for p in (transfer_run_db.parent / "tr.artifacts" / "transfer").iterdir()}
    con = sqlite3.connect(transfer_run_db)
    with con:
        ids = [r[0] for r in con.execute("select id from evaluations where attack = 'transfer'")]
        for t in ("metrics", "samples", "confusion", "checks"):
            con.executemany(f"delete from {t} where eval_id = ?", [(i,) for i in ids])
        con.execute("delete from evaluations where attack = 'transfer'")
    con.close()

    def no_crafting(*a, **k):
        raise AssertionError("the images are stored; nothing should be crafted again")

    monkeypatch.setattr(engine_transfer, "craft", no_crafting)
    res = api.run_study(api.parse_study(STUDY), transfer_run_db)
    assert res["failed"] == 0
    assert _numbers(transfer_run_db) == before
    assert {p: p.stat().st_mtime_ns for p in files} == files
    for e in _rows(transfer_run_db, "select crafted from evaluations where attack = 'transfer'"):
        c = json.loads(e["crafted"])
        assert c["crafted"] == [] and sorted(c["reused"]) == [0.03, 0.1]


def test_a_weak_white_box_pgd_is_caught_by_the_transfer_check(tmp_path: Path) -> None:
    """One PGD step of a tiny size is far weaker than a 10-step transfer from a sibling: the stored check says so."""
    text = tiny_study(
        study={"name": "weak", "seeds": [0]},
        source={"epochs": 1, "train_size": 150},
        target={"test_size": 60, "train_size": 200},
        attacks={"pgd": {"steps": 1, "rel_step_size": 0.01, "random_start": False}},
        eval={"epsilons": [0.1]},
        grid=[
            {
                "models": ["test_resnet"],
                "strategies": ["full", "layer_freezing"],
                "attacks": ["pgd", {**SIB_FULL, "steps": 10}],
            }
        ],
    )
    f = tmp_path / "weak.toml"
    f.write_text(text)
    db = tmp_path / "weak.db"
    assert api.run_study(api.load_study(f), db)["failed"] == 0
    checks = [c for c in api.checks(db) if c["check"] == "pgd_le_transfer"]
    assert len(checks) == 2
    assert all(c["level"] == "warning" for c in checks), checks
    assert "white-box attack is weak" in checks[0]["message"]
