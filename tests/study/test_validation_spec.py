"""Study keys of issue #31 (validation split, per-epoch probe, checkpoint selection): ids, defaults, refusals.

Validation is off unless a study asks for it, and then stays out of every existing run's identity: the run ids
below were computed from studies/quickstart.toml and studies/paper-mini.toml before the keys existed.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from rttui.cli import main
from rttui.errors import StudyError
from rttui.study import parse_study
from rttui.study.plan import make_plan
from rttui.study.spec import load_study
from tests.studies import tiny_study

ROOT = Path(__file__).resolve().parents[2]

# Computed at commit c8f2e28 (before validation existed).
QUICKSTART_RUN_IDS = (
    "0d26f01ca501",
    "11e6c04a171b",
    "143cef9e4c25",
    "18e2e49bbb92",
    "1a961ecefd0c",
    "2f9a8c3e2af8",
    "4a9674a3170d",
    "5280f42cb6b6",
    "58c80ec6a644",
    "61adbce9857c",
    "6330a1ef1f10",
    "6d9a085cf624",
    "808145f0f947",
    "933d296233a6",
    "c9cf391727f7",
    "d84407808469",
    "e60804f9cb14",
    "ea9c069b0063",
)
QUICKSTART_SOURCE_IDS = (
    "4bc2b030857e",
    "6494ff40e370",
    "94fc4366fc66",
    "e79655628846",
    "f0c9e3760875",
    "f66be2346d96",
)
PAPER_MINI_RUN_IDS = (
    "181835d18d1d",
    "1f2ead41e9c3",
    "22ebad8b7bd2",
    "3b4c5f47ea80",
    "533ca209005c",
    "688c7bdddc8e",
    "71e1402717e4",
    "879faef51371",
    "9628dadb94de",
    "ac59464d0c13",
    "b4e488242aa5",
    "ba9426abf53a",
    "bcb6fcb15848",
    "c50d4758040c",
    "d63b4c09fe3b",
    "d82a11a431a9",
    "e568cb9f735e",
    "e64d490bb671",
)


def test_validation_off_keeps_the_quickstart_run_ids() -> None:
    plan = make_plan(load_study(ROOT / "studies" / "quickstart.toml"))
    assert sorted(r.id for r in plan.runs) == sorted(QUICKSTART_RUN_IDS)
    assert sorted(plan.sources) == sorted(QUICKSTART_SOURCE_IDS)
    for r in plan.runs:
        assert "val_size" not in r.config["target"] and "val_seed" not in r.config["target"]
        assert "select" not in r.config["train"] and "probe" not in r.config["train"]


def test_validation_off_keeps_the_paper_mini_run_ids() -> None:
    """paper-mini gained a ViT block: every run it had keeps its id."""
    plan = make_plan(load_study(ROOT / "studies" / "paper-mini.toml"))
    assert set(PAPER_MINI_RUN_IDS) <= {r.id for r in plan.runs}


def _plan(**sections: object):  # type: ignore[no-untyped-def]
    return make_plan(parse_study(tiny_study(**sections)))


def test_validation_defaults_are_left_out_and_select_last_changes_nothing() -> None:
    base = {r.id for r in _plan().runs}
    assert {r.id for r in _plan(train={"select": "last"}).runs} == base
    assert {r.id for r in _plan(target={"val_seed": 7}).runs} == base  # a seed without a split means nothing


def test_validation_split_probe_and_select_join_the_identity() -> None:
    base = {r.id for r in _plan().runs}
    val = _plan(target={"val_size": 0.1})
    assert not {r.id for r in val.runs} & base
    probe = val.runs[0].config["train"]["probe"]
    # Defaults from the grid: its report eps (0.03 here, evaluated) and its PGD norm; a few PGD steps.
    assert probe["eps"] == [0.03] and probe["norm"] == "linf" and probe["attack"] == "pgd" and probe["steps"] == 3
    assert "select" not in val.runs[0].config["train"]
    best = _plan(target={"val_size": 0.1}, train={"select": "best_robust"})
    assert not {r.id for r in best.runs} & {r.id for r in val.runs}
    assert best.runs[0].config["train"]["select"] == "best_robust"
    # The source (pretraining) does not change with the target's validation split.
    assert set(best.sources) == set(_plan().sources)


def test_validation_probe_eps_default_follows_report_eps_and_can_be_switched_off() -> None:
    p = _plan(target={"val_size": 20}, eval={"report_eps": 0.1}).runs[0].config["train"]["probe"]
    assert p["eps"] == [0.1]
    off = _plan(target={"val_size": 20}, train={"probe": {"enabled": False}}).runs[0].config["train"]["probe"]
    assert off == {"enabled": False}


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"target": {"val_size": 300}}, "grid[0].target.val_size: 300 is not smaller than the training split"),
        ({"target": {"val_size": 3}}, "grid[0].target.val_size: 3 leaves a class without validation images"),
        ({"target": {"val_size": 1.5}}, "grid[0].target.val_size: 1.5 is neither a count"),
        ({"target": {"val_size": -1}}, "grid[0].target.val_size: -1 is below 0"),
        ({"target": {"val_size": 0.1}, "train": {"probe": {"eps": [3]}}}, "grid[0].train.probe.eps: epsilon 3"),
        ({"target": {"val_size": 0.1}, "train": {"probe": {"norm": "l2"}}}, "grid[0].train.probe.norm: 'l2' is not"),
        ({"target": {"val_size": 0.1}, "train": {"probe": {"stepz": 2}}}, "grid[0].train.probe.stepz: unknown key"),
        ({"target": {"val_size": 0.1}, "train": {"select": "best"}}, "grid[0].train.select: unknown value 'best'"),
        ({"train": {"select": "best_robust"}}, "grid[0].train.select: 'best_robust' needs a validation split"),
        ({"train": {"probe": {"steps": 2}}}, "grid[0].train.probe: needs a validation split"),
        (
            {"target": {"val_size": 0.1}, "train": {"select": "best_clean", "probe": {"enabled": False}}},
            "grid[0].train.select: 'best_clean' needs the per-epoch validation",
        ),
    ],
)
def test_validation_and_select_refusals_name_the_key_and_the_fix(sections: dict, needle: str) -> None:
    with pytest.raises(StudyError) as exc:
        parse_study(tiny_study(**sections), "s.toml")
    lines = str(exc.value).splitlines()
    assert any(line.startswith(f"s.toml: {needle}") and "; " in line for line in lines), lines


@pytest.mark.parametrize(
    "sections",
    [
        {"target": {"val_size": 0.01}},  # 2 of 200 images: a class has no validation image (found loading data)
        {"target": {"val_size": 0.1}, "train": {"select": "best"}},
        {"target": {"val_size": 0.1}, "train": {"probe": {"eps": [1.5]}}},
    ],
    ids=["fraction-leaves-a-class-empty", "select-word", "probe-eps"],
)
def test_validation_bad_input_exits_2_with_one_line_and_stores_nothing(
    sections: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "s.toml"
    f.write_text(tiny_study(**sections))
    db = tmp_path / "v.db"
    monkeypatch.setattr(sys, "argv", ["rttui", "run", str(f), "--db", str(db), "-q"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err.splitlines()
    assert exc.value.code == 2
    assert len(err) == 1 and err[0].startswith("rttui: error: "), err
    assert "val_size" in err[0] or "train." in err[0], err
    if db.exists():  # a data problem is found after the runner lock: the file may exist, with no row in it
        con = sqlite3.connect(db)
        try:
            for table in ("studies", "sources", "runs", "epochs", "locks"):
                assert con.execute(f"select count(*) from {table}").fetchone() == (0,), table
        finally:
            con.close()
