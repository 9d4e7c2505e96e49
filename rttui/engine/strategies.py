"""Fine-tuning strategies: which parameters train, and which modules stay frozen in eval mode.

Depth comes from timm's `group_matcher(coarse=True)`, so one mechanism freezes ResNet, DenseNet and ViT alike.
A module whose parameters are all frozen is kept in eval mode during training (its batch-norm statistics and
dropout are frozen too): "frozen" means the module computes exactly what it computed before fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from rttui.errors import StudyError


@dataclass
class StrategyState:
    """What a strategy decided; `train_mode` applies it every time the model enters training."""

    name: str
    frozen_groups: int = 0
    n_groups: int = 0
    trainable: list[str] = field(default_factory=list)
    frozen_modules: list[nn.Module] = field(default_factory=list)

    def train_mode(self, model: nn.Module) -> None:
        model.train()
        for m in self.frozen_modules:
            m.eval()

    def info(self) -> dict[str, Any]:
        return {
            "frozen_groups": self.frozen_groups,
            "n_groups": self.n_groups,
            "n_trainable": len(self.trainable),
        }


def inner(model: nn.Module) -> nn.Module:
    """The timm model inside the normalization wrapper."""
    return getattr(model, "model", model)


def head_names(model: nn.Module) -> set[str]:
    """Parameter names (relative to the timm model) of the classification head."""
    net = inner(model)
    head = net.get_classifier()
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in net.named_parameters() if id(p) in ids}


def depth_groups(model: nn.Module) -> list[list[str]]:
    """Backbone parameter names by depth group (input side first), head excluded, empty groups dropped."""
    import timm

    net = inner(model)
    groups = timm.models.group_parameters(net, net.group_matcher(coarse=True))
    heads = head_names(model)
    out = [[n for n in names if n not in heads] for _, names in sorted(groups.items())]
    return [g for g in out if g]


def _finish(model: nn.Module, name: str, trainable: set[str], frozen_groups: int, n_groups: int) -> StrategyState:
    net = inner(model)
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable)
    # Maximal subtrees with parameters, none trainable: kept in eval mode while training.
    frozen: list[nn.Module] = []

    def visit(mod: nn.Module) -> None:
        params = list(mod.parameters())
        if params and not any(p.requires_grad for p in params):
            frozen.append(mod)
            return
        for child in mod.children():
            visit(child)

    for child in net.children():
        visit(child)
    return StrategyState(name, frozen_groups, n_groups, sorted(trainable), frozen)


def full(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    names = {n for n, _ in inner(model).named_parameters()}
    return _finish(model, "full", names, 0, len(depth_groups(model)))


def feature_extraction(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    n = len(depth_groups(model))
    return _finish(model, "feature_extraction", head_names(model), n, n)


def resolve_freeze(freeze: Any, n_groups: int) -> int:
    """Turn the `freeze` parameter into a number of groups (input side first).

    "auto" is not resolved here: it needs the layer analysis of the model on target data, which the runner
    computes before fine-tuning (`rttui.engine.layers.resolve_auto`) and passes on as a number.
    """
    if freeze == "half":
        return n_groups // 2
    if freeze == "all":
        return n_groups
    if freeze == "auto":
        raise StudyError(
            "strategies.layer_freezing.freeze: 'auto' needs the layer analysis on target data; "
            "resolve it with rttui.engine.layers.resolve_auto (rttui run does) or give a number"
        )
    if isinstance(freeze, bool) or not isinstance(freeze, int | float):
        raise StudyError(
            f"strategies.layer_freezing.freeze: unknown value {freeze!r}; use an int, a fraction, 'half', 'all' "
            "or 'auto'"
        )
    if isinstance(freeze, float) and not isinstance(freeze, bool) and 0 < freeze < 1:
        return round(freeze * n_groups)
    k = int(freeze)
    if k != freeze or not 0 <= k <= n_groups:
        raise StudyError(
            f"strategies.layer_freezing.freeze: {freeze} groups, but this model has {n_groups}; "
            f"use 0..{n_groups} or a fraction"
        )
    return k


def layer_freezing(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    groups = depth_groups(model)
    k = resolve_freeze(params.get("freeze", "half"), len(groups))
    frozen = {n for g in groups[:k] for n in g}
    names = {n for n, _ in inner(model).named_parameters()} - frozen
    return _finish(model, "layer_freezing", names, k, len(groups))


Strategy = Callable[[nn.Module, dict[str, Any]], StrategyState]
REGISTRY: dict[str, Strategy] = {
    "full": full,
    "feature_extraction": feature_extraction,
    "layer_freezing": layer_freezing,
}


def apply_strategy(model: nn.Module, strategy: dict[str, Any]) -> StrategyState:
    """Set requires_grad per the strategy and return the state that training needs."""
    fn = REGISTRY.get(strategy["name"])
    if fn is None:
        raise StudyError(f"strategy {strategy['name']!r} is not available; choose one of {', '.join(REGISTRY)}")
    return fn(model, strategy.get("params", {}))
