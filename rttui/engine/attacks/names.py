"""The attacks the engine implements, by name, with what a face or a validator needs to know about each.

Torch-free on purpose: the study catalog reads attack names and help from here, so `rttui validate` and
`rttui --help` never import torch. The sweep drivers register themselves against these names
(`rttui.engine.attacks.registry.register_attack` refuses a name missing here), and a test checks that the two
and the catalog name the same attacks. Never import torch or another rttui layer here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AttackInfo:
    """What is known about an attack without loading it.

    `channels_last`: whether the sweep may switch a convolutional model to NHWC weights while attacking (off
    where the attack's code reshapes input gradients with `.view`, which NHWC strides break).
    """

    name: str
    help: str
    channels_last: bool = True


ATTACKS: dict[str, AttackInfo] = {
    a.name: a
    for a in [
        AttackInfo("fgsm", "fast gradient sign method (one step of size eps)"),
        AttackInfo("pgd", "projected gradient descent with random start"),
        AttackInfo(
            "deepfool",
            "minimal-perturbation attack (batched), run once; per eps its perturbation is projected and re-checked",
        ),
        # Run on the caller's memory layout, so it equals a direct call to the reference exactly.
        AttackInfo(
            "autoattack",
            "AutoAttack, the authors' reference code (pyautoattack); version standard (APGD-CE, APGD-T, FAB-T, "
            "Square at 100 iterations, min(9, classes-1) targets, 5,000 queries; needs >= 4 classes), plus or rand "
            "(>= 3 classes)",
            channels_last=False,
        ),
        AttackInfo(
            "transfer",
            "transfer attack: crafted on a surrogate (the public source backbone, feature-space PGD; or another "
            "fine-tuned run of the study, PGD), classified by the target",
        ),
    ]
}


# The fewest classes each reference AutoAttack version runs on (its most demanding attack: APGD-T's targeted DLR
# loss reads the 4th-largest logit, APGD-DLR's the 3rd). Torch-free so a study is checked at validation; a test
# holds it equal to `rttui.engine.attacks.autoattack.min_classes`.
AUTOATTACK_MIN_CLASSES = {"standard": 4, "plus": 4, "rand": 3}

# The axes a transfer attack's `sibling` selector may name, in the order its label lists them.
SIBLING_AXES = ("model", "strategy", "technique", "seed")


def variant_label(name: str, params: Mapping[str, Any] | None) -> str:
    """The name tables show for an attack: its registry name, except for the transfer attack, whose surrogate is
    part of what it is (``transfer[source]``, ``transfer[sibling: strategy=full]``, ``transfer[sibling: self]``
    for a run used as its own surrogate), so two transfer attacks of one run are never pooled."""
    if name != "transfer" or params is None:
        return name
    kind = params.get("surrogate") or "source"
    if kind != "sibling":
        return f"transfer[{kind}]"
    sel = params.get("sibling") or {}
    parts = ",".join(f"{k}={sel[k]}" for k in SIBLING_AXES if k in sel and sel[k] != "same")
    return f"transfer[sibling: {parts or 'self'}]"
