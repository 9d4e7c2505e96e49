"""The per-sample worst case over every attack of a study (and each one's audit)."""

from __future__ import annotations

from pathlib import Path

from rttui.analysis.worst_case import WORST_CASE, worst_case_records
from tests.analysis.records import rec


def _reader(samples: dict[str, tuple[list[bool], list[int]]]):
    return lambda ids: {i: samples[i] for i in ids if i in samples}


def test_worst_case_counts_an_image_robust_only_if_every_attack_and_audit_missed_it() -> None:
    # 6 test images; image 5 is clean-wrong. Grid (0.03, 0.1): bit 0 = 0.03, bit 1 = 0.1.
    clean = [True, True, True, True, True, False]
    fgsm = rec(attack="fgsm", eps=0.1, n=6, clean=5 / 6, adv=3 / 6, eval_id="f")
    pgd = rec(attack="pgd", eps=0.1, n=6, clean=5 / 6, adv=3 / 6, eval_id="p")
    pgd["audit"] = {"fooled_ids": [2], "reattacked": 3, "survivors": 3}  # every survivor re-attacked
    tr = rec(attack="transfer[source]", eps=0.1, n=6, clean=5 / 6, adv=0.0, eval_id="t", attack_name="transfer")
    samples = {
        "f": (clean, [0b10, 0, 0, 0, 0, 0b11]),  # fgsm fools image 0 at 0.1
        "p": (clean, [0b10, 0b10, 0, 0, 0, 0b11]),  # pgd fools 0 and 1 at 0.1; its audit fooled 2
        "t": (clean, [0b11] * 6),  # a transfer attack fools everything: another threat model, not counted
    }
    grids = {"f": [0.03, 0.1], "p": [0.03, 0.1], "t": [0.03, 0.1]}
    (wc,) = worst_case_records([fgsm, pgd, tr], _reader(samples), grids)
    assert wc["attack"] == WORST_CASE and wc["eps"] == 0.1
    assert wc["n_adv_correct"] == 2 and wc["n"] == 6 and wc["n_clean_correct"] == 5  # images 3 and 4
    assert wc["broken_by"] == {"fgsm": 1, "pgd": 1, "audit of pgd": 1}  # the first to break each image
    assert wc["attack_params"]["covers"] == ["fgsm", "pgd"] and wc["exact"]
    # An audit that re-attacked only a sample: the worst case is an upper bound, and says so.
    pgd["audit"] = {"fooled_ids": [2], "reattacked": 1, "survivors": 3}
    (wc,) = worst_case_records([fgsm, pgd], _reader(samples), grids)
    assert not wc["exact"]


def test_worst_case_of_one_attack_without_audit_is_that_attack() -> None:
    clean = [True, True, False]
    pgd = rec(attack="pgd", eps=0.03, n=3, eval_id="p")
    (wc,) = worst_case_records([pgd], _reader({"p": (clean, [1, 0, 1])}), {"p": [0.03]})
    assert wc["n_adv_correct"] == 1 and wc["adv_acc"] == 1 / 3


def test_worst_case_is_at_most_every_attack_in_every_stored_cell(tiny_run_db: Path) -> None:
    from rttui import api

    recs = api.export_records(tiny_run_db)
    worst = {(r["run_id"], r["eps"]): r for r in recs if r["attack"] == WORST_CASE}
    others = [r for r in recs if r["attack"] != WORST_CASE]
    assert worst and others
    assert {(r["run_id"], r["eps"]) for r in others} == set(worst)
    for r in others:
        assert worst[(r["run_id"], r["eps"])]["n_adv_correct"] <= r["n_adv_correct"], r
    # compare shows it as an attack of its own, naming what it covers.
    comp = api.compare(tiny_run_db, None, WORST_CASE, 0.03)
    assert "over fgsm, pgd" in comp.tables[0].caption
