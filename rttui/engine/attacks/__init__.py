"""Attacks, one per module, all in [0, 1] pixel space on eval-mode models (see base.py for the contract)."""

from rttui.engine.attacks.base import attack_mode, perturbation_norm, project
from rttui.engine.attacks.fgsm import fgsm, fgsm_grid
from rttui.engine.attacks.pgd import pgd

__all__ = ["attack_mode", "fgsm", "fgsm_grid", "perturbation_norm", "pgd", "project"]
