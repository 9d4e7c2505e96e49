"""The `audits` table: what an escalated audit stores round-trips, and a schema-v2 file (audits without the v3
columns) gains them when opened for writing, its old rows reading None (not recorded)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rttui.store import SCHEMA_VERSION, Store

V3 = ("reattacked", "tolerance", "escalated", "est_adv_correct", "est_lo", "est_hi", "escalation_seconds")


def _audit(**extra) -> dict:
    row = {
        "eps": 0.03,
        "n": 50,
        "survivors": 230,
        "survived_attack": 230,
        "survived_stronger": 208,
        "threshold": 5,
        "flagged": True,
        "complete": True,
        "fooled_ids": [3, 7],
        "seconds": 1.5,
        **extra,
    }
    return {"stronger": {"apgd": {"n_iter": 20}}, "settings": {"escalate": True}, "per_eps": [row]}


def test_audits_v3_columns_round_trip_and_migrate(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    new = {"reattacked": 230, "tolerance": 5.0, "escalated": True, "escalation_seconds": 9.25}
    new |= {"est_adv_correct": 208.0, "est_lo": 208.0, "est_hi": 208.0}
    with Store.open(db, write=True) as s:
        with s.conn:
            s._insert_audit("e1", "r1", _audit(**new))
        (got,) = s.audits(["e1"]).values()
    assert {k: got[k] for k in new} == new and got["escalated"] is True and got["fooled_ids"] == [3, 7]
    # The same file as schema v2 wrote it: the v3 columns gone, one old row.
    con = sqlite3.connect(db)
    with con:
        con.execute("delete from audits")
        for col in V3:
            con.execute(f"alter table audits drop column {col}")
        con.execute("update meta set value = '2' where key = 'schema_version'")
        con.execute(
            "insert into audits (eval_id, eps, run_id, n, survivors, survived_attack, survived_stronger, threshold, "
            "flagged, complete, fooled_ids, stronger, seconds) values ('e0', 0.03, 'r0', 50, 230, 50, 44, 3, 1, 1, "
            "'[1]', '{}', 1.0)"
        )
    con.close()
    with Store.open(db, write=True) as s:
        with s.conn:  # an engine audit dict without the v3 keys (an older runner's) stores NULL there
            s._insert_audit("e2", "r0", _audit())
        assert s.schema_version == SCHEMA_VERSION and set(V3) <= set(s.db["audits"].columns_dict)
        assert all(v is None for k, v in s.audits(["e2"])[("e2", 0.03)].items() if k in V3)
        assert s.schema_version == SCHEMA_VERSION and set(V3) <= set(s.db["audits"].columns_dict)
        (old,) = s.audits(["e0"]).values()
    assert all(old[k] is None for k in V3) and old["survivors"] == 230


def test_records_carry_the_attack_success_rate(tmp_path: Path) -> None:
    """Fooled / clean-correct beside adv_acc (fooled-or-wrong / n): 30 clean-correct, 12 still right -> 0.6."""
    cfg = {
        "source_id": "s1",
        "target": {"dataset": "digits"},
        "model": {"name": "test_resnet"},
        "strategy": {"name": "full", "params": {}},
        "technique": {"name": "none", "params": {}},
        "seed": 0,
    }
    metric = {"attack": "pgd", "norm": "linf", "steps": 10, "restarts": 1, "random_start": True, "n": 40}
    rows = [
        {**metric, "eps": 0.03, "n_clean_correct": 30, "n_adv_correct": 12, "clean_acc": 0.75, "adv_acc": 0.3},
        {**metric, "eps": 0.05, "n_clean_correct": 0, "n_adv_correct": 0, "clean_acc": 0.0, "adv_acc": 0.0},
    ]
    with Store.open(tmp_path / "r.db", write=True) as s:
        s.ensure_run("r1", cfg)
        s.register_study("st", None, {}, ["r1"], [("e1", "r1")])  # the study planned evaluation e1
        ev = {"id": "e1", "run_id": "r1", "attack": "pgd", "params": {}, "epsilons": [0.03, 0.05]}
        s.add_evaluation(ev, rows, [], [], [])
        recs = {r["eps"]: r for r in s.records("st")}
    assert recs[0.03]["attack_success_rate"] == 0.6 and recs[0.03]["adv_acc"] == 0.3
    assert recs[0.05]["attack_success_rate"] is None  # nothing clean-correct: no rate, not 0
