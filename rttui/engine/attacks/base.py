"""What every attack shares: eval mode, gradients w.r.t. the input only, and [0, 1] pixel space.

An attack here maps (model, x, y, eps) -> x_adv with x_adv in [0, 1] and ||x_adv - x|| <= eps in its norm.
Parameters are made non-trainable while attacking, so no gradient lands on (or is computed for) the model's
weights, and the model's own flags are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration of an attack; restores both afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


def input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy w.r.t. x, and the logits it came from."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g, logits.detach()


def l2_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped for broadcasting against t."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project a perturbation onto the eps-ball of the given norm."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    factor = (eps / l2_norm(delta)).clamp(max=1.0)
    return delta * factor


def perturbation_norm(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    return d.abs().amax(dim=1) if norm == "linf" else d.norm(dim=1)
