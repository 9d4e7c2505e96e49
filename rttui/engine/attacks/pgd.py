"""PGD (Madry et al., 2018), L-inf or L2, with random start, as torchattacks' PGD and Foolbox's PGD do it.

Step: ascend the cross-entropy along sign(grad) (L-inf) or grad/||grad|| (L2), project onto the eps-ball,
clip to [0, 1]. The final iterate is the adversarial example.

Random starts can be drawn per sample (`per_sample_start`): sample j's start depends only on (seed, restart, j),
never on which other samples share its batch, so a sweep (which attacks fewer samples at each larger epsilon)
and the independent per-epsilon loop start every sample from the same point.
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


def _mix(*parts: int) -> int:
    """A stable 63-bit seed from integers (splitmix-style), so nearby indices give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def per_sample_start(
    x: torch.Tensor, sample_ids: list[int], eps: float, norm: str, seed: int, restart: int = 0
) -> torch.Tensor:
    """Random start where sample j's noise depends only on (seed, restart, j); drawn on the CPU, then moved."""
    shape = x.shape[1:]
    d = x[0].numel()
    deltas = []
    for j in sample_ids:
        g = torch.Generator().manual_seed(_mix(seed, restart, int(j)))
        if norm == "linf":
            deltas.append(torch.rand(shape, generator=g) * 2 - 1)
        else:
            v = torch.randn(shape, generator=g)
            r = float(torch.rand((), generator=g)) ** (1.0 / d)
            deltas.append(v / v.norm().clamp_min(1e-12) * r)
    delta = torch.stack(deltas).to(device=x.device, dtype=x.dtype) * eps
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
    x_init: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy; returns x_adv within the eps-ball and [0, 1].

    `x_init` (a start point, e.g. a per-sample random start or the previous epsilon's adversarial example)
    replaces the random start; it is projected onto this eps-ball first.
    """
    alpha = step_size if step_size is not None else 0.25 * eps
    x = x.detach()
    if eps == 0:
        return x.clone()
    if x_init is not None:
        x_adv = (x + project(x_init.detach() - x, eps, norm)).clamp(0, 1)
    else:
        x_adv = random_start(x, eps, norm, gen) if rand_init else x.clone()
    with attack_mode(model):
        for _ in range(steps):
            g, _ = input_grad(model, x_adv, y)
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            x_adv = (x + project(x_adv + alpha * step - x, eps, norm)).clamp(0, 1).detach()
    return x_adv
