"""Fine-tuning strategies: which parameters train, and which modules stay frozen in eval mode.

Depth comes from timm's `group_matcher(coarse=True)`, so one mechanism freezes ResNet, DenseNet and ViT alike.
A module whose parameters are all frozen is kept in eval mode during training (its batch-norm statistics and
dropout are frozen too): "frozen" means the module computes exactly what it computed before fine-tuning.

Strategies that change the architecture (LoRA adapters through peft) do it in `add_adapters`, which the code
that rebuilds a trained model calls too, so a checkpoint always finds the modules it was saved from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from rttui.errors import StudyError

ADAPTER_STRATEGIES = {"adapter", "freeze_adapter"}


@dataclass
class StrategyState:
    """What a strategy decided. `begin_epoch` re-applies it at the start of every training epoch.

    `schedule` holds (first epoch, trainable names) stages for strategies whose trainable set changes over
    training (gradual unfreezing); `pinned` names never train whatever the stage (a technique such as
    batch-norm freezing pins them) and `pinned_modules` always stay in eval mode.
    """

    name: str
    frozen_groups: int = 0
    n_groups: int = 0
    trainable: list[str] = field(default_factory=list)
    frozen_modules: list[nn.Module] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    schedule: list[tuple[int, list[str]]] = field(default_factory=list)
    pinned: set[str] = field(default_factory=set)
    pinned_modules: list[nn.Module] = field(default_factory=list)
    lr: float | None = None
    head_lr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stage: int = 0

    def train_mode(self, model: nn.Module) -> None:
        model.train()
        for m in self.frozen_modules:
            m.eval()
        for m in self.pinned_modules:
            m.eval()

    def begin_epoch(self, model: nn.Module, epoch: int) -> None:
        """The hook `fit` calls before each epoch (1-based): apply this epoch's stage, then enter train mode."""
        if self.schedule:
            stage = max(i for i, (start, _) in enumerate(self.schedule) if start <= epoch or i == 0)
            if stage != self.stage or epoch == 1:
                self.stage = stage
                self.apply(model, set(self.schedule[stage][1]))
        self.train_mode(model)

    def apply(self, model: nn.Module, trainable: set[str] | None = None) -> None:
        """Set requires_grad from `trainable` (default: the current set) minus the pinned names."""
        if trainable is not None:
            self.trainable = sorted(trainable)
        net = inner(model)
        allowed = set(self.trainable) - self.pinned
        for n, p in net.named_parameters():
            p.requires_grad_(n in allowed)
        self.frozen_modules = _frozen_subtrees(net)

    def pin(self, model: nn.Module, names: set[str], modules: list[nn.Module]) -> None:
        """Keep `names` from ever training and `modules` in eval mode (used by techniques)."""
        self.pinned |= names
        self.pinned_modules.extend(modules)
        self.apply(model)

    def pool(self) -> set[str]:
        """Every parameter name that trains at some epoch."""
        names = set(self.trainable)
        for _, stage in self.schedule:
            names |= set(stage)
        return names - self.pinned

    def param_groups(self, model: nn.Module, cfg: dict[str, Any]) -> list[dict[str, Any]]:
        """Optimizer groups: backbone (or adapters) at the strategy's lr, the head at its own lr.

        Parameters that unfreeze later are in the optimizer from the start; while frozen they get no gradient,
        so the optimizer leaves them alone.
        """
        base = float(self.lr if self.lr is not None else cfg["lr"])
        head_lr = self.head_lr if self.head_lr is not None else cfg.get("head_lr")
        head_lr = float(head_lr) if head_lr is not None else base
        pool, heads = self.pool(), set(self.head)
        params = dict(inner(model).named_parameters())
        body = [params[n] for n in sorted(pool - heads) if n in params]
        head = [params[n] for n in sorted(pool & heads) if n in params]
        return [g for g in ({"params": body, "lr": base}, {"params": head, "lr": head_lr}) if g["params"]]

    def info(self) -> dict[str, Any]:
        out = {
            "frozen_groups": self.frozen_groups,
            "n_groups": self.n_groups,
            "n_trainable": len(set(self.trainable) - self.pinned),
        }
        if self.schedule:
            out["frozen_groups"] = self.n_groups - self.stage
            out["stages_reached"] = self.stage + 1
            out["n_stages"] = len(self.schedule)
        return {**out, **self.extra}


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


def _frozen_subtrees(net: nn.Module) -> list[nn.Module]:
    """Maximal subtrees with parameters, none trainable: kept in eval mode while training."""
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
    return frozen


def _finish(
    model: nn.Module,
    name: str,
    trainable: set[str],
    frozen_groups: int,
    n_groups: int,
    params: dict[str, Any],
    **kw: Any,
) -> StrategyState:
    st = StrategyState(
        name,
        frozen_groups,
        n_groups,
        sorted(trainable),
        head=sorted(head_names(model)),
        lr=params.get("lr"),
        head_lr=params.get("head_lr"),
        **kw,
    )
    st.apply(model)
    return st


def full(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    names = {n for n, _ in inner(model).named_parameters()}
    return _finish(model, "full", names, 0, len(depth_groups(model)), params)


def feature_extraction(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    n = len(depth_groups(model))
    return _finish(model, "feature_extraction", head_names(model), n, n, params)


def resolve_freeze(freeze: Any, n_groups: int, key: str = "strategies.layer_freezing.freeze") -> int:
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
            f"{key}: 'auto' needs the layer analysis on target data; "
            "resolve it with rttui.engine.layers.resolve_auto (rttui run does) or give a number"
        )
    if isinstance(freeze, bool) or not isinstance(freeze, int | float):
        raise StudyError(f"{key}: unknown value {freeze!r}; use an int, a fraction, 'half', 'all' or 'auto'")
    if isinstance(freeze, float) and not isinstance(freeze, bool) and 0 < freeze < 1:
        return round(freeze * n_groups)
    k = int(freeze)
    if k != freeze or not 0 <= k <= n_groups:
        raise StudyError(f"{key}: {freeze} groups, but this model has {n_groups}; use 0..{n_groups} or a fraction")
    return k


def layer_freezing(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    groups = depth_groups(model)
    k = resolve_freeze(params.get("freeze", "half"), len(groups))
    frozen = {n for g in groups[:k] for n in g}
    names = {n for n, _ in inner(model).named_parameters()} - frozen
    return _finish(model, "layer_freezing", names, k, len(groups), params)


def gradual_unfreezing(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    """ULMFiT-style: the head trains alone first, then every `every` epochs the next deeper group joins.

    Groups listed by `keep_frozen` (from the input side) never unfreeze.
    """
    groups = depth_groups(model)
    keep = resolve_freeze(params.get("keep_frozen", 0), len(groups), "strategies.gradual_unfreezing.keep_frozen")
    every = int(params.get("every", 1))
    if every < 1:
        raise StudyError(f"strategies.gradual_unfreezing.every: {every} epochs; use 1 or more")
    current = set(head_names(model))
    schedule = [(1, sorted(current))]
    for i, g in enumerate(reversed(groups[keep:])):
        current |= set(g)
        schedule.append((1 + (i + 1) * every, sorted(current)))
    st = _finish(model, "gradual_unfreezing", set(schedule[0][1]), len(groups), len(groups), params, schedule=schedule)
    st.extra["keep_frozen"] = keep
    return st


# --- adapters (LoRA through peft) -------------------------------------------------------------------------

_ATTENTION = re.compile(r".*\.attn\.(qkv|proj)")


def adapter_targets(model: nn.Module, within: set[str] | None = None, pattern: str | None = None) -> list[str]:
    """Module names (relative to the timm model) that get a LoRA adapter.

    Default: the attention projections (qkv, proj) where the model has them (ViT and kin), otherwise every
    ungrouped Conv2d (ResNet, DenseNet). The head is never adapted. `within` restricts to modules whose
    weight is one of these parameter names; `pattern` (a regex on module names) replaces the default.
    """
    net = inner(model)
    head = {id(m) for m in net.get_classifier().modules()}
    cands = [
        (n, m)
        for n, m in net.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d) and id(m) not in head and n and not n.endswith("base_layer")
    ]
    if pattern is not None:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise StudyError(
                f"strategies.adapter.targets: invalid regex {pattern!r} ({exc}); fix the pattern"
            ) from None
        names = [n for n, _ in cands if rx.fullmatch(n)]
    else:
        names = [n for n, m in cands if isinstance(m, nn.Linear) and _ATTENTION.fullmatch(n)]
        if not names:
            names = [n for n, m in cands if isinstance(m, nn.Conv2d) and m.groups == 1]
    if within is not None:
        names = [n for n in names if f"{n}.weight" in within]
    return names


def has_adapters(model: nn.Module) -> bool:
    return bool(getattr(inner(model), "_rttui_adapters", None))


def add_adapters(model: nn.Module, strategy: dict[str, Any]) -> list[str]:
    """Inject the LoRA modules an adapter strategy needs (no-op for other strategies or if already done).

    Uses peft's `inject_adapter_in_model` on the timm model itself, so parameter names keep timm's prefixes
    and `group_matcher` still sorts them into depth groups. Deterministic given the config: the same call on
    a freshly built model recreates exactly the modules a saved checkpoint holds.
    """
    if strategy["name"] not in ADAPTER_STRATEGIES or has_adapters(model):
        return list(getattr(inner(model), "_rttui_adapters", []) or [])
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:  # validation says so first; this covers a checkpoint loaded outside a study
        raise StudyError(
            f"strategy {strategy['name']!r} needs peft (the adapters extra), which is not installed; "
            "pip install 'rttui[adapters]'"
        ) from None

    params = strategy.get("params", {})
    within = None
    if strategy["name"] == "freeze_adapter":
        groups = depth_groups(model)
        k = resolve_freeze(params.get("freeze", "half"), len(groups), "strategies.freeze_adapter.freeze")
        within = {n for g in groups[:k] for n in g}
    targets = adapter_targets(model, within, params.get("targets"))
    if not targets:
        if within is not None and not within:
            return []  # nothing frozen, so nothing to adapt: plain fine-tuning of every group
        raise StudyError(
            f"strategies.{strategy['name']}.targets: no Linear/Conv2d module of this model matches; "
            "give a regex over module names such as '.*\\.attn\\.(qkv|proj)'"
        )
    cfg = LoraConfig(
        r=int(params.get("rank", 4)),
        lora_alpha=float(params.get("alpha", 8)),
        lora_dropout=float(params.get("dropout", 0.0)),
        target_modules="^(?:" + "|".join(re.escape(t) for t in targets) + ")$",
        bias="none",
    )
    net = inner(model)
    inject_adapter_in_model(cfg, net)
    net._rttui_adapters = targets
    return targets


def _lora_names(model: nn.Module) -> set[str]:
    return {n for n, _ in inner(model).named_parameters() if ".lora_" in n}


def adapter(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    """A frozen backbone with LoRA adapters; only the adapters and the new head train."""
    targets = add_adapters(model, {"name": "adapter", "params": params})
    n = len(depth_groups(model))
    st = _finish(model, "adapter", _lora_names(model) | head_names(model), n, n, params)
    st.extra["n_adapted"] = len(targets)
    return st


def freeze_adapter(model: nn.Module, params: dict[str, Any]) -> StrategyState:
    """Layer freezing with LoRA adapters in the frozen shallow groups; deeper groups and the head train fully."""
    targets = add_adapters(model, {"name": "freeze_adapter", "params": params})
    groups = depth_groups(model)
    k = resolve_freeze(params.get("freeze", "half"), len(groups), "strategies.freeze_adapter.freeze")
    frozen = {n for g in groups[:k] for n in g} - _lora_names(model)
    names = {n for n, _ in inner(model).named_parameters()} - frozen
    st = _finish(model, "freeze_adapter", names, k, len(groups), params)
    st.extra["n_adapted"] = len(targets)
    return st


Strategy = Callable[[nn.Module, dict[str, Any]], StrategyState]
REGISTRY: dict[str, Strategy] = {
    "full": full,
    "feature_extraction": feature_extraction,
    "layer_freezing": layer_freezing,
    "gradual_unfreezing": gradual_unfreezing,
    "adapter": adapter,
    "freeze_adapter": freeze_adapter,
}


def apply_strategy(model: nn.Module, strategy: dict[str, Any]) -> StrategyState:
    """Set requires_grad per the strategy and return the state that training needs."""
    fn = REGISTRY.get(strategy["name"])
    if fn is None:
        raise StudyError(f"strategy {strategy['name']!r} is not available; choose one of {', '.join(REGISTRY)}")
    return fn(model, strategy.get("params", {}))
