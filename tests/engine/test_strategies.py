"""Each strategy trains exactly the parameters it should, on a ResNet-, a DenseNet- and a ViT-like model."""

from __future__ import annotations

import pytest
import torch

from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy, depth_groups, head_names, inner, resolve_freeze
from rttui.errors import StudyError

MODELS = {
    "test_resnet": {},
    "test_vit": {"patch_size": 4},
    # A DenseNet of the real family, kept small: the same timm class and group matcher as densenet121.
    "densenet121": {"growth_rate": 8, "block_config": (1, 1, 1, 1)},
}


def _model(name: str):
    torch.manual_seed(0)
    return create_model({"name": name, "kwargs": MODELS[name]}, 5, 32)


def _trainable(m) -> set[str]:
    return {n for n, p in inner(m).named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", list(MODELS))
def test_full_trains_everything(name: str) -> None:
    m = _model(name)
    st = apply_strategy(m, {"name": "full", "params": {}})
    assert _trainable(m) == {n for n, _ in inner(m).named_parameters()}
    assert st.frozen_modules == []


@pytest.mark.parametrize("name", list(MODELS))
def test_feature_extraction_trains_only_the_head(name: str) -> None:
    m = _model(name)
    st = apply_strategy(m, {"name": "feature_extraction", "params": {}})
    heads = head_names(m)
    assert heads and _trainable(m) == heads
    st.train_mode(m)
    # The frozen backbone stays in eval mode (batch-norm statistics and dropout frozen).
    head_mod = inner(m).get_classifier()
    for mod in inner(m).modules():
        if (
            any(True for _ in mod.parameters(recurse=False))
            and mod is not head_mod
            and not any(p.requires_grad for p in mod.parameters())
        ):
            assert not mod.training


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_freezing_freezes_the_shallow_groups(name: str) -> None:
    m = _model(name)
    groups = depth_groups(m)
    assert len(groups) >= 4
    st = apply_strategy(m, {"name": "layer_freezing", "params": {"freeze": 2}})
    frozen = {n for g in groups[:2] for n in g}
    every = {n for n, _ in inner(m).named_parameters()}
    assert _trainable(m) == every - frozen
    assert head_names(m) <= _trainable(m)
    assert st.frozen_groups == 2 and st.n_groups == len(groups)


def test_layer_freezing_half_and_fraction() -> None:
    assert resolve_freeze("half", 6) == 3
    assert resolve_freeze(0.5, 7) == 4 or resolve_freeze(0.5, 7) == 3
    assert resolve_freeze(6, 6) == 6
    with pytest.raises(StudyError, match="this model has 6"):
        resolve_freeze(7, 6)


def test_layer_freezing_bn_stats_of_frozen_groups_do_not_move() -> None:
    from rttui.engine.data import Split
    from rttui.engine.train import fit

    m = _model("test_resnet")
    apply_strategy(m, {"name": "layer_freezing", "params": {"freeze": 2}})
    stem_bn = inner(m).bn1
    before = stem_bn.running_mean.clone()
    st = apply_strategy(m, {"name": "layer_freezing", "params": {"freeze": 2}})
    x, y = torch.rand(64, 3, 32, 32), torch.randint(0, 5, (64,))
    fit(m, Split(x, y), {"epochs": 1, "lr": 1e-3, "batch_size": 32}, 0, st)
    assert torch.equal(stem_bn.running_mean, before)
