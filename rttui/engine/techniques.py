"""Robustness techniques layered on any fine-tuning strategy, and adversarial training for sources.

- `bn_freeze`: every batch-norm layer stays in eval mode with its affine parameters frozen, whatever the
  strategy trains; on a model without batch norm it changes nothing and says so in a warning.
- `adv_augmentation`: a fraction of each training batch is replaced by FGSM/PGD examples at a training eps.
- `adv_pretraining` happens on the source (see `adversarial_transform` with fraction 1, i.e. Madry-style
  adversarial training); the target run itself then fine-tunes normally.

Adversarial examples come from the engine's own attacks, which run the model in eval mode; the transform
puts the model back in the strategy's train mode afterwards. This module must never write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rttui.engine.attacks.fgsm import fgsm
from rttui.engine.attacks.pgd import pgd
from rttui.engine.strategies import StrategyState, inner
from rttui.errors import StudyError

BatchTransform = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TechniqueState:
    """What a technique adds to training: an optional batch transform, and warnings to store with the run."""

    name: str
    batch_transform: BatchTransform | None = None
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: dict[str, Any], gen: Any) -> Any:
    """Training-time adversarial examples: PGD (steps, rel_step_size, random start) or FGSM.

    FGSM with `random_start` is the "fast adversarial training" variant (Wong et al., 2020): a uniform random
    start in the ball, then one signed step of 1.25 eps, projected; without it, the textbook single step.
    """
    eps = float(p.get("eps", 0.03))
    attack = p.get("attack", "pgd")
    rand = bool(p.get("random_start", True))
    if attack == "fgsm":
        if not rand:
            return fgsm(model, x, y, eps)
        return pgd(model, x, y, eps, steps=1, step_size=1.25 * eps, rand_init=True, gen=gen)
    steps = int(p.get("steps", 5))
    return pgd(model, x, y, eps, steps, float(p.get("rel_step_size", 0.5)) * eps, "linf", rand, gen)


class AdversarialTransform:
    """Replace `fraction` of each batch (a seeded random subset) by adversarial examples of itself.

    An object, not a closure, so that its `generator` (which draws the subset and, on CPU, the random starts)
    is visible to `train.fit`: fit saves and restores it with every epoch checkpoint, so a run resumed after an
    epoch draws the same subsets and starts as an uninterrupted one.
    """

    def __init__(self, p: dict[str, Any], seed: int, restore: Callable[[nn.Module], None] | None = None) -> None:
        self.p = p
        self.fraction = float(p.get("fraction", 1.0))
        self.restore = restore
        self.generator = torch.Generator().manual_seed(seed + 7919)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = round(self.fraction * len(x))
        if k == 0:
            return x
        gen = self.generator
        idx = torch.randperm(len(x), generator=gen)[:k].to(x.device)
        adv = adversarial_examples(model, x[idx], y[idx], self.p, gen if x.device.type == "cpu" else None)
        (self.restore or (lambda m: m.train()))(model)
        out = x.clone()
        out[idx] = adv.detach()
        return out


def adversarial_transform(
    p: dict[str, Any], seed: int, restore: Callable[[nn.Module], None] | None = None
) -> AdversarialTransform:
    """Replace `fraction` of each batch (a seeded random subset) by adversarial examples of itself."""
    return AdversarialTransform(p, seed, restore)


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every batch-norm layer (timm's BatchNormAct2d included: it subclasses BatchNorm2d)."""
    return [(n, m) for n, m in inner(model).named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_freeze(model: nn.Module, state: StrategyState, params: dict[str, Any], seed: int) -> TechniqueState:
    layers = batchnorm_layers(model)
    if not layers:
        msgs = [c["message"] for c in technique_checks(model, {"name": "bn_freeze"})]
        return TechniqueState("bn_freeze", warnings=msgs, info={"n_bn_frozen": 0})
    names = {f"{n}.{pn}" for n, m in layers for pn, _ in m.named_parameters()}
    state.pin(model, names, [m for _, m in layers])
    return TechniqueState("bn_freeze", info={"n_bn_frozen": len(layers)})


def adv_augmentation(model: nn.Module, state: StrategyState, params: dict[str, Any], seed: int) -> TechniqueState:
    info = {"adv_fraction": params.get("fraction"), "adv_eps": params.get("eps"), "adv_attack": params.get("attack")}
    return TechniqueState("adv_augmentation", adversarial_transform(params, seed, state.train_mode), info=info)


def technique_checks(model: nn.Module, technique: dict[str, Any]) -> list[dict[str, Any]]:
    """Run-level checks a technique leaves with its run (stored next to the attack sanity checks)."""
    if technique["name"] != "bn_freeze":
        return []
    n = len(batchnorm_layers(model))
    if n == 0:
        msg = "bn_freeze: this model has no batch-norm layers, so batch-norm freezing changed nothing"
        return [{"check": "bn_freeze", "level": "warning", "message": msg}]
    return [{"check": "bn_freeze", "level": "ok", "message": f"bn_freeze: {n} batch-norm layers frozen"}]


def _nothing(model: nn.Module, state: StrategyState, params: dict[str, Any], seed: int) -> TechniqueState:
    return TechniqueState("none")


Technique = Callable[[nn.Module, StrategyState, dict[str, Any], int], TechniqueState]
REGISTRY: dict[str, Technique] = {
    "none": _nothing,
    "adv_pretraining": _nothing,  # acts on the source model; fine-tuning itself is standard
    "bn_freeze": bn_freeze,
    "adv_augmentation": adv_augmentation,
}


def apply_technique(model: nn.Module, state: StrategyState, technique: dict[str, Any], seed: int) -> TechniqueState:
    """Apply a technique on top of a strategy's state (call after `apply_strategy`)."""
    fn = REGISTRY.get(technique["name"])
    if fn is None:
        raise StudyError(f"technique {technique['name']!r} is not available; choose one of {', '.join(REGISTRY)}")
    out = fn(model, state, technique.get("params", {}), seed)
    out.name = technique["name"]
    return out
