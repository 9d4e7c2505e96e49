"""The Builder's form <-> study mapping, without an app: what the widgets show for a study, and what they hold
written back onto it (keys the form does not show survive)."""

from __future__ import annotations

import copy
import tomllib

import pytest

from rttui import api
from rttui.tui.study_form import TEMPLATE, form_from_study, parse_value, show_value, study_from_form
from rttui.tui.widgets.model_search import rank_matches

CATALOG = api.catalog()

STUDY = """
[study]
name = "s"
description = "kept: the form has no field for it"
seeds = [0, 1]

[source]
dataset = "digits"
classes = [0, 1, 2, 3, 4]

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]

[eval]
epsilons = [0.01, 0.03]

[attacks.fgsm]
[attacks.pgd]
steps = 5
[attacks.deepfool]

[strategies.layer_freezing]
freeze = 2

[[grid]]
models = [{name = "test_vit2", patch_size = 8}, "test_resnet"]
strategies = ["full", {name = "layer_freezing", freeze = 1}]
attacks = ["fgsm", "pgd"]

[[grid]]
models = ["test_resnet"]
strategies = ["full"]
attacks = ["deepfool"]
"""


def test_values_read_back_as_written() -> None:
    for text, kind, value in (("3", "scalar", 3), ("0.1", "scalar", 0.1), ("true", "scalar", True)):
        assert parse_value(text, kind) == value and show_value(value) == text
    assert parse_value("half", "scalar") == "half"
    assert parse_value("0, 1, 2", "list") == [0, 1, 2] and show_value([0, 1, 2]) == "0, 1, 2"
    assert parse_value("  ", "list") is None and show_value(None) == ""
    assert parse_value("0.5", "str") == "0.5"  # a name stays text


@pytest.mark.parametrize("raw", [TEMPLATE, tomllib.loads(STUDY)], ids=["template", "study"])
def test_an_untouched_form_gives_the_study_back(raw: dict) -> None:
    before = copy.deepcopy(raw)
    form = form_from_study(raw, CATALOG)
    # A section the form has fields for but the study lacks is not added (not even empty).
    assert study_from_form(raw, form, CATALOG) == before
    assert raw == before  # the input is never changed


def test_what_the_form_shows() -> None:
    form = form_from_study(tomllib.loads(STUDY), CATALOG)
    assert form.fields["f-name"] == "s" and form.fields["f-seeds"] == "0, 1" and form.fields["f-eps"] == "0.01, 0.03"
    assert form.fields["f-train-lr"] == ""  # unset: the default applies
    assert form.models == "test_vit2, test_resnet"
    assert form.selected == {
        "strategies": ["full", "layer_freezing"],
        "techniques": ["none"],
        "attacks": ["fgsm", "pgd"],
    }
    assert form.params["p-attacks-pgd-steps"] == "5" and form.params["p-strategies-layer_freezing-freeze"] == "2"


def test_edits_change_only_what_they_touch() -> None:
    raw = tomllib.loads(STUDY)
    form = form_from_study(raw, CATALOG)
    form.fields["f-seeds"] = "0, 1, 2"
    form.fields["f-tgt-test"] = "100"
    form.fields["f-eps"] = ""  # cleared: the key goes, the default applies
    form.params["p-attacks-pgd-steps"] = "7"
    form.selected["attacks"] = ["pgd"]  # fgsm unticked: its table goes (no other block uses it)
    form.selected["strategies"] = ["layer_freezing"]
    form.models = "test_vit2, resnet18"
    out = study_from_form(raw, form, CATALOG)
    assert out["study"] == {**raw["study"], "seeds": [0, 1, 2]}
    assert out["target"]["test_size"] == 100 and "epsilons" not in out["eval"]
    assert out["attacks"] == {"pgd": {"steps": 7}, "deepfool": {}}  # deepfool stays: grid[1] uses it
    block = out["grid"][0]
    assert block["attacks"] == ["pgd"]
    assert block["strategies"] == [{"name": "layer_freezing", "freeze": 1}]  # its inline table is kept
    assert block["models"] == [{"name": "test_vit2", "patch_size": 8}, "resnet18"]
    assert out["grid"][1] == raw["grid"][1]


def test_model_search_ranks_prefix_matches_first() -> None:
    names = ["vit_small", "resnet50", "test_resnet", "resnet18", "seresnet50"]
    assert rank_matches(names, "ResNet") == ["resnet18", "resnet50", "seresnet50", "test_resnet"]
    assert rank_matches(names, "resnet", limit=2) == ["resnet18", "resnet50"]
    assert rank_matches(names, "nothing") == []
