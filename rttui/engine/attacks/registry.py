"""The attack registry: attack name -> the sweep driver that runs it over an epsilon grid (timm style).

`register_attack` fills the dict; each driver module decorates its drivers, and `load_drivers` imports those
modules (once, on first use: `get_attack` and `attack_names` call it), so the torch-free modules beside them in
`rttui.engine.attacks` stay importable without torch. Arrows run driver -> registry, never
back: this module imports no driver. Names and torch-free facts about each attack live in
`rttui.engine.attacks.names`; a driver may only register a name listed there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rttui.engine.attacks.names import ATTACKS, AttackInfo

if TYPE_CHECKING:
    from rttui.engine.attacks.sweep import Sweep, Swept

Driver = Callable[["Sweep"], "Swept"]


@dataclass(frozen=True)
class AttackDriver:
    """A registered attack: its torch-free facts and the function that sweeps it over a grid."""

    info: AttackInfo
    run: Driver

    @property
    def name(self) -> str:
        return self.info.name


REGISTRY: dict[str, AttackDriver] = {}


def register_attack(name: str, info: AttackInfo | None = None) -> Callable[[Driver], Driver]:
    """Register `fn` as the sweep driver of attack `name`, which `attack_names.ATTACKS` must list; a catalogue
    registered at run time (the torchattacks extra, `ta:` names) passes its own torch-free `info` instead."""

    def deco(fn: Driver) -> Driver:
        if info is None and name not in ATTACKS:
            raise ValueError(f"attack {name!r} is not listed in rttui.engine.attacks.names.ATTACKS; add it there")
        if name in REGISTRY:
            raise ValueError(f"attack {name!r} is registered twice")
        REGISTRY[name] = AttackDriver(info or ATTACKS[name], fn)
        return fn

    return deco


_loaded: list[bool] = []


def load_drivers() -> dict[str, AttackDriver]:
    """Every registered driver: the first call imports the driver modules (they register themselves) and the
    torchattacks catalogue where that extra is installed."""
    if not _loaded:
        from rttui.engine.attacks import sweep, transfer  # noqa: F401  (registers fgsm ... autoattack, transfer)
        from rttui.engine.attacks.ta import register_catalogue

        register_catalogue()
        _loaded.append(True)
    return REGISTRY


def get_attack(name: str) -> AttackDriver:
    """The registered driver of an attack; ValueError for a name the engine does not implement."""
    driver = load_drivers().get(name)
    if driver is None:
        raise ValueError(f"attack {name!r} is not implemented in the engine")
    return driver


def attack_names() -> list[str]:
    """The registered attack names, in registration order."""
    return list(load_drivers())
