"""The attack-strength audit's settings (`[eval.audit]` in a study): keys, defaults, help and validation.

Torch-free on purpose: study validation and `rttui --help` read it without importing torch
(`rttui.engine.attacks.audit` runs the audit and imports this). Never import torch or another rttui layer here.

Defaults, and why (measured on the quickstart's models, PGD-10's survivors re-attacked, under load):
APGD-CE from the reference code at 20 iterations found 11 and 7 of the images PGD-10 missed at eps 0.01 where
PGD-100 with 5 restarts found 5 and 4, at about a tenth of that cost; APGD-CE at 100 iterations found 15 and 7.
So the stronger attack is the reference APGD-CE at `apgd_iters_factor` x the audited attack's steps (at least
`min_iters`), and PGD with `steps_factor` x steps and `restarts` random starts is available but off.
"""

from __future__ import annotations

import math
from typing import Any

from rttui.engine.attacks import ta_catalogue

# rttui's attacks audited by default (AutoAttack is the stronger attack itself; a transfer attack is not the
# target's worst case by design), plus every torchattacks class that attacks an L-inf or L2 ball (`audited`).
AUDITED = ("fgsm", "pgd", "deepfool")

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "max_samples": 200,
    "fraction": 0.25,
    "min_samples": 50,
    "chunk": 25,
    "apgd": True,
    "apgd_iters_factor": 2,
    "min_iters": 10,
    "pgd": False,
    "steps_factor": 10,
    "restarts": 5,
    "stop_when_flagged": True,
    "escalate": True,
}
HELP: dict[str, str] = {
    "enabled": "audit every FGSM, PGD and DeepFool evaluation (true/false)",
    "max_samples": "most survivors re-attacked per epsilon (positive integer)",
    "fraction": "share of each epsilon's survivors re-attacked, in (0, 1], before min_samples/max_samples apply",
    "min_samples": "fewest survivors re-attacked per epsilon when there are that many (positive integer)",
    "chunk": "with stop_when_flagged (escalate off), images per eps re-attacked before its flag is checked",
    "apgd": "re-attack with the reference APGD-CE (pyautoattack) first (true/false)",
    "apgd_iters_factor": "APGD-CE iterations as a multiple of the audited steps, at least min_iters (positive integer)",
    "min_iters": "fewest APGD-CE iterations whatever the audited attack's steps (positive integer; smoke runs cut it)",
    "pgd": "also re-attack with PGD, steps_factor x steps and `restarts` random starts (true/false)",
    "steps_factor": "stronger PGD steps as a multiple of the audited attack's steps (positive integer)",
    "restarts": "random starts of the stronger PGD (positive integer)",
    "stop_when_flagged": "without escalate, stop an epsilon's subsample once its flag is certain (true/false)",
    "escalate": "re-attack every survivor of a flagged epsilon: its fooled set is then exact (true/false)",
}
BOOLS = ("enabled", "apgd", "pgd", "stop_when_flagged", "escalate")
INTS = ("max_samples", "min_samples", "chunk", "apgd_iters_factor", "min_iters", "steps_factor", "restarts")
# Steps the audited attack is taken to have spent when it is not PGD: FGSM is one step; DeepFool minimizes a norm
# rather than spending a budget, so its audit is sized as PGD-10's.
BASE_STEPS = {"fgsm": 1, "deepfool": 10}


def check_settings(settings: Any, where: str = "eval.audit") -> list[str]:
    """One line per problem with an [eval.audit] table (unknown key, wrong type, non-positive number), each
    naming the key and the fix; empty when it is fine."""
    if not isinstance(settings, dict):
        return [f"{where}: expected a table such as [eval.audit] with enabled = true; write it as a table"]
    out = []
    for key, value in settings.items():
        at = f"{where}.{key}"
        if key not in DEFAULTS:
            out.append(f"{at}: unknown key; use one of {', '.join(DEFAULTS)}")
        elif key in BOOLS and not isinstance(value, bool):
            out.append(f"{at}: {value!r} is not true/false; write true or false")
        elif key in INTS and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            out.append(f"{at}: {value!r} is not a positive integer; give one (default {DEFAULTS[key]})")
        elif key == "fraction" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1
        ):
            out.append(f"{at}: {value!r} is not a number in (0, 1]; give one (default {DEFAULTS[key]})")
    if not out:
        s = resolve(settings)
        if s["enabled"] and not (s["apgd"] or s["pgd"]):
            out.append(f"{where}: apgd and pgd are both false, so there is no stronger attack; set apgd = true")
    return out


def resolve(settings: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS updated with `settings` (validated by the caller with `check_settings`)."""
    return {**DEFAULTS, **(settings or {})}


def tolerance(n_test: int) -> float:
    """Images by which an accuracy on `n_test` test images may be off before it is wrong: max(3 images, 1% of the
    test set), the tolerance within which two independent implementations of one attack agree (FACTS.md)."""
    return max(3.0, 0.01 * n_test)


def overstated(survivors: int, reattacked: int, fooled: int) -> float:
    """Images by which the stored robust count overstates the stronger attack's, estimated from a subsample:
    `fooled` of `reattacked` randomly chosen survivors fell, so survivors x fooled / reattacked of all
    `survivors` are expected to (exact when reattacked == survivors)."""
    return survivors * fooled / reattacked if reattacked else 0.0


def is_flagged(survivors: int, reattacked: int, fooled: int, n_test: int) -> bool:
    """The flag rule: the stronger attack shows the stored accuracy at this eps overstated by more than the
    tolerance, survivors x fooled / reattacked > max(3, n_test / 100) (in integers, so no rounding decides)."""
    return reattacked > 0 and 100 * survivors * fooled > max(300, n_test) * reattacked


def flag_threshold(survivors: int, reattacked: int, n_test: int) -> int:
    """The most images of `reattacked` the stronger attack may fool without a flag: floor(tolerance x
    reattacked / survivors) (0 when nothing was re-attacked)."""
    if not reattacked:
        return 0
    return (max(300, n_test) * reattacked) // (100 * survivors)


def miss_probability(fooled_share: float, survivors: int, n_test: int, s: dict[str, Any] | None = None) -> float:
    """The flag rule's false-negative rate: the probability that a subsample of the default (or `s`'s) size,
    drawn from `survivors` of which a `fooled_share` would fall to the stronger attack, is not flagged
    (hypergeometric). Meaningful where survivors x fooled_share exceeds the tolerance (the cell should be
    flagged); imports scipy."""
    from scipy.stats import hypergeom

    m = subsample_size(survivors, resolve(s))
    k = round(fooled_share * survivors)
    return float(hypergeom(survivors, k, m).cdf(flag_threshold(survivors, m, n_test)))


def estimate(survivors: int, reattacked: int, fooled: int, level: float = 0.95) -> tuple[float, float, float]:
    """The stronger attack's robust count at this eps (test images, not accuracy), estimated from a subsample:
    survivors x (reattacked - fooled) / reattacked, with a Clopper-Pearson interval at `level` on the surviving
    share (binomial, so conservative for a sample drawn without replacement). Exact when every survivor was
    re-attacked: then the three numbers are equal. Imports scipy only for a partial subsample."""
    if reattacked >= survivors or not survivors:
        exact = float(survivors - fooled) if reattacked else float(survivors)
        return exact, exact, exact
    if not reattacked:
        return float("nan"), 0.0, float(survivors)
    from scipy.stats import beta

    k, a = reattacked - fooled, (1 - level) / 2
    lo = float(beta.ppf(a, k, reattacked - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - a, k + 1, reattacked - k)) if k < reattacked else 1.0
    return survivors * k / reattacked, survivors * lo, survivors * hi


def subsample_size(survivors: int, s: dict[str, Any]) -> int:
    """How many of an epsilon's survivors are re-attacked: `fraction` of them, within [min_samples, max_samples]."""
    want = max(int(s["min_samples"]), math.ceil(float(s["fraction"]) * survivors))
    return min(survivors, int(s["max_samples"]), want)


def audited(attack: str) -> bool:
    """Whether evaluations of `attack` are audited: rttui's FGSM, PGD and DeepFool, and the torchattacks catalogue's
    `ball` classes (each runs at every eps in an L-inf or L2 ball, so APGD-CE can attack the same ball). Its
    `minimal` classes (CW, DeepFool) are not: rttui's own DeepFool is audited for that role."""
    c = ta_catalogue.offered().get(attack)
    return attack in AUDITED or (c is not None and c.kind == "ball")


def not_audited(attack: str) -> str:
    """Why an evaluation of `attack` carries no audit, in a phrase for its check."""
    c = ta_catalogue.offered().get(attack)
    if audited(attack):
        return "the study turned the audit off ([eval.audit] enabled = false)"
    if attack == "autoattack":
        return "AutoAttack is the reference the audit attacks with (its APGD-CE is the stronger attack)"
    if attack.startswith("transfer"):
        return "a transfer attack never queries the target, so a stronger white-box attack is not its audit"
    if c is not None and c.kind == "minimal":
        return "a minimal-perturbation class projected per eps; rttui's DeepFool is audited in that role"
    return "no stronger attack is defined for it"


def base_steps(attack: str, params: dict[str, Any]) -> int:
    """The steps the audited attack spent per image, which size the stronger budget: PGD's and a torchattacks
    class's `steps` (one for its single-step classes), FGSM's one, DeepFool sized as PGD-10."""
    c = ta_catalogue.offered().get(attack)
    if c is not None:
        return 1 if c.single_step else int(params.get("steps") or 10)
    return int(params.get("steps", 10)) if attack == "pgd" else BASE_STEPS.get(attack, 10)


def apgd_iters(base: int, s: dict[str, Any]) -> int:
    """APGD-CE iterations of the audit of an attack that spent `base` steps (`s`: resolved settings).

    With the defaults FGSM's audit is APGD-CE-10, ten times its one step (the audit's "10x the steps" budget), and
    PGD-10's and DeepFool's APGD-CE-20 (2 x 10). `min_iters` stays at 10 or more because APGD's step-size
    checkpoints (at 22%, then steps of 6%, 3%, ... of the iterations) mean little on fewer; a smoke run lowers it,
    since it checks that the audit runs, not what it finds."""
    return max(int(s["min_iters"]), int(s["apgd_iters_factor"]) * base)


def cost_per_image(attack: str, params: dict[str, Any], settings: dict[str, Any] | None) -> int:
    """Gradient steps the audit may spend on one re-attacked image at one epsilon (its worst case)."""
    s = resolve(settings)
    if not s["enabled"] or not audited(attack):
        return 0
    base = base_steps(attack, params)
    apgd = apgd_iters(base, s) + 1 if s["apgd"] else 0
    pgd = int(s["steps_factor"]) * base * int(s["restarts"]) if s["pgd"] else 0
    return apgd + pgd
