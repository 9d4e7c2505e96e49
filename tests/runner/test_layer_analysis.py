"""Layer-freezing runs store their layer analysis (gradient flow and CKA per depth group) through the coordinator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rttui.store import Store


def test_layer_freezing_run_stores_gradient_flow_and_cka(tiny_run_db: Path) -> None:
    with Store.open(tiny_run_db) as s:
        runs = {r["strategy"]: r for r in s.runs()}
        lf = runs["layer_freezing"]
        rows = s.layers(lf["id"])
        info = json.loads(lf["info"])
        assert len(rows) == info["n_groups"] and [r["group_idx"] for r in rows] == list(range(len(rows)))
        assert [r["frozen"] for r in rows] == [i < info["frozen_groups"] for i in range(len(rows))]
        for r in rows:
            assert r["grad_norm"] > 0 and r["n_params"] > 0 and r["group"]
            assert r["batch"].startswith("target train[:") and r["n_images"] > 0
            if r["frozen"]:
                assert r["cka"] == pytest.approx(1.0, abs=1e-9)
        assert any(r["cka"] < 1 - 1e-6 for r in rows if not r["frozen"])
        # Other strategies carry no analysis unless asked for (rttui layers).
        assert s.layers(runs["full"]["id"]) == []


AUTO_STUDY = """
[study]
name = "auto"
seeds = [0]

[source]
classes = [0, 1, 2, 3, 4]
epochs = 1
train_size = 150

[target]
classes = [5, 6, 7, 8, 9]
image_size = 16
test_size = 30
train_size = 100

[train]
lr = 2e-3
epochs = 1

[eval]
epsilons = [0.03]

[attacks.fgsm]

[[grid]]
models = ["test_vit"]
freeze_depths = ["auto"]

[strategies.layer_freezing]
auto_share = 0.5

[models.test_vit]
kwargs = { patch_size = 4 }
"""


def test_auto_freeze_run_records_the_depth_the_rule_names_from_its_stored_analysis(tmp_path: Path) -> None:
    from rttui import api

    study = tmp_path / "auto.toml"
    study.write_text(AUTO_STUDY)
    db = tmp_path / "auto.db"
    api.run_study(api.load_study(study), db)
    with Store.open(db) as s:
        (run,) = s.runs()
        assert run["state"] == "done", run["error"]
        info = json.loads(run["info"])
        rows = s.layers(run["id"])
    # The documented rule on the stored shares: the longest input-side prefix with cumulative share <= 0.5.
    k, cum = 0, 0.0
    for r in rows:
        cum += r["grad_share"]
        if cum > 0.5:
            break
        k += 1
    assert info["freeze_auto"] == {
        "rule": "longest input-side prefix with cumulative gradient share <= auto_share",
        "auto_share": 0.5,
        "depth": k,
        "n_groups": len(rows),
    }
    assert info["frozen_groups"] == k
    assert [r["frozen"] for r in rows] == [i < k for i in range(len(rows))]
    assert all(r["cka"] == pytest.approx(1.0, abs=1e-9) for r in rows[:k])
