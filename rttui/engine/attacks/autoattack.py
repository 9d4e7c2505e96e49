"""AutoAttack (Croce & Hein, 2020), standard version, through torchattacks: the reference strong attack.

Wrapped so that it obeys the attack contract (eval mode, parameters frozen so no gradient lands on them) and the
traps measured in FACTS.md are caught up front: `n_classes` must equal the model's class count (a wrong one
raises IndexError only once some image survives APGD-CE), and APGD-T needs at least 4 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from rttui.engine.attacks.base import attack_mode
from rttui.errors import StudyError

MIN_CLASSES = 4


def check_classes(num_classes: int) -> None:
    """Refuse a model AutoAttack's targeted attacks cannot handle, before any time is spent."""
    if num_classes < MIN_CLASSES:
        raise StudyError(
            f"attacks.autoattack: the model has {num_classes} classes but AutoAttack's APGD-T needs at least "
            f"{MIN_CLASSES}; remove autoattack from the study or use a target with >= {MIN_CLASSES} classes"
        )


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    num_classes: int,
    norm: str = "linf",
    seed: int = 0,
) -> torch.Tensor:
    """AutoAttack (APGD-CE, APGD-T, FAB-T, Square) at one epsilon; returns x_adv in the eps-ball and [0, 1]."""
    import torchattacks

    check_classes(num_classes)
    x = x.detach()
    if eps == 0 or not len(x):
        return x.clone()
    with attack_mode(model):
        atk = torchattacks.AutoAttack(
            model,
            norm={"linf": "Linf", "l2": "L2"}[norm],
            eps=eps,
            version="standard",
            n_classes=num_classes,
            seed=seed,
        )
        x_adv = atk(x, y)
    return x_adv.detach()
