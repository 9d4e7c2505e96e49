"""Smoke scale as a pure transformation of a study: same paths and names, less work, a study of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.errors import StudyError
from rttui.study import load_study, make_plan, parse_study
from rttui.study.files import study_toml
from rttui.study.smoke import SmokeScale, block_study, smoke_study, with_blocks

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.parametrize("name", ["paper-table1", "paper-table2", "paper-mini", "quickstart", "freeze-depth"])
def test_every_block_keeps_its_paths_names_and_shape_and_only_the_work_shrinks(name: str) -> None:
    real = load_study(STUDIES / f"{name}.toml")
    smoke = smoke_study(real)
    assert smoke.seeds == real.seeds[:1]
    assert [b.name for b in smoke.blocks] == [b.name for b in real.blocks]
    for r, s in zip(real.blocks, smoke.blocks, strict=True):
        # What would break a real run stays as it was: data, roots, classes, image size, models, checkpoints.
        for key in ("dataset", "root", "classes", "image_size", "split_seed", "train_per_class", "no_finding"):
            assert s.target[key] == r.target[key], key
        for key in ("dataset", "root", "classes", "checkpoint", "pretrained", "mean", "std"):
            assert s.source[key] == r.source[key], key
        assert s.models == r.models and s.strategies == r.strategies
        assert [t.name for t in s.techniques] == [t.name for t in r.techniques]
        assert [t.params.get("checkpoint") for t in s.techniques] == [t.params.get("checkpoint") for t in r.techniques]
        assert [a.name for a in s.attacks] == [a.name for a in r.attacks]
        # The work: <= 1 epoch, two training batches and one test batch at the study's batch sizes, two epsilons.
        assert s.train["epochs"] == min(r.train["epochs"], 1) and s.source["epochs"] == min(r.source["epochs"], 1)
        assert s.train["batch_size"] == r.train["batch_size"] and s.eval["batch_size"] == r.eval["batch_size"]
        # Two training batches and one test batch; never fewer images than classes where the split is
        # stratified (digits: scikit-learn needs one of each), while a 100-class ImageNet subset keeps one batch.
        n_cls = _floor(r.target)
        assert s.target["train_size"] == max(min(r.target["train_size"] or 10**9, 2 * r.train["batch_size"]), n_cls)
        assert s.target["test_size"] == max(min(r.target["test_size"], r.eval["batch_size"]), n_cls)
        # The audit runs, on at most two images per eps, its APGD-CE iterations cut like the attacks' steps.
        audit = s.eval["audit"]
        assert audit["max_samples"] == 2 and audit["min_iters"] == 2 and audit["apgd_iters_factor"] == 1
        eps = [e for e in r.eval["epsilons"] if e > 0]
        assert s.eval["epsilons"] == sorted({eps[0], eps[-1]})
        assert s.eval["labels"] == "predicted"
        for a_real, a_smoke in zip(r.attacks, s.attacks, strict=True):
            for key, cap in (("steps", 2), ("restarts", 1), ("candidates", 3)):
                if key in a_real.params:
                    assert a_smoke.params[key] == min(a_real.params[key], cap)
        for t_real, t_smoke in zip(r.techniques, s.techniques, strict=True):
            if "steps" in t_real.params:
                assert t_smoke.params["steps"] == min(t_real.params["steps"], 2)
    assert real == load_study(STUDIES / f"{name}.toml")  # the input is left as it was
    real_size, smoke_size = make_plan(real).size(), make_plan(smoke).size()
    assert smoke_size["train_epochs"] <= real_size["train_epochs"]
    assert smoke_size["attack_steps_per_image"] < real_size["attack_steps_per_image"]


def test_smoke_ids_never_collide_with_the_real_studys() -> None:
    real = load_study(STUDIES / "paper-mini.toml")
    a, b = make_plan(real), make_plan(smoke_study(real))
    assert {r.id for r in a.runs}.isdisjoint({r.id for r in b.runs})
    assert set(a.sources).isdisjoint(b.sources)


def test_the_smoke_study_is_a_study_file_of_its_own() -> None:
    """Its raw TOML parses back into exactly the same plan (so it is stored, shown and resumed like any study)."""
    smoke = smoke_study(load_study(STUDIES / "paper-table2.toml"), SmokeScale(batch_cap=2, random_weights=True))
    again = parse_study(study_toml(smoke.raw))
    assert [r.id for r in make_plan(again).runs] == [r.id for r in make_plan(smoke).runs]
    assert make_plan(again).sources.keys() == make_plan(smoke).sources.keys()
    assert smoke.name == "paper-table2" and "smoke run" in smoke.description


def _classes(section: dict) -> int:
    """One image per class: the study's classes, else the 10 of digits / CIFAR-10."""
    cls = section.get("classes")
    return cls if isinstance(cls, int) else len(cls) if isinstance(cls, list) else 10


def _floor(section: dict) -> int:
    """The fewest images a smoke split holds: one per class where the split is stratified (digits), else 1."""
    return _classes(section) if section["dataset"] == "digits" else 1


def test_batch_cap_and_random_weights() -> None:
    real = load_study(STUDIES / "paper-table2.toml")
    smoke = smoke_study(real, SmokeScale(batch_cap=2, random_weights=True))
    for b in smoke.blocks:
        assert b.train["batch_size"] == 2 and b.eval["batch_size"] == 2 and b.source["batch_size"] == 2
        n_cls = _floor(b.target)
        assert b.target["train_size"] == max(4, n_cls) and b.target["test_size"] == max(2, n_cls)
        assert b.source["pretrained"] is False
    plan = make_plan(smoke)
    assert all(sp.config["pretrained"] is False for sp in plan.sources.values())
    # A robust checkpoint is still the source's weights: random weights replace only timm's download.
    weights = [sp.config.get("adversarial", {}) or {} for sp in plan.sources.values()]
    assert sum(bool(w.get("checkpoint")) for w in weights) == 2
    # The DenseNet block trains its own adversarial source: on its capped source data, 1 epoch, PGD steps cut.
    adv = smoke.blocks[3]
    assert adv.source["dataset"] == "imagenet_subset" and adv.source["epochs"] == 1
    assert adv.source["train_size"] == max(4, _floor(adv.source)) and adv.techniques[0].params["steps"] == 2


def test_blocks_can_be_taken_apart() -> None:
    smoke = smoke_study(load_study(STUDIES / "paper-table1.toml"))
    one = block_study(smoke, 1)
    assert [b.name for b in one.blocks] == ["imagenet100-vit"]
    assert {r.id for r in make_plan(one).runs} <= {r.id for r in make_plan(smoke).runs}
    two = with_blocks(smoke, [0, 2])
    assert [b.name for b in two.blocks] == ["cifar10-resnet50", "chestxray-densenet121"]


def test_an_epsilon_grid_with_zero_keeps_positive_epsilons(tiny_study_text: str) -> None:
    smoke = smoke_study(parse_study(tiny_study_text))  # grid [0.0, 0.03, 0.1]
    assert smoke.blocks[0].eval["epsilons"] == [0.03, 0.1]
    single = smoke_study(parse_study(tiny_study_text.replace("[0.0, 0.03, 0.1]", "[0.05]")))
    assert single.blocks[0].eval["epsilons"] == [0.05]


@pytest.mark.parametrize(
    ("dataset", "smoke", "refused"),
    [
        ("imagefolder", False, True),  # a real study: a split below its class count is a typo
        ("imagefolder", True, False),  # a smoke study of a dataset that draws classes in turn: one batch is fine
        ("digits", True, True),  # digits' split is stratified: one image per class even at smoke scale
    ],
)
def test_small_splits_only_in_a_smoke_study_of_an_unstratified_dataset(
    dataset: str, smoke: bool, refused: bool
) -> None:
    text = f"""
[study]
name = "s"
seeds = [0]
{"smoke = true" if smoke else ""}
[target]
dataset = "{dataset}"
classes = [0, 1, 2, 3, 4]
test_size = 2
[[grid]]
models = ["test_resnet"]
strategies = ["full"]
"""
    if refused:
        with pytest.raises(StudyError, match=r"test_size: 2 is smaller than the 5 classes"):
            parse_study(text)
    else:
        assert parse_study(text).blocks[0].target["test_size"] == 2


def test_the_smoke_flag_is_a_boolean() -> None:
    with pytest.raises(StudyError, match=r"study\.smoke: expected true or false"):
        parse_study('[study]\nname = "s"\nseeds = [0]\nsmoke = "yes"\n[[grid]]\nmodels = ["test_resnet"]\n')
