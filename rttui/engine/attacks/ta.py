"""The torchattacks catalogue as rttui attacks (extra `rttui[torchattacks]`): one sweep driver per `ta:<Class>`.

`register_catalogue()` registers a driver for every class `rttui.engine.attacks.ta_catalogue` offers, and only when
torchattacks is importable (the package `__init__` calls it; torchattacks itself is imported when an attack runs).
Every class runs under rttui's contract: eval mode with frozen weights (`attack_mode`), inputs in [0, 1],
epsilons in [0, 1] pixel units, the model's own class count and the run's seed passed where the class takes them.

- `ball` classes run once per grid epsilon, like AutoAttack here: in sweep mode only samples still robust at the
  previous epsilon are attacked. Every example is checked before anything is stored: finite, in the image box
  and in the eps-ball of the attack's norm (up to float32 rounding); one outside fails the evaluation with the
  reason, so no number computed from it is ever stored.
- `minimal` classes (CW, DeepFool) run once per sample; at each epsilon an example inside the ball keeps its own
  label and one beyond it is projected onto the ball and re-checked, exactly as rttui's DeepFool; the norm of
  each fooling perturbation is stored as the sample's `min_norm`.

Each row's `path` names the torchattacks release that computed it. Torch's global random state is left as it
was: each call draws from a generator seeded by (run seed, epsilon index, first sample), so a study gives the
same numbers run after run. Never import another rttui layer here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode, perturbation_norm
from rttui.engine.attacks.names import AttackInfo
from rttui.engine.attacks.registry import REGISTRY, register_attack
from rttui.engine.attacks.sweep import BallAttack, Sweep, Swept, sweep_minimal, sweep_per_eps
from rttui.engine.attacks.ta_catalogue import FILLED, TA_NORMS, TaClass, installed, offered, study_params
from rttui.errors import RttuiError

FLOAT32_ULP = float(np.finfo(np.float32).eps)


class OutsideBall(RttuiError):
    """A catalogue attack returned an example outside its eps-ball or the image box: nothing is stored."""


def register_catalogue() -> list[str]:
    """Register a driver for every offered `ta:` class when torchattacks is installed; returns the new names."""
    if not installed():
        return []
    added = []
    for name, c in offered().items():
        if name in REGISTRY:
            continue
        # torchattacks reshapes input gradients with .view in several classes: keep inputs NCHW.
        register_attack(name, AttackInfo(name, f"torchattacks {c.name}: {c.help}", channels_last=False))(_driver(c))
        added.append(name)
    return added


def _driver(c: TaClass) -> Any:
    def run(sw: Sweep) -> Swept:
        return sweep_minimal_class(c, sw) if c.kind == "minimal" else sweep_ball(c, sw)

    run.__name__ = run.__qualname__ = f"sweep_ta_{c.name}"
    run.__doc__ = f"torchattacks {c.name} over an epsilon grid ({c.kind})."
    return run


def _class(c: TaClass) -> Any:
    import torchattacks

    return getattr(torchattacks, c.name)


def constructor_kwargs(c: TaClass, params: dict[str, Any], num_classes: int, seed: int) -> dict[str, Any]:
    """The class's keyword arguments: the study's parameters (rttui's `norm` spelled torchattacks' way where the
    class takes one) plus what rttui fills (class count, seed, quiet); epsilon and step size are added per eps."""
    allowed = set(study_params(c)) & set(c.params) - {"norm", "alpha"}
    kw = {k: v for k, v in params.items() if k in allowed}
    if c.norm == "param":
        kw["norm"] = TA_NORMS[params.get("norm", "linf")]
    filled = {"n_classes": num_classes, "seed": seed, "verbose": False}
    kw.update({k: v for k, v in filled.items() if k in c.params and k in FILLED})
    return kw


def step_size(c: TaClass, params: dict[str, Any], eps: float) -> float | None:
    """The step size at one epsilon: the study's absolute `alpha`, else `rel_alpha * eps` (None: no step size)."""
    if "alpha" not in c.params:
        return None
    alpha = params.get("alpha")
    if alpha is not None:
        return float(alpha)
    return float(params.get("rel_alpha", study_params(c).get("rel_alpha", 0.25))) * eps


def _num_classes(sw: Sweep) -> int:
    if sw.num_classes is not None:
        return sw.num_classes
    with torch.no_grad():
        return int(sw.model(sw.to_dev(sw.x[:1])).shape[1])


def _seeded(seed: int, i: int, first: int, device: torch.device) -> Any:
    """A fork of torch's random state seeded for this call (restored afterwards)."""
    devices = [device] if device.type == "cuda" else []
    fork = torch.random.fork_rng(devices=devices)
    fork.__enter__()
    torch.manual_seed((seed * 1_000_003 + i * 10_007 + first) % (2**63))
    return fork


def _call(
    atk: Any, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, seed: int, i: int, first: int
) -> torch.Tensor:
    fork = _seeded(seed, i, first, xb.device)
    try:
        with attack_mode(model):
            xa = atk(xb, yb)
    finally:
        fork.__exit__(None, None, None)
    return xa.detach().to(xb.dtype)


def check_box(name: str, xa: torch.Tensor) -> None:
    """Finite and inside [0, 1], or the evaluation stops with the reason."""
    if not torch.isfinite(xa).all():
        raise OutsideBall(f"{name} returned NaN/inf pixels; nothing was stored (report it, or use another attack)")
    lo, hi = float(xa.min()), float(xa.max())
    if lo < 0 or hi > 1:
        raise OutsideBall(
            f"{name} returned pixels outside [0, 1] (min {lo:.6g}, max {hi:.6g}); nothing was stored "
            "(report it, or use another attack)"
        )


def check_ball(name: str, xa: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Every example inside the eps-ball (float32 rounding allowed for), or the evaluation stops with the reason.
    Returns the per-sample norms."""
    check_box(name, xa)
    d = perturbation_norm(xa, x, norm).float()
    dims = x[0].numel() if len(x) else 1
    tol = 4 * FLOAT32_ULP * (math.sqrt(dims) if norm == "l2" else 1.0) + 1e-6 * eps
    bad = d > eps + tol
    if bool(bad.any()):
        raise OutsideBall(
            f"{name} returned {int(bad.sum())} of {len(x)} examples outside the {norm} ball of eps {eps} "
            f"(largest perturbation {float(d.max()):.6g}); nothing was stored (report it, or use another attack)"
        )
    return d


def sweep_ball(c: TaClass, sw: Sweep) -> Swept:
    """A class that takes an epsilon, once per grid epsilon (`sweep.sweep_per_eps`: sweep mode attacks only the
    still-robust samples); every example is checked to lie in its ball before anything is stored."""
    cls = _class(c)
    model, norm = sw.model, sw.norm
    kw = constructor_kwargs(c, sw.params, _num_classes(sw), sw.seed)
    steps = [step_size(c, sw.params, eps) for eps in sw.epsilons]

    def attack_at(i: int, eps: float) -> BallAttack | None:
        if eps == 0:  # the ball is a point: nothing to attack, clean predictions stand
            return None
        per_eps = {c.eps_param or "eps": eps} | ({"alpha": steps[i]} if steps[i] is not None else {})
        atk = cls(model, **per_eps, **kw)

        def attack(b: np.ndarray, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            xa = _call(atk, model, xb, yb, sw.seed, i, int(b[0]))
            check_ball(c.attack, xa, xb, eps, norm)
            return xa

        return attack

    clean_pred, adv_pred, fooled, max_pert = sweep_per_eps(sw, attack_at)
    return Swept(clean_pred, adv_pred, fooled, max_pert, steps, path=[_version()])


def sweep_minimal_class(c: TaClass, sw: Sweep) -> Swept:
    """A minimal-perturbation class (no epsilon), once per clean-correct sample, graded per epsilon by
    `sweep.sweep_minimal` as rttui's DeepFool is; its examples must be finite and in [0, 1], and every projection
    onto a ball must land in it."""
    cls = _class(c)
    model, norm = sw.model, sw.norm
    atk = cls(model, **constructor_kwargs(c, sw.params, _num_classes(sw), sw.seed))

    def attack(b: np.ndarray, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, None]:
        xa = _call(atk, model, xb, yb, sw.seed, 0, int(b[0]))
        check_box(c.attack, xa)
        return xa, None

    def in_ball(xp: torch.Tensor, x0: torch.Tensor, eps: float) -> None:
        check_ball(c.attack, xp, x0, eps, norm)

    clean_pred, adv_pred, fooled, max_pert, min_norm = sweep_minimal(sw, attack, in_ball)
    return Swept(
        clean_pred,
        adv_pred,
        fooled,
        max_pert,
        [None] * len(sw.epsilons),
        min_norm=min_norm,
        path=["projected", _version()],
    )


def _version() -> str:
    """Recorded in every row's path: which torchattacks computed it."""
    import torchattacks

    return f"torchattacks-{torchattacks.__version__}"
