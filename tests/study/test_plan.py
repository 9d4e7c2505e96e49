from __future__ import annotations

from rttui.study import config_hash, make_plan, parse_study


def test_run_ids_are_stable_and_config_sensitive(tiny_study_text: str) -> None:
    a = make_plan(parse_study(tiny_study_text))
    b = make_plan(parse_study(tiny_study_text))
    assert [r.id for r in a.runs] == [r.id for r in b.runs]
    assert len({r.id for r in a.runs}) == len(a.runs) == 2
    c = make_plan(parse_study(tiny_study_text.replace("[train]\nlr = 2e-3", "[train]\nlr = 3e-3")))
    assert {r.id for r in a.runs}.isdisjoint({r.id for r in c.runs})
    # The source does not depend on the fine-tuning config: it is shared.
    assert {r.source_id for r in a.runs} == {r.source_id for r in c.runs}


def test_study_name_does_not_change_run_ids(tiny_study_text: str) -> None:
    a = make_plan(parse_study(tiny_study_text))
    b = make_plan(parse_study(tiny_study_text.replace('name = "tiny"', 'name = "other"')))
    assert [r.id for r in a.runs] == [r.id for r in b.runs]


def test_sources_shared_across_strategies_and_split_by_seed(tiny_study_text: str) -> None:
    p = make_plan(parse_study(tiny_study_text.replace("seeds = [0]", "seeds = [0, 1, 2]")))
    assert len(p.runs) == 6
    assert len(p.sources) == 3  # one per seed, shared by both strategies


def test_adding_an_attack_keeps_run_ids(tiny_study_text: str) -> None:
    a = make_plan(parse_study(tiny_study_text.replace("[attacks.pgd]\nsteps = 3\n", "")))
    b = make_plan(parse_study(tiny_study_text))
    assert [r.id for r in a.runs] == [r.id for r in b.runs]
    assert [len(r.evals) for r in a.runs] == [1, 1]
    assert [len(r.evals) for r in b.runs] == [2, 2]


def test_blocks_union_not_cross_product(tiny_study_text: str) -> None:
    text = tiny_study_text + '\n[[grid]]\nmodels = ["test_vit"]\nstrategies = ["full"]\n'
    p = make_plan(parse_study(text))
    cells = sorted((r.config["model"]["name"], r.config["strategy"]["name"]) for r in p.runs)
    assert cells == [("test_resnet", "full"), ("test_resnet", "layer_freezing"), ("test_vit", "full")]


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_run_ids_of_existing_studies_stay_the_same(tiny_study_text: str) -> None:
    """Ids computed before keys were added to [source] and [models.NAME] (RobustBench's kind, threat_model,
    model_dir): a key added later changes ids only where a study sets it, so stored databases stay valid."""
    p = make_plan(parse_study(tiny_study_text))
    assert sorted(r.id for r in p.runs) == ["30c6c195e004", "40d0c08d2cb1"]
    assert sorted(p.sources) == ["3cfe2a7e5027"]
