"""PGD (Madry et al., 2018), L-inf or L2, with random start, as torchattacks' PGD and Foolbox's PGD do it.

Step: ascend the cross-entropy along sign(grad) (L-inf) or grad/||grad|| (L2), project onto the eps-ball,
clip to [0, 1]. The final iterate is the adversarial example.
"""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, input_grad, l2_norm, project


def random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the eps-ball around x (clipped to the image box)."""
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        d = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        r = torch.rand((x.shape[0],), generator=gen, device=x.device, dtype=x.dtype) ** (1.0 / x[0].numel())
        delta = d / l2_norm(d) * (r * eps).view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0, 1)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    rand_init: bool = True,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy; returns x_adv within the eps-ball and [0, 1]."""
    alpha = step_size if step_size is not None else 0.25 * eps
    x = x.detach()
    if eps == 0:
        return x.clone()
    x_adv = random_start(x, eps, norm, gen) if rand_init else x.clone()
    with attack_mode(model):
        for _ in range(steps):
            g, _ = input_grad(model, x_adv, y)
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            x_adv = (x + project(x_adv + alpha * step - x, eps, norm)).clamp(0, 1).detach()
    return x_adv
