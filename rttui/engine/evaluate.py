"""Clean and adversarial evaluation over an epsilon grid, with per-sample outcomes.

Adversarial accuracy counts a sample only if it is classified correctly both clean and attacked (as
AutoAttack and RobustBench count it), so it never exceeds clean accuracy. Samples misclassified clean are
never attacked.

Modes:
- `sweep` (default): epsilons in ascending order; a sample fooled at eps e stays fooled at every larger eps
  (its adversarial example lies inside the larger ball), so only still-robust samples are attacked next.
  FGSM takes one gradient for the whole grid and stays exact per epsilon (never forced monotone).
- `independent`: the textbook loop, every epsilon attacked from scratch on every clean-correct sample.

PGD random starts are drawn per sample from (seed, restart, sample index), so both modes start each sample from
the same point and differ only where a sample fooled at a smaller epsilon would have survived a larger one.
DeepFool runs once per sample (it finds a minimal perturbation); at each epsilon an example inside the ball
keeps its own label, one beyond it is projected onto the ball and re-checked, and a sample fooled at a smaller
epsilon stays fooled at a larger one (the projected example lies in the larger ball) in both modes, so its
accuracy never rises with epsilon.

Every metric row carries `mode`, `precision` and `path` (how the numbers were computed: sweep or independent,
warm start, batched DeepFool, channels-last, compiled model, cached-feature training), so no shortcut is silent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks import fgsm_grid, pgd
from rttui.engine.attacks.autoattack import autoattack, check_classes
from rttui.engine.attacks.base import attack_mode, input_grad, perturbation_norm
from rttui.engine.attacks.deepfool import deepfool, project_and_check
from rttui.engine.attacks.pgd import per_sample_start

ATTACKS = ("fgsm", "pgd", "deepfool", "autoattack")


@dataclass
class AttackResult:
    """Everything one attack over one grid produced on one model (numpy arrays, sample order = test order)."""

    attack: str
    params: dict[str, Any]
    epsilons: list[float]
    labels: np.ndarray
    clean_pred: np.ndarray
    adv_pred: np.ndarray  # (n_eps, n): prediction under attack (clean prediction where not attacked)
    fooled: np.ndarray  # (n_eps, n): clean-correct and misclassified under attack
    mode: str
    precision: str = "fp32"
    seconds: float = 0.0
    max_perturbation: list[float] = field(default_factory=list)  # largest norm seen per eps
    step_sizes: list[float | None] = field(default_factory=list)
    min_norm: np.ndarray | None = None  # (n,): minimal-perturbation attacks only; NaN where none was found
    path: str = ""

    @property
    def clean_correct(self) -> np.ndarray:
        return self.clean_pred == self.labels

    def metrics(self) -> list[dict[str, Any]]:
        """One row per epsilon, carrying every parameter that produced it."""
        n = len(self.labels)
        cc = self.clean_correct
        rows = []
        for i, eps in enumerate(self.epsilons):
            adv_ok = int((cc & ~self.fooled[i]).sum())
            rows.append(
                {
                    "eps": eps,
                    "attack": self.attack,
                    "norm": self.params.get("norm", "linf"),
                    "steps": self.params.get("steps", 1),
                    "step_size": self.step_sizes[i] if self.step_sizes else eps,
                    "restarts": self.params.get("restarts", 1),
                    "random_start": bool(self.params.get("random_start", False)),
                    "n": n,
                    "n_clean_correct": int(cc.sum()),
                    "n_adv_correct": adv_ok,
                    "clean_acc": float(cc.mean()) if n else 0.0,
                    "adv_acc": adv_ok / n if n else 0.0,
                    "mode": self.mode,
                    "precision": self.precision,
                    "path": self.path,
                    "max_perturbation": self.max_perturbation[i] if self.max_perturbation else None,
                }
            )
        return rows

    def samples(self) -> list[dict[str, Any]]:
        """Compact per-sample outcome: clean-correct, bitmask of grid epsilons that fooled it, first one."""
        out = []
        weights = 1 << np.arange(len(self.epsilons), dtype=np.int64)
        masks = (self.fooled.T.astype(np.int64) * weights).sum(axis=1) if len(self.epsilons) else np.zeros(0)
        for j in range(len(self.labels)):
            hits = np.flatnonzero(self.fooled[:, j])
            out.append(
                {
                    "idx": j,
                    "label": int(self.labels[j]),
                    "clean_pred": int(self.clean_pred[j]),
                    "clean_correct": bool(self.clean_correct[j]),
                    "fooled_mask": int(masks[j]),
                    "first_fooled_eps": float(self.epsilons[hits[0]]) if len(hits) else None,
                    "min_norm": _finite_or_none(self.min_norm[j]) if self.min_norm is not None else None,
                }
            )
        return out

    def confusion(self) -> list[dict[str, Any]]:
        """(true, predicted-under-attack) counts per epsilon, over all test samples."""
        out = []
        for i, eps in enumerate(self.epsilons):
            pairs, counts = np.unique(np.stack([self.labels, self.adv_pred[i]]), axis=1, return_counts=True)
            out += [
                {"eps": eps, "label": int(t), "pred": int(p), "count": int(c)}
                for (t, p), c in zip(pairs.T, counts, strict=True)
            ]
        return out


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: torch.device | None = None) -> np.ndarray:
    """Argmax predictions in eval mode."""
    model.eval()
    dev = device or next(model.parameters()).device
    preds = [
        model(x[i : i + batch_size].to(dev, non_blocking=True)).argmax(1).cpu() for i in range(0, len(x), batch_size)
    ]
    return torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)


def _norm_of(d: torch.Tensor, norm: str) -> float:
    d = d.flatten(1)
    v = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    return float(v.max()) if len(v) else 0.0


def evaluate_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    params: dict[str, Any],
    epsilons: list[float],
    mode: str = "sweep",
    batch_size: int = 250,
    seed: int = 0,
    clean_pred: np.ndarray | None = None,
    on_progress: Any = None,
    *,
    num_classes: int | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
    train_path: str | None = None,
) -> AttackResult:
    """Attack every clean-correct test sample at every epsilon of the grid (see module doc for modes).

    `precision="bf16"` turns on bf16 autocast on CUDA only (fp32 elsewhere; the row records what ran).
    `train_path` names how the model was trained (e.g. "cached_features"), recorded in each row's path.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack {attack!r} is not implemented in the engine")
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    # torchattacks' FAB (inside AutoAttack) reshapes input gradients with .view, which NHWC strides break.
    with channels_last(model, enabled=attack != "autoattack") as nhwc:
        model.eval()
        cuda = dev.type == "cuda"
        parts = [mode]
        fwd = model
        if nhwc:
            parts.append("channels_last")
        if cuda and not x.is_pinned():
            x = x.pin_memory()
        if compile_model:
            fwd = torch.compile(model)
            parts.append("compiled")
        amp = precision == "bf16" and cuda
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
        pred_bs = max(batch_size, 2048) if cuda else batch_size

        eps_sorted = sorted(epsilons)
        labels = y.cpu().numpy()
        k = len(eps_sorted)
        norm = params.get("norm", "linf")
        out_params = dict(params)
        min_norm: np.ndarray | None = None

        def to_dev(t: torch.Tensor) -> torch.Tensor:
            t = t.to(dev, non_blocking=True)
            return t.contiguous(memory_format=torch.channels_last) if nhwc and t.ndim == 4 else t

        def batches(idx: np.ndarray):
            for s in range(0, len(idx), batch_size):
                b = idx[s : s + batch_size]
                yield b, to_dev(x[b]), to_dev(y[b])

        def pred(t: torch.Tensor) -> np.ndarray:
            return predict(fwd, t, pred_bs, dev)

        with autocast:
            if clean_pred is None and not (attack == "fgsm" and mode == "sweep"):
                clean_pred = pred(x)
            if attack == "fgsm":
                clean_pred, adv_pred, fooled, max_pert, steps_sz = _fgsm(
                    fwd, x, labels, eps_sorted, mode, clean_pred, batches, pred, norm, on_progress
                )
            elif attack == "pgd":
                if params.get("warm_start") and mode == "sweep":
                    parts.append("warm_start")
                adv_pred, fooled, max_pert, steps_sz = _pgd(
                    fwd, labels, eps_sorted, params, mode, clean_pred, batches, pred, seed, norm, on_progress
                )
            elif attack == "deepfool":
                parts.append("batched")
                adv_pred, fooled, max_pert, min_norm = _deepfool(
                    fwd, labels, eps_sorted, params, clean_pred, batches, pred, norm, on_progress
                )
                steps_sz = [None] * k
                out_params.setdefault("steps", 50)
            else:
                if num_classes is None:
                    with torch.no_grad():
                        num_classes = int(fwd(to_dev(x[:1])).shape[1])
                check_classes(num_classes)
                adv_pred, fooled, max_pert = _autoattack(
                    fwd, labels, eps_sorted, mode, clean_pred, batches, pred, seed, norm, num_classes, on_progress
                )
                steps_sz = [None] * k
                out_params.setdefault("version", "standard")
        if train_path:
            parts.append(train_path)
        return AttackResult(
            attack,
            out_params,
            eps_sorted,
            labels,
            clean_pred,
            adv_pred,
            fooled,
            mode,
            precision="bf16" if amp else "fp32",
            seconds=time.perf_counter() - t0,
            max_perturbation=max_pert,
            step_sizes=steps_sz,
            min_norm=min_norm,
            path="+".join(parts),
        )


@contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[bool]:
    """Channels-last (NHWC) weights while attacking a convolutional model; yields whether they are in use.

    Measured on a 2-core CPU (oneDNN), test_resnet at 32x32: forward passes 1.7x faster than NCHW; cuDNN
    prefers NHWC as well. Only the float rounding of convolutions changes. The caller's layout is restored.
    """
    has_conv = enabled and any(isinstance(m, nn.Conv2d) for m in model.modules())
    already = any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters())
    if not has_conv or already:
        yield has_conv
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        model.to(memory_format=torch.contiguous_format)


def _progress(on_progress: Any, total: int):
    """A counter that reports (done, total) after each batch."""
    done = [0]

    def tick(m: int) -> None:
        done[0] += m
        if on_progress:
            on_progress(min(done[0], total), total)

    return tick


def _fgsm(model, x, labels, eps_sorted, mode, clean_pred, batches, pred, norm, on_progress):
    """FGSM per epsilon; in sweep mode one gradient per sample serves the whole grid and, when no clean
    predictions are given, the same forward pass gives them (the clean-accuracy evaluation is shared)."""
    n, k = len(labels), len(eps_sorted)
    max_pert = [0.0] * k
    if clean_pred is None:
        clean_pred = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
    else:
        todo = np.flatnonzero(clean_pred == labels)
    adv_pred = np.empty((k, n), dtype=np.int64)
    fooled = np.zeros((k, n), dtype=bool)
    tick = _progress(on_progress, k * len(todo))
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
                max_pert[ci] = max(max_pert[ci], _norm_of(xa - xb, norm))
            tick(len(b) * len(grid))
    cc = clean_pred == labels
    adv_pred[:, ~cc] = clean_pred[~cc]
    return clean_pred, adv_pred, fooled, max_pert, list(eps_sorted)


def _pgd(model, labels, eps_sorted, params, mode, clean_pred, batches, pred, seed, norm, on_progress):
    """PGD over the grid; sweep mode attacks only samples that survived the previous epsilon."""
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
    tick = _progress(on_progress, k * int(cc.sum()))
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
                max_pert[i] = max(max_pert[i], _norm_of(xa - xb[sel], norm))
            if warm:
                next_warm.update({int(b[j]): last[j].cpu() for j in np.flatnonzero(alive)})
            tick(len(b))
        warm_x = next_warm
        active &= ~fooled[i]
    return adv_pred, fooled, max_pert, step_sizes


def _deepfool(model, labels, eps_sorted, params, clean_pred, batches, pred, norm, on_progress):
    """DeepFool once per clean-correct sample; per epsilon, an example inside the ball keeps its own label and
    one beyond it is projected onto the ball and re-checked (fooled stays fooled at larger epsilons)."""
    n, k = len(labels), len(eps_sorted)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    min_norm = np.full(n, np.nan)
    steps, overshoot = int(params.get("steps", 50)), float(params.get("overshoot", 0.02))
    candidates = int(params.get("candidates", 10))
    tick = _progress(on_progress, int(cc.sum()))
    for b, xb, yb in batches(np.flatnonzero(cc)):
        xa, ok = deepfool(model, xb, yb, steps, overshoot, norm, candidates)
        norms = perturbation_norm(xa, xb, norm)
        min_norm[b] = np.where(ok.cpu().numpy(), norms.float().cpu().numpy(), np.nan)  # NaN: not fooled in time
        own = pred(xa)  # each example's own label: the answer wherever it already lies in the eps-ball
        for i, eps in enumerate(eps_sorted):
            outside = (norms > eps).cpu().numpy()
            p = own.copy()
            if outside.any():  # only examples beyond the ball are projected onto it and re-checked
                xp, p_t = project_and_check(model, xb[outside], xa[outside], eps, norm)
                p[outside] = p_t.cpu().numpy()
                max_pert[i] = max(max_pert[i], _norm_of(xp - xb[outside], norm))
            if not outside.all():
                max_pert[i] = max(max_pert[i], float(norms[~outside].max()))
            hit = p != labels[b]
            if i > 0:
                carried = fooled[i - 1, b]
                p = np.where(carried, adv_pred[i - 1, b], p)
                hit |= carried
            adv_pred[i, b] = p
            fooled[i, b] = hit
        tick(len(b))
    return adv_pred, fooled, max_pert, min_norm


def _autoattack(model, labels, eps_sorted, mode, clean_pred, batches, pred, seed, norm, num_classes, on_progress):
    """AutoAttack per epsilon; sweep mode attacks only samples that survived the previous epsilon."""
    n, k = len(labels), len(eps_sorted)
    cc = clean_pred == labels
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    active = cc.copy()
    tick = _progress(on_progress, k * int(cc.sum()))
    for i, eps in enumerate(eps_sorted):
        if mode == "sweep" and i > 0:
            carried = fooled[i - 1]
            fooled[i] = carried
            adv_pred[i, carried] = adv_pred[i - 1, carried]
            max_pert[i] = max_pert[i - 1]
        for b, xb, yb in batches(np.flatnonzero(active if mode == "sweep" else cc)):
            xa = autoattack(model, xb, yb, eps, num_classes, norm, seed)
            p = pred(xa)
            adv_pred[i, b] = p
            fooled[i, b] = p != labels[b]
            max_pert[i] = max(max_pert[i], _norm_of(xa - xb, norm))
            tick(len(b))
        active &= ~fooled[i]
    return adv_pred, fooled, max_pert
