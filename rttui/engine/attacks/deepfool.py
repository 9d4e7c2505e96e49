"""DeepFool (Moosavi-Dezfooli et al., 2016), batched over the whole batch, L-inf or L2.

A minimal-perturbation attack: each sample is attacked once, its smallest fooling perturbation is found by
linearizing the classifier around the current point, and `project_and_check` turns that single run into an
accuracy per epsilon (project onto the eps-ball, re-check the prediction), as Foolbox does.

The iteration is the original one (the authors' code and Foolbox's): each linearized step is lengthened by a
small slack, the steps are summed into a total perturbation and the
overshoot scales that total, x = clip(x0 + (1 + overshoot) * r_tot), so the example ends beyond the boundary by
more than float noise. torchattacks instead applies the overshoot to each step; its last steps are tiny, so
its examples end within float noise of the boundary (measured: most of them within 1e-3 in logits on digits),
where batch composition alone decides their label, and where pixels are clipped at the image box every step
falls short and the iterates converge onto the boundary without crossing it.

Two step variants, and each sample keeps the better one (`VARIANTS`, `deepfool(..., variants=...)`):
- `plain`: Foolbox's step, arithmetic included (`|f| / (||w||_dual + 1e-8)`, plus the slack, along sign(w) or
  w / (||w||_2 + 1e-8)), so its examples are bit-identical to Foolbox's `LinfDeepFoolAttack`/`L2DeepFoolAttack`
  with the same steps, overshoot and candidates;
- `box_aware`: gradient components that would push a pixel already at 0 or 1 further out are left out of the
  step (they are clipped away anyway, so in principle the step is spent better).
Measured on the quickstart's test_resnet (128 images at 32x32): box-aware alone gave minimal perturbations 2.4%
(L-inf) / 1.6% (L2) larger than Foolbox's in median, yet smaller on 5 (L-inf) / 1 (L2) of the 128 images. So
both run, and per sample the fooling example of smaller norm is kept (plain on ties): never weaker than Foolbox,
sometimes stronger, at twice the cost of one variant.

Unlike torchattacks, every still-unfooled sample of the batch moves at once (one backward pass per candidate
class for the whole batch instead of one per class per image), and no gradient lands on the model's parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, perturbation_norm, project

# Added to each step's length (in the attack's norm), as in the authors' code: an iterate approaching the
# boundary slowly (clipped pixels) would otherwise cross it by a float-noise margin, and then batch composition
# alone (a different convolution blocking) decides its label. 1e-4 is 1% of the smallest grid epsilon.
STEP_SLACK = 1e-4


def _margin_grads(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The margins f_k - f_label of the candidate classes (b, k-1) at x and their input gradients (b, k-1, d):
    one backward pass per candidate for the whole batch (torchattacks: one per class per image)."""
    x = x.detach().requires_grad_(True)
    sel = model(x).gather(1, classes)
    margins = sel[:, 1:] - sel[:, :1]
    grads = []
    for c in range(margins.shape[1]):
        # Samples are independent in eval mode, so the gradient of the batch sum is each sample's gradient.
        (g,) = torch.autograd.grad(margins[:, c].sum(), x, retain_graph=c + 1 < margins.shape[1])
        grads.append(g.flatten(1))
    return margins.detach(), torch.stack(grads, 1)


VARIANTS = ("plain", "box_aware")
FOOLBOX_EPS = 1e-8  # Foolbox's guard in every denominator; kept so the plain variant is bit-identical to it


def deepfool_step(
    x_adv: torch.Tensor, f_diff: torch.Tensor, w_diff: torch.Tensor, norm: str, box_aware: bool = False
) -> torch.Tensor:
    """One linearized DeepFool step for a batch, shaped like x_adv, towards the closest linearized boundary.

    `f_diff` (b, k-1) are the margins f_k - f_label at x_adv and `w_diff` (b, k-1, d) their input gradients.
    Written as Foolbox writes it (same operations, same order), so the plain step is bit-identical to Foolbox's.
    L-inf: (|f| / (||w||_1 + 1e-8) + slack) along sign(w); L2: the same with ||w||_2, along w / (||w||_2 + 1e-8).
    `box_aware` drops gradient components that would push a pixel already at 0 or 1 further out.
    """
    w = w_diff
    if box_aware:
        cur = x_adv.flatten(1)[:, None, :]
        w = w_diff.masked_fill(((cur <= 0) & (w_diff < 0)) | ((cur >= 1) & (w_diff > 0)), 0.0)
    dual = w.abs().sum(2) if norm == "linf" else w.square().sum(2).sqrt()
    dist = f_diff.abs() / (dual + FOOLBOX_EPS)
    best = dist.argmin(1)
    ar = torch.arange(len(best), device=best.device)
    length, wb = dist[ar, best] + STEP_SLACK, w[ar, best]
    if norm == "linf":
        r = length[:, None] * wb.sign()
    else:
        r = (length / (wb.square().sum(1).sqrt() + FOOLBOX_EPS))[:, None] * wb
    return r.view_as(x_adv)


def candidate_classes(logits: torch.Tensor, y: torch.Tensor, candidates: int) -> torch.Tensor:
    """The label first, then the most likely other classes of the clean logits (top-k, Foolbox's default 10)."""
    k = min(candidates, logits.shape[1])
    return logits.scatter(1, y[:, None], float("inf")).argsort(1, descending=True)[:, :k]


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = 50,
    overshoot: float = 0.02,
    norm: str = "linf",
    candidates: int = 10,
    variants: tuple[str, ...] = VARIANTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x_adv, fooled): per sample, of the `variants` run, the fooling example of smallest norm (the first
    variant's on ties, and its last iterate where none fools).

    `candidates` limits the classes considered to the top ones of the clean logits (Foolbox's default, 10);
    with fewer classes than that, every class is a candidate.
    """
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ValueError(f"DeepFool variants must be a non-empty subset of {VARIANTS}, got {variants}")
    x = x.detach()
    best_x, best_ok = _deepfool_run(model, x, y, steps, overshoot, norm, candidates, variants[0] == "box_aware")
    for v in variants[1:]:
        xa, ok = _deepfool_run(model, x, y, steps, overshoot, norm, candidates, v == "box_aware")
        inf = torch.tensor(float("inf"), device=x.device)
        old = torch.where(best_ok, perturbation_norm(best_x, x, norm), inf)
        new = torch.where(ok, perturbation_norm(xa, x, norm), inf)
        take = new < old
        best_x = torch.where(take.view(-1, *([1] * (x.ndim - 1))), xa, best_x)
        best_ok = best_ok | ok
    return best_x, best_ok


def _deepfool_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    overshoot: float,
    norm: str,
    candidates: int,
    box_aware: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DeepFool run with one step variant: (the first misclassified iterate per sample or the last, fooled)."""
    x_adv = x.clone()
    r_tot = torch.zeros_like(x)
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    order = torch.empty(0)
    with attack_mode(model):
        for step in range(steps + 1):
            idx = active.nonzero().flatten()
            if not len(idx):
                break
            # Check first, without a graph: only the samples still correct pay for the backward passes.
            with torch.no_grad():
                logits = model(x_adv[idx])
            if step == 0:
                order = candidate_classes(logits, y, candidates)
            still = logits.argmax(1) == y[idx]
            active[idx[~still]] = False
            if step == steps or not still.any():
                break
            idx = idx[still]
            f_diff, w_diff = _margin_grads(model, x_adv[idx], order[idx])
            r_tot[idx] += deepfool_step(x_adv[idx], f_diff, w_diff, norm, box_aware)
            x_adv[idx] = (x[idx] + (1 + overshoot) * r_tot[idx]).clamp(0, 1)
    return x_adv.detach(), ~active


def project_and_check(
    model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project x_adv onto the eps-ball around x and the image box; return (projected, its predictions)."""
    xp = (x + project(x_adv - x, eps, norm)).clamp(0, 1)
    with torch.no_grad():
        pred = model(xp).argmax(1)
    return xp, pred
