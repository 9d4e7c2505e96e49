"""Clean and adversarial evaluation over an epsilon grid, with per-sample outcomes.

Adversarial accuracy counts a sample only if it is classified correctly both clean and attacked (as
AutoAttack and RobustBench count it), so it never exceeds clean accuracy. Samples misclassified clean are
never attacked.

Modes:
- `sweep` (default): epsilons in ascending order; a sample fooled at eps e stays fooled at every larger eps
  (its adversarial example lies inside the larger ball), so only still-robust samples are attacked next.
  FGSM takes one gradient for the whole grid and stays exact per epsilon (never forced monotone).
- `independent`: the textbook loop, every epsilon attacked from scratch on every clean-correct sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks import fgsm_grid, pgd


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


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: torch.device | None = None) -> np.ndarray:
    """Argmax predictions in eval mode."""
    model.eval()
    dev = device or next(model.parameters()).device
    preds = [model(x[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
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
) -> AttackResult:
    """Attack every clean-correct test sample at every epsilon of the grid (see module doc for modes)."""
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    model.eval()
    eps_sorted = sorted(epsilons)
    labels = y.cpu().numpy()
    if clean_pred is None:
        clean_pred = predict(model, x, batch_size, dev)
    cc = clean_pred == labels
    n, k = len(labels), len(eps_sorted)
    adv_pred = np.tile(clean_pred, (k, 1))
    fooled = np.zeros((k, n), dtype=bool)
    max_pert = [0.0] * k
    norm = params.get("norm", "linf")
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)

    def batches(idx: np.ndarray):
        for s in range(0, len(idx), batch_size):
            b = idx[s : s + batch_size]
            yield b, x[b].to(dev), y[b].to(dev)

    step_sizes: list[float | None] = []
    total = k * max(int(cc.sum()), 1)
    done = 0
    if attack == "fgsm":
        step_sizes = list(eps_sorted)
        grids = [[e] for e in eps_sorted] if mode == "independent" else [eps_sorted]
        for grid in grids:
            cols = [eps_sorted.index(e) for e in grid]
            for b, xb, yb in batches(np.flatnonzero(cc)):
                advs = fgsm_grid(model, xb, yb, grid)
                for ci, xa in zip(cols, advs, strict=True):
                    p = predict(model, xa, batch_size, dev)
                    adv_pred[ci, b] = p
                    fooled[ci, b] = p != labels[b]
                    max_pert[ci] = max(max_pert[ci], _norm_of(xa - xb, norm))
                done += len(b) * len(grid)
                if on_progress:
                    on_progress(done, total)
    elif attack == "pgd":
        steps = int(params.get("steps", 10))
        restarts = int(params.get("restarts", 1))
        active = cc.copy()
        for i, eps in enumerate(eps_sorted):
            alpha = params.get("step_size") or params.get("rel_step_size", 0.25) * eps
            step_sizes.append(float(alpha))
            if mode == "sweep" and i > 0:
                carried = fooled[i - 1]
                fooled[i] = carried
                adv_pred[i, carried] = adv_pred[i - 1, carried]
                max_pert[i] = max_pert[i - 1]
            todo = np.flatnonzero(active if mode == "sweep" else cc)
            for b, xb, yb in batches(todo):
                alive = np.ones(len(b), dtype=bool)
                for _ in range(restarts):
                    sel = np.flatnonzero(alive)
                    if not len(sel):
                        break
                    xa = pgd(
                        model,
                        xb[sel],
                        yb[sel],
                        eps,
                        steps,
                        alpha,
                        norm,
                        bool(params.get("random_start", True)),
                        gen,
                    )
                    p = predict(model, xa, batch_size, dev)
                    adv_pred[i, b[sel]] = p
                    hit = p != labels[b[sel]]
                    fooled[i, b[sel]] = hit
                    alive[sel[hit]] = False
                    max_pert[i] = max(max_pert[i], _norm_of(xa - xb[sel], norm))
                done += len(b)
                if on_progress:
                    on_progress(min(done, total), total)
            active &= ~fooled[i]
    else:
        raise ValueError(f"attack {attack!r} is not implemented in the engine")
    return AttackResult(
        attack,
        dict(params),
        eps_sorted,
        labels,
        clean_pred,
        adv_pred,
        fooled,
        mode,
        seconds=time.perf_counter() - t0,
        max_perturbation=max_pert,
        step_sizes=step_sizes,
    )
