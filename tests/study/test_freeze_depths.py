"""Freeze-depth sweeps: `freeze_depths` is shorthand for layer_freezing runs, with the long form's run ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from rttui.errors import StudyError
from rttui.study import load_study, make_plan, parse_study

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[study]
name = "sweep"
seeds = [0, 1]

[target]
classes = [5, 6, 7, 8, 9]
image_size = 16

[strategies.layer_freezing]
auto_share = 0.2

[[grid]]
models = ["test_resnet", "test_vit"]
"""


def test_freeze_depths_expand_to_layer_freezing_runs_with_the_long_forms_ids() -> None:
    short = parse_study(BASE + 'freeze_depths = [0, 2, "all", "auto"]\nstrategies = ["full"]\n')
    long = parse_study(
        BASE + 'strategies = ["full", {name = "layer_freezing", freeze = 0}, {name = "layer_freezing", freeze = 2},'
        ' {name = "layer_freezing", freeze = "all"}, {name = "layer_freezing", freeze = "auto"}]\n'
    )
    assert [c.params.get("freeze") for c in short.blocks[0].strategies] == [None, 0, 2, "all", "auto"]
    # auto_share only rides along where it matters: it must not split identical fixed-depth runs.
    assert short.blocks[0].strategies[-1].params == {"freeze": "auto", "auto_share": 0.2}
    assert short.blocks[0].strategies[2].params == {"freeze": 2}
    ids = [r.id for r in make_plan(short).runs]
    assert ids == [r.id for r in make_plan(long).runs]
    assert len(ids) == 2 * 5 * 2


@pytest.mark.parametrize(
    "depths,msg",
    [
        ("[]", "non-empty list"),
        ("[1, -1]", "-1 is not a freeze depth"),
        ('["most"]', "'most' is not a freeze depth"),
        ("[1, 1]", "repeats a depth"),
        ("[true]", "True is not a freeze depth"),
    ],
)
def test_freeze_depths_bad_values_are_one_line_each(depths: str, msg: str) -> None:
    with pytest.raises(StudyError, match=msg):
        parse_study(BASE + f"freeze_depths = {depths}\n")


def test_existing_studies_keep_their_run_ids() -> None:
    # Ids of studies/quickstart.toml as the foundation computed them: adding auto_share (left out of the config
    # at its default) and freeze_depths must not change the id of any run that was already stored.
    plan = make_plan(load_study(ROOT / "studies" / "quickstart.toml"))
    got = {r.label: r.id for r in plan.runs if r.config["seed"] == 0}
    assert got == {
        "digits/test_resnet/full/none/s0": "6d9a085cf624",
        "digits/test_resnet/feature_extraction/none/s0": "e60804f9cb14",
        "digits/test_resnet/layer_freezing/none/s0": "6330a1ef1f10",
        "digits/test_vit2/full/none/s0": "5280f42cb6b6",
        "digits/test_vit2/feature_extraction/none/s0": "d84407808469",
        "digits/test_vit2/layer_freezing/none/s0": "143cef9e4c25",
    }
