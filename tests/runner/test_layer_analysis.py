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
