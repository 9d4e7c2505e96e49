"""The torchattacks catalogue as data: every attack class torchattacks ships, what rttui does with it, and its
constructor's parameters, so a study naming `ta:CW` validates without importing torch or torchattacks.

Torch-free on purpose (like `attack_names`): `rttui validate` and the study catalog read it, the Builder lists it.
The signatures are torchattacks 3.5.1's, written out once; `tests/engine/test_ta_catalogue.py` introspects the
installed package and fails with the new table when a release adds, drops or changes a class. Whether the extra
is installed is asked of the import system (`installed()`), which imports nothing.

How rttui runs each kind (the drivers are in `rttui.engine.attacks.ta`):
- `ball`: the class takes an epsilon; it runs once per grid epsilon (in [0, 1] pixel units, like every attack
  here) and each example is checked to lie in the eps-ball and the image box before it is stored.
- `minimal`: the class takes no epsilon and looks for the smallest perturbation (CW, DeepFool, both L2); it runs
  once per sample and each epsilon projects that example onto the ball and re-checks it, as rttui's DeepFool does.
- `refused`: not offered, with the reason: an L0/L1 objective (projecting it onto an L-inf or L2 ball would
  measure an attack it is not), no attack at all (noise, identity), or extra inputs a study cannot give.

Never import torch, torchattacks or another rttui layer here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

PREFIX = "ta:"
EXTRA = "torchattacks"
INSTALL = "pip install 'rttui[torchattacks]'"
TESTED_VERSION = "3.5.1"

# Constructor arguments rttui fills itself, never a study: the epsilon (per grid point), the model's class count
# (a wrong one raises IndexError deep inside APGD-T/FAB), the run's seed, and quiet output.
FILLED = frozenset({"eps", "max_epsilon", "n_classes", "seed", "verbose"})
# Integer arguments that count something; every other number accepts a float too (CW's `c = 1` is a float).
COUNTS = frozenset(
    {
        "steps",
        "n_restarts",
        "n_queries",
        "eot_iter",
        "nb_iter",
        "nb_sample",
        "max_batch_size",
        "binary_search_steps",
        "max_iterations",
        "N",
        "m",
        "len_kernel",
        "nsig",
        "noise_batch_size",
        "batch_max",
        "pixels",
        "popsize",
        "inf_batch",
        "restarts",
        "num_iter_set",
    }
)
# The ranges torchattacks' own code needs, beyond "a count is at least 1, a number at least 0" (which every
# parameter gets): (low, high, low excluded). A step, learning rate or loss weight of 0 moves nothing (the
# adversarial accuracy would equal the clean one and be stored as a result); a probability or fraction lies in
# [0, 1]; a zero divisor or resize rate fails mid-run. Keys that mean different things in different classes
# (FAB's `beta` is a fraction, VMI-FGSM's a neighbourhood factor) are given per class as "CLASS.key".
RANGES: dict[str, tuple[float, float | None, bool]] = {
    "alpha": (0.0, 1.0, True),  # an absolute step, in [0, 1] pixel units like every epsilon
    "rel_alpha": (0.0, None, True),
    "lr": (0.0, None, True),  # CW's optimiser, SPSA's
    "c": (0.0, None, True),  # CW's weight of the misclassification loss: 0 only shrinks the perturbation
    "delta": (0.0, None, True),  # SPSA's finite-difference step
    "rho": (0.0, 1.0, True),  # APGD's step-size checkpoint fraction
    "p_init": (0.0, 1.0, True),  # Square's first patch fraction
    "diversity_prob": (0.0, 1.0, False),
    "prob": (0.0, 1.0, False),
    "resize_rate": (0.0, None, True),
    "eps_for_division": (0.0, None, True),
    "FAB.alpha_max": (0.0, 1.0, False),
    "FAB.beta": (0.0, 1.0, False),
    "FAB.eta": (1.0, None, False),  # the overshoot past the boundary (the paper's eta >= 1)
}


def param_range(c: TaClass, key: str) -> tuple[float, float | None, bool] | None:
    """The range `RANGES` gives a class's parameter, or None (then: counts >= 1, other numbers >= 0)."""
    return RANGES.get(f"{c.name}.{key}", RANGES.get(key))


TA_NORMS = {"linf": "Linf", "l2": "L2"}  # rttui's spelling -> torchattacks'
EPS8 = 8 / 255
STEP2 = 2 / 255


@dataclass(frozen=True)
class TaClass:
    """One torchattacks class: its constructor's keyword defaults (exactly as torchattacks declares them) and
    how rttui runs it. `norm` is the threat model: "linf", "l2", or "param" when the class takes `norm`."""

    name: str
    help: str
    params: dict[str, Any]
    kind: str  # "ball" | "minimal" | "refused"
    norm: str = "linf"
    eps_param: str | None = "eps"
    reason: str = ""
    single_step: bool = False
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def attack(self) -> str:
        """The name a study uses."""
        return PREFIX + self.name


def _ball(name: str, help: str, params: dict[str, Any], **kw: Any) -> TaClass:
    return TaClass(name, help, params, "ball", **kw)


def _minimal(name: str, help: str, params: dict[str, Any]) -> TaClass:
    """An L2 minimal-perturbation class: run once, projected onto each epsilon's ball (L2 unless the study says)."""
    return TaClass(name, help, params, "minimal", norm="l2", eps_param=None)


def _refused(name: str, help: str, params: dict[str, Any], reason: str) -> TaClass:
    return TaClass(name, help, params, "refused", norm="", eps_param=None, reason=reason)


L0 = "an L0 attack (it changes a few pixels by any amount); rttui's epsilon grid is L-inf or L2"
PGD_ARGS = {"eps": EPS8, "alpha": STEP2, "steps": 10}
RS_ARGS = {"noise_type": "guassian", "noise_sd": 0.5, "noise_batch_size": 5, "batch_max": 2048}

CLASSES: dict[str, TaClass] = {
    c.name: c
    for c in [
        _ball(
            "APGD",
            "APGD (Croce & Hein 2020), step-size-free PGD",
            {
                "norm": "Linf",
                "eps": EPS8,
                "steps": 10,
                "n_restarts": 1,
                "seed": 0,
                "loss": "ce",
                "eot_iter": 1,
                "rho": 0.75,
                "verbose": False,
            },
            norm="param",
            choices={"loss": ("ce", "dlr")},
        ),
        _ball(
            "APGDT",
            "APGD-T (Croce & Hein 2020), targeted APGD over the most likely classes",
            {
                "norm": "Linf",
                "eps": EPS8,
                "steps": 10,
                "n_restarts": 1,
                "seed": 0,
                "eot_iter": 1,
                "rho": 0.75,
                "verbose": False,
                "n_classes": 10,
            },
            norm="param",
        ),
        _ball(
            "AutoAttack",
            "torchattacks' AutoAttack (APGD-CE, APGD-T, FAB-T, Square at 10 iterations, not the reference's 100)",
            {"norm": "Linf", "eps": EPS8, "version": "standard", "n_classes": 10, "seed": None, "verbose": False},
            norm="param",
            choices={"version": ("standard", "plus", "rand")},
        ),
        _ball("BIM", "BIM / iterative FGSM (Kurakin et al. 2016)", dict(PGD_ARGS)),
        _minimal("CW", "Carlini-Wagner L2 (2017), minimal perturbation", {"c": 1, "kappa": 0, "steps": 50, "lr": 0.01}),
        _minimal(
            "DeepFool",
            "torchattacks' DeepFool (L2, overshoot per step), minimal perturbation",
            {"steps": 50, "overshoot": 0.02},
        ),
        _ball(
            "DIFGSM",
            "DI2-FGSM (Xie et al. 2019), input diversity",
            {**PGD_ARGS, "decay": 0.0, "resize_rate": 0.9, "diversity_prob": 0.5, "random_start": False},
        ),
        _refused(
            "EADEN",
            "EAD elastic-net attack (Chen et al. 2018)",
            {
                "kappa": 0,
                "lr": 0.01,
                "binary_search_steps": 9,
                "max_iterations": 100,
                "abort_early": True,
                "initial_const": 0.001,
                "beta": 0.001,
            },
            "an elastic-net (L1 + L2) minimal attack; rttui's epsilon grid is L-inf or L2: use ta:CW for L2",
        ),
        _refused(
            "EADL1",
            "EAD attack with the L1 decision rule (Chen et al. 2018)",
            {
                "kappa": 0,
                "lr": 0.01,
                "binary_search_steps": 9,
                "max_iterations": 100,
                "abort_early": True,
                "initial_const": 0.001,
                "beta": 0.001,
            },
            "an L1 minimal attack; rttui's epsilon grid is L-inf or L2: use ta:CW for L2",
        ),
        _ball(
            "EOTPGD",
            "EOT-PGD (Zimmermann 2019), PGD averaging gradients over eot_iter draws",
            {**PGD_ARGS, "eot_iter": 2, "random_start": True},
        ),
        _ball(
            "FAB",
            "FAB (Croce & Hein 2020), minimally distorted examples within eps",
            {
                "norm": "Linf",
                "eps": EPS8,
                "steps": 10,
                "n_restarts": 1,
                "alpha_max": 0.1,
                "eta": 1.05,
                "beta": 0.9,
                "verbose": False,
                "seed": 0,
                "multi_targeted": False,
                "n_classes": 10,
            },
            norm="param",
        ),
        _ball(
            "FFGSM", "FGSM from a random start (Wong et al. 2020)", {"eps": EPS8, "alpha": 10 / 255}, single_step=True
        ),
        _ball("FGSM", "FGSM (Goodfellow et al. 2015)", {"eps": EPS8}, single_step=True),
        _refused(
            "GN",
            "Gaussian noise",
            {"std": 0.1},
            "random Gaussian noise, not an attack, and not bounded by an epsilon",
        ),
        _ball(
            "Jitter",
            "Jitter (Schwinn et al. 2021)",
            {**PGD_ARGS, "scale": 10, "std": 0.1, "random_start": True},
        ),
        _refused("JSMA", "Jacobian saliency map attack (Papernot et al. 2016)", {"theta": 1.0, "gamma": 0.1}, L0),
        _refused(
            "LGV",
            "LGV transfer attack (Gubri et al. 2022)",
            {
                "trainloader": None,
                "lr": 0.05,
                "epochs": 10,
                "nb_models_epoch": 4,
                "wd": 0.0001,
                "n_grad": 1,
                "verbose": True,
                "attack_class": "BIM",
                "kwargs": None,
            },
            "needs extra inputs a study cannot give (a training DataLoader to collect surrogate models)",
        ),
        _ball("MIFGSM", "MI-FGSM (Dong et al. 2018), momentum", {**PGD_ARGS, "decay": 1.0}),
        _refused(
            "MultiAttack",
            "runs several attacks one after another",
            {"attacks": None, "verbose": False},
            "needs extra inputs a study cannot give (a list of attack objects): list the attacks in the study",
        ),
        _ball("NIFGSM", "NI-FGSM (Lin et al. 2020), Nesterov momentum", {**PGD_ARGS, "decay": 1.0}),
        _refused(
            "OnePixel",
            "one-pixel attack (Su et al. 2019)",
            {"pixels": 1, "steps": 10, "popsize": 10, "inf_batch": 128},
            L0,
        ),
        _ball("PGD", "PGD (Madry et al. 2018), L-inf", {**PGD_ARGS, "random_start": True}),
        _ball(
            "PGDL2",
            "PGD (Madry et al. 2018), L2",
            {"eps": 1.0, "alpha": 0.2, "steps": 10, "random_start": True, "eps_for_division": 1e-10},
            norm="l2",
        ),
        _ball(
            "PGDRS",
            "PGD on a randomized-smoothing classifier (Salman et al. 2019), L-inf",
            {**PGD_ARGS, **RS_ARGS},
            choices={"noise_type": ("guassian", "uniform")},
        ),
        _ball(
            "PGDRSL2",
            "PGD on a randomized-smoothing classifier (Salman et al. 2019), L2",
            {"eps": 1.0, "alpha": 0.2, "steps": 10, **RS_ARGS, "eps_for_division": 1e-10},
            norm="l2",
            choices={"noise_type": ("guassian", "uniform")},
        ),
        _ball(
            "PIFGSM",
            "PI-FGSM (Gao et al. 2020), patch-wise; its max_epsilon is the grid epsilon",
            {"max_epsilon": 16 / 255, "num_iter_set": 10, "momentum": 1.0, "amplification": 10.0, "prob": 0.7},
            eps_param="max_epsilon",
        ),
        _ball(
            "PIFGSMPP",
            "PI-FGSM++ (Gao et al. 2020), patch-wise; its max_epsilon is the grid epsilon",
            {
                "max_epsilon": 16 / 255,
                "num_iter_set": 10,
                "momentum": 1.0,
                "amplification": 10.0,
                "prob": 0.7,
                "project_factor": 0.8,
            },
            eps_param="max_epsilon",
        ),
        _refused(
            "Pixle",
            "Pixle (Pomponi et al. 2022), rearranges patches of pixels",
            {
                "x_dimensions": (2, 10),
                "y_dimensions": (2, 10),
                "pixel_mapping": "random",
                "restarts": 20,
                "max_iterations": 10,
                "update_each_iteration": False,
            },
            L0,
        ),
        _ball("RFGSM", "R+FGSM (Tramer et al. 2018)", dict(PGD_ARGS)),
        _ball("SINIFGSM", "SI-NI-FGSM (Lin et al. 2020), scale invariance", {**PGD_ARGS, "decay": 1.0, "m": 5}),
        _refused(
            "SparseFool",
            "SparseFool (Modas et al. 2019)",
            {"steps": 10, "lam": 3, "overshoot": 0.02},
            "an L1/sparse minimal attack; rttui's epsilon grid is L-inf or L2: use ta:DeepFool for L2",
        ),
        _ball(
            "SPSA",
            "SPSA (Uesato et al. 2018), gradient-free",
            {"eps": 0.3, "delta": 0.01, "lr": 0.01, "nb_iter": 1, "nb_sample": 128, "max_batch_size": 64},
        ),
        _ball(
            "Square",
            "Square attack (Andriushchenko et al. 2020), query-based random search",
            {
                "norm": "Linf",
                "eps": EPS8,
                "n_queries": 5000,
                "n_restarts": 1,
                "p_init": 0.8,
                "loss": "margin",
                "resc_schedule": True,
                "seed": 0,
                "verbose": False,
            },
            norm="param",
            choices={"loss": ("margin", "ce")},
        ),
        _ball(
            "TIFGSM",
            "TI-FGSM (Dong et al. 2019), translation invariance",
            {
                **PGD_ARGS,
                "decay": 0.0,
                "kernel_name": "gaussian",
                "len_kernel": 15,
                "nsig": 3,
                "resize_rate": 0.9,
                "diversity_prob": 0.5,
                "random_start": False,
            },
            choices={"kernel_name": ("gaussian", "linear", "uniform")},
        ),
        _ball("TPGD", "TRADES' PGD on the KL divergence (Zhang et al. 2019)", dict(PGD_ARGS)),
        _ball(
            "UPGD",
            "PGD with a choice of loss, momentum and EOT",
            {**PGD_ARGS, "random_start": False, "loss": "ce", "decay": 1.0, "eot_iter": 1},
            choices={"loss": ("ce", "dlr", "margin")},
        ),
        _refused("VANILA", "returns the images unchanged", {}, "returns the images unchanged: not an attack"),
        _ball("VMIFGSM", "VMI-FGSM (Wang & He 2021), variance tuning", {**PGD_ARGS, "decay": 1.0, "N": 5, "beta": 1.5}),
        _ball("VNIFGSM", "VNI-FGSM (Wang & He 2021), variance tuning", {**PGD_ARGS, "decay": 1.0, "N": 5, "beta": 1.5}),
    ]
}


def installed() -> bool:
    """Whether the torchattacks extra is importable (asks the import system; imports nothing)."""
    try:
        return importlib.util.find_spec(EXTRA) is not None
    except (ImportError, ValueError):
        return False


def offered() -> dict[str, TaClass]:
    """The classes a study may name (`ta:` + class name), installed or not."""
    return {c.attack: c for c in CLASSES.values() if c.kind != "refused"}


def study_params(c: TaClass) -> dict[str, Any]:
    """The parameters a study may set for a class, with their defaults: the constructor's, less what rttui fills,
    with `norm` in rttui's spelling (every class gets one, so each stored row names its threat model).

    A step size `alpha` becomes relative, as rttui's PGD has it: torchattacks' default is absolute (2/255 for an
    eps of 8/255), which over an epsilon grid is too short to leave a small ball at large epsilons (10 steps of
    2/255 never reach 0.09 without a random start: a weak attack). `rel_alpha` keeps torchattacks' ratio (0.25 for
    PGD) at every epsilon; `alpha` set in the study is used as it is.
    """
    out: dict[str, Any] = {}
    for k, v in c.params.items():
        if k in FILLED or k == "norm":
            continue
        if k == "alpha" and c.eps_param == "eps":
            out["alpha"] = None
            out["rel_alpha"] = round(v / c.params["eps"], 6)
        else:
            out[k] = v
    default = "linf" if c.norm == "param" else c.norm
    return {"norm": default, **out}


def norm_choices(c: TaClass) -> tuple[str, ...]:
    """The threat models a study may pick for a class."""
    if c.norm == "param" or c.kind == "minimal":
        return ("linf", "l2")
    return (c.norm,)
