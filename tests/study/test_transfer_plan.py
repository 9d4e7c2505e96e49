"""The transfer attack in a study: its surrogate resolved to a unit of the plan, bad selectors refused in one
line before anything runs, and the ids of everything else left as they were."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rttui.errors import StudyError
from rttui.study import load_study, make_plan, parse_study
from tests.studies import tiny_study

SIBLING_FULL = {"name": "transfer", "surrogate": "sibling", "sibling": {"strategy": "full"}}


def _study(attacks: list, seeds: list[int] | None = None, strategies: list | None = None, **more: object) -> str:
    grid = [{"models": ["test_resnet"], "strategies": strategies or ["full", "layer_freezing"], "attacks": attacks}]
    return tiny_study(study={"seeds": seeds or [0, 1, 2]}, grid=grid, **more)


def _labels(plan) -> dict[str, str]:
    return {r.id: r.label for r in plan.runs}


def test_adding_a_transfer_attack_changes_no_run_or_other_evaluation_id() -> None:
    before = make_plan(parse_study(_study(["fgsm", "pgd"])))
    after = make_plan(parse_study(_study(["fgsm", "pgd", {"name": "transfer"}, SIBLING_FULL])))
    assert [r.id for r in after.runs] == [r.id for r in before.runs]
    assert sorted(after.sources) == sorted(before.sources)
    for rb, ra in zip(before.runs, after.runs, strict=True):
        assert [e.id for e in ra.evals[:2]] == [e.id for e in rb.evals]
        assert [e.attack for e in ra.evals[2:]] == ["transfer", "transfer"]
        assert all(e.surrogate is None for e in ra.evals[:2])


def test_transfer_surrogates_resolve_to_units_of_the_plan() -> None:
    other = {"name": "transfer", "surrogate": "sibling", "sibling": {"seed": "other"}}
    itself = {"name": "transfer", "surrogate": "sibling", "sibling": {}}
    plan = make_plan(parse_study(_study([{"name": "transfer"}, SIBLING_FULL, other, itself])))
    label = _labels(plan)
    for rp in plan.runs:
        src, full, oth, own = rp.evals
        assert src.surrogate == ("source", rp.source_id)
        kind, sib = full.surrogate
        assert kind == "run" and label[sib] == rp.label.replace("layer_freezing", "full")
        nxt = {0: 1, 1: 2, 2: 0}[rp.config["seed"]]  # "other": the next seed of [study] seeds, cyclically
        assert label[oth.surrogate[1]] == rp.label[:-1] + str(nxt)
        assert own.surrogate == ("run", rp.id)
        assert len({e.id for e in rp.evals}) == 4  # four distinct evaluations of one run


def test_transfer_label_says_which_surrogate() -> None:
    from rttui.engine.attacks.names import variant_label

    assert variant_label("transfer", {"surrogate": "source", "sibling": None}) == "transfer[source]"
    assert variant_label("transfer", {"surrogate": "sibling", "sibling": {"strategy": "full"}}) == (
        "transfer[sibling: strategy=full]"
    )
    assert variant_label("transfer", {"surrogate": "sibling", "sibling": {}}) == "transfer[sibling: self]"
    assert variant_label("pgd", {"steps": 10}) == "pgd"


@pytest.mark.parametrize(
    ("attack", "strategies", "target", "message"),
    [
        ({"sibling": {"strategy": "ful"}}, None, None, "matches no run of the study; strategy is one of full"),
        (
            {"sibling": {"strategy": "layer_freezing"}},
            ["full", {"name": "layer_freezing", "freeze": 1}, {"name": "layer_freezing", "freeze": 2}],
            None,
            "matches 2 runs (test_resnet/layer_freezing[freeze=1]/none/s0, test_resnet/layer_freezing[freeze=2]",
        ),
        ({"surrogate": "sibbling"}, None, None, "surrogate: unknown value 'sibbling'; did you mean 'sibling'?"),
        (
            {"surogate": "sibling", "sibling": {"strategy": "full"}},
            None,
            None,
            "unknown key; did you mean 'surrogate'?",
        ),
        ({"sibling": None}, None, None, 'needs a selector of the run to craft on; add sibling = { strategy = "full" }'),
        ({"sibling": {"seed": 7}}, None, None, "7 is not one of the study's seeds"),
        ({"sibling": {"stratgy": "full"}}, None, None, "sibling.stratgy: unknown axis"),
        ({"surrogate": "source", "sibling": {"seed": "other"}}, None, None, 'only read with surrogate = "sibling"'),
        ({"surrogate": "source", "random_start": False}, None, None, "keep random_start = true"),
        ({"sibling": {"strategy": "full"}}, None, {"image_size": 32}, "an input size of 16 (the target's is 32)"),
        ({"sibling": {"strategy": "full"}}, None, {"classes": [1, 2, 3]}, "fine-tuned with other classes"),
    ],
)
def test_bad_transfer_input_is_one_line_with_the_fix(attack, strategies, target, message) -> None:
    a = {"name": "transfer", **{k: v for k, v in attack.items() if v is not None}}
    if "surrogate" not in a and "surogate" not in a:
        a["surrogate"] = "sibling"
    if target is None:
        text = _study([a], seeds=[0], strategies=strategies)
    else:  # the sibling (full) in a block of its own, with another target task
        grid = [
            {"models": ["test_resnet"], "strategies": ["full"], "attacks": ["pgd"]},
            {"models": ["test_resnet"], "strategies": ["layer_freezing"], "attacks": [a], "target": target},
        ]
        text = tiny_study(grid=grid)
    with pytest.raises(StudyError) as exc:
        make_plan(parse_study(text, "s.toml"))
    assert message in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1


def test_a_bad_sibling_exits_2_before_anything_runs(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(_study([{"name": "transfer", "surrogate": "sibling", "sibling": {"strategy": "feature_extraction"}}]))
    with pytest.raises(StudyError):  # the same study through the file loader
        make_plan(load_study(f))
    db = tmp_path / "bad.db"
    r = subprocess.run(
        [sys.executable, "-c", "from rttui.cli import main; main()", "run", str(f), "--db", str(db), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "matches no run of the study" in lines[0] and "Traceback" not in r.stderr
    assert not db.exists() and not (tmp_path / "bad.artifacts").exists()
