"""Attack-strength audit: was the stored attack strong enough? (Carlini et al., "On evaluating adversarial
robustness": more steps, more restarts, does accuracy keep falling?)

Given what an evaluation found (which images each epsilon fooled), `audit_attack` draws a seeded subsample of the
images that SURVIVED the stored attack at each epsilon, attacks them again with a clearly stronger budget, and
counts how many the stronger attack fools. An epsilon is flagged when it fools more than max(3 samples, 1% of the
subsample): the stored accuracy there overstates robustness by more than the tolerance two independent
implementations of one attack agree within. Pure: no store, no events, a plain dict out.

The stronger attack, on each image still standing, in this order:
1. APGD-CE from the reference AutoAttack code (`pyautoattack`: adaptive step size, momentum, the paper's
   checkpoints), `apgd_iters_factor` x the stored attack's steps iterations (at least `min_iters`), one run:
   APGD-CE-20 for PGD-10 and DeepFool, APGD-CE-10 for FGSM's single step;
2. optionally (`pgd = true`) PGD on the cross-entropy with `steps_factor` x the stored steps, step size
   2.5 eps / steps (the steps travel 2.5 eps, Madry et al.'s rule), `restarts` random starts drawn per sample
   from a seed stream of its own, stopping per image once it is misclassified.
Why APGD-CE first and PGD off by default, measured on the quickstart's models (seed 0, PGD-10's survivors,
every survivor re-attacked): test_resnet/full at eps 0.01, 171 survivors: APGD-CE-100 fooled 15, PGD-100 with
5 restarts 5 (at 5x APGD's cost), both together 15; test_vit2/full at 0.01, 196 survivors: 7, 4, together 8;
at 0.03, 25 survivors: 10, 2, together 11. APGD-CE at 20 iterations (a quarter of APGD-100's time) found 11, 7
and 7 of those: still more than PGD-100 with 5 restarts at a twentieth of its cost. Hence the defaults (settings,
torch-free, in `rttui.engine.audit_settings`): APGD-CE at 2x the audited steps, at least 10 iterations; PGD off.

Cost. An image the stronger attack cannot fool costs its whole budget (apgd iterations, plus steps x restarts
with pgd on); the evaluation it audits spent steps x restarts on each image it attacked. Three things keep the
audit cheap without weakening it: the subsample (`fraction` of the survivors, within [min_samples, max_samples]);
sequential decision (images go in chunks of `chunk`, then twice as many each time, and an epsilon stops as soon
as its flag is certain; its counts are then lower bounds and `complete` is false); and nesting (one seeded order
of the test set, each epsilon takes its first survivors in that order, and an image the stronger attack fooled at
a smaller epsilon counts as fooled at every larger one without another attack: its example lies in the larger
ball). `grad_steps` reports what the audit spent; benchmarks/run.py measures its time as a fraction of the
evaluation it audits.

Must never: leave the eps-ball or [0, 1], train the model, touch the caller's random state, or attack an image
the stored attack already fooled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, l2_norm, perturbation_norm, project
from rttui.engine.attacks.pgd import _mix, per_sample_start
from rttui.engine.audit_settings import apgd_iters, base_steps, flag_threshold, resolve, subsample_size

PGD_TRAVEL = 2.5  # stronger PGD's step size = PGD_TRAVEL * eps / steps
AUDIT_SEED_SALT = 0xA0D17  # the audit's random starts and order differ from the stored attack's
BALL_TOLERANCE = 1e-5


def stronger_params(
    attack: str, params: dict[str, Any], norm: str, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stronger attack's full parameters (a plain dict, stored with the audit)."""
    s = resolve(settings)
    base = base_steps(attack, params)
    out: dict[str, Any] = {"audited_attack": attack, "base_steps": base, "norm": norm, "apgd": None, "pgd": None}
    if s["apgd"]:
        from rttui.engine.attacks.autoattack import reference_version

        out["apgd"] = {
            "implementation": "reference",
            "library": "pyautoattack",
            "library_version": reference_version(),
            "loss": "ce",
            "n_iter": apgd_iters(base, s),
            "n_restarts": 1,
            "rho": 0.75,
            "eot_iter": 1,
        }
    if s["pgd"]:
        steps = int(s["steps_factor"]) * base
        out["pgd"] = {
            "steps": steps,
            "rel_step_size": PGD_TRAVEL / steps,
            "restarts": int(s["restarts"]),
            "random_start": True,
            "early_stop": True,
            "loss": "ce",
        }
    out["order"] = [k for k in ("apgd", "pgd") if out[k]]
    out["stop_when_flagged"] = bool(s["stop_when_flagged"])
    return out


def _pgd_early_stop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: list[int],
    eps: float,
    norm: str,
    steps: int,
    restarts: int,
    seed: int,
    spent: dict[str, int],
    stop: Callable[[int], bool],
) -> tuple[torch.Tensor, bool]:
    """PGD with per-sample early stop: (which samples it fooled, whether `stop` cut it short)."""
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    alpha = PGD_TRAVEL * eps / steps
    for r in range(restarts):
        act = (~fooled).nonzero().flatten()
        if not len(act):
            break
        if stop(int(fooled.sum())):
            return fooled, True
        xa = per_sample_start(x[act], [ids[i] for i in act.tolist()], eps, norm, seed, r)
        for t in range(steps + 1):
            last = t == steps
            xg = xa.detach().requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                logits = model(xg)
                hit = logits.argmax(1) != y[act]
                if not last:
                    loss = nn.functional.cross_entropy(logits, y[act], reduction="sum")
                    (g,) = torch.autograd.grad(loss, xg)
                    spent["grad_steps"] += len(act)
            if hit.any():
                fooled[act[hit]] = True
                keep = ~hit
                act, xa = act[keep], xa[keep]
                if not last:
                    g = g[keep]
            if last or not len(act):
                break
            if stop(int(fooled.sum())):
                return fooled, True
            step = g.sign() if norm == "linf" else g / l2_norm(g)
            xa = (x[act] + project(xa + alpha * step - x[act], eps, norm)).clamp(0, 1).detach()
            _check_ball(xa, x[act], eps, norm)
    return fooled, False


def _apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, n_iter: int, seed: int):
    """The reference APGD-CE, one run; returns which samples it fooled."""
    from pyautoattack.autopgd_base import APGDAttack

    from rttui.engine.attacks.autoattack import NORMS, quiet_reference

    with quiet_reference():
        atk = APGDAttack(
            model, n_iter=n_iter, norm=NORMS[norm], n_restarts=1, eps=eps, seed=seed, loss="ce", device=x.device
        )
        xa = atk.perturb(x, y).detach()
    _check_ball(xa, x, eps, norm)
    with torch.no_grad():
        return model(xa).argmax(1) != y


def _check_ball(xa: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> None:
    if not len(x):
        return
    excess = float((perturbation_norm(xa, x, norm) - eps).max())
    if excess > BALL_TOLERANCE or float(xa.min()) < 0 or float(xa.max()) > 1:
        raise RuntimeError(f"audit attack left the {norm} eps-ball or [0, 1] (excess {excess:.3g} at eps {eps})")


def audit_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fooled: np.ndarray,
    clean_correct: np.ndarray,
    epsilons: list[float],
    attack: str,
    params: dict[str, Any],
    norm: str = "linf",
    seed: int = 0,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Re-attack a seeded subsample of each epsilon's survivors with a stronger attack (see the module doc).

    `fooled` (n_eps, n) and `clean_correct` (n,) are the stored evaluation's (AttackResult.fooled and
    .clean_correct), `epsilons` its grid in the same order, `attack` and `params` the stored attack's name and
    parameters (its steps size the stronger budget). Returns a plain, JSON-able dict:

        {"settings": {...}, "stronger": {...full parameters...}, "flagged": bool, "flagged_eps": [eps, ...],
         "grad_steps": int, "seconds": float,
         "per_eps": [{"eps", "n", "survivors", "survived_attack", "survived_stronger", "fooled_by":
                      {"smaller_eps", "apgd", "pgd"}, "fooled_ids", "threshold", "flagged", "complete",
                      "grad_steps", "seconds"}, ...]}   # in the order of `epsilons`

    `survivors` counts every image that survived the stored attack at that eps; `n` of them were re-attacked
    (`survived_attack` = n: all of them survived it); `survived_stronger` of those survive the stronger attack
    (an upper bound when `complete` is false); `fooled_ids` are the test indices the stronger attack fooled.
    """
    t_all = time.perf_counter()
    s = resolve(settings)
    strong = stronger_params(attack, params, norm, s)
    dev = next(model.parameters()).device
    n_all = len(clean_correct)
    mixed = _mix(seed, AUDIT_SEED_SALT)
    rank = np.empty(n_all, dtype=np.int64)
    rank[np.random.default_rng(mixed).permutation(n_all)] = np.arange(n_all)
    audit_seed = mixed & 0x7FFFFFFF
    fooled_stronger = np.zeros(n_all, dtype=bool)  # fooled by the stronger attack at some smaller epsilon
    rows: dict[int, dict[str, Any]] = {}
    with attack_mode(model):
        for i, eps in sorted(enumerate(epsilons), key=lambda t: t[1]):
            surv = np.flatnonzero(clean_correct & ~fooled[i])
            ctx = (s, strong, rank, audit_seed, fooled_stronger)
            rows[i] = _audit_eps(model, x, y, dev, surv, float(eps), norm, *ctx)
    per_eps = [rows[i] for i in range(len(epsilons))]
    return {
        "settings": s,
        "stronger": strong,
        "per_eps": per_eps,
        "flagged": any(r["flagged"] for r in per_eps),
        "flagged_eps": [r["eps"] for r in per_eps if r["flagged"]],
        "grad_steps": sum(r["grad_steps"] for r in per_eps),
        "seconds": round(time.perf_counter() - t_all, 4),
    }


def _chunks(todo: np.ndarray, first: int) -> list[np.ndarray]:
    """`todo` in chunks of `first`, then twice as many each time: a weak attack's flag is usually certain after
    the first chunk, and an unflagged epsilon, which must re-attack them all, gets there in larger (cheaper per
    image) batches."""
    out, start, size = [], 0, first
    while start < len(todo):
        out.append(todo[start : start + size])
        start, size = start + size, size * 2
    return out


def _audit_eps(model, x, y, dev, surv, eps, norm, s, strong, rank, audit_seed, fooled_stronger) -> dict[str, Any]:
    """One epsilon of `audit_attack`: subsample, carry what smaller epsilons found, re-attack in chunks."""
    t0 = time.perf_counter()
    n = subsample_size(len(surv), s) if eps > 0 else 0
    sub = surv[np.argsort(rank[surv], kind="stable")][:n]
    thr = flag_threshold(n)
    carried = fooled_stronger[sub]
    by = {"smaller_eps": int(carried.sum()), "apgd": 0, "pgd": 0}
    spent = {"grad_steps": 0}

    def stop(extra: int = 0) -> bool:
        return bool(s["stop_when_flagged"]) and sum(by.values()) + extra > thr

    todo = sub[~carried]
    complete = True
    for b in _chunks(todo, int(s["chunk"])):
        if stop():
            complete = False
            break
        xb, yb = x[b].to(dev), y[b].to(dev)
        hit = torch.zeros(len(b), dtype=torch.bool, device=dev)
        if strong["apgd"] is not None:
            n_iter = strong["apgd"]["n_iter"]
            hit = _apgd(model, xb, yb, eps, norm, n_iter, audit_seed)
            spent["grad_steps"] += len(b) * (n_iter + 1)
            by["apgd"] += int(hit.sum())
        rest = (~hit).nonzero().flatten()
        if strong["pgd"] is not None and len(rest):
            if stop():
                complete = False
            else:
                p = strong["pgd"]
                ids = b[rest.cpu().numpy()].tolist()
                hit_p, cut = _pgd_early_stop(
                    model, xb[rest], yb[rest], ids, eps, norm, p["steps"], p["restarts"], audit_seed, spent, stop
                )
                by["pgd"] += int(hit_p.sum())
                hit[rest[hit_p]] = True
                complete = complete and not cut
        fooled_stronger[b[hit.cpu().numpy()]] = True
    n_fooled = sum(by.values())
    return {
        "eps": eps,
        "n": int(n),
        "survivors": len(surv),
        "survived_attack": int(n),
        "survived_stronger": int(n - n_fooled),
        "fooled_by": by,
        "fooled_ids": sorted(int(j) for j in sub[fooled_stronger[sub]]),
        "threshold": thr,
        "flagged": n_fooled > thr,
        "complete": bool(complete),
        "grad_steps": spent["grad_steps"],
        "seconds": round(time.perf_counter() - t0, 4),
    }
