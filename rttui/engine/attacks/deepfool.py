"""DeepFool (Moosavi-Dezfooli et al., 2016), batched over the whole batch, L-inf or L2.

A minimal-perturbation attack: each sample is attacked once, its smallest fooling perturbation is found by
linearizing the classifier around the current point, and `project_and_check` turns that single run into an
accuracy per epsilon (project onto the eps-ball, re-check the prediction), as Foolbox does.

The step is torchattacks' DeepFool step (overshoot applied to each step, image clipped to [0, 1] after each
step), so L2 results can be checked against torchattacks; L-inf uses the dual (L1) norm and a sign step that
ignores pixels pinned at the box edge in the direction they would move (else the step stalls there). Unlike
torchattacks, every still-unfooled sample of the batch moves at once (one backward pass per candidate class for
the whole batch instead of per image), and no gradient lands on the model's parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, perturbation_norm, project


def _margin_grads(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at x, the margins f_k - f_label of the candidate classes (b, k-1) and their input gradients
    (b, k-1, d): one backward pass per candidate for the whole batch (torchattacks: one per class per image)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    sel = logits.gather(1, classes)
    margins = sel[:, 1:] - sel[:, :1]
    grads = []
    for c in range(margins.shape[1]):
        # Samples are independent in eval mode, so the gradient of the batch sum is each sample's gradient.
        (g,) = torch.autograd.grad(margins[:, c].sum(), x, retain_graph=c + 1 < margins.shape[1])
        grads.append(g.flatten(1))
    return logits.detach(), margins.detach(), torch.stack(grads, 1)


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = 50,
    overshoot: float = 0.02,
    norm: str = "linf",
    candidates: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x_adv, fooled): the first misclassified iterate per sample (or the last one), and whether it fools.

    `candidates` limits the classes considered to the top ones of the clean logits (Foolbox's default, 10);
    with fewer classes than that, every class is a candidate (torchattacks' behaviour).
    """
    x = x.detach()
    x_adv = x.clone()
    n = len(x)
    with attack_mode(model):
        with torch.no_grad():
            logits0 = model(x)
        k = min(candidates, logits0.shape[1])
        # Candidate classes: the label first, then the most likely others (top-k of the clean logits).
        order = logits0.scatter(1, y[:, None], float("inf")).argsort(1, descending=True)[:, :k]
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        for step in range(steps + 1):
            idx = active.nonzero().flatten()
            if not len(idx):
                break
            if step == steps:  # the last move is only checked, no gradient needed
                with torch.no_grad():
                    active[idx[model(x_adv[idx]).argmax(1) != y[idx]]] = False
                break
            logits, f_diff, w_diff = _margin_grads(model, x_adv[idx], order[idx])
            still = logits.argmax(1) == y[idx]
            active[idx[~still]] = False
            if not still.any():
                break
            idx, f_diff, w_diff = idx[still], f_diff[still], w_diff[still]
            if norm == "linf":
                # Box-aware: a sign step moves every pixel, but pixels already at 0 or 1 cannot move outwards;
                # left in, they eat the step and DeepFool stalls on images with saturated pixels (digits).
                cur = x_adv[idx].flatten(1)[:, None, :]
                w_diff = w_diff.masked_fill(((cur <= 0) & (w_diff < 0)) | ((cur >= 1) & (w_diff > 0)), 0.0)
            dual = w_diff.abs().sum(2) if norm == "linf" else w_diff.norm(dim=2)
            dist = f_diff.abs() / dual.clamp_min(1e-12)
            best = dist.argmin(1)
            ar = torch.arange(len(idx), device=x.device)
            fb, wb, db = f_diff[ar, best].abs(), w_diff[ar, best], dual[ar, best].clamp_min(1e-12)
            # L-inf: move along sign(w) by |f| / ||w||_1; L2: along w by |f| / ||w||_2^2 (torchattacks' step).
            r = (fb / db)[:, None] * wb.sign() if norm == "linf" else (fb / db**2)[:, None] * wb
            x_adv[idx] = (x_adv[idx] + (1 + overshoot) * r.view_as(x_adv[idx])).clamp(0, 1)
    fooled = ~active
    return x_adv.detach(), fooled


def min_norms(x_adv: torch.Tensor, x: torch.Tensor, fooled: torch.Tensor, norm: str) -> torch.Tensor:
    """Each sample's minimal perturbation norm found (NaN where DeepFool did not fool it within its steps)."""
    d = perturbation_norm(x_adv, x, norm)
    return torch.where(fooled, d, torch.full_like(d, float("nan")))


def project_and_check(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project x_adv onto the eps-ball around x and the image box; return (projected, its predictions)."""
    xp = (x + project(x_adv - x, eps, norm)).clamp(0, 1)
    with torch.no_grad():
        pred = model(xp).argmax(1)
    return xp, pred
