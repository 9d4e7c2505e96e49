"""Transfer attacks: adversarial examples crafted on a surrogate model the attacker holds, then classified by the
target model, which the attacker never queries (white-box to the surrogate, black-box to the target).

Two surrogates (`Surrogate.kind`):

- `source`: the public pretrained backbone the target was fine-tuned from, with no head. The attack is PGD in
  feature space: maximise the squared L2 distance between the backbone's pooled features of the clean and of
  the perturbed image,

      max_{x' : ||x' - x|| <= eps, x' in [0, 1]}  || phi(x') - phi(x) ||_2^2,

  where phi is timm's `forward_features` followed by `forward_head(pre_logits=True)` (exactly the input of the
  classifier a fine-tuned model puts on top; `rttui.engine.features.backbone_features`). No label and no target
  head is needed: this is the target-agnostic threat model of Rezaei & Liu, "A target-agnostic attack on deep
  models: exploiting security vulnerabilities of transfer learning" (ICLR 2020), and of Ban & Dong,
  "Pre-trained adversarial perturbations" (NeurIPS 2022). Their losses differ in detail (Rezaei & Liu drive the
  features towards a chosen activation pattern; Ban & Dong lift low-level activations with one universal
  perturbation); this module uses the plain untargeted per-image feature distortion, the simplest member of
  that family, so it needs no choice of target neuron or layer. The gradient of the loss is zero at x' = x, so
  the attack needs its random start (`random_start = false` is refused).
- `sibling`: PGD on the cross-entropy of another fine-tuned model of the same target task (its labels), i.e.
  exactly `pgd.pgd`, with restarts as the white-box sweep runs them (the first restart that fools the
  surrogate is kept, else the last one). A model used as its own surrogate therefore gives exactly white-box
  PGD's independent-mode accuracy with the same parameters and seed.

Steps follow the sign of the gradient (L-inf) or the normalized gradient (L2); each iterate is projected onto
the eps-ball and clipped to [0, 1]. Random starts are drawn per sample from (surrogate seed, restart, sample)
as `pgd.per_sample_start` draws them, so the crafted images depend on the surrogate and the test set only,
never on the target that classifies them: crafted once, they serve every target (the optional `CraftCache`
stores and returns them; the engine never decides where).

Reuse over the epsilon grid:
- Crafting: every test sample is crafted at every epsilon. Fooling the surrogate is not the goal, transferring
  is, and a larger perturbation transfers better, so the white-box sweep's shortcut (a sample that fools the
  model at eps stops being attacked) would weaken the attack here. `warm_start` starts each epsilon from the
  previous epsilon's example, projected: it changes only the starting point, so it is honest.
- Classification: single-shot at every epsilon, whatever the evaluation's mode. The example crafted at eps,
  alone, decides whether a sample counts as fooled at eps. Counting a sample as fooled at eps because an
  example crafted at a smaller eps' fooled the target (it lies in the larger ball) would be valid for a white-box
  attacker, who can see which example works; choosing among examples per sample needs the target's answers,
  which this threat model rules out (on a ResNet feature-extraction run: 94 images correct at eps 0.03
  single-shot, 83 with that per-sample choice, 11 images the attacker could only have picked by asking). So transfer
  accuracy need not fall with eps (a larger ball's example can transfer worse: an `info` check, not a bug),
  and sweep and independent mode give the same numbers.
- `adv_acc` = (test images the target classifies correctly both clean and on the example crafted at eps) / (all
  test images, n): a sample the target already gets wrong clean counts as wrong, as for every attack.

Crafting runs in fp32 (no autocast) whatever the evaluation's precision, so cached images do not depend on it.
Never import another rttui layer here.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, l2_norm, project
from rttui.engine.attacks.pgd import per_sample_start, pgd
from rttui.engine.attacks.registry import register_attack
from rttui.engine.attacks.sweep import Sweep, Swept, norm_of, progress_counter

KINDS = ("source", "sibling")


class CraftCache(Protocol):
    """Where crafted images are kept between evaluations (the runner stores them as files).

    `prior` is the grid's epsilons below `eps` (a warm-started example depends on them). `load` returns the
    images (float32, CPU, test-set order) and the per-sample surrogate score, or None when nothing is stored.
    """

    def load(self, eps: float, prior: tuple[float, ...]) -> tuple[torch.Tensor, np.ndarray] | None: ...

    def save(self, eps: float, prior: tuple[float, ...], x_adv: torch.Tensor, score: np.ndarray) -> None: ...


@dataclass
class Surrogate:
    """The model the attacker crafts on: its kind (see the module doc), the seed of its random starts (the
    surrogate's own, so every target gets the same images) and an optional cache of crafted images."""

    model: nn.Module
    kind: str
    seed: int
    cache: CraftCache | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"surrogate kind {self.kind!r} is not one of {KINDS}")


def feature_distance(model: nn.Module, x_adv: torch.Tensor, f_clean: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 distance between the pooled backbone features of `x_adv` and the clean features."""
    from rttui.engine.features import backbone_features

    return (backbone_features(model, x_adv) - f_clean).flatten(1).norm(dim=1)


def feature_pgd(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    norm: str,
    x_init: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD that maximises ||phi(x') - phi(x)||_2^2 (phi: pooled backbone features) from `x_init`; returns the
    final iterate (in the eps-ball and [0, 1]) and its feature distance per sample."""
    from rttui.engine.features import backbone_features

    x = x.detach()
    with attack_mode(model):
        with torch.no_grad():
            f0 = backbone_features(model, x)
        x_adv = (x + project(x_init.detach() - x, eps, norm)).clamp(0, 1)
        for _ in range(steps):
            xa = x_adv.detach().requires_grad_(True)
            loss = (backbone_features(model, xa) - f0).flatten(1).pow(2).sum()
            (g,) = torch.autograd.grad(loss, xa)
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            x_adv = (x + project(x_adv + step_size * step - x, eps, norm)).clamp(0, 1).detach()
        with torch.no_grad():
            dist = feature_distance(model, x_adv, f0)
    return x_adv, dist


def _pred(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def craft_batch(
    sur: Surrogate,
    xb: torch.Tensor,
    yb: torch.Tensor,
    ids: np.ndarray,
    eps: float,
    params: dict[str, Any],
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial examples of one batch on the surrogate at one epsilon, with a per-sample score (sibling:
    1.0 where the surrogate is fooled; source: the feature distance reached). `ids` are the samples' test-set
    indices (they seed the random starts); `init` is a warm start (the previous epsilon's examples)."""
    norm = params.get("norm", "linf")
    steps = int(params.get("steps", 10))
    restarts = int(params.get("restarts", 1))
    rand = bool(params.get("random_start", True))
    alpha = float(params.get("step_size") or params.get("rel_step_size", 0.25) * eps)
    model = sur.model
    if eps == 0:
        return xb.clone(), torch.zeros(len(xb), device=xb.device)
    if sur.kind == "source" and not rand and init is None:
        raise ValueError("the feature-space transfer attack needs random_start (its gradient is zero at x)")
    best = xb.clone()
    if sur.kind == "source":
        score = torch.full((len(xb),), -1.0, device=xb.device)
        for r in range(restarts):
            start = per_sample_start(xb, ids.tolist(), eps, norm, sur.seed, r) if rand else xb.clone()
            if r == 0 and init is not None:
                start = init.to(xb.device, xb.dtype)
            xa, dist = feature_pgd(model, xb, eps, steps, alpha, norm, start)
            better = dist > score
            best[better] = xa[better]
            score = torch.where(better, dist, score)
        return best, score
    # sibling: exactly the white-box sweep's PGD (sweep.sweep_pgd), restarts on the samples still unfooled
    alive = torch.ones(len(xb), dtype=torch.bool, device=xb.device)
    for r in range(restarts):
        sel = torch.nonzero(alive).flatten()
        if not len(sel):
            break
        sel_np = sel.cpu().numpy()
        x_init = per_sample_start(xb[sel], ids[sel_np].tolist(), eps, norm, sur.seed, r) if rand else None
        if r == 0 and init is not None:
            x_init = init[sel_np].to(xb.device, xb.dtype)
        xa = pgd(model, xb[sel], yb[sel], eps, steps, alpha, norm, rand_init=False, x_init=x_init)
        hit = _pred(model, xa) != yb[sel]
        best[sel] = xa
        alive[sel[hit]] = False
    return best, (~alive).float()


def craft(
    sur: Surrogate,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    params: dict[str, Any],
    batch_size: int,
    init: torch.Tensor | None = None,
    on_batch: Any = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Craft every test sample at one epsilon on the surrogate (its device and its own memory layout, fp32);
    returns the examples as a float32 CPU tensor in test-set order and the per-sample scores."""
    from rttui.engine.evaluate import channels_last

    dev = next(sur.model.parameters()).device
    out = torch.empty_like(x, dtype=torch.float32, device="cpu")
    scores = np.zeros(len(x), dtype=np.float64)
    no_amp = torch.autocast(dev.type, enabled=False) if dev.type in ("cuda", "cpu") else nullcontext()
    with channels_last(sur.model) as nhwc, no_amp:

        def to_dev(t: torch.Tensor) -> torch.Tensor:
            t = t.to(dev)
            return t.contiguous(memory_format=torch.channels_last) if nhwc and t.ndim == 4 else t

        for s in range(0, len(x), batch_size):
            ids = np.arange(s, min(s + batch_size, len(x)))
            warm = to_dev(init[ids]) if init is not None else None
            xa, sc = craft_batch(sur, to_dev(x[ids]), y[ids].to(dev), ids, eps, params, warm)
            out[ids] = xa.float().cpu().contiguous()
            scores[ids] = sc.double().cpu().numpy()
            if on_batch is not None:
                on_batch(len(ids))
    return out, scores


@register_attack("transfer")
def sweep_transfer(sw: Sweep) -> Swept:
    """Craft on the surrogate at each epsilon (or take the cached images), classify with the target model, each
    epsilon's examples alone deciding (single-shot in either mode: see the module doc for why)."""
    sur = sw.surrogate
    if not isinstance(sur, Surrogate):
        raise ValueError("the transfer attack needs a surrogate model (Sweep.surrogate); the runner supplies it")
    labels, eps_sorted, params = sw.labels, sw.epsilons, sw.params
    clean_pred = sw.clean()
    n, k = len(labels), len(eps_sorted)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    norm = params.get("norm", "linf")
    warm = bool(params.get("warm_start", False))
    y = torch.as_tensor(labels)
    todo = np.flatnonzero(cc)
    tick = progress_counter(sw.on_progress, k * (n + len(todo)))
    bs = sw.batch_size
    prev: torch.Tensor | None = None
    crafted = reused = 0
    step_sizes: list[float | None] = []
    for i, eps in enumerate(eps_sorted):
        step_sizes.append(float(params.get("step_size") or params.get("rel_step_size", 0.25) * eps))
        prior = tuple(eps_sorted[:i])
        got = sur.cache.load(eps, prior) if sur.cache is not None and eps > 0 else None
        if eps == 0:
            x_adv = sw.x.detach().float().cpu()
            tick(n)
        elif got is not None:
            x_adv = got[0]
            reused += 1
            tick(n)
        else:
            x_adv, score = craft(sur, sw.x, y, eps, params, bs, prev if warm else None, tick)
            crafted += 1
            if sur.cache is not None:
                sur.cache.save(eps, prior, x_adv, score)
        prev = x_adv
        if eps > 0 and len(todo):
            for s in range(0, len(todo), bs):
                b = todo[s : s + bs]
                p = sw.pred(sw.to_dev(x_adv[b]))
                adv_pred[i, b] = p
                fooled[i, b] = p != labels[b]
                max_pert[i] = max(max_pert[i], norm_of(x_adv[b] - sw.x[b].cpu(), norm))
        tick(len(todo))
        sw.eps_done(i, clean_pred, fooled)
    path = [f"surrogate={sur.kind}", f"crafted={crafted}", f"reused={reused}", "single_shot"]
    if warm:
        path.append("warm_start")
    return Swept(clean_pred, adv_pred, fooled, max_pert, step_sizes, path=path)
