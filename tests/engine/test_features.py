"""Feature extraction on cached features trains the same head as the plain loop, and only where it may."""

from __future__ import annotations

import pytest
import torch

from rttui.engine import features
from rttui.engine.data import load_task
from rttui.engine.models import create_model
from rttui.engine.strategies import apply_strategy, inner
from rttui.engine.train import fit

CFG = {"epochs": 3, "lr": 3e-3, "batch_size": 16}


def _setup(name: str, kwargs: dict, strategy: str = "feature_extraction"):
    torch.manual_seed(0)
    m = create_model({"name": name, "kwargs": kwargs}, 5, 16)
    return m, apply_strategy(m, {"name": strategy, "params": {}})


@pytest.mark.parametrize(("name", "kwargs"), [("test_resnet", {}), ("test_vit", {"patch_size": 4})])
def test_feature_extraction_cached_head_equals_plain_head(name: str, kwargs: dict) -> None:
    task = load_task({"dataset": "digits", "classes": [5, 6, 7, 8, 9], "train_size": 96, "test_size": 20}, 16)
    plain, st_plain = _setup(name, kwargs)
    h_plain = fit(plain, task.train, CFG, 0, st_plain)
    cached, st_cached = _setup(name, kwargs)
    h_cached, path = features.fit_auto(cached, task.train, CFG, 0, st_cached)
    assert path == features.CACHED
    for a, b in zip(
        inner(plain).get_classifier().parameters(), inner(cached).get_classifier().parameters(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    for a, b in zip(plain.state_dict().values(), cached.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)
    assert [round(r["loss"], 5) for r in h_plain] == [round(r["loss"], 5) for r in h_cached]
    assert not cached.training and all(p.grad is None for p in cached.parameters())


def test_feature_extraction_takes_the_plain_path_where_the_cache_would_change_the_answer() -> None:
    m, st = _setup("test_resnet", {})
    assert features.why_not_cached(m, st) is None
    assert "augmentation" in features.why_not_cached(m, st, batch_transform=lambda mod, x, y: x)
    full, st_full = _setup("test_resnet", {}, "full")
    assert features.why_not_cached(full, st_full) is not None
    drop, st_drop = _setup("test_resnet", {"drop_rate": 0.5})
    assert "dropout" in features.why_not_cached(drop, st_drop)
    task = load_task({"dataset": "digits", "classes": [5, 6, 7, 8, 9], "train_size": 32, "test_size": 20}, 16)
    _, path = features.fit_auto(full, task.train, {**CFG, "epochs": 1}, 0, st_full)
    assert path == features.PLAIN
