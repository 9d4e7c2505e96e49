"""Robustness techniques: batch-norm freezing, adversarial augmentation and adversarial pretraining."""

from __future__ import annotations

import pytest
import torch

from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy, depth_groups, head_names, inner
from rttui.engine.techniques import apply_technique, batchnorm_layers
from rttui.engine.train import fit
from tests.engine.test_strategies import MODELS, _changed, _data, _snapshot


def _model(name: str):
    torch.manual_seed(0)
    return create_model({"name": name, "kwargs": MODELS[name]}, 5, 32)


def _bn_state(m) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in inner(m).state_dict().items()
        if any(k.startswith(n + ".") for n, _ in batchnorm_layers(m))
    }


@pytest.mark.parametrize("name", ["test_resnet", "densenet121"])
@pytest.mark.parametrize("strategy", ["full", "gradual_unfreezing"])
def test_bn_freeze_keeps_running_stats_and_affine_fixed(name: str, strategy: str) -> None:
    m = _model(name)
    st = apply_strategy(m, {"name": strategy, "params": {}})
    tech = apply_technique(m, st, {"name": "bn_freeze", "params": {}}, 0)
    assert not tech.warnings and tech.info["n_bn_frozen"] > 0
    bn_before = _bn_state(m)
    assert any("running_mean" in k for k in bn_before)
    before = _snapshot(m)
    fit(m, _data(), {"epochs": 3, "lr": 1e-2, "batch_size": 16}, 0, st)
    after = _bn_state(m)
    assert all(torch.equal(after[k], v) for k, v in bn_before.items())  # stats, counters and affine alike
    changed = _changed(m, before)
    assert changed and not any(n.rsplit(".", 1)[0] in dict(batchnorm_layers(m)) for n in changed)


def test_bn_freeze_changes_stats_only_with_the_technique_off() -> None:
    """The control: without bn_freeze the same training moves the running statistics."""
    m = _model("test_resnet")
    st = apply_strategy(m, {"name": "full", "params": {}})
    bn_before = _bn_state(m)
    fit(m, _data(), {"epochs": 1, "lr": 1e-2, "batch_size": 16}, 0, st)
    assert any(not torch.equal(_bn_state(m)[k], v) for k, v in bn_before.items())


def test_bn_freeze_on_vit_is_a_noop_with_a_warning() -> None:
    m = _model("test_vit")
    st = apply_strategy(m, {"name": "full", "params": {}})
    n_before = len(st.trainable)
    tech = apply_technique(m, st, {"name": "bn_freeze", "params": {}}, 0)
    assert tech.warnings and "no batch-norm" in tech.warnings[0]
    assert len({n for n, p in inner(m).named_parameters() if p.requires_grad}) == n_before


@pytest.mark.parametrize("attack", ["pgd", "fgsm"])
def test_adv_augmentation_replaces_a_fraction_within_eps(attack: str) -> None:
    m = _model("test_resnet")
    st = apply_strategy(m, {"name": "layer_freezing", "params": {"freeze": 2}})
    p = {"fraction": 0.25, "attack": attack, "eps": 0.05, "steps": 3, "rel_step_size": 0.5, "random_start": True}
    tech = apply_technique(m, st, {"name": "adv_augmentation", "params": p}, 0)
    st.train_mode(m)
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 5, (16,))
    out = tech.batch_transform(m, x, y)
    moved = (out - x).flatten(1).abs().amax(1)
    assert int((moved > 0).sum()) == 4  # a quarter of the batch, the rest untouched
    assert float(moved.max()) <= 0.05 + 1e-6 and out.min() >= 0 and out.max() <= 1
    # The model is back in the strategy's train mode: frozen groups in eval, the rest training.
    assert m.training and not inner(m).bn1.training
    assert all(p.grad is None for p in m.parameters())


def test_adv_augmentation_training_changes_the_model_differently() -> None:
    def train(tech_name: str, params: dict) -> dict[str, torch.Tensor]:
        m = _model("test_resnet")
        st = apply_strategy(m, {"name": "layer_freezing", "params": {"freeze": 2}})
        tech = apply_technique(m, st, {"name": tech_name, "params": params}, 0)
        frozen = {n for g in depth_groups(m)[:2] for n in g}
        before = _snapshot(m)
        fit(m, _data(), {"epochs": 1, "lr": 1e-2, "batch_size": 16}, 0, st, batch_transform=tech.batch_transform)
        assert not _changed(m, before) & frozen
        return _snapshot(m)

    plain = train("none", {})
    aug = train("adv_augmentation", {"fraction": 0.5, "attack": "fgsm", "eps": 0.1})
    assert any(not torch.equal(plain[n], aug[n]) for n in head_names(_model("test_resnet")))
