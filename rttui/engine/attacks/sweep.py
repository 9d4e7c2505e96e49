"""Sweep drivers: each registered attack run over a whole epsilon grid on every clean-correct test sample.

A driver receives a `Sweep` (the model, the test set in batches, the sorted grid, the attack's parameters,
mode and seed) and returns a `Swept` (predictions under attack and fooled flags per epsilon, largest
perturbation and step size per epsilon). `rttui.engine.evaluate.evaluate_attack` sets up the model (eval mode,
channels-last, autocast, compile) and turns a `Swept` into an `AttackResult`; see its module doc for the
sweep and independent modes. A driver that finishes the grid one epsilon at a time (ascending) says so through
`Sweep.eps_done` as each one is final, so a caller can show per-epsilon accuracy while the rest of the grid is
still being attacked; `evaluate_attack` reports at the end whatever a driver did not (an attack that computes
the whole grid at once). The per-attack math stays in the attack modules (fgsm.py, pgd.py, deepfool.py,
autoattack.py); this module only decides which samples are attacked at which epsilon. Never import another
rttui layer here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.autoattack import autoattack, check_classes, reference_budgets
from rttui.engine.attacks.base import attack_mode, input_grad, perturbation_norm
from rttui.engine.attacks.deepfool import deepfool, project_and_check
from rttui.engine.attacks.fgsm import fgsm_grid
from rttui.engine.attacks.pgd import per_sample_start, pgd
from rttui.engine.attacks.registry import register_attack

Batches = Callable[[np.ndarray], Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]]


@dataclass
class Sweep:
    """One attack over one grid: what every driver reads.

    `batches(idx)` yields (sample indices, images, labels) on the model's device; `pred(t)` gives argmax
    predictions; `clean_pred` may be None (then `clean()` computes it, or FGSM's sweep shares its pass).
    """

    model: nn.Module
    x: torch.Tensor
    labels: np.ndarray
    epsilons: list[float]  # sorted ascending
    params: dict[str, Any]
    mode: str
    seed: int
    clean_pred: np.ndarray | None
    batches: Batches
    pred: Callable[[torch.Tensor], np.ndarray]
    to_dev: Callable[[torch.Tensor], torch.Tensor]
    on_progress: Any = None
    num_classes: int | None = None
    batch_size: int = 250
    surrogate: Any = None  # the transfer attack's `attacks.transfer.Surrogate`; None for white-box attacks
    # Called as on_eps(eps, n_adv_correct, n) once per grid epsilon, ascending, when its counts are final.
    on_eps: Callable[[float, int, int], None] | None = None
    reported: set[int] = field(default_factory=set)  # grid indices already passed to on_eps

    @property
    def norm(self) -> str:
        return self.params.get("norm", "linf")

    def clean(self) -> np.ndarray:
        """The clean predictions, computed once if the caller gave none."""
        if self.clean_pred is None:
            self.clean_pred = self.pred(self.x)
        return self.clean_pred

    def eps_done(self, i: int, clean_pred: np.ndarray, fooled: np.ndarray) -> None:
        """Grid epsilon `i` is final: pass its adversarial-correct count to `on_eps` (once per epsilon).

        Counted exactly as `AttackResult.metrics` counts it (clean-correct and not fooled), so what a caller
        shows while the grid runs is the number the finished evaluation stores. Call it only when row `i` of
        `fooled` will not change again, and in ascending order."""
        if self.on_eps is None or i in self.reported:
            return
        self.reported.add(i)
        adv_ok = int(((clean_pred == self.labels) & ~fooled[i]).sum())
        self.on_eps(float(self.epsilons[i]), adv_ok, len(self.labels))


@dataclass
class Swept:
    """What a driver found, per epsilon of the sorted grid (arrays are (n_eps, n) in test-sample order)."""

    clean_pred: np.ndarray
    adv_pred: np.ndarray
    fooled: np.ndarray
    max_perturbation: list[float]
    step_sizes: list[float | None]
    min_norm: np.ndarray | None = None  # minimal-perturbation attacks only
    path: list[str] = field(default_factory=list)  # how it ran, appended to the row's path
    param_defaults: dict[str, Any] = field(default_factory=dict)  # recorded in the row's params when unset


def norm_of(d: torch.Tensor, norm: str) -> float:
    """The largest per-sample norm of a batch of perturbations."""
    d = d.flatten(1)
    v = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    return float(v.max()) if len(v) else 0.0


def progress_counter(on_progress: Any, total: int) -> Callable[[int], None]:
    """A counter that reports (done, total) after each batch."""
    done = [0]

    def tick(m: int) -> None:
        done[0] += m
        if on_progress:
            on_progress(min(done[0], total), total)

    return tick


@register_attack("fgsm")
def sweep_fgsm(sw: Sweep) -> Swept:
    """FGSM per epsilon; in sweep mode one gradient per sample serves the whole grid and, when no clean
    predictions are given, the same forward pass gives them (the clean-accuracy evaluation is shared)."""
    model, labels, eps_sorted, mode = sw.model, sw.labels, sw.epsilons, sw.mode
    batches, pred, norm = sw.batches, sw.pred, sw.norm
    clean_pred = sw.clean_pred if mode == "sweep" else sw.clean()
    n, k = len(labels), len(eps_sorted)
    max_pert = [0.0] * k
    if clean_pred is None:
        clean_pred = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
    else:
        todo = np.flatnonzero(clean_pred == labels)
    adv_pred = np.empty((k, n), dtype=np.int64)
    fooled = np.zeros((k, n), dtype=bool)
    tick = progress_counter(sw.on_progress, k * len(todo))
    grids = [[e] for e in eps_sorted] if mode == "independent" else [eps_sorted]
    for grid in grids:
        cols = [eps_sorted.index(e) for e in grid]
        for b, xb, yb in batches(todo):
            if mode == "sweep":
                with attack_mode(model):
                    g, logits = input_grad(model, xb, yb)
                clean_pred[b] = logits.argmax(1).cpu().numpy()
                keep = torch.as_tensor(clean_pred[b] == labels[b], device=xb.device)
                b, xb, s = b[keep.cpu().numpy()], xb[keep], g[keep].sign()
                advs = [(xb + eps * s).clamp(0, 1) for eps in grid]
            else:
                advs = fgsm_grid(model, xb, yb, grid)
            for ci, xa in zip(cols, advs, strict=True):
                p = pred(xa)
                adv_pred[ci, b] = p
                fooled[ci, b] = p != labels[b]
                max_pert[ci] = max(max_pert[ci], norm_of(xa - xb, norm))
            tick(len(b) * len(grid))
        # Independent mode finishes one epsilon per pass. A sweep's one gradient per sample serves the whole grid
        # at once, so no epsilon is final before the last batch: evaluate_attack reports them all at the end.
        if mode == "independent":
            sw.eps_done(cols[0], clean_pred, fooled)
    cc = clean_pred == labels
    adv_pred[:, ~cc] = clean_pred[~cc]
    return Swept(clean_pred, adv_pred, fooled, max_pert, list(eps_sorted))


@register_attack("pgd")
def sweep_pgd(sw: Sweep) -> Swept:
    """PGD over the grid; sweep mode attacks only samples that survived the previous epsilon."""
    model, labels, eps_sorted, params = sw.model, sw.labels, sw.epsilons, sw.params
    mode, batches, pred, seed = sw.mode, sw.batches, sw.pred, sw.seed
    norm = sw.norm
    clean_pred = sw.clean()
    n, k = len(labels), len(eps_sorted)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    steps = int(params.get("steps", 10))
    restarts = int(params.get("restarts", 1))
    rand = bool(params.get("random_start", True))
    warm = bool(params.get("warm_start", False)) and mode == "sweep"
    warm_x: dict[int, torch.Tensor] = {}  # sample index -> its last iterate at the previous epsilon
    step_sizes: list[float | None] = []
    active = cc.copy()
    tick = progress_counter(sw.on_progress, k * int(cc.sum()))
    for i, eps in enumerate(eps_sorted):
        alpha = params.get("step_size") or params.get("rel_step_size", 0.25) * eps
        step_sizes.append(float(alpha))
        if mode == "sweep" and i > 0:
            carried = fooled[i - 1]
            fooled[i] = carried
            adv_pred[i, carried] = adv_pred[i - 1, carried]
            max_pert[i] = max_pert[i - 1]
        todo = np.flatnonzero(active if mode == "sweep" else cc)
        next_warm: dict[int, torch.Tensor] = {}
        for b, xb, yb in batches(todo):
            alive = np.ones(len(b), dtype=bool)
            last = xb.clone()
            for r in range(restarts):
                sel = np.flatnonzero(alive)
                if not len(sel) or eps == 0:
                    break
                x_init = per_sample_start(xb[sel], b[sel].tolist(), eps, norm, seed, r) if rand else None
                if warm and r == 0 and warm_x:
                    rows = [j for j, s in enumerate(b[sel]) if int(s) in warm_x]
                    if rows:
                        x_init = x_init if x_init is not None else xb[sel].clone()
                        x_init[rows] = torch.stack([warm_x[int(b[sel][j])] for j in rows]).to(xb.device, xb.dtype)
                xa = pgd(model, xb[sel], yb[sel], eps, steps, alpha, norm, rand_init=False, x_init=x_init)
                p = pred(xa)
                adv_pred[i, b[sel]] = p
                hit = p != labels[b[sel]]
                fooled[i, b[sel]] = hit
                alive[sel[hit]] = False
                last[sel] = xa
                max_pert[i] = max(max_pert[i], norm_of(xa - xb[sel], norm))
            if warm:
                next_warm.update({int(b[j]): last[j].cpu() for j in np.flatnonzero(alive)})
            tick(len(b))
        warm_x = next_warm
        active &= ~fooled[i]
        sw.eps_done(i, clean_pred, fooled)
    return Swept(clean_pred, adv_pred, fooled, max_pert, step_sizes, path=["warm_start"] if warm else [])


MinimalAttack = Callable[[np.ndarray, torch.Tensor, torch.Tensor], tuple[torch.Tensor, np.ndarray | None]]
BallCheck = Callable[[torch.Tensor, torch.Tensor, float], None]


def sweep_minimal(
    sw: Sweep, attack: MinimalAttack, check: BallCheck | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float], np.ndarray]:
    """The loop every minimal-perturbation attack shares (rttui's DeepFool, torchattacks' minimal classes), so both
    grade alike: `attack(indices, images, labels)` runs once per batch of clean-correct samples and gives its
    examples and which of them reached a misclassification (None: judged by the examples' own labels). Each
    example is then graded at every epsilon of the grid: inside the ball it keeps its own label; beyond it, it is
    projected onto the ball and re-checked (`check(projected, clean, eps)` may verify the projection); fooled
    stays fooled at larger epsilons. One run per batch serves the whole grid (batches outside, epsilons inside),
    so no epsilon is final before the last batch and `evaluate_attack` reports the grid at the end, all at once.
    Returns (clean_pred, adv_pred, fooled, max_pert, min_norm), min_norm NaN where the attack did not fool."""
    labels, norm = sw.labels, sw.norm
    clean_pred = sw.clean()
    n, k = len(labels), len(sw.epsilons)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    min_norm = np.full(n, np.nan)
    tick = progress_counter(sw.on_progress, int(cc.sum()))
    for b, xb, yb in sw.batches(np.flatnonzero(cc)):
        xa, reached = attack(b, xb, yb)
        norms = perturbation_norm(xa, xb, norm).float()
        own = sw.pred(xa)  # each example's own label: the answer wherever it already lies in the eps-ball
        reached = own != labels[b] if reached is None else reached
        min_norm[b] = np.where(reached, norms.cpu().numpy(), np.nan)
        for i, eps in enumerate(sw.epsilons):
            outside = (norms > eps).cpu().numpy()
            p = own.copy()
            if outside.any():  # only examples beyond the ball are projected onto it and re-checked
                xp, p_t = project_and_check(sw.model, xb[outside], xa[outside], eps, norm)
                if check is not None:
                    check(xp, xb[outside], eps)
                p[outside] = p_t.cpu().numpy()
                max_pert[i] = max(max_pert[i], norm_of(xp - xb[outside], norm))
            if not outside.all():  # a mask on the norms' own device (a NumPy mask cannot index a CUDA tensor)
                max_pert[i] = max(max_pert[i], float(norms[torch.as_tensor(~outside, device=norms.device)].max()))
            hit = p != labels[b]
            if i > 0:
                carried = fooled[i - 1, b]
                p = np.where(carried, adv_pred[i - 1, b], p)
                hit |= carried
            adv_pred[i, b] = p
            fooled[i, b] = hit
        tick(len(b))
    return clean_pred, adv_pred, fooled, max_pert, min_norm


@register_attack("deepfool")
def sweep_deepfool(sw: Sweep) -> Swept:
    """DeepFool once per clean-correct sample, graded per epsilon by `sweep_minimal`; its own `ok` says which
    samples it fooled within its steps (min_norm NaN for the others)."""
    params = sw.params
    steps, overshoot = int(params.get("steps", 50)), float(params.get("overshoot", 0.02))
    candidates = int(params.get("candidates", 10))

    def attack(b: np.ndarray, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        xa, ok = deepfool(sw.model, xb, yb, steps, overshoot, sw.norm, candidates)
        return xa, ok.cpu().numpy()

    clean_pred, adv_pred, fooled, max_pert, min_norm = sweep_minimal(sw, attack)
    return Swept(
        clean_pred,
        adv_pred,
        fooled,
        max_pert,
        [None] * len(sw.epsilons),
        min_norm=min_norm,
        path=["batched"],
        param_defaults={"steps": 50},
    )


BallAttack = Callable[[np.ndarray, torch.Tensor, torch.Tensor], torch.Tensor]


def sweep_per_eps(
    sw: Sweep, attack_at: Callable[[int, float], BallAttack | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """The loop every attack that runs once per grid epsilon shares (AutoAttack, torchattacks' ball classes):
    `attack_at(i, eps)` gives the batch attack at grid epsilon i (sample indices, images, labels -> examples), or
    None where there is nothing to attack (the ball is a point: clean predictions stand). Sweep mode attacks only
    the samples still robust at the previous epsilon and carries the others' fooling examples forward; independent
    mode attacks every clean-correct sample at each epsilon. Returns (clean_pred, adv_pred, fooled, max_pert)."""
    labels, eps_sorted, mode = sw.labels, sw.epsilons, sw.mode
    clean_pred = sw.clean()
    n, k = len(labels), len(eps_sorted)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    active = cc.copy()
    tick = progress_counter(sw.on_progress, k * int(cc.sum()))
    for i, eps in enumerate(eps_sorted):
        if mode == "sweep" and i > 0:
            carried = fooled[i - 1]
            fooled[i] = carried
            adv_pred[i, carried] = adv_pred[i - 1, carried]
            max_pert[i] = max_pert[i - 1]
        todo = np.flatnonzero(active if mode == "sweep" else cc)
        attack = attack_at(i, eps)
        if attack is None:
            tick(len(todo))
        else:
            for b, xb, yb in sw.batches(todo):
                xa = attack(b, xb, yb)
                p = sw.pred(xa)
                adv_pred[i, b] = p
                fooled[i, b] = p != labels[b]
                max_pert[i] = max(max_pert[i], norm_of(xa - xb, sw.norm))
                tick(len(b))
        active &= ~fooled[i]
        sw.eps_done(i, clean_pred, fooled)
    return clean_pred, adv_pred, fooled, max_pert


@register_attack("autoattack")
def sweep_autoattack(sw: Sweep) -> Swept:
    """The reference AutoAttack (pyautoattack) per epsilon; sweep mode attacks only samples that survived the
    previous epsilon. The row records `implementation = "reference"` and the budgets that ran (n_iter, target
    classes, Square queries, per attack), read from the configured reference objects."""
    model, seed, norm = sw.model, sw.seed, sw.norm
    version = str(sw.params.get("version", "standard"))
    num_classes = sw.num_classes
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(model(sw.to_dev(sw.x[:1])).shape[1])
    check_classes(num_classes, version)  # before any time is spent
    warnings: list[str] = []

    def attack_at(i: int, eps: float) -> BallAttack:
        def attack(b: np.ndarray, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            xa, info = autoattack(model, xb, yb, eps, num_classes, norm, seed, version)
            warnings.extend(w for w in info["reference_warnings"] if w not in warnings)
            return xa

        return attack

    clean_pred, adv_pred, fooled, max_pert = sweep_per_eps(sw, attack_at)
    k = len(sw.epsilons)
    recorded = {"version": version, **reference_budgets(num_classes, norm, seed, version)}
    if warnings:
        recorded["reference_warnings"] = warnings
    return Swept(clean_pred, adv_pred, fooled, max_pert, [None] * k, param_defaults=recorded)
