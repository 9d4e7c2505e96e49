"""The vocabulary of a study is fixed in three places: the catalog (what users type), the study validator (what
a study file may say) and the engine's registries (what actually runs). They must name the same things on every
axis (strategies, techniques, attacks, datasets), or a name validates and then fails mid-run, or an implemented
one can never be asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rttui.errors import StudyError
from rttui.study import catalog
from rttui.study.spec import parse_study
from tests.studies import tiny_study

TV = "torchvision:<Name>"  # a pattern in the catalog, not a registry entry (any torchvision dataset)


def engine_registries() -> dict[str, set[str]]:
    from rttui.engine import data, strategies, techniques
    from rttui.engine import datasets as _datasets  # noqa: F401  (registers the on-disk loaders)
    from rttui.engine.attacks.registry import load_drivers

    return {
        "strategies": set(strategies.REGISTRY),
        "techniques": set(techniques.REGISTRY),
        "attacks": set(load_drivers()),
        "datasets": set(data.REGISTRY),
    }


def catalog_names() -> dict[str, set[str]]:
    return {
        "strategies": set(catalog.STRATEGIES),
        "techniques": set(catalog.TECHNIQUES),
        "attacks": set(catalog.attacks()),  # with the torchattacks catalogue when that extra is installed
        "datasets": set(catalog.DATASETS) - {TV},
    }


def validator_accepts(axis: str, name: str) -> bool:
    """Whether a study naming `name` on `axis` (everything else the tiny study) passes validation."""
    if axis == "datasets":
        text = tiny_study(target={"dataset": name, "classes": [0, 1]})
    elif axis == "attacks":
        text = tiny_study(
            attacks={name: {}}, grid=[{"models": ["test_resnet"], "strategies": ["full"], "attacks": [name]}]
        )
    else:
        text = tiny_study(grid=[{"models": ["test_resnet"], "strategies": ["full"], axis: [name]}])
    try:
        parse_study(text)
    except StudyError:
        return False
    return True


@pytest.mark.parametrize("axis", ["strategies", "techniques", "attacks", "datasets"])
def test_catalog_and_engine_name_the_same_things(axis: str) -> None:
    assert catalog_names()[axis] == engine_registries()[axis]


@pytest.mark.parametrize("axis", ["strategies", "techniques", "attacks", "datasets"])
def test_the_validator_accepts_every_catalog_name_and_nothing_else(axis: str) -> None:
    names = sorted(catalog_names()[axis])
    assert names
    assert [n for n in names if not validator_accepts(axis, n)] == []
    assert not validator_accepts(axis, "no_such_" + axis)


def test_attack_names_registry_and_catalog_parameters_agree() -> None:
    """The torch-free list of attacks, the drivers registered for them (in the same order) and the
    catalog's parameter tables."""
    from rttui.engine.attacks import names as attack_names
    from rttui.engine.attacks.registry import load_drivers

    registry = load_drivers()

    own = [n for n in registry if not n.startswith("ta:")]  # the torchattacks catalogue is tested apart
    assert list(attack_names.ATTACKS) == own == list(catalog.ATTACKS)
    assert set(catalog.ATTACK_PARAMS) == set(attack_names.ATTACKS)
    for name in own:
        driver = registry[name]
        assert driver.info is attack_names.ATTACKS[name]
        assert catalog.ATTACKS[name].help == driver.info.help


def test_registering_an_unlisted_attack_is_refused() -> None:
    from rttui.engine.attacks.registry import load_drivers, register_attack

    load_drivers()
    with pytest.raises(ValueError, match=r"attacks\.names\.ATTACKS"):
        register_attack("no_such_attack")(lambda sweep: sweep)
    with pytest.raises(ValueError, match="twice"):
        register_attack("pgd")(lambda sweep: sweep)


def test_the_catalog_imports_no_torch() -> None:
    code = "import sys, rttui.study.catalog, rttui.study.spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
