"""Attacks, one per module, all in [0, 1] pixel space on eval-mode models (see base.py for the contract), and
the registry of their sweep drivers (registry.py; the drivers are in sweep.py).

Importing this package imports `sweep` and `transfer`, whose drivers register themselves in `registry.REGISTRY`
(transfer.py holds the transfer attack: crafted on a surrogate model, classified by the target), and registers
the torchattacks catalogue (`ta:` names, ta.py) when that extra is installed.
"""

from rttui.engine.attacks import sweep, transfer
from rttui.engine.attacks.base import attack_mode, perturbation_norm, project
from rttui.engine.attacks.fgsm import fgsm, fgsm_grid
from rttui.engine.attacks.pgd import pgd
from rttui.engine.attacks.registry import REGISTRY, attack_names, get_attack, register_attack
from rttui.engine.attacks.ta import register_catalogue

register_catalogue()

__all__ = [
    "REGISTRY",
    "attack_mode",
    "attack_names",
    "fgsm",
    "fgsm_grid",
    "get_attack",
    "perturbation_norm",
    "pgd",
    "project",
    "register_attack",
    "sweep",
    "transfer",
]
