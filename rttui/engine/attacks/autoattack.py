"""AutoAttack (Croce & Hein, ICML 2020) run by the authors' own code: `pyautoattack` (fra31/auto-attack, the
implementation RobustBench depends on), never a re-implementation.

Versions, exactly as the reference's `AutoAttack._set_version` sets them (L-inf and L2):
- `standard`: APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations, 1 restart per target), FAB-T
  (100 iterations, 1 restart per target), Square (5,000 queries, p_init 0.8, 1 restart). RobustBench's numbers.
- `plus`: APGD-CE and APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T.
- `rand`: APGD-CE and APGD-DLR with 20 EOT iterations, for randomized defenses.
- `custom` (engine only, for tests and experiments): the attacks named in `attacks`, at the budgets the
  reference's constructor gives them (APGD 5 restarts, FAB 5 restarts, APGD-T 1, Square 5,000 queries), or
  changed through `overrides`: only the knobs the reference's own `_set_version` turns (restarts, target
  classes, Square queries; see `OVERRIDES`). Iteration counts are fixed at construction (APGD derives its
  step-size checkpoints from them), so they are not overridable.

Target classes: the reference fixes 9 for APGD-T and FAB-T (written for 10-class CIFAR-10); a model with fewer
classes gets min(9, classes - 1), every other class, which is what the reference's own `check_n_classes` allows
(it warns when more targets than classes - 1 are asked for; APGD-T would then index past the logits).
Class counts the reference cannot handle are refused up front (see `MIN_CLASSES`): the targeted DLR loss reads the
4th-largest logit (APGD-T needs >= 4 classes), the untargeted DLR loss the 3rd (APGD-DLR needs >= 3).

What the wrapper adds, changing none of the reference's numbers:
- the attack contract (base.py): eval mode and frozen parameters, so no gradient lands on the weights (the
  reference's FAB calls `.backward()` on the logits);
- the caller's torch random state is left as it was (the reference reseeds torch's global generator at every
  attack), and the caller's `sys.settrace` function survives the reference's `check_dynamic`;
- the reference's warnings (randomized or dynamic defense, zero gradients, Square beating the gradient attacks)
  are collected and returned instead of printed, so they can be stored with the result;
- the budgets it ran come back as a plain dict (`budgets`), read from the configured reference objects;
- a guard that every output lies in [0, 1] and in the eps-ball up to float rounding (`BALL_TOLERANCE`).

Must never: change a reference default, call an attack the reference does not ship, or return an x_adv outside
the eps-ball.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version
from typing import Any

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, perturbation_norm
from rttui.errors import StudyError

VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")  # what the reference ships
# Fewest classes each reference attack works with: DLR reads the 3rd-largest logit, targeted DLR the 4th.
MIN_CLASSES = {"apgd-ce": 2, "apgd-dlr": 3, "fab": 2, "square": 2, "apgd-t": 4, "fab-t": 2}
MAX_TARGET_CLASSES = 9  # the reference's n_target_classes for APGD-T and FAB-T
# Reference attributes `custom` may change: exactly those the reference's `_set_version` sets per version.
OVERRIDES = (
    "apgd.n_restarts",
    "apgd_targeted.n_restarts",
    "apgd_targeted.n_target_classes",
    "fab.n_restarts",
    "fab.n_target_classes",
    "square.n_queries",
)
NORMS = {"linf": "Linf", "l2": "L2"}
# Largest excess over eps accepted as float rounding: the reference clamps to [x - eps, x + eps] in float32, so
# (x_adv - x) can exceed eps by an ulp of x (~6e-8); L2 rescaling by ~1e-6 relative.
BALL_TOLERANCE = 1e-5

_LOGGER = "auto-attack"  # the reference's logger name


def _check_attacks(version: str, attacks: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """The attacks a version runs; one-line StudyError for an unknown version or attack name."""
    if version == "custom":
        if not attacks:
            raise StudyError(
                "attacks.autoattack.version: 'custom' needs a list of attacks; name them "
                f"(from {', '.join(ATTACKS)}) or use one of {', '.join(VERSIONS)}"
            )
        bad = [a for a in attacks if a not in ATTACKS]
        if bad:
            raise StudyError(
                f"attacks.autoattack.attacks: unknown attack {bad[0]!r}; use names from {', '.join(ATTACKS)}"
            )
        return tuple(attacks)
    if version not in VERSIONS:
        raise StudyError(
            f"attacks.autoattack.version: unknown AutoAttack version {version!r}; use one of {', '.join(VERSIONS)}"
        )
    if attacks:
        raise StudyError(
            f"attacks.autoattack.attacks: version {version!r} fixes its own attacks; drop `attacks` or use "
            "version 'custom'"
        )
    return VERSIONS[version]


def min_classes(version: str = "standard", attacks: tuple[str, ...] | list[str] | None = None) -> int:
    """The fewest classes a model needs for this version (its most demanding attack)."""
    return max(MIN_CLASSES[a] for a in _check_attacks(version, attacks))


def check_classes(
    num_classes: int, version: str = "standard", attacks: tuple[str, ...] | list[str] | None = None
) -> None:
    """Refuse an unknown version, or a model the version's attacks cannot handle, before any time is spent."""
    need = min_classes(version, attacks)
    if num_classes >= need:
        return
    names = _check_attacks(version, attacks)
    worst = next(a for a in names if MIN_CLASSES[a] == need)
    why = {
        "apgd-t": "APGD-T's targeted DLR loss reads the 4th-largest logit",
        "apgd-dlr": "APGD-DLR's loss reads the 3rd-largest logit",
    }.get(worst, f"{worst.upper()} needs {need}")
    fix = ' (version = "rand" needs 3)' if need == 4 and num_classes == 3 else ""
    raise StudyError(
        f"attacks.autoattack: the model has {num_classes} classes but AutoAttack version {version!r} needs at least "
        f"{need} ({why}); remove autoattack from the study or use a target with >= {need} classes{fix}"
    )


def target_classes(num_classes: int) -> int:
    """APGD-T's and FAB-T's target count: the reference's 9, or every other class when there are fewer."""
    return min(MAX_TARGET_CLASSES, num_classes - 1)


def _apply_overrides(adv: Any, version: str, overrides: dict[str, int] | None, num_classes: int) -> None:
    """Set the `custom` version's knobs on the reference object; one-line StudyError for anything else."""
    if not overrides:
        return
    if version != "custom":
        raise StudyError(
            f"attacks.autoattack.overrides: version {version!r} runs the reference's budgets; drop the overrides "
            "or use version 'custom'"
        )
    for key, value in overrides.items():
        if key not in OVERRIDES:
            raise StudyError(f"attacks.autoattack.overrides: unknown key {key!r}; use one of {', '.join(OVERRIDES)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise StudyError(f"attacks.autoattack.overrides.{key}: {value!r} is not a positive integer; give one")
        if key.endswith("n_target_classes") and value > num_classes - 1:
            raise StudyError(
                f"attacks.autoattack.overrides.{key}: {value} targets but the model has only {num_classes - 1} "
                f"other classes; use at most {num_classes - 1}"
            )
        obj, attr = key.split(".")
        setattr(getattr(adv, obj), attr, value)


def reference_version() -> str | None:
    try:
        return _pkg_version("pyautoattack")
    except PackageNotFoundError:
        return None


def build_reference(
    model: nn.Module,
    eps: float,
    num_classes: int,
    norm: str = "linf",
    seed: int = 0,
    version: str = "standard",
    attacks: tuple[str, ...] | list[str] | None = None,
    device: torch.device | str = "cpu",
    overrides: dict[str, int] | None = None,
) -> Any:
    """The reference `AutoAttack` object, configured as the reference configures `version`, with the target count
    lowered to `target_classes(num_classes)` where the model has fewer than 10 classes."""
    from pyautoattack import AutoAttack

    names = _check_attacks(version, attacks)
    check_classes(num_classes, version, attacks)
    if norm not in NORMS:
        raise StudyError(f"attacks.autoattack.norm: unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    adv = AutoAttack(
        model,
        norm=NORMS[norm],
        eps=eps,
        seed=seed,
        version=version,
        attacks=list(names) if version == "custom" else None,
        device=device,
    )
    k = target_classes(num_classes)
    adv.apgd_targeted.n_target_classes = min(adv.apgd_targeted.n_target_classes, k)
    adv.fab.n_target_classes = min(adv.fab.n_target_classes, k)
    _apply_overrides(adv, version, overrides, num_classes)
    return adv


def reference_budgets(
    num_classes: int,
    norm: str = "linf",
    seed: int = 0,
    version: str = "standard",
    attacks: tuple[str, ...] | list[str] | None = None,
    overrides: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The budgets `autoattack` runs for this (classes, norm, seed, version), without running anything: read from
    a reference object configured as `autoattack` configures it (they depend on nothing else)."""
    return budgets(build_reference(nn.Identity(), 0.0, num_classes, norm, seed, version, attacks, "cpu", overrides))


def budgets(adv: Any) -> dict[str, Any]:
    """What a configured reference object runs, read from its attributes (plain, JSON-able).

    Flat keys for captions and tables (`n_iter`, `n_target_classes`, `square_n_queries`) and `per_attack` with
    each attack's full budget. FAB-T always runs with 1 restart (the reference sets it just before FAB-T).
    """
    names = list(adv.attacks_to_run)
    apgd, apgdt, fab, sq = adv.apgd, adv.apgd_targeted, adv.fab, adv.square
    common = {"n_iter": apgd.n_iter, "n_restarts": apgd.n_restarts, "eot_iter": apgd.eot_iter, "rho": apgd.thr_decr}
    fab_common = {"n_iter": fab.n_iter, "alpha_max": fab.alpha_max, "eta": fab.eta, "beta": fab.beta}
    per: dict[str, dict[str, Any]] = {
        "apgd-ce": {"loss": "ce", **common},
        "apgd-dlr": {"loss": "dlr", **common},
        "apgd-t": {
            "loss": "dlr-targeted",
            "n_iter": apgdt.n_iter,
            "n_restarts": apgdt.n_restarts,
            "n_target_classes": apgdt.n_target_classes,
            "eot_iter": apgdt.eot_iter,
            "rho": apgdt.thr_decr,
        },
        # The reference sets fab.n_restarts = 1 when FAB-T runs, so a FAB after FAB-T (custom order) runs 1.
        "fab": {**fab_common, "n_restarts": 1 if "fab-t" in names[: names.index("fab")] else fab.n_restarts}
        if "fab" in names
        else {},
        "fab-t": {**fab_common, "n_restarts": 1, "n_target_classes": fab.n_target_classes},
        "square": {"n_queries": sq.n_queries, "p_init": sq.p_init, "n_restarts": sq.n_restarts, "loss": sq.loss},
    }
    targets = [per[a]["n_target_classes"] for a in names if "n_target_classes" in per[a]]
    return {
        "implementation": "reference",
        "library": "pyautoattack",
        "library_version": reference_version(),
        "version": adv.version,
        "norm": {v: k for k, v in NORMS.items()}[adv.norm],
        "attacks": names,
        "n_iter": max((per[a]["n_iter"] for a in names if a != "square"), default=None),
        "n_target_classes": max(targets) if targets else None,
        "square_n_queries": sq.n_queries if "square" in names else None,
        "seed": adv.seed,
        "per_attack": {a: per[a] for a in names},
    }


class ReferenceLog(logging.Handler):
    """Keeps the reference's log records: which attacks ran, and its warnings."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ran: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.warnings.append(msg)
        elif msg.startswith("running "):
            self.ran.append(msg.removeprefix("running "))


@contextmanager
def quiet_reference() -> Iterator[ReferenceLog]:
    """Collect the reference logger's records instead of printing them; restore the caller's tracer and RNG."""
    log = logging.getLogger(_LOGGER)
    handler = ReferenceLog()
    saved = (log.level, log.propagate)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.addHandler(handler)
    tracer = sys.gettrace()
    try:
        with torch.random.fork_rng(devices=[]):  # the reference reseeds torch's global generator
            yield handler
    finally:
        sys.settrace(tracer)  # the reference's check_dynamic ends with sys.settrace(None)
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    num_classes: int,
    norm: str = "linf",
    seed: int = 0,
    version: str = "standard",
    attacks: tuple[str, ...] | list[str] | None = None,
    overrides: dict[str, int] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The reference AutoAttack at one epsilon on one batch: (x_adv, budgets).

    x_adv is the reference's `run_standard_evaluation` output (the clean image where no attack succeeded), in
    [0, 1] and the eps-ball. The whole batch goes to the reference as one batch (its `batch_size = len(x)`), so
    the result equals calling the reference directly with that batch. `budgets` is `budgets(...)` of the object
    that ran, plus `attacks_ran` (the attacks that met at least one surviving image, in order) and
    `reference_warnings` (the reference's own checks that fired).
    """
    check_classes(num_classes, version, attacks)
    x = x.detach()
    dev = x.device
    with attack_mode(model):
        adv = build_reference(model, eps, num_classes, norm, seed, version, attacks, dev, overrides)
        info = budgets(adv)
        if eps == 0 or not len(x):
            return x.clone(), {**info, "attacks_ran": [], "reference_warnings": []}
        with quiet_reference() as log:
            x_adv, _ = adv.run_standard_evaluation(x, y.to(dev), batch_size=len(x))
    x_adv = x_adv.detach()
    excess = float((perturbation_norm(x_adv, x, norm) - eps).max())
    if excess > BALL_TOLERANCE or float(x_adv.min()) < 0 or float(x_adv.max()) > 1:
        raise RuntimeError(
            f"reference AutoAttack left the {norm} eps-ball or [0, 1] (excess {excess:.3g} at eps {eps}); "
            "this is a bug to report, not a result"
        )
    return x_adv, {**info, "attacks_ran": log.ran, "reference_warnings": log.warnings}
