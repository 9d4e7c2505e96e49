"""The torchattacks catalogue (`ta:` attacks, extra `rttui[torchattacks]`): the torch-free table matches the
installed package, every offered class runs under rttui's contract and stays in its ball, a class stepping out
of the ball is refused before anything is stored, and the catalogue agrees with rttui's own attacks where both
compute the same thing."""

from __future__ import annotations

import inspect
import sys
from typing import Any

import numpy as np
import pytest
import torch

from rttui.engine.attacks import ta_catalogue
from rttui.engine.evaluate import evaluate_attack
from rttui.study import catalog

torchattacks = pytest.importorskip("torchattacks", reason="the torchattacks extra is in the test extra")

# Parameters that keep every class to a fraction of a second on 16 digit images (the defaults run thousands of
# queries); the test is about the contract, not the strength.
CHEAP = {
    "steps": 3,
    "n_queries": 30,
    "nb_sample": 8,
    "max_batch_size": 8,
    "noise_batch_size": 2,
    "num_iter_set": 3,
    "eot_iter": 1,
}


def introspect() -> dict[str, dict[str, Any]]:
    """Every Attack subclass torchattacks exports, with its constructor's keyword defaults (model excluded)."""
    from torchattacks.attack import Attack

    out = {}
    for name in dir(torchattacks):
        cls = getattr(torchattacks, name)
        if inspect.isclass(cls) and issubclass(cls, Attack) and cls is not Attack:
            sig = inspect.signature(cls.__init__).parameters
            out[name] = {
                k: (None if v.default is inspect.Parameter.empty else v.default)
                for k, v in sig.items()
                if k not in ("self", "model")
            }
    return out


def test_torchattacks_catalog_table_matches_the_installed_package() -> None:
    """Each class torchattacks exports is in the table (offered or refused with a reason), with exactly its
    constructor's arguments and defaults; a new release that changes one fails here with what to write."""
    found = introspect()
    assert set(found) == set(ta_catalogue.CLASSES), "update rttui/engine/attacks/ta_catalogue.py CLASSES"
    for name, params in found.items():
        table = dict(ta_catalogue.CLASSES[name].params)
        if name == "LGV":  # a class as a default, and **kwargs: written as text / None in the table
            params = {**params, "attack_class": params["attack_class"].__name__}
        assert table == params, f"ta_catalogue.CLASSES[{name!r}].params should be {params}"
    refused = {n for n, c in ta_catalogue.CLASSES.items() if c.kind == "refused"}
    assert refused == {
        "EADEN",
        "EADL1",
        "GN",
        "JSMA",
        "LGV",
        "MultiAttack",
        "OnePixel",
        "Pixle",
        "SparseFool",
        "VANILA",
    }
    assert all(ta_catalogue.CLASSES[n].reason for n in refused)
    assert torchattacks.__version__ == ta_catalogue.TESTED_VERSION


def test_torchattacks_catalog_names_register_only_with_the_extra() -> None:
    from rttui.engine.attacks.registry import load_drivers

    REGISTRY = load_drivers()

    offered = set(ta_catalogue.offered())
    assert offered and offered <= set(REGISTRY)
    assert set(catalog.attacks()) == set(catalog.ATTACKS) | offered
    assert all(not REGISTRY[n].info.channels_last for n in offered)


def _params(name: str, **over: Any) -> dict[str, Any]:
    entry = catalog.attacks()[name]
    params = {k: p.default for k, p in entry.params.items()}
    params.update({k: v for k, v in CHEAP.items() if k in params})
    params.update(over)
    return params


@pytest.mark.parametrize("name", sorted(ta_catalogue.offered()))
def test_torchattacks_catalog_every_attack_runs_in_the_ball(trained: Any, name: str) -> None:
    """Eval mode, no gradient left on the weights, in the eps-ball and the box (checked inside, refused if
    not), adversarial accuracy never above clean accuracy, and the parameters and version recorded."""
    model, x, y = trained
    x, y = x[:16], y[:16]
    model.train()  # the evaluation must put it in eval mode for every forward pass of the attack
    modes: set[bool] = set()
    hook = model.register_forward_hook(lambda m, i, o: modes.add(m.training))
    grid = [0.1, 0.5] if name == "ta:AutoAttack" else [0.0, 0.03, 0.1]  # AutoAttack's Square: 5,000 queries
    rng = torch.get_rng_state()
    try:
        r = evaluate_attack(model, x, y, name, _params(name), grid, seed=0)
    finally:
        hook.remove()
        model.eval()
    assert modes == {False}
    assert torch.equal(rng, torch.get_rng_state())  # torch's global random state is left as it was
    assert all(p.grad is None for p in model.parameters())
    rows = r.metrics()
    assert all(row["n_adv_correct"] <= row["n_clean_correct"] for row in rows)
    assert all(m <= e + 1e-5 for m, e in zip(r.max_perturbation, r.epsilons, strict=True))
    assert f"torchattacks-{torchattacks.__version__}" in r.path.split("+")
    c = ta_catalogue.offered()[name]
    assert r.params["norm"] == rows[0]["norm"] == ("linf" if c.norm == "param" else c.norm)
    if c.kind == "minimal":
        assert "projected" in r.path
        assert r.min_norm is not None


def test_torchattacks_catalog_pgd_agrees_with_rttui_pgd(trained: Any) -> None:
    """ta:PGD without random start and rttui's PGD with the same steps and step size are the same algorithm:
    the same per-eps accuracy (torchattacks runs NCHW, rttui channels-last: float rounding may move a sample)."""
    model, x, y = trained
    x, y, grid = x[:48], y[:48], [0.01, 0.03, 0.05]
    ta = evaluate_attack(model, x, y, "ta:PGD", _params("ta:PGD", steps=5, random_start=False, alpha=0.01), grid)
    ours = evaluate_attack(
        model, x, y, "pgd", {"steps": 5, "step_size": 0.01, "random_start": False, "norm": "linf"}, grid
    )
    a = [row["n_adv_correct"] for row in ta.metrics()]
    b = [row["n_adv_correct"] for row in ours.metrics()]
    assert a[0] < ta.metrics()[0]["n_clean_correct"]  # the attack does something at the smallest eps
    assert max(abs(i - j) for i, j in zip(a, b, strict=True)) <= 1, (a, b)
    assert [row["step_size"] for row in ta.metrics()] == [0.01] * 3


def test_torchattacks_catalog_relative_step_scales_with_eps(trained: Any) -> None:
    """Unset `alpha` is rel_alpha * eps (torchattacks' own ratio, 0.25 for PGD), so a large eps is reachable."""
    model, x, y = trained
    r = evaluate_attack(model, x[:24], y[:24], "ta:BIM", _params("ta:BIM", steps=6), [0.02, 0.4])
    assert [row["step_size"] for row in r.metrics()] == pytest.approx([0.005, 0.1])
    assert r.metrics()[1]["n_adv_correct"] == 0  # 6 steps of 0.1 leave nothing standing at eps 0.4
    assert r.max_perturbation[1] > 0.2


def test_torchattacks_catalog_cw_is_projected_per_eps(trained: Any) -> None:
    """CW runs once; a sample is fooled at an eps at least its minimal norm, and the projection keeps every
    example in the ball (L2 here), so accuracy never rises with eps."""
    model, x, y = trained
    x, y = x[:24], y[:24]
    grid = [0.1, 0.5, 1.0, 3.0]
    r = evaluate_attack(model, x, y, "ta:CW", _params("ta:CW", steps=50, lr=0.05), grid)
    acc = [row["n_adv_correct"] for row in r.metrics()]
    assert acc == sorted(acc, reverse=True) and acc[-1] < acc[0]
    assert r.min_norm is not None
    found = np.isfinite(r.min_norm)
    assert found.sum() > 0
    for i, eps in enumerate(grid):
        inside = found & (r.min_norm <= eps)
        assert r.fooled[i][inside].all()  # its own example lies in the ball: it counts as fooled
    assert all(m <= e + 1e-5 for m, e in zip(r.max_perturbation, grid, strict=True))


def test_torchattacks_catalog_refuses_an_example_outside_the_ball(
    trained: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A class that steps outside its ball stops the evaluation with the reason before anything is stored."""
    from rttui.engine.attacks import ta

    class Overshoot(torchattacks.FGSM):
        def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return (images + 2 * self.eps).clamp(0, 1)

    monkeypatch.setattr(ta, "_class", lambda c: Overshoot)
    model, x, y = trained
    with pytest.raises(ta.OutsideBall, match=r"outside the linf ball of eps 0\.03.*nothing was stored"):
        evaluate_attack(model, x[:8], y[:8], "ta:FGSM", _params("ta:FGSM"), [0.03])


def test_torchattacks_catalog_missing_extra_hides_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the extra (simulated by hiding the module) the catalog offers no `ta:` name and a study naming
    one is told which extra to install; nothing imports torchattacks to find that out."""
    from rttui.errors import StudyError
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    monkeypatch.setitem(sys.modules, "torchattacks", None)
    assert not ta_catalogue.installed()
    assert not any(n.startswith("ta:") for n in catalog.attacks())
    text = tiny_study(attacks={"ta:CW": {}}, grid=[{"models": ["test_resnet"], "strategies": ["full"]}])
    with pytest.raises(StudyError) as e:
        parse_study(text)
    assert str(e.value).count("\n") == 0
    assert "needs the torchattacks extra" in str(e.value)
    assert "pip install 'rttui[torchattacks]'" in str(e.value)


@pytest.mark.parametrize(
    ("attack", "key", "value", "message"),
    [
        ("ta:PGD", "alpha", 0, "[ta:PGD].alpha: 0 must be above 0.0; use a value > 0.0"),
        ("ta:PGD", "alpha", 5.0, "[ta:PGD].alpha: 5.0 is above 1.0; use a value <= 1.0"),
        ("ta:PGD", "rel_alpha", 0, "[ta:PGD].rel_alpha: 0 must be above 0.0"),
        ("ta:APGD", "rho", 7.0, "[ta:APGD].rho: 7.0 is above 1.0"),
        ("ta:CW", "c", 0, "[ta:CW].c: 0 must be above 0.0"),
        ("ta:CW", "lr", 0.0, "[ta:CW].lr: 0.0 must be above 0.0"),
        ("ta:DIFGSM", "diversity_prob", 3.0, "[ta:DIFGSM].diversity_prob: 3.0 is above 1.0"),
        ("ta:DIFGSM", "resize_rate", 0.0, "[ta:DIFGSM].resize_rate: 0.0 must be above 0.0"),
        ("ta:Square", "p_init", 5.0, "[ta:Square].p_init: 5.0 is above 1.0"),
        ("ta:FAB", "eta", 0.5, "[ta:FAB].eta: 0.5 is below 1.0; use a value >= 1.0"),
        ("ta:FAB", "beta", 1.5, "[ta:FAB].beta: 1.5 is above 1.0"),
        ("ta:PGDL2", "eps_for_division", 0, "[ta:PGDL2].eps_for_division: 0 must be above 0.0"),
        ("ta:SPSA", "delta", 0, "[ta:SPSA].delta: 0 must be above 0.0"),
    ],
)
def test_torchattacks_parameters_outside_the_attacks_own_range_are_refused_at_validation(
    attack: str, key: str, value: Any, message: str
) -> None:
    """Issue #28: a step, learning rate or loss weight of 0 moves nothing, so the adversarial accuracy equals the
    clean one and was stored as a result; a probability above 1 or a zero divisor fails mid-run. Each is one
    line at validation naming the attack, the key and the fix."""
    from rttui.errors import StudyError
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    with pytest.raises(StudyError) as err:
        parse_study(tiny_study(attacks={attack: {key: value}}))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_torchattacks_defaults_lie_in_the_ranges_rttui_enforces() -> None:
    """The ranges are the attacks' own: every class's torchattacks default passes them (VMI-FGSM's beta = 1.5 too,
    a different `beta` from FAB's fraction), and each range names a parameter some offered class has."""
    from rttui.study.spec import parse_study
    from tests.studies import tiny_study

    seen: set[str] = set()
    for name, c in ta_catalogue.offered().items():
        params = {k: v for k, v in ta_catalogue.study_params(c).items() if v is not None}
        parse_study(tiny_study(attacks={name: params}))  # raises if a default were refused
        seen |= {k for k in params if ta_catalogue.param_range(c, k) is not None}
        seen |= {f"{c.name}.{k}" for k in params if f"{c.name}.{k}" in ta_catalogue.RANGES}
    assert set(ta_catalogue.RANGES) <= seen | {"alpha"}  # alpha's default is None (rel_alpha * eps)
