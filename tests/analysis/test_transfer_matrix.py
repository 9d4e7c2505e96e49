"""The transferability matrix: surrogates x targets, mean ± std over seeds, white-box PGD on the diagonal."""

from __future__ import annotations

import json

import pytest

from rttui.analysis.records import AnalysisError, select
from rttui.analysis.transfer import render_matrices, transfer_matrices
from tests.analysis.records import rec

STRATS = ("full", "feature_extraction", "layer_freezing")
SRC = {"surrogate": "source", "sibling": None, "steps": 10}
SIB = {"surrogate": "sibling", "sibling": {"strategy": "full"}, "steps": 10}
OTHER = {"surrogate": "sibling", "sibling": {"seed": "other"}, "steps": 10}


def _rid(strategy: str, seed: int) -> str:
    return f"digits-m-{strategy}-none-{seed}"


def _transfer(strategy: str, seed: int, params: dict, adv: float, surrogate: str, eps: float = 0.03) -> dict:
    label = {"source": "transfer[source]"}.get(params["surrogate"]) or (
        "transfer[sibling: strategy=full]"
        if params["sibling"] == {"strategy": "full"}
        else "transfer[sibling: seed=other]"
    )
    r = rec(strategy=strategy, seed=seed, adv=adv, attack=label, eps=eps, attack_params=params, surrogate_id=surrogate)
    r["attack_name"] = "transfer"
    r["eval_id"] += json.dumps(params["sibling"])
    return r


def records() -> list[dict]:
    out = []
    for s, strat in enumerate(STRATS):
        for seed in (0, 1):
            out.append(rec(strategy=strat, seed=seed, adv=0.1 * (s + 1) + 0.02 * seed))  # white-box pgd
            out.append(_transfer(strat, seed, SRC, 0.5 - 0.1 * s + 0.02 * seed, f"src{seed}"))
            out.append(_transfer(strat, seed, SIB, 0.6 + 0.02 * seed, _rid("full", seed)))
            out.append(_transfer(strat, seed, OTHER, 0.7 + 0.02 * seed, _rid(strat, 1 - seed)))
    return out


def test_transfer_matrix_rows_are_surrogates_columns_targets_and_the_diagonal_is_white_box() -> None:
    (m,) = transfer_matrices(records())
    assert m.eps == 0.03 and m.axes == ["strategy"]
    assert m.cols == ["feature_extraction", "full", "layer_freezing"]
    assert m.rows == [
        "source",
        "full",  # the one configuration used as a same-seed sibling surrogate
        "full (other seed)",
        "feature_extraction (other seed)",
        "layer_freezing (other seed)",
        "white-box pgd (the target itself)",
    ]
    src = m.cell("source", "layer_freezing")
    assert src is not None and src.kind == "transfer" and src.adv.n == 2
    assert src.adv.mean == pytest.approx(0.31) and src.adv.std == pytest.approx(0.0141421, rel=1e-4)
    # The full model attacking itself is white-box PGD: the diagonal, never the self-transfer record.
    diag = m.cell("full", "full")
    assert diag is not None and diag.kind == "white-box" and diag.adv.mean == pytest.approx(0.11)
    assert m.cell("full", "layer_freezing").adv.mean == pytest.approx(0.61)
    assert m.cell("layer_freezing (other seed)", "layer_freezing").adv.mean == pytest.approx(0.71)
    assert m.body()[1][2].endswith(" wb")  # row full, column full: the diagonal
    assert [x.endswith(" wb") for x in m.body()[-2][1:]] == [True] * 3  # the white-box row
    assert m.body()[-2][1:] == [m.whitebox[c].adv.fmt(100.0) + " wb" for c in m.cols]
    assert m.body()[-1] == ["(clean, no attack)", "90.0±0.0", "90.0±0.0", "90.0±0.0"]


def test_transfer_json_has_one_record_per_surrogate_target_and_eps() -> None:
    recs = [*records(), _transfer("full", 0, SRC, 0.2, "src0", eps=0.1), _transfer("full", 1, SRC, 0.1, "src1", 0.1)]
    ms = transfer_matrices(recs, all_eps=True)
    assert [m.eps for m in ms] == [0.03, 0.1]
    out = json.loads(render_matrices(ms, "json"))
    keys = [(r["surrogate"], r["target"], r["eps"]) for r in out]
    assert len(keys) == len(set(keys))
    one = next(r for r in out if r["surrogate"] == "source" and r["target"] == "full" and r["eps"] == 0.1)
    assert one["adv_acc"] == pytest.approx(0.15) and one["n_seeds"] == 2 and one["std"] == pytest.approx(0.0707107)
    assert one["kind"] == "transfer" and one["attack"] == "transfer[source]"
    lf = next(r for r in out if r["surrogate"] == "source" and r["target"] == "layer_freezing" and r["eps"] == 0.03)
    assert lf["whitebox_acc"] == pytest.approx(0.31)  # white-box PGD on that target, for reference
    for fmt in ("md", "latex", "csv"):
        assert "layer_freezing" in render_matrices(ms, fmt).replace("\\_", "_")


def test_transfer_matrix_names_stored_warnings_and_refuses_what_is_not_there() -> None:
    checks = [
        {
            "run_id": _rid("full", 0),
            "eval_id": "e",
            "check": "pgd_le_transfer",
            "level": "warning",
            "message": "transfer[source] leaves 9 fewer samples correct than white-box pgd",
        }
    ]
    (m,) = transfer_matrices(records(), checks)
    assert any("9 fewer samples" in w for w in m.warnings)
    with pytest.raises(AnalysisError, match="no transfer attack is stored"):
        transfer_matrices([rec()])
    with pytest.raises(AnalysisError, match=r"use --eps with one of 0\.03"):
        transfer_matrices(records(), eps=0.2)


def test_attack_transfer_means_the_one_variant_or_names_the_choices() -> None:
    only_source = [r for r in records() if r["attack"] in ("pgd", "transfer[source]")]
    assert {r["attack"] for r in select(only_source, "transfer")} == {"transfer[source]"}
    with pytest.raises(AnalysisError, match="has 3 variants here"):
        select(records(), "transfer")
    assert {r["attack"] for r in select(records(), "transfer[sibling: strategy=full]")} == {
        "transfer[sibling: strategy=full]"
    }
