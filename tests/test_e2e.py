"""A tiny study end to end: run, store, export, re-run (nothing twice), reload a model."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import torch

from rttui import api
from rttui.runner import events as ev


def test_tiny_study_runs_stores_and_exports(tiny_run_db: Path) -> None:
    recs = [r for r in api.export_records(tiny_run_db) if r["attack"] != "worst-case"]
    # 2 runs x 2 attacks x 3 eps (beside them, the worst case derived from both)
    assert len(recs) == 12
    keys = {
        "run_id",
        "study",
        "dataset",
        "model",
        "strategy",
        "technique",
        "attack",
        "norm",
        "steps",
        "eps",
        "seed",
        "clean_acc",
        "adv_acc",
        "n",
    }
    assert all(keys <= set(r) for r in recs)
    assert {(r["strategy"], r["attack"], r["eps"]) for r in recs} == {
        (s, a, e) for s in ("full", "layer_freezing") for a in ("fgsm", "pgd") for e in (0.0, 0.03, 0.1)
    }
    for r in recs:
        assert 0 <= r["adv_acc"] <= r["clean_acc"] <= 1
        assert r["n"] == 60 and r["study"] == "tiny"
        if r["eps"] == 0.0:
            assert r["adv_acc"] == r["clean_acc"]
    assert all(r["steps"] == 3 for r in recs if r["attack"] == "pgd")
    # Sanity checks are stored with every evaluation.
    assert {c["check"] for c in api.checks(tiny_run_db)} >= {"adv_le_clean", "monotone_eps", "pgd_le_fgsm"}


def test_rerun_does_nothing_twice(tiny_run_db: Path, tmp_path: Path, tiny_study_text: str) -> None:
    f = tmp_path / "tiny.toml"
    f.write_text(tiny_study_text)
    before = sqlite3.connect(tiny_run_db).execute("select id, started, checkpoint from runs order by id").fetchall()
    seen: list[ev.Event] = []
    api.run_study(api.load_study(f), tiny_run_db, seen.append)
    kinds = {type(e).__name__ for e in seen}
    assert "UnitStarted" not in kinds and "EvalDone" not in kinds
    assert sum(isinstance(e, ev.UnitSkipped) for e in seen) == 2
    after = sqlite3.connect(tiny_run_db).execute("select id, started, checkpoint from runs order by id").fetchall()
    assert before == after
    n = sqlite3.connect(tiny_run_db).execute("select count(*) from metrics").fetchone()[0]
    assert n == 12


def test_added_attack_evaluates_stored_models_without_retraining(tmp_path: Path, tiny_study_text: str) -> None:
    f = tmp_path / "t.toml"
    f.write_text(
        tiny_study_text.replace("[attacks.pgd]\nsteps = 3\n", "").replace(
            'strategies = ["full", "layer_freezing"]', 'strategies = ["full"]'
        )
    )
    db = tmp_path / "t.db"
    api.run_study(api.load_study(f), db)
    assert {r["attack"] for r in api.export_records(db)} == {"fgsm", "worst-case"}
    f.write_text(tiny_study_text.replace('strategies = ["full", "layer_freezing"]', 'strategies = ["full"]'))
    seen: list[ev.Event] = []
    api.run_study(api.load_study(f), db, seen.append)
    assert [e.phase for e in seen if isinstance(e, ev.UnitStarted)] == ["eval"]
    assert [e.attack for e in seen if isinstance(e, ev.EvalDone)] == ["pgd"]
    assert {r["attack"] for r in api.export_records(db)} == {"fgsm", "pgd", "worst-case"}


def test_load_run_model_returns_eval_model_on_unit_images(tiny_run_db: Path) -> None:
    recs = api.export_records(tiny_run_db)
    rid = recs[0]["run_id"]
    m = api.load_run_model(tiny_run_db, rid)
    assert not m.training
    out = m(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 5)
    # Checkpoints are safetensors next to the database (in <stem>.artifacts/, the stored path relative to it), with
    # their SHA-256 recorded.
    row = sqlite3.connect(tiny_run_db).execute("select checkpoint, sha256 from runs where id = ?", (rid,)).fetchone()
    assert row[0].endswith(".safetensors") and len(row[1]) == 64
    assert (tiny_run_db.parent / "tiny.artifacts" / row[0]).is_file()


def test_tampered_checkpoint_is_refused(tmp_path: Path, tiny_run_db: Path) -> None:
    import shutil

    import pytest

    from rttui.errors import CheckpointError

    db = tmp_path / "copy.db"
    shutil.copy(tiny_run_db, db)
    shutil.copytree(tiny_run_db.parent / "tiny.artifacts", tmp_path / "copy.artifacts")
    rid, ck = sqlite3.connect(db).execute("select id, checkpoint from runs").fetchone()
    path = tmp_path / "copy.artifacts" / ck  # stored relative to the artifacts folder: the copy reads its own
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        api.load_run_model(db, rid)


def test_export_json_is_plain_json(tiny_run_db: Path) -> None:
    text = json.dumps(api.export_records(tiny_run_db))
    assert json.loads(text)[0]["attack"] in {"fgsm", "pgd"}
