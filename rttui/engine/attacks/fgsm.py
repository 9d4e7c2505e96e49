"""FGSM (Goodfellow et al., 2015): one signed-gradient step of size eps.

`fgsm_grid` takes the gradient once and steps to every epsilon of a grid: the result is exactly per-epsilon
FGSM (the gradient at x does not depend on eps), at the cost of one backward pass instead of one per epsilon.
"""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, input_grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Single-epsilon FGSM (the textbook call)."""
    return fgsm_grid(model, x, y, [eps])[0]


def fgsm_grid(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilons: list[float]) -> list[torch.Tensor]:
    """FGSM at every epsilon from one gradient."""
    with attack_mode(model):
        g, _ = input_grad(model, x, y)
    s = g.sign()
    return [(x + eps * s).clamp(0, 1) for eps in epsilons]
