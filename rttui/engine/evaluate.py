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
accuracy never rises with epsilon. The transfer attack is the exception to sweep mode: it is single-shot at every
epsilon in either mode (attacks/transfer.py: carrying a fooling example forward needs the target's answers).

The attack-specific sweeps (which samples are attacked at which epsilon) are the drivers registered in
`rttui.engine.attacks` (attacks/sweep.py); this module sets the model up for them and packages their answer.

Every metric row carries `mode`, `precision` and `path` (how the numbers were computed: sweep or independent,
warm start, batched DeepFool, channels-last, compiled model, cached-feature training), so no shortcut is silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.registry import get_attack
from rttui.engine.attacks.sweep import Sweep


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
    data_seconds: float = 0.0  # of `seconds`, the time spent gathering batches and copying them to the device

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


def evaluate_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str,
    params: dict[str, Any],
    epsilons: list[float],
    *,
    mode: str = "sweep",
    batch_size: int = 250,
    seed: int = 0,
    clean_pred: np.ndarray | None = None,
    on_progress: Any = None,
    num_classes: int | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
    train_path: str | None = None,
    labels: str = "true",
    surrogate: Any = None,
    on_eps: Callable[[float, int, int], None] | None = None,
) -> AttackResult:
    """Attack every clean-correct test sample at every epsilon of the grid (see module doc for modes).

    `precision="bf16"` turns on bf16 autocast on CUDA only (fp32 elsewhere; the row records what ran).
    `train_path` names how the model was trained (e.g. "cached_features"), recorded in each row's path.
    `labels="predicted"` attacks every sample away from the model's own clean prediction instead of its label
    (every sample is then "clean-correct"; the row's path says `predicted_labels`): a smoke run uses it so each
    attack runs on every image even on an untrained model, and throughput benchmarks so the work is known.
    `surrogate` is the model a transfer attack crafts on (`attacks.transfer.Surrogate`); `model` only classifies.
    `on_eps(eps, n_adv_correct, n)` is called once per grid epsilon, ascending, with the counts the result's row
    of that epsilon will hold: as each epsilon finishes where the attack works through the grid one epsilon at a
    time, else (an attack that computes the whole grid at once) for every epsilon at the end. A caller shows
    per-epsilon accuracy with it while the grid runs; the engine never decides where it goes.
    """
    driver = get_attack(attack)
    t0 = time.perf_counter()
    dev = next(model.parameters()).device
    data_wait = [0.0]
    with channels_last(model, enabled=driver.info.channels_last) as nhwc:
        model.eval()
        cuda = dev.type == "cuda"
        parts = [mode]
        fwd = model
        if labels == "predicted":
            if clean_pred is None:
                clean_pred = predict(model, x, batch_size, dev)
            y = torch.as_tensor(clean_pred)
            parts.append("predicted_labels")
        elif labels != "true":
            raise ValueError(f"labels must be 'true' or 'predicted', not {labels!r}")
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

        def to_dev(t: torch.Tensor) -> torch.Tensor:
            t = t.to(dev, non_blocking=True)
            return t.contiguous(memory_format=torch.channels_last) if nhwc and t.ndim == 4 else t

        def batches(idx: np.ndarray):
            for s in range(0, len(idx), batch_size):
                t = time.perf_counter()
                b = idx[s : s + batch_size]
                xb, yb = to_dev(x[b]), to_dev(y[b])
                data_wait[0] += time.perf_counter() - t  # gathering and copying the batch: the attack waits
                yield b, xb, yb

        def pred(t: torch.Tensor) -> np.ndarray:
            return predict(fwd, t, pred_bs, dev)

        sweep = Sweep(
            model=fwd,
            x=x,
            labels=y.cpu().numpy(),
            epsilons=sorted(epsilons),
            params=params,
            mode=mode,
            seed=seed,
            clean_pred=clean_pred,
            batches=batches,
            pred=pred,
            to_dev=to_dev,
            on_progress=on_progress,
            num_classes=num_classes,
            batch_size=batch_size,
            surrogate=surrogate,
            on_eps=on_eps,
        )
        with autocast:
            swept = driver.run(sweep)
        for i in range(len(sweep.epsilons)):  # what the driver did not report as it went (the whole grid at once)
            sweep.eps_done(i, swept.clean_pred, swept.fooled)
        parts += swept.path
        if train_path:
            parts.append(train_path)
        out_params = dict(params)
        for key, value in swept.param_defaults.items():
            out_params.setdefault(key, value)
        return AttackResult(
            attack,
            out_params,
            sweep.epsilons,
            sweep.labels,
            swept.clean_pred,
            swept.adv_pred,
            swept.fooled,
            mode,
            precision="bf16" if amp else "fp32",
            seconds=time.perf_counter() - t0,
            max_perturbation=swept.max_perturbation,
            step_sizes=swept.step_sizes,
            min_norm=swept.min_norm,
            path="+".join(parts),
            data_seconds=data_wait[0],
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
