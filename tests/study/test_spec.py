from __future__ import annotations

from pathlib import Path

import pytest

from rttui.errors import StudyError
from rttui.study import check_models, load_study, make_plan, parse_study


def _err(text: str) -> str:
    with pytest.raises(StudyError) as e:
        parse_study(text, "s.toml")
    return str(e.value)


def test_tiny_study_parses(tiny_study_text: str) -> None:
    s = parse_study(tiny_study_text)
    assert s.name == "tiny"
    assert s.seeds == (0,)
    b = s.blocks[0]
    assert [m.name for m in b.models] == ["test_resnet"]
    assert [c.name for c in b.strategies] == ["full", "layer_freezing"]
    assert b.strategies[1].params == {"freeze": "half"}
    assert [a.name for a in b.attacks] == ["fgsm", "pgd"]
    assert b.attacks[1].params["steps"] == 3
    assert b.train["optimizer"] == "adam" and b.train["batch_size"] == 32  # paper defaults


def test_epsilon_outside_unit_range_names_file_key_and_fix(tiny_study_text: str) -> None:
    msg = _err(tiny_study_text.replace("[0.0, 0.03, 0.1]", "[0.03, 8]"))
    assert msg.startswith("s.toml: grid[0].eval.epsilons: epsilon 8 is outside [0, 1]")
    assert "8/255" in msg and "pixel units" in msg
    assert len(msg.splitlines()) == 1


def test_negative_epsilon_rejected(tiny_study_text: str) -> None:
    assert "outside [0, 1]" in _err(tiny_study_text.replace("[0.0, 0.03, 0.1]", "[-0.01]"))


def test_unknown_strategy_suggests_close_name(tiny_study_text: str) -> None:
    msg = _err(tiny_study_text.replace('"layer_freezing"]', '"layer_freezng"]'))
    assert "grid[0].strategies[1]: unknown name 'layer_freezng'" in msg
    assert "did you mean 'layer_freezing'" in msg


def test_unknown_key_and_section(tiny_study_text: str) -> None:
    msg = _err(tiny_study_text.replace("[train]\nlr", "[train]\nlearning_rate = 1\nlr") + "\n[bogus]\n")
    assert "grid[0].train.learning_rate: unknown key" in msg
    assert "bogus: unknown section" in msg
    assert len(msg.splitlines()) == 2


def test_wrong_type_and_bad_toml(tiny_study_text: str) -> None:
    assert "expected int" in _err(tiny_study_text.replace("epochs = 1", 'epochs = "one"'))
    assert "not valid TOML" in _err("[study\nname=1")


def test_missing_grid_and_name() -> None:
    msg = _err("[study]\nseeds = [0]\n")
    assert "study.name" in msg and "grid: missing [[grid]] blocks" in msg


def test_unknown_model_suggests_timm_names(tiny_study_text: str) -> None:
    s = parse_study(tiny_study_text.replace('"test_resnet"', '"resnet5O"'), "s.toml")
    with pytest.raises(StudyError) as e:
        check_models(s)
    assert "unknown timm model 'resnet5O'" in str(e.value)
    assert "did you mean" in str(e.value) and "resnet50" in str(e.value)


def test_identity_independent_of_path_spelling(tmp_path: Path, tiny_study_text: str) -> None:
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "tiny.toml"
    f.write_text(tiny_study_text)
    p1 = make_plan(load_study(f))
    p2 = make_plan(load_study(tmp_path / "a" / ".." / "a" / "tiny.toml"))
    assert p1.study.name == p2.study.name == "tiny"
    assert [r.id for r in p1.runs] == [r.id for r in p2.runs]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no such study file"):
        load_study(tmp_path / "nope.toml")


def test_shipped_studies_validate() -> None:
    root = Path(__file__).resolve().parents[2] / "studies"
    files = sorted(root.glob("*.toml"))
    assert files, "studies/ holds no study"
    for f in files:
        s = load_study(f)
        check_models(s)
        assert make_plan(s).runs


def test_paper_table2_plans_without_data_robust_checkpoints_stand_in_for_source_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from rttui.engine.models import weights_path
    from rttui.runner.tasks import source_needs_data, source_weights

    s = load_study(Path(__file__).resolve().parents[2] / "studies" / "paper-table2.toml")
    plan = make_plan(s)
    assert len(plan.runs) == 36  # 4 techniques x 3 datasets x 3 seeds, all on layer freezing
    assert {r.config["strategy"]["name"] for r in plan.runs} == {"layer_freezing"}
    robust = [sp.config for sp in plan.sources.values() if (sp.config["adversarial"] or {}).get("checkpoint")]
    trained = [sp.config for sp in plan.sources.values() if source_needs_data(sp.config)]
    assert {c["model"]["name"] for c in robust} == {"resnet50", "vit_base_patch16_224"} and len(robust) == 6
    assert not any(source_needs_data(c) for c in robust)  # the checkpoint is the source: no ImageNet needed
    assert {c["model"]["name"] for c in trained} == {"densenet121"} and len(trained) == 3
    assert all(c["data"]["dataset"] == "imagenet_subset" and c["adversarial"]["eps"] == 0.0157 for c in trained)
    # $RTTUI_DATA in a checkpoint path resolves as for datasets (./data when unset).
    spec = source_weights(robust[0])["checkpoint"]
    monkeypatch.delenv("RTTUI_DATA", raising=False)
    assert weights_path(spec) == Path("data/robust") / Path(spec).name
    monkeypatch.setenv("RTTUI_DATA", str(tmp_path))
    assert weights_path(spec) == tmp_path / "robust" / Path(spec).name
