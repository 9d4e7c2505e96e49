"""Sanity checks that ride along with every evaluation. A violation is stored and shown, never hidden.

Each check returns {check, level, message}; level is "ok", "info" (honest but notable, e.g. FGSM rising with
epsilon because a single step overshoots) or "warning" (points to a weak or broken attack).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from rttui.engine.attacks import ta_catalogue

ITERATIVE = {"pgd", "autoattack", "deepfool"}


def iterative(attack: str) -> bool:
    """Whether an attack iterates (then accuracy rising with epsilon beyond noise points to a weak attack); the
    torchattacks catalogue's classes do, except its single-step ones (FGSM, FFGSM)."""
    c = ta_catalogue.offered().get(attack)
    return attack in ITERATIVE or (c is not None and not c.single_step)


def _tolerance(n: int) -> int:
    """Random-start noise allowance: a sample or two, or 1% of the test set, whichever is larger."""
    return max(2, n // 100)


def check_audit(attack: str, audit: dict[str, Any] | None, why_not: str | None = None) -> list[dict[str, Any]]:
    """The attack-strength audit as a check (rttui.engine.attacks.audit): a warning naming what the stronger
    attack found at each flagged eps; where the evaluation was not audited, an `info` saying why (`why_not`,
    `audit_settings.not_audited`), or nothing when no reason is given."""
    if audit is None:
        if why_not is None:
            return []
        return [{"check": "attack_strength", "level": "info", "message": f"{attack}: not audited: {why_not}"}]
    flagged = [r for r in audit["per_eps"] if r["flagged"]]
    strong = audit["stronger"]
    how = []
    if strong.get("apgd"):
        how.append(f"reference APGD-CE, {strong['apgd']['n_iter']} iterations")
    if strong.get("pgd"):
        how.append(f"PGD {strong['pgd']['steps']} steps x {strong['pgd']['restarts']} restarts")
    name = " then ".join(how)
    tol = audit.get("tolerance")
    within = f"{tol:g} images (max(3, 1% of the test set))" if tol is not None else "max(3 images, 1% of the test set)"
    if not flagged:
        n = sum(_reattacked(r) for r in audit["per_eps"])
        return [
            {
                "check": "attack_strength",
                "level": "ok",
                "message": f"{attack}: a stronger attack ({name}) re-attacked {n} survivors over the grid and showed "
                f"no eps's accuracy overstated by more than {within}",
            }
        ]
    found = "; ".join(f"eps {r['eps']:g}: {_found(r)}" for r in flagged)
    return [
        {
            "check": "attack_strength",
            "level": "warning",
            "message": f"{attack} is too weak: a stronger attack ({name}) fooled images that survived it: {found}; "
            f"its accuracy overstates robustness by more than {within} (more steps/restarts, or report the "
            "stronger attack)",
        }
    ]


def _reattacked(r: dict[str, Any]) -> int:
    """Survivors the stronger attack gave a verdict (an audit from before `reattacked` existed: its subsample)."""
    return int(r["reattacked"] if r.get("reattacked") is not None else r["n"])


def _found(r: dict[str, Any]) -> str:
    """`fooled 22 of 230 re-attacked (every survivor; 22 images overstated)` for one flagged eps."""
    done = _reattacked(r)
    fooled = done - int(r["survived_stronger"])
    if done >= int(r["survivors"]):
        return f"fooled {fooled} of {done} re-attacked (every survivor; {fooled} images overstated)"
    over = int(r["survivors"]) * fooled / done if done else 0.0
    return f"fooled {fooled} of {done} re-attacked of {r['survivors']} survivors (about {over:.0f} images overstated)"


def check_eval(attack: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks within one attack's grid: adv <= clean, and non-increasing in epsilon."""
    out = []
    rows = sorted(rows, key=lambda r: r["eps"])
    above = [r for r in rows if r["n_adv_correct"] > r["n_clean_correct"]]
    out.append(
        {
            "check": "adv_le_clean",
            "level": "warning" if above else "ok",
            "message": (
                f"{attack}: adversarial accuracy above clean at eps {above[0]['eps']}"
                if above
                else f"{attack}: adversarial accuracy <= clean accuracy at every eps"
            ),
        }
    )
    transfer = attack.startswith("transfer")
    rises = [(a, b) for a, b in pairwise(rows) if b["n_adv_correct"] > a["n_adv_correct"]]
    if not rises:
        out.append({"check": "monotone_eps", "level": "ok", "message": f"{attack}: accuracy non-increasing in eps"})
    else:
        a, b = max(rises, key=lambda ab: ab[1]["n_adv_correct"] - ab[0]["n_adv_correct"])
        d = b["n_adv_correct"] - a["n_adv_correct"]
        level = "info" if not iterative(attack) or d <= _tolerance(a["n"]) else "warning"
        why = "points to a weak attack" if iterative(attack) else "a single step can overshoot"
        if transfer:  # single-shot per eps (attacks/transfer.py): a larger ball's example can transfer worse
            why = "an example crafted at a larger eps can transfer worse"
        out.append(
            {
                "check": "monotone_eps",
                "level": level,
                "message": f"{attack}: accuracy rises by {d} samples from eps {a['eps']} to {b['eps']} ({why})",
            }
        )
    huge = check_huge_eps(attack, rows)
    if huge is not None:
        if transfer and huge["level"] == "warning":  # without the target's gradients, ~0 is not guaranteed
            huge = {**huge, "level": "info"}
        out.append(huge)
    return out


def check_pair(
    strong: str, strong_rows: list[dict[str, Any]], weak: str, weak_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """An iterative attack must not be weaker than a single-step one at the same epsilon (same test set)."""
    weak_by_eps = {r["eps"]: r for r in weak_rows if r["norm"] == "linf"}
    worst = None
    for r in strong_rows:
        w = weak_by_eps.get(r["eps"])
        if w is None or r["norm"] != "linf":
            continue
        d = r["n_adv_correct"] - w["n_adv_correct"]
        if d > 0 and (worst is None or d > worst[0]):
            worst = (d, r["eps"], r["n"])
    if worst is None:
        return {
            "check": f"{strong}_le_{weak}",
            "level": "ok",
            "message": f"{strong} accuracy <= {weak} accuracy at every shared eps",
        }
    d, eps, n = worst
    level = "warning" if d > _tolerance(n) else "info"
    return {
        "check": f"{strong}_le_{weak}",
        "level": level,
        "message": f"{strong} leaves {d} more samples correct than {weak} at eps {eps} (weak attack?)",
    }


HUGE_EPS = {"linf": 0.3, "l2": 5.0}


def check_huge_eps(attack: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """At a huge epsilon (L-inf >= 0.3: the ball holds a mid-gray image) accuracy should be ~0; if not, the
    attack is weak or the gradients are masked. None when the grid has no huge epsilon."""
    huge = [r for r in rows if r["eps"] >= HUGE_EPS.get(r.get("norm", "linf"), 0.3)]
    if not huge:
        return None
    worst = max(huge, key=lambda r: r["n_adv_correct"])
    bad = worst["n_adv_correct"] > 0
    return {
        "check": "zero_at_huge_eps",
        "level": "warning" if bad else "ok",
        "message": (
            f"{attack}: {worst['n_adv_correct']} of {worst['n']} samples still correct at huge eps {worst['eps']} "
            "(weak attack or masked gradients?)"
            if bad
            else f"{attack}: accuracy 0 at every huge eps (>= {HUGE_EPS.get(worst.get('norm', 'linf'), 0.3)})"
        ),
    }


def check_gradients(model: Any, x: Any, y: Any, max_samples: int = 64) -> dict[str, Any]:
    """Gradient masking: input gradients of the loss that are NaN/inf, or exactly zero for a sample, make
    gradient attacks look strong-willed and fail silently. Checked on up to `max_samples` test images."""
    import torch

    from rttui.engine.attacks.base import attack_mode, input_grad

    dev = next(model.parameters()).device
    xb, yb = x[:max_samples].to(dev), y[:max_samples].to(dev)
    with attack_mode(model):
        g, _ = input_grad(model, xb, yb)
    flat = g.flatten(1)
    nonfinite = int((~torch.isfinite(flat)).any(1).sum())
    zero = int((flat == 0).all(1).sum())
    n = len(flat)
    if nonfinite or zero:
        what = f"{nonfinite} NaN/inf" if nonfinite else ""
        what += (" and " if what and zero else "") + (f"{zero} all-zero" if zero else "")
        return {
            "check": "gradients",
            "level": "warning",
            "message": f"input gradients: {what} of {n} samples (gradient masking: gradient attacks are unreliable)",
        }
    return {"check": "gradients", "level": "ok", "message": f"input gradients finite and non-zero on {n} samples"}


REFERENCE_CHECKS = (
    "randomised outputs over 5 passes, probabilities instead of logits, zero input gradients, a dynamic forward"
)


def check_reference_model(model: Any, x: Any, y: Any, max_samples: int = 64) -> dict[str, Any]:
    """The reference AutoAttack's own model checks (pyautoattack's `checks`, run by the reference code itself on
    up to `max_samples` test images, whatever attack the study ran): outputs that change over repeated passes
    (a randomised defence: gradient attacks then need EOT), outputs that are a probability distribution (logits
    are needed), all-zero input gradients, and a forward pass that itself computes gradients (a dynamic
    defence). Any of them makes every white-box number of this run suspect, so it is a warning."""
    import logging
    import sys

    import torch
    from pyautoattack import checks

    from rttui.engine.attacks.autoattack import ReferenceLog
    from rttui.engine.attacks.base import attack_mode, input_grad

    dev = next(model.parameters()).device
    xb, yb = x[:max_samples].to(dev), y[:max_samples].to(dev)
    log = logging.getLogger("rttui.reference_checks")
    handler = ReferenceLog()
    log.addHandler(handler)
    log.propagate = False
    tracer = sys.gettrace()
    try:
        with attack_mode(model), torch.random.fork_rng(devices=[]):
            checks.check_randomized(model, xb, yb, bs=len(xb), logger=log)
            checks.check_range_output(model, xb, logger=log)
            g, _ = input_grad(model, xb, yb)
            checks.check_zero_gradients(g, logger=log)
            checks.funcs.update(dict.fromkeys(checks.funcs, 0))  # a module-level tally the reference never resets
            checks.check_dynamic(model, xb, False, logger=log)
    finally:
        sys.settrace(tracer)  # check_dynamic ends with sys.settrace(None)
        log.removeHandler(handler)
    if handler.warnings:
        return {
            "check": "reference_checks",
            "level": "warning",
            "message": "the reference AutoAttack's checks: " + "; ".join(_plain(w) for w in handler.warnings),
        }
    return {
        "check": "reference_checks",
        "level": "ok",
        "message": f"the reference AutoAttack's model checks passed on {len(xb)} samples ({REFERENCE_CHECKS})",
    }


def check_reference_warnings(attack: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """What the reference AutoAttack warned of while it ran this evaluation (kept in its parameters as
    `reference_warnings`), among them Square, a black-box attack, beating the white-box ones: a warning check,
    or nothing for an evaluation that is not the reference's or where it warned of nothing."""
    warned = params.get("reference_warnings") or []
    if not warned:
        return []
    return [
        {
            "check": "reference_checks",
            "level": "warning",
            "message": f"{attack}: the reference AutoAttack warned: " + "; ".join(_plain(w) for w in warned),
        }
    ]


def _plain(msg: str) -> str:
    """A reference warning without its pointer to a doc file that is not shipped."""
    return msg.split(" See flags_doc.md")[0].rstrip(" .!") or msg


def transfer_tolerance(n: int) -> int:
    """How much stronger than white-box a transfer attack may look before it is a warning: max(3 samples, 1%)."""
    return max(3, -(-n // 100))


def check_transfer(
    label: str, rows: list[dict[str, Any]], whitebox_rows: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """A transfer attack (crafted without the target's gradients) must not leave fewer samples correct than
    white-box PGD on the same target, epsilon and test set, beyond max(3 samples, 1%): if it does, the white-box
    attack is weak (too few steps, a bad step size) or something is wrong. The strongest PGD of the same norm
    is the reference at each epsilon. None when no white-box PGD shares an epsilon with it."""
    norm = rows[0].get("norm", "linf") if rows else "linf"
    best: dict[float, int] = {}
    for r in whitebox_rows:
        if r.get("norm", "linf") == norm:
            e = round(float(r["eps"]), 12)
            best[e] = min(best.get(e, r["n_adv_correct"]), r["n_adv_correct"])
    shared = [(r, best[round(float(r["eps"]), 12)]) for r in rows if round(float(r["eps"]), 12) in best]
    if not shared:
        return None
    r, wb = max(shared, key=lambda p: p[1] - p[0]["n_adv_correct"])
    d = wb - r["n_adv_correct"]
    tol = transfer_tolerance(int(r["n"]))
    if d <= 0:
        return {
            "check": "pgd_le_transfer",
            "level": "ok",
            "message": f"white-box pgd accuracy <= {label} accuracy at every shared eps",
        }
    return {
        "check": "pgd_le_transfer",
        "level": "warning" if d > tol else "info",
        "message": (
            f"{label} leaves {d} fewer samples correct than white-box pgd at eps {r['eps']:g} (tolerance {tol}): "
            "a transfer attack stronger than the white-box one means the white-box attack is weak or something "
            "is wrong"
        ),
    }


# How far robust validation accuracy may fall below its peak before the fall counts as robust overfitting: 3
# points, or 3 probe images where the probe is smaller than 100 (its random starts are fixed, so what remains is the
# model's own epoch-to-epoch wobble).
OVERFIT_TOLERANCE = 0.03


def check_robust_overfitting(
    history: list[dict[str, Any]], tolerance: float = OVERFIT_TOLERANCE
) -> dict[str, Any] | None:
    """Robust overfitting (Rice et al., 2020): the probe's robust validation accuracy at the last epoch has fallen
    by more than the tolerance from its peak while clean validation accuracy rose past the peak epoch's.

    None when training recorded no robust validation (no validation split, or the probe off)."""
    recs = [r for r in history if r.get("val_adv_acc") is not None and r.get("val_clean_acc") is not None]
    if len(recs) < 2:
        return None
    peak = max(recs, key=lambda r: (float(r["val_adv_acc"]), -int(r["epoch"])))
    last = recs[-1]
    n = _probe_n(last)
    tol = max(tolerance, 3 / n) if n else tolerance
    drop = float(peak["val_adv_acc"]) - float(last["val_adv_acc"])
    rose = float(last["val_clean_acc"]) > float(peak["val_clean_acc"])
    what = (
        f"robust validation accuracy peaked at {float(peak['val_adv_acc']):.1%} (epoch {peak['epoch']}) and ends at "
        f"{float(last['val_adv_acc']):.1%} (epoch {last['epoch']}) while clean went "
        f"{float(peak['val_clean_acc']):.1%} -> {float(last['val_clean_acc']):.1%}"
    )
    if drop > tol and rose:
        return {
            "check": "robust_overfitting",
            "level": "warning",
            "message": f'robust overfitting: {what} (tolerance {tol:.1%}); select = "best_robust" keeps the peak',
        }
    return {"check": "robust_overfitting", "level": "ok", "message": f"no robust overfitting: {what}"}


def _probe_n(rec: dict[str, Any]) -> int | None:
    """The number of images the probe attacked (its JSON `n`), None when not recorded."""
    import json

    probe = rec.get("probe")
    try:
        d = json.loads(probe) if isinstance(probe, str) else probe
    except ValueError:
        return None
    return int(d["n"]) if isinstance(d, dict) and d.get("n") else None
