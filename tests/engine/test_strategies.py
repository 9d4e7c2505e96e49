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


# --- strategies beyond the foundation: which parameters train, epoch by epoch -----------------------------


def _data(n: int = 32, size: int = 32):
    from rttui.engine.data import Split

    g = torch.Generator().manual_seed(1)
    return Split(torch.rand(n, 3, size, size, generator=g), torch.randint(0, 5, (n,), generator=g))


def _snapshot(m) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in inner(m).named_parameters()}


def _changed(m, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in inner(m).named_parameters() if not torch.equal(p.detach(), before[n])}


def _fit(m, st, epochs: int = 1, on_epoch=None, **cfg):
    from rttui.engine.train import fit

    return fit(m, _data(), {"epochs": epochs, "lr": 1e-2, "batch_size": 16, **cfg}, 0, st, on_epoch=on_epoch)


@pytest.mark.parametrize("name", list(MODELS))
def test_gradual_unfreezing_unfreezes_one_group_per_epoch_from_the_head(name: str) -> None:
    m = _model(name)
    groups = depth_groups(m)
    heads = head_names(m)
    st = apply_strategy(m, {"name": "gradual_unfreezing", "params": {"every": 1}})
    assert _trainable(m) == heads
    seen: list[set[str]] = []
    before = _snapshot(m)
    _fit(m, st, epochs=3, on_epoch=lambda rec: seen.append(_trainable(m)))
    # Epoch 1: head only; epoch 2: + deepest group; epoch 3: + the next one.
    expect = [heads, heads | set(groups[-1]), heads | set(groups[-1]) | set(groups[-2])]
    assert seen == expect
    changed = _changed(m, before)
    assert changed <= expect[-1]
    assert not changed & {n for g in groups[:-2] for n in g}  # never-unfrozen groups did not move
    assert changed & set(groups[-1]) and changed & heads
    assert st.info()["stages_reached"] == 3


def test_gradual_unfreezing_keeps_frozen_groups_and_bn_eval_mode() -> None:
    m = _model("test_resnet")
    groups = depth_groups(m)
    st = apply_strategy(m, {"name": "gradual_unfreezing", "params": {"every": 1, "keep_frozen": len(groups) - 1}})
    _fit(m, st, epochs=4)
    assert _trainable(m) == head_names(m) | set(groups[-1])
    st.begin_epoch(m, 4)
    assert not inner(m).bn1.training  # the stem is still frozen, its batch norm in eval mode


@pytest.mark.parametrize("name", list(MODELS))
def test_head_lr_gives_the_head_its_own_learning_rate(name: str) -> None:
    m = _model(name)
    st = apply_strategy(m, {"name": "full", "params": {"head_lr": 0.0}})
    groups = st.param_groups(m, {"lr": 1e-2})
    assert [g["lr"] for g in groups] == [1e-2, 0.0]
    before = _snapshot(m)
    _fit(m, st)
    changed = _changed(m, before)
    assert not changed & head_names(m) and changed  # head at lr 0 stays put, the backbone moves
    # [train] head_lr applies when the strategy sets none.
    st2 = apply_strategy(_model(name), {"name": "layer_freezing", "params": {"freeze": 1}})
    assert [g["lr"] for g in st2.param_groups(m, {"lr": 1e-3, "head_lr": 1e-1})] == [1e-3, 1e-1]


ADAPTER_MODELS = {**MODELS, "test_resnet": {"zero_init_last": False}}


def _adapter_model(name: str):
    torch.manual_seed(0)
    return create_model({"name": name, "kwargs": ADAPTER_MODELS[name]}, 5, 32)


@pytest.mark.parametrize("name", list(MODELS))
def test_adapter_trains_only_lora_and_head(name: str) -> None:
    m = _adapter_model(name)
    plain = {n for n, _ in inner(m).named_parameters()}
    st = apply_strategy(m, {"name": "adapter", "params": {"rank": 2}})
    lora = {n for n, _ in inner(m).named_parameters() if ".lora_" in n}
    assert lora and _trainable(m) == lora | head_names(m)
    if name == "test_vit":
        assert all(".attn.qkv." in n or ".attn.proj." in n for n in lora)
    # timm's depth groups survive the injection (peft did not prefix the names).
    assert len(depth_groups(m)) == st.n_groups >= 4
    before = _snapshot(m)
    _fit(m, st, epochs=2)
    changed = _changed(m, before)
    assert changed == lora | head_names(m)  # every adapter learns (B starts at zero, A follows)
    backbone = plain - head_names(m)
    assert not changed & {n.replace(".weight", ".base_layer.weight") for n in backbone}


@pytest.mark.parametrize("name", list(MODELS))
def test_freeze_adapter_adapts_only_the_frozen_part(name: str) -> None:
    m = _adapter_model(name)
    groups = depth_groups(m)
    st = apply_strategy(m, {"name": "freeze_adapter", "params": {"freeze": 2, "rank": 2}})
    groups_after = depth_groups(m)
    lora = {n for n, _ in inner(m).named_parameters() if ".lora_" in n}
    shallow = {n for g in groups_after[:2] for n in g}
    deep = {n for g in groups_after[2:] for n in g}
    assert lora and lora <= shallow  # adapters only where the backbone is frozen
    assert _trainable(m) == lora | deep | head_names(m)
    assert st.frozen_groups == 2 and len(groups_after) == len(groups)
    before = _snapshot(m)
    _fit(m, st)
    assert not _changed(m, before) & (shallow - lora)


def test_adapter_checkpoint_round_trip() -> None:
    from rttui.engine.models import load_checkpoint, save_checkpoint
    from rttui.engine.strategies import add_adapters

    cfg = {"name": "adapter", "params": {"rank": 2}}
    m = _adapter_model("test_vit")
    st = apply_strategy(m, cfg)
    _fit(m, st)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        want = m.eval()(x)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        sha = save_checkpoint(m, path)
        fresh = _adapter_model("test_vit")
        add_adapters(fresh, cfg)
        load_checkpoint(fresh, path, sha)
    with torch.no_grad():
        assert torch.allclose(fresh.eval()(x), want)


def test_adapter_bad_targets_regex_is_one_line_error() -> None:
    m = _adapter_model("test_resnet")
    with pytest.raises(StudyError, match="targets"):
        apply_strategy(m, {"name": "adapter", "params": {"targets": "nothing_matches"}})
