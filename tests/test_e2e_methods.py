"""Every strategy x every technique in one tiny study: it runs, exports rows naming what ran, reloads models."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from rttui import api
from rttui.study import catalog
from tests.studies import tiny_study

STRATEGIES = list(catalog.STRATEGIES)
TECHNIQUES = list(catalog.TECHNIQUES)

STUDY = tiny_study(
    study={"name": "methods"},
    source={"epochs": 1, "lr": 3e-3, "train_size": 120},
    target={"test_size": 30, "train_size": 64},
    train={"lr": 3e-3, "epochs": 2},
    eval={"epsilons": [0.0, 0.03]},
    attacks={"pgd": {"steps": 2}},
    strategies={"gradual_unfreezing": {"every": 1}, "adapter": {"rank": 2}},
    techniques={
        "adv_pretraining": {"attack": "pgd", "steps": 1},
        "adv_augmentation": {"attack": "fgsm", "fraction": 0.5},
    },
    models={"test_resnet": {"kwargs": {"zero_init_last": False}}},
    grid=[{"models": ["test_resnet"], "strategies": STRATEGIES, "techniques": TECHNIQUES}],
)


@pytest.mark.slow
def test_every_strategy_and_technique_runs_and_exports(tmp_path: Path) -> None:
    f = tmp_path / "methods.toml"
    f.write_text(STUDY)
    db = tmp_path / "m.db"
    out = api.run_study(api.load_study(f), db)
    assert out["failed"] == 0 and out["runs"] == len(STRATEGIES) * len(TECHNIQUES)
    recs = api.export_records(db)
    combos = {(r["strategy"], r["technique"]) for r in recs}
    assert combos == {(s, t) for s in STRATEGIES for t in TECHNIQUES}
    assert {r["attack"] for r in recs} == {"fgsm", "pgd", "worst-case"}
    assert all(0 <= r["adv_acc"] <= r["clean_acc"] for r in recs)
    # Two sources per seed: the standard one and the adversarially pretrained one.
    con = sqlite3.connect(db)
    infos = [json.loads(i) for (i,) in con.execute("select info from sources")]
    assert len(infos) == 2 and sum("robust_acc" in i for i in infos) == 1
    assert {c["message"].split(":")[0] for c in api.checks(db) if c["check"] == "bn_freeze"} == {"bn_freeze"}
    # Adapter runs reload through the public API (LoRA modules rebuilt before the weights are loaded).
    for strategy in ("adapter", "freeze_adapter", "gradual_unfreezing"):
        rid = next(r["run_id"] for r in recs if r["strategy"] == strategy and r["technique"] == "none")
        m = api.load_run_model(db, rid)
        assert m(torch.rand(2, 3, 16, 16)).shape == (2, 5)
        if "adapter" in strategy:
            assert any(".lora_" in n for n, _ in m.named_parameters())
