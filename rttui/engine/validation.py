"""Validation while a model trains: the validation split, the per-epoch probe and the choice of checkpoint.

- `carve` splits the target's *training* split into train and validation (stratified, with its own seed); the test
  split is never an argument here, so no test image can take part in training, validation or selection.
- `Probe` measures, after an epoch, clean accuracy on the whole validation split and robust accuracy under a cheap
  attack (PGD with a few steps, or FGSM) on a fixed subset of it, with random starts that depend only on the probe's
  seed and each image's position: every epoch attacks the same images from the same starts.
- `pick_epoch` is the one rule that chooses the kept epoch from the per-epoch records.

The probe runs on the model in eval mode, under a forked RNG, and leaves the model's modes and gradients as it found
them, so training with validation follows the same trajectory as training without it.
Never imports the store, the runner or a face.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.data import Split
from rttui.errors import DataError

SELECTIONS = ("last", "best_clean", "best_robust")


def val_count(val_size: float, n: int) -> int:
    """Validation images for `val_size` (a count, or a fraction of the `n` training images)."""
    if isinstance(val_size, float) and val_size < 1:
        return round(val_size * n)
    return int(val_size)


def carve(train: Split, val_size: float, seed: int) -> tuple[Split, Split]:
    """(train, validation) from a training split: a stratified draw of `val_size` images with `seed`.

    Every class keeps at least one image on both sides, else a one-line DataError names `target.val_size` and the
    fix. The validation images stay in the draw's (seeded, shuffled) order, so the probe's "first N" is a random
    subset; the training side keeps its order.
    """
    from sklearn.model_selection import train_test_split

    y = train.y.numpy()
    n = len(y)
    k = len(np.unique(y))
    n_val = val_count(val_size, n)
    if n_val >= n:
        raise DataError(
            f"target.val_size = {val_size} asks for {n_val} of the {n} training images; "
            "use a smaller count or a fraction such as 0.1"
        )
    if n_val < k or n - n_val < k or np.bincount(y).min() < 2:
        side = "validation" if n_val < k else "training"
        raise DataError(
            f"target.val_size = {val_size} ({n_val} of {n} images) leaves a class without {side} images "
            f"({k} classes); use val_size between {k} and {n - k} images"
        )
    tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=y)
    if len(np.unique(y[va])) < k or len(np.unique(y[tr])) < k:
        raise DataError(
            f"target.val_size = {val_size} leaves a class without images on one side ({k} classes, {n} images); "
            "use a larger val_size or more training images"
        )
    return train.subset(np.sort(tr)), train.subset(va)


def pick_epoch(history: list[dict[str, Any]], select: str) -> int | None:
    """The epoch `select` keeps: the last, or the one with the highest validation accuracy (clean, or robust
    under the probe with clean accuracy breaking ties); ties go to the earlier epoch. None without epochs."""
    if not history:
        return None
    if select == "last":
        return int(history[-1]["epoch"])
    if select not in SELECTIONS:
        raise ValueError(f"unknown select {select!r}; use one of {', '.join(SELECTIONS)}")
    scored = [r for r in history if r.get("val_clean_acc") is not None]
    if not scored:
        raise ValueError(f"select = {select!r} needs per-epoch validation records; none were recorded")

    def key(r: dict[str, Any]) -> tuple[float, float, int]:
        clean, adv = float(r["val_clean_acc"]), float(r.get("val_adv_acc") or 0.0)
        return (adv, clean, -int(r["epoch"])) if select == "best_robust" else (clean, adv, -int(r["epoch"]))

    return int(max(scored, key=key)["epoch"])


# Default probe size: 2% of the training images, at least 16 and at most 512. A PGD-3 probe image costs about two
# training images' worth of compute (three input-gradient steps on an eval-mode model), so at the defaults the probe
# stays near 5% of an epoch, plus the validation split's clean pass (benchmarks/run.py: "validation" row).
PROBE_SHARE, PROBE_MIN, PROBE_MAX = 0.02, 16, 512


def probe_images(n_train: int) -> int:
    """How many validation images the probe attacks by default, for `n_train` training images."""
    return max(PROBE_MIN, min(PROBE_MAX, round(PROBE_SHARE * n_train)))


class Probe:
    """The per-epoch validation of `model` on `val`; call it after an epoch, get the record's validation fields.

    `cfg` is the resolved `[train.probe]` (attack, eps, norm, steps, rel_step_size, images, seed).
    """

    def __init__(
        self, model: nn.Module, val: Split, cfg: dict[str, Any], n_train: int = 0, batch_size: int = 250
    ) -> None:
        self.model = model
        self.val = val
        self.cfg = cfg
        self.batch_size = batch_size
        images = cfg.get("images") or probe_images(n_train)
        self.x, self.y = val.head(int(images))  # the fixed probe images: the first of the seeded validation draw
        self.eps = [float(e) for e in cfg.get("eps") or []]

    def describe(self) -> dict[str, Any]:
        """The probe's parameters as stored beside each epoch (and n, the images it attacks)."""
        d = {k: self.cfg[k] for k in ("attack", "norm", "steps", "rel_step_size", "seed") if k in self.cfg}
        return {**d, "eps": self.eps, "n": len(self.y)}

    def __call__(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        model = self.model
        dev = next(model.parameters()).device
        modes = [(m, m.training) for m in model.modules()]
        devices = [dev.index or 0] if dev.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                model.eval()
                with torch.no_grad():
                    ok = torch.cat(
                        [(model(xb).argmax(1) == yb).cpu() for xb, yb in self.val.batches(self.batch_size, device=dev)]
                    )
                clean_correct = int(ok.sum())
                # The probe images lead the validation split, so the clean pass already says which are right.
                adv = [self._robust(model, e, dev, ok[: len(self.y)]) for e in self.eps]
        finally:
            for m, flag in modes:
                m.training = flag
        n_probe = len(self.y)
        adv_acc = [a / n_probe if n_probe else 0.0 for a in adv]
        # clean accuracy on the probe's own images: the number its adversarial accuracies never exceed
        probe_clean = int(ok[:n_probe].sum()) / n_probe if n_probe else 0.0
        probe = {**self.describe(), "clean_acc": probe_clean, "adv_acc": adv_acc}
        return {
            "val_clean_acc": clean_correct / max(1, len(self.val)),
            # robust accuracy under the probe, averaged over its eps (one eps by default); per eps in `probe`
            "val_adv_acc": float(np.mean(adv_acc)) if adv_acc else None,
            "val_n": len(self.val),
            "val_seconds": time.perf_counter() - t0,
            "probe": json.dumps(probe, sort_keys=True),
        }

    def _robust(self, model: nn.Module, eps: float, dev: torch.device, clean_ok: torch.Tensor) -> int:
        """Probe images still classified correctly after the attack at `eps` (clean-wrong ones count as wrong;
        only the clean-right ones are attacked)."""
        from rttui.engine.attacks.fgsm import fgsm
        from rttui.engine.attacks.pgd import per_sample_start

        correct = 0
        norm = str(self.cfg.get("norm", "linf"))
        for s in range(0, len(self.y), self.batch_size):
            xb, yb = self.x[s : s + self.batch_size].to(dev), self.y[s : s + self.batch_size].to(dev)
            idx = torch.nonzero(clean_ok[s : s + self.batch_size]).flatten().to(dev)
            if len(idx) == 0:
                continue
            xs, ys = xb[idx], yb[idx]
            if self.cfg.get("attack", "pgd") == "fgsm":
                xa = fgsm(model, xs, ys, eps)
                with torch.no_grad():
                    correct += int((model(xa).argmax(1) == ys).sum())
            else:
                steps = int(self.cfg.get("steps", 3))
                rel = float(self.cfg.get("rel_step_size") or 2.5 / steps)
                ids = [s + int(i) for i in idx.tolist()]
                start = per_sample_start(xs, ids, eps, norm, int(self.cfg.get("seed", 0)))
                correct += int((~pgd_fooled(model, xs, ys, eps, steps, rel * eps, norm, start)).sum())
        return correct


def pgd_fooled(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float,
    norm: str,
    start: torch.Tensor,
) -> torch.Tensor:
    """PGD (the steps of rttui.engine.attacks.pgd) from `start`, stopping per image once an iterate fools the model:
    which images some iterate (the start, a step, the last) misclassifies. Every iterate stays in the eps-ball and
    [0, 1]; an image counts as fooled by any of them, so the answer is never weaker than the last iterate's, and a
    standard model's images, fooled within a step or two, cost no more steps (the probe stays cheap)."""
    from rttui.engine.attacks.base import attack_mode, input_grad, l2_norm, project

    x = x.detach()
    fooled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    x_adv = (x + project(start.detach() - x, eps, norm)).clamp(0, 1)
    alive = torch.arange(len(y), device=x.device)
    with attack_mode(model):
        for _ in range(steps):
            g, logits = input_grad(model, x_adv, y[alive])
            hit = logits.argmax(1) != y[alive]  # this iterate already fools: no more steps for it
            fooled[alive[hit]] = True
            keep = ~hit
            alive, x_adv, g = alive[keep], x_adv[keep], g[keep]
            if len(alive) == 0:
                return fooled
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            x0 = x[alive]
            x_adv = (x0 + project(x_adv + step_size * step - x0, eps, norm)).clamp(0, 1).detach()
        with torch.no_grad():
            fooled[alive[model(x_adv).argmax(1) != y[alive]]] = True
    return fooled
